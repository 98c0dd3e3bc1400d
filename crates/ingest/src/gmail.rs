//! Google Workspace Gmail logs: the rows Gmail writes to BigQuery, the same
//! events from the Admin SDK Reports API, and the CSV export of the Admin
//! console's Email Log Search.
//!
//! Why it is shaped this way:
//!
//! - **One row model, several transports.** Gmail logs one row per stage of
//!   a message (`event_info` + `message_info`). BigQuery hands them out as
//!   named-field JSON (`bq query --format=json`: one JSON array; the console
//!   and extract jobs: one object per line; integers as strings or numbers,
//!   booleans as strings or booleans, BYTES as base64), or positionally
//!   through the REST API (`tabledata.list`, `jobs.getQueryResults`:
//!   `{"f":[{"v":…}]}`, every scalar a string, records as `{"v":{"f":[…]}}`,
//!   repeated fields as `{"v":[{"v":…}]}`), which means nothing without the
//!   table's schema. The Reports API (`applicationName=gmail`, event
//!   `delivery`) carries the same fields as `parameters` (`event_info`,
//!   `message_info` — Google's appendix calls the latter `message`; both are
//!   read) with `value` / `intValue` / `boolValue` / `multiValue` /
//!   `messageValue{parameter}` / `multiMessageValue`. Every transport is
//!   first turned into the named-field row, and one function,
//!   [`records_from_row`], turns a row into records; [`decode_tabledata_row`]
//!   and [`rows_from_activity`] are the converters, public so that pollers
//!   can reuse them.
//! - **Schema of positional rows.** In order: a `schema` in the same JSON
//!   value (`getQueryResults`, Elastic's `{"row":…,"schema":…}` lines); the
//!   last schema document seen earlier in the input (a `tables.get`
//!   response, `{"fields":[…]}` or the `bq show --schema` array); the schema
//!   handed in by the caller (`mailtrail import` reads `<name>.schema.json`
//!   or `schema.json` beside the file, see [`schema_file_beside`]); else the
//!   built-in [`Schema::gmail_default`] — the layout of the Gmail logs table
//!   as published with Elastic's Google Workspace integration (2025), whose
//!   field names and types are those of Google's "Schema for Gmail logs in
//!   BigQuery" (support.google.com/a/answer/7230050, 12384955); that page
//!   lists the fields but not their positions. Rows read with the built-in
//!   schema are counted ([`GmailSummary::default_schema_rows`]) so the caller
//!   can say so. Against a given schema a row must fit exactly; against the
//!   built-in one, trailing cells a newer table added are ignored and
//!   missing trailing cells are null (BigQuery appends new fields at the end
//!   of a record), but a cell whose shape contradicts its field (a record
//!   where a string belongs, a list where a scalar belongs) rejects the row:
//!   a misaligned schema must never produce plausible-looking wrong records.
//! - **Streaming, bounded.** JSON input is framed value by value (NDJSON,
//!   concatenated or pretty-printed objects, or the elements of a top-level
//!   array, one at a time), so a multi-gigabyte `bq` export is never held
//!   whole; one value may be at most [`max_json_value_bytes`]. In NDJSON a
//!   broken line is one reject (with its line); in other layouts rejects
//!   carry the byte offset. Nothing here panics on input.
//! - **One record per row.** Gmail gives no "message done" signal and rows
//!   of one message are spread over a day's table; the store merges records
//!   of one email by Message-ID (key `gmail:<Message-ID>`), so each row is
//!   emitted as its own partial record, memory stays flat.
//!
//! Row → record: `message_id` from `rfc2822_message_id` (`<>` removed);
//! `envelope_from` from `source.address`; `from` from
//! `source.from_header_address` / `from_header_displayname`; subject; size
//! from `payload_size`; `first_seen` from `event_info.timestamp_usec` (else
//! the top-level `time_usec`); `client_ip` from `connection_info.client_ip`,
//! else the top-level `ip_address` (BYTES: base64 of the 4 or 16 address
//! bytes — or, as in published samples, of the address text); SPF / DKIM /
//! DMARC from `connection_info.spf_pass` / `dkim_pass` / `dmarc_pass`
//! (`pass`, or `fail` for false: Gmail logs a boolean, so `fail` means "did
//! not pass", which includes "no signature"); attachments from
//! `attachment[].file_name` (no content, so no hash: content type empty,
//! size 0), or, when only `num_message_attachments` is known, that many
//! unnamed entries (at most 64) so that `has:attachment` works; system
//! `gmail`. Direction is left to the store.
//!
//! Recipients: every `destination[].address` (else the addresses of
//! `flattened_destinations`, `service:selector:address,…`) is an `envelope`
//! recipient. Gmail logs carry **no header To/Cc**, so Bcc cannot be told
//! from them alone: `structured_policy_log_info.exchange_journal_info`
//! (`recipients`, `unknown_recipients`) lists every envelope recipient of
//! the journaled message, Bcc included, and those are added as `envelope`
//! recipients too (to a record of their own when its `rfc822_message_id`
//! names another message). When a view with headers (journal copy, mailbox
//! copy) of the same Message-ID reaches the store, envelope recipients the
//! headers do not name become Bcc there
//! ([`MessageRecord::settle_recipients`]).
//!
//! Rows → deliveries (system `gmail`, one per destination unless said;
//! `mail_event_type` per Google's schema: 1 sent, 2 received, 5 quarantined,
//! 11 auto-forwarded, 30 bounced, 34 rejected or delayed by rate limiting,
//! 0 a delivery stage shown only in BigQuery; the code is the destination's
//! `rcpt_response`, else `connection_info.smtp_reply_code`, when 200–599;
//! "SMTP-in stage" = `source.service` is `smtp-inbound` or `action_type` 1,
//! "Message received by inbound SMTP server"):
//!
//! | row | delivery |
//! |---|---|
//! | `mail_event_type` 5 | `quarantined` |
//! | `mail_event_type` 11 | `forwarded` |
//! | `mail_event_type` 30 | `bounced` |
//! | code 2xx | `delivered`; on an SMTP-in stage (not type 2): the arrival below |
//! | code 4xx | `deferred` |
//! | code 5xx | `rejected` on an SMTP-in stage or type 2 (refused on the way in), else `bounced` |
//! | `mail_event_type` 34, no code | `deferred` (detail says rate limit) |
//! | `event_info.success` false | `rejected` on an SMTP-in stage or types 1 and 2 ("false if the message was rejected by a policy"), else `failed` |
//! | type 1 (sent), or an SMTP-in stage of type 0 | **arrival**: one `received` for the message (recipient empty) with the connecting client (`smtp_in_connect_ip`, else `client_ip`), as the other decoders count arrivals; destinations are envelope recipients |
//! | anything else of types 0 and 2 | `delivered` |
//! | other `mail_event_type`s (spam marks, opens, replies, clicks, downloads, label changes, drafts, …) | no record: user actions, not deliveries; counted in [`GmailSummary::skipped`] |
//!
//! Details say the code, `description`, spam verdict, destination service
//! and `action_type` (kept, not interpreted: the documented list is long and
//! grows). SMTP-out stages name the next hop (`smtp_out_remote_host[ip]`).
//!
//! Keys: `gmail:<Message-ID>` (shared by every transport, so BigQuery rows,
//! Reports API events and Email Log Search lines of one email meet); a row
//! without a Message-ID is `gmail-row:<unique_identifier or event_id>`, else
//! `gmail-row:<microseconds>:<sender>`; such a Log Search line
//! `gmail-els:<start second>:<sender>:<recipients>`. The same step seen by
//! BigQuery and by Email Log Search has different times (microseconds,
//! seconds) and counts as two deliveries; import one of them per period.
//!
//! Detection ([`looks_like_gmail_json`], [`looks_like_email_log_search`]) is
//! conservative: JSON must start with `{` or `[` and name `message_info`
//! together with `event_info` or `rfc2822_message_id` within the head, or be
//! a Reports API response for `gmail`, or positional rows holding a value of
//! Gmail's own; CSV must start with the Log Search header.
//!
//! Email Log Search CSV (support.google.com/a/answer/13828463): one line per
//! delivery step with `Message ID, Start date, End date, Sender, Message
//! size, Subject, Direction, Attachments, Recipient address, Event target`
//! (columns found by header name, case and punctuation ignored; an
//! `Event status` / `Status`, `Event description`, `Event target IP
//! address` or `Sender IP address` column is read when present). `N/A`
//! is no value. Dates: RFC 3339 / ISO 8601 (`T` or space), `yyyy/MM/dd
//! HH:mm:ss` and `yyyy-MM-dd HH:mm:ss` (seconds optional, fraction allowed),
//! `MMM d, yyyy, h:mm:ss AM` — followed by `Z`, `UTC`, `GMT`, `GMT+9`,
//! `UTC+09:00`, `+0900`, an IANA name (`Asia/Tokyo`), `JST`/`PST`/`PDT`, or
//! nothing (then [`DecodeOptions::timezone`]). `Sender` is the envelope
//! sender (the first address when a delegate is named too), `Attachments`
//! a count. Event target → delivery per recipient: `SMTP_IN` the arrival
//! (one `received`, at the start date), `LIST_SERVER` `expanded` (the
//! recipient is the group), `SMTP_OUT`, `GMAIL_INBOX`, `GMAIL_SPAM`,
//! `INTERNAL_SERVER`, `ARCHIVE_LIST_SERVER` and others `delivered` (at the
//! end date; the target in the detail); a status column, when present and
//! recognisable (delivered, bounced, deferred, rejected, quarantined,
//! dropped, …), wins; a Message ID of `SMTPIN_ADDED_REJECT_SESSION` means
//! Gmail refused the session: `rejected`, and no Message-ID.

use std::borrow::Cow;
use std::io::BufRead;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, TimeZone, Utc};
use mailtrail_model::{
    merge_recipient, normalize_address, normalize_message_id, Attachment, AuthResults, Delivery,
    DeliveryStatus, Mailbox, MessageRecord, Position, Recipient, RecipientKind, Reject,
};
use serde_json::{Map, Value};

use crate::lines::{Line, LineReader};
use crate::msgtrk::{clean_ip, split_csv, CsvError};
use crate::{DecodeOptions, IngestError, Sink, SinkError, QUARANTINE_EXCERPT_BYTES};

/// The system name of every delivery and record from these logs.
pub const SYSTEM: &str = "gmail";

/// Reject code: a JSON value that does not parse.
pub const CODE_JSON: &str = "gmail.json";
/// Reject code: JSON that is no Gmail row, Reports API activity, BigQuery response or schema.
pub const CODE_SHAPE: &str = "gmail.shape";
/// Reject code: a positional row that does not fit its schema, or a schema that cannot be read.
pub const CODE_SCHEMA: &str = "gmail.schema";
/// Reject code: a row without a usable event time.
pub const CODE_TIME: &str = "gmail.time";
/// Reject code: a JSON value cut off (end of input, or end of line in NDJSON).
pub const CODE_TRUNCATED: &str = "gmail.truncated";
/// Reject code: a JSON value or CSV line larger than the limit.
pub const CODE_TOO_LONG: &str = "gmail.too_long";
/// Reject code: an Email Log Search line that is not CSV, or has another field count than its header.
pub const CODE_ELS_CSV: &str = "gmail.els_csv";
/// Reject code: an Email Log Search line before any header line.
pub const CODE_ELS_HEADER: &str = "gmail.els_header";
/// Reject code: an Email Log Search date that cannot be read.
pub const CODE_ELS_DATE: &str = "gmail.els_date";

/// The most unnamed attachments made from a bare attachment count.
const MAX_COUNTED_ATTACHMENTS: u64 = 64;
/// Nesting depth accepted in schemas and Reports API parameters.
const MAX_DEPTH: usize = 32;

static NULL: Value = Value::Null;

// ---------------------------------------------------------------------------
// Small readers of JSON values that tolerate every export's typing.

fn at<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

/// A non-empty trimmed string (numbers and booleans are no text).
fn text(v: &Value) -> Option<&str> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A string, or a number written as text (ids are INTEGER in some tables).
fn text_or_number(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => text(v).map(Cow::Borrowed),
    }
}

/// An integer written as a JSON number or as a string (BigQuery's JSON).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("true") || s == "1" {
                Some(true)
            } else if s.eq_ignore_ascii_case("false") || s == "0" {
                Some(false)
            } else {
                None
            }
        }
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// The items of a repeated field: a list, or a single object standing for one.
fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => Vec::new(),
    }
}

fn time_from_micros(us: i64) -> Option<DateTime<Utc>> {
    if us > 0 {
        DateTime::from_timestamp_micros(us)
    } else {
        None
    }
}

/// An epoch stamp of unknown unit (seconds, milliseconds or microseconds).
fn time_from_epoch_guess(n: i64) -> Option<DateTime<Utc>> {
    if n > 100_000_000_000_000 {
        DateTime::from_timestamp_micros(n)
    } else if n > 100_000_000_000 {
        DateTime::from_timestamp_millis(n)
    } else if n > 0 {
        DateTime::from_timestamp(n, 0)
    } else {
        None
    }
}

/// An IP address from a BigQuery BYTES field (base64 of the 4 or 16 address
/// bytes, or of the address text) or from plain text; canonical form.
pub fn ip_from_bytes_field(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Some(ip) = clean_ip(value) {
        return Some(ip);
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(value).ok())?;
    if let Ok(b) = <[u8; 4]>::try_from(bytes.as_slice()) {
        return Some(Ipv4Addr::from(b).to_string());
    }
    if let Ok(b) = <[u8; 16]>::try_from(bytes.as_slice()) {
        return Some(Ipv6Addr::from(b).to_string());
    }
    std::str::from_utf8(&bytes).ok().and_then(clean_ip)
}

fn ip_of(v: &Value) -> Option<String> {
    text(v).and_then(clean_ip)
}

/// `host[ip]`, `host` or `[ip]`.
fn relay_of(host: Option<&str>, ip: Option<String>) -> Option<String> {
    match (host, ip) {
        (Some(h), Some(ip)) => Some(format!("{h}[{ip}]")),
        (Some(h), None) => Some(h.to_string()),
        (None, Some(ip)) => Some(format!("[{ip}]")),
        (None, None) => None,
    }
}

// ---------------------------------------------------------------------------
// Schemas and positional rows.

/// One field of a BigQuery table schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The BigQuery type as written (`STRING`, `INTEGER`, `RECORD`, …), upper-cased.
    pub ty: String,
    /// Mode `REPEATED`.
    pub repeated: bool,
    /// Sub-fields of a `RECORD`.
    pub fields: Vec<Field>,
}

impl Field {
    pub fn is_record(&self) -> bool {
        self.ty == "RECORD" || self.ty == "STRUCT"
    }
}

/// A BigQuery table schema: the meaning of the positions of a `tabledata` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub fields: Vec<Field>,
}

/// The built-in Gmail logs table layout (see the module doc for its origin):
/// `name [REPEATED] TYPE [( sub-fields )]`, comma separated, in table order.
const GMAIL_DEFAULT_SCHEMA: &str = "
domain_name STRING, email STRING, event_id STRING, event_name STRING, event_type STRING,
has_sensitive_content BOOLEAN, ip_address BYTES, record_type STRING, time_usec INTEGER,
unique_identifier INTEGER,
event_info RECORD (
  timestamp_usec INTEGER, elapsed_time_usec INTEGER, success BOOLEAN,
  client_context RECORD (session_context RECORD (delegate_user_email STRING), client_type STRING),
  mail_event_type INTEGER
),
message_info RECORD (
  action_type INTEGER, rfc2822_message_id STRING, subject STRING, payload_size INTEGER,
  source RECORD (address STRING, service STRING, selector STRING, from_header_address STRING,
    from_header_displayname STRING),
  destination REPEATED RECORD (address STRING, service STRING, selector STRING,
    smime_signature_verification_success BOOLEAN, smime_decryption_success BOOLEAN,
    smime_parsing_success BOOLEAN, smime_extraction_success BOOLEAN, rcpt_response INTEGER),
  flattened_destinations STRING, description STRING, is_spam BOOLEAN,
  is_policy_check_for_sender BOOLEAN, num_message_attachments INTEGER,
  attachment REPEATED RECORD (sha256 STRING, file_extension_type STRING, malware_family INTEGER,
    file_name STRING),
  connection_info RECORD (
    client_ip STRING, smtp_in_connect_ip STRING, smtp_out_connect_ip STRING,
    failed_smtp_out_connect_ip REPEATED STRING, smtp_tls_state INTEGER, smtp_tls_version STRING,
    smtp_tls_cipher STRING, smtp_reply_code INTEGER, tls_required_but_unavailable BOOLEAN,
    smtp_out_remote_host STRING, smtp_user_agent_ip STRING, is_intra_domain BOOLEAN,
    dmarc_pass BOOLEAN, dmarc_published_domain STRING, client_host_zone STRING,
    smtp_response_reason INTEGER, ip_geo_city STRING, ip_geo_country STRING,
    authenticated_domain REPEATED RECORD (name STRING, type INTEGER),
    is_internal BOOLEAN, dkim_pass BOOLEAN, spf_pass BOOLEAN
  ),
  message_set REPEATED RECORD (type INTEGER),
  smtp_relay_error INTEGER, upload_error_category INTEGER,
  triggered_rule_info REPEATED RECORD (
    policy_holder_address STRING,
    consequence REPEATED RECORD (action INTEGER, reason STRING,
      subconsequence REPEATED RECORD (action INTEGER, reason STRING)),
    string_match REPEATED RECORD (type INTEGER, predefined_detector_name STRING, source INTEGER,
      attachment_name STRING, matched_string STRING, match_expression STRING),
    spam_label_modifier INTEGER, rule_type INTEGER, rule_name STRING
  ),
  flattened_triggered_rule_info STRING,
  structured_policy_log_info RECORD (
    exchange_journal_info RECORD (timestamp INTEGER, unknown_recipients REPEATED STRING,
      recipients REPEATED STRING, rfc822_message_id STRING),
    detected_file_types REPEATED RECORD (category INTEGER, mime_type STRING)
  ),
  smime_sign_message BOOLEAN, smime_encrypt_message BOOLEAN, smime_packaging_success BOOLEAN,
  smime_extraction_success BOOLEAN, smime_content_type INTEGER, link_domain REPEATED STRING,
  spam_info RECORD (disposition INTEGER, classification_reason INTEGER,
    ip_whitelist_entry STRING, classification_timestamp_usec INTEGER),
  post_delivery_info RECORD (
    action_type INTEGER,
    interaction RECORD (link_url STRING, drive_id REPEATED STRING,
      attachment REPEATED RECORD (sha256 STRING, file_extension_type STRING,
        malware_family INTEGER, file_name STRING)),
    data_classification RECORD (classified_entity INTEGER, event_type INTEGER,
      labels REPEATED RECORD (field_value_display_name STRING),
      previous_labels REPEATED RECORD (field_value_display_name STRING))
  ),
  confidential_mode_info RECORD (is_confidential_mode BOOLEAN)
),
resource_details REPEATED RECORD (
  id STRING, title STRING, type STRING, application_id INTEGER,
  applied_labels REPEATED RECORD (
    id STRING, title STRING,
    field_values REPEATED RECORD (
      id STRING, display_name STRING, type STRING, unset_value BOOLEAN,
      long_text_value STRING, text_value STRING, text_list_value REPEATED STRING,
      selection_value RECORD (id STRING, display_name STRING, badged BOOLEAN),
      selection_list_value REPEATED RECORD (id STRING, display_name STRING, badged BOOLEAN),
      integer_value INTEGER,
      user_value RECORD (email STRING),
      user_list_value REPEATED RECORD (email STRING),
      date_value STRING,
      reason RECORD (reason_type STRING)
    ),
    reason RECORD (reason_type STRING)
  ),
  relation STRING
)";

impl Schema {
    /// The built-in layout of the Gmail logs table (see the module doc).
    pub fn gmail_default() -> &'static Schema {
        static DEFAULT: OnceLock<Schema> = OnceLock::new();
        DEFAULT.get_or_init(|| {
            // The text is a constant of this module, checked by a unit test.
            parse_schema_text(GMAIL_DEFAULT_SCHEMA).unwrap_or(Schema { fields: Vec::new() })
        })
    }

    /// A schema from JSON: a `tables.get` / `getQueryResults` response
    /// (`{"schema":{"fields":[…]}}`), `{"fields":[…]}`, or the field list
    /// itself as `bq show --schema` prints it.
    pub fn from_json(v: &Value) -> Result<Schema, String> {
        let list = match v {
            Value::Array(a) => a,
            Value::Object(o) => {
                let holder = o.get("schema").unwrap_or(v);
                match holder.get("fields") {
                    Some(Value::Array(a)) => a,
                    _ => return Err("no \"fields\" list".to_string()),
                }
            }
            _ => return Err("a schema is a JSON object or list".to_string()),
        };
        let fields = parse_fields(list, 0)?;
        if fields.is_empty() {
            return Err("the schema has no fields".to_string());
        }
        Ok(Schema { fields })
    }

    /// Whether the schema describes Gmail log rows (has `event_info` or
    /// `message_info`, at the top or under `gmail`).
    pub fn is_gmail(&self) -> bool {
        self.fields.iter().any(|f| {
            f.name == "event_info"
                || f.name == "message_info"
                || (f.name == "gmail" && f.fields.iter().any(|g| g.name == "message_info"))
        })
    }
}

fn parse_fields(list: &[Value], depth: usize) -> Result<Vec<Field>, String> {
    if depth > MAX_DEPTH {
        return Err("schema nested too deep".to_string());
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, f) in list.iter().enumerate() {
        let name = text(at(f, "name")).ok_or_else(|| format!("field {} has no name", i + 1))?;
        let ty = text(at(f, "type"))
            .ok_or_else(|| format!("field {name} has no type"))?
            .to_ascii_uppercase();
        let repeated = text(at(f, "mode")).is_some_and(|m| m.eq_ignore_ascii_case("REPEATED"));
        let fields = match at(f, "fields") {
            Value::Array(sub) => parse_fields(sub, depth + 1).map_err(|e| format!("{name}.{e}"))?,
            _ => Vec::new(),
        };
        out.push(Field {
            name: name.to_string(),
            ty,
            repeated,
            fields,
        });
    }
    Ok(out)
}

/// The compact schema text of [`GMAIL_DEFAULT_SCHEMA`].
fn parse_schema_text(text: &str) -> Result<Schema, String> {
    let mut tokens: Vec<&str> = Vec::new();
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let punct = matches!(c, '(' | ')' | ',');
        if punct || c.is_whitespace() {
            if let Some(s) = word_start.take() {
                tokens.push(&text[s..i]);
            }
            if punct {
                tokens.push(&text[i..i + 1]);
            }
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(s) = word_start {
        tokens.push(&text[s..]);
    }
    let mut pos = 0;
    let fields = parse_list(&tokens, &mut pos, 0)?;
    if pos != tokens.len() {
        return Err(format!("unexpected `{}`", tokens[pos]));
    }
    Ok(Schema { fields })
}

fn parse_list(tokens: &[&str], pos: &mut usize, depth: usize) -> Result<Vec<Field>, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deep".to_string());
    }
    let mut out = Vec::new();
    loop {
        let name = tokens.get(*pos).ok_or("a field name is missing")?;
        *pos += 1;
        let mut ty = tokens.get(*pos).ok_or("a type is missing")?.to_string();
        *pos += 1;
        let repeated = ty == "REPEATED";
        if repeated {
            ty = tokens.get(*pos).ok_or("a type is missing")?.to_string();
            *pos += 1;
        }
        let mut fields = Vec::new();
        if tokens.get(*pos) == Some(&"(") {
            *pos += 1;
            fields = parse_list(tokens, pos, depth + 1)?;
            if tokens.get(*pos) != Some(&")") {
                return Err(format!("`)` missing after {name}"));
            }
            *pos += 1;
        }
        out.push(Field {
            name: name.to_string(),
            ty,
            repeated,
            fields,
        });
        match tokens.get(*pos) {
            Some(&",") => *pos += 1,
            _ => return Ok(out),
        }
    }
}

/// Turn a positional `tabledata` row (`{"f":[{"v":…},…]}`) into the
/// named-field row its schema describes. Scalars are kept as written (the
/// REST API writes them as strings); records become objects, repeated fields
/// lists, a null repeated field an empty list. `strict`: the row must have
/// exactly the schema's cells (a given schema); otherwise trailing cells are
/// ignored and missing ones are null (the built-in schema and a newer table).
/// A cell whose shape contradicts its field is always an error.
pub fn decode_tabledata_row(row: &Value, schema: &Schema, strict: bool) -> Result<Value, String> {
    decode_record(row, &schema.fields, strict, 0)
}

fn decode_record(
    row: &Value,
    fields: &[Field],
    strict: bool,
    depth: usize,
) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deep".to_string());
    }
    let Some(cells) = row.get("f").and_then(Value::as_array) else {
        return Err("a record is not {\"f\": […]}".to_string());
    };
    if strict && cells.len() != fields.len() {
        return Err(format!(
            "{} cells where the schema has {} fields",
            cells.len(),
            fields.len()
        ));
    }
    let mut out = Map::new();
    for (i, field) in fields.iter().enumerate() {
        let v = match cells.get(i) {
            Some(Value::Object(cell)) => cell.get("v").unwrap_or(&NULL),
            Some(Value::Null) | None => &NULL,
            Some(_) => return Err(format!("{}: a cell is not {{\"v\": …}}", field.name)),
        };
        let decoded =
            decode_value(v, field, strict, depth).map_err(|e| format!("{}: {e}", field.name))?;
        out.insert(field.name.clone(), decoded);
    }
    Ok(Value::Object(out))
}

fn decode_value(v: &Value, field: &Field, strict: bool, depth: usize) -> Result<Value, String> {
    if !field.repeated {
        return decode_single(v, field, strict, depth);
    }
    match v {
        Value::Null => Ok(Value::Array(Vec::new())),
        Value::Array(list) => list
            .iter()
            .map(|item| match item {
                Value::Object(o) => {
                    decode_single(o.get("v").unwrap_or(&NULL), field, strict, depth)
                }
                _ => Err("an item of a repeated field is not {\"v\": …}".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        _ => Err("a repeated field is not a list: the schema does not fit the row".to_string()),
    }
}

fn decode_single(v: &Value, field: &Field, strict: bool, depth: usize) -> Result<Value, String> {
    if field.is_record() {
        match v {
            Value::Null => Ok(Value::Null),
            Value::Object(o) if o.contains_key("f") => {
                decode_record(v, &field.fields, strict, depth + 1)
            }
            _ => Err("a record field holds no record: the schema does not fit the row".to_string()),
        }
    } else {
        match v {
            Value::Null | Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(v.clone()),
            _ => Err(format!(
                "a {} field holds a list or record: the schema does not fit the row",
                field.ty
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Reports API activities.

/// The named-field rows of a Reports API activity (`activities.list` item,
/// `applicationName=gmail`): one per event whose parameters carry
/// `event_info` or `message_info` (`message`). The activity's `id.time`
/// becomes `time_usec`, `id.uniqueQualifier` `unique_identifier`,
/// `actor.email` `email`, `ipAddress` `ip_address`.
pub fn rows_from_activity(activity: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for event in items(at(activity, "events")) {
        let params = params_to_object(at(event, "parameters"), 0);
        let event_info = params.get("event_info").cloned();
        let message_info = params
            .get("message_info")
            .or_else(|| params.get("message"))
            .cloned();
        if event_info.is_none() && message_info.is_none() {
            continue;
        }
        let mut row = Map::new();
        row.insert("record_type".into(), Value::from(SYSTEM));
        if let Some(name) = text(at(event, "name")) {
            row.insert("event_name".into(), Value::from(name));
        }
        if let Some(t) =
            text(at(at(activity, "id"), "time")).and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            row.insert(
                "time_usec".into(),
                Value::from(t.with_timezone(&Utc).timestamp_micros().to_string()),
            );
        }
        if let Some(q) = text_or_number(at(at(activity, "id"), "uniqueQualifier")) {
            row.insert("unique_identifier".into(), Value::from(q.into_owned()));
        }
        if let Some(e) = text(at(at(activity, "actor"), "email")) {
            row.insert("email".into(), Value::from(e));
        }
        if let Some(ip) = text(at(activity, "ipAddress")) {
            row.insert("ip_address".into(), Value::from(ip));
        }
        row.insert("event_info".into(), event_info.unwrap_or(Value::Null));
        row.insert("message_info".into(), message_info.unwrap_or(Value::Null));
        out.push(Value::Object(row));
    }
    out
}

/// Reports API parameters (`[{name, value | intValue | boolValue |
/// multiValue | multiIntValue | multiBoolValue | messageValue{parameter} |
/// multiMessageValue[{parameter}]}]`) as a named-field object. Dotted names
/// (`source.address`) nest.
fn params_to_object(params: &Value, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    if depth > MAX_DEPTH {
        return out;
    }
    for p in items(params) {
        let Some(name) = text(at(p, "name")) else {
            continue;
        };
        let value = if let Some(v) = p.get("value") {
            v.clone()
        } else if let Some(v) = p.get("intValue") {
            v.clone()
        } else if let Some(v) = p.get("boolValue") {
            v.clone()
        } else if let Some(v) = p.get("messageValue") {
            Value::Object(params_to_object(at(v, "parameter"), depth + 1))
        } else if let Some(Value::Array(list)) = p.get("multiMessageValue") {
            Value::Array(
                list.iter()
                    .map(|m| Value::Object(params_to_object(at(m, "parameter"), depth + 1)))
                    .collect(),
            )
        } else if let Some(v) = p
            .get("multiValue")
            .or_else(|| p.get("multiIntValue"))
            .or_else(|| p.get("multiBoolValue"))
        {
            v.clone()
        } else {
            Value::Null
        };
        insert_dotted(&mut out, name, value);
    }
    out
}

fn insert_dotted(map: &mut Map<String, Value>, name: &str, value: Value) {
    match name.split_once('.') {
        Some((head, rest)) if !head.is_empty() && !rest.is_empty() => {
            let slot = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert_dotted(inner, rest, value);
            }
        }
        _ => {
            map.insert(name.to_string(), value);
        }
    }
}

// ---------------------------------------------------------------------------
// Row → records.

/// What one named-field row gives.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    /// The row's records (one, or two when it journals another message).
    Records(Vec<MessageRecord>),
    /// Not a delivery event (a user action such as opening, another record
    /// type): nothing to store. The text says why.
    Skipped(String),
}

/// A row that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// One of this module's `CODE_*`.
    pub code: &'static str,
    pub reason: String,
}

impl RowError {
    fn new(code: &'static str, reason: impl Into<String>) -> RowError {
        RowError {
            code,
            reason: reason.into(),
        }
    }
}

/// What a row's stage did to one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The message entered Gmail: one `received` for the whole message.
    Arrival,
    Status(DeliveryStatus),
}

/// The mapping table of the module doc.
fn fate(met: Option<i64>, code: Option<i64>, success: Option<bool>, smtp_in: bool) -> Fate {
    use DeliveryStatus as S;
    match met {
        Some(5) => return Fate::Status(S::Quarantined),
        Some(11) => return Fate::Status(S::Forwarded),
        Some(30) => return Fate::Status(S::Bounced),
        _ => {}
    }
    let inbound = smtp_in || met == Some(2);
    if let Some(c) = code {
        match c / 100 {
            2 if smtp_in && met != Some(2) => return Fate::Arrival,
            2 => return Fate::Status(S::Delivered),
            4 => return Fate::Status(S::Deferred),
            5 if inbound => return Fate::Status(S::Rejected),
            5 => return Fate::Status(S::Bounced),
            _ => {}
        }
    }
    if met == Some(34) {
        return Fate::Status(S::Deferred);
    }
    if success == Some(false) {
        return Fate::Status(if inbound || met == Some(1) {
            S::Rejected
        } else {
            S::Failed
        });
    }
    if met == Some(1) || (smtp_in && met != Some(2)) {
        Fate::Arrival
    } else {
        Fate::Status(S::Delivered)
    }
}

/// Whether a `mail_event_type` is a stage of delivery (else a user action).
fn is_delivery_event(met: Option<i64>) -> bool {
    matches!(met, None | Some(0 | 1 | 2 | 5 | 11 | 30 | 34))
}

struct Dest {
    address: String,
    service: Option<String>,
    selector: Option<String>,
    code: Option<i64>,
}

fn destinations(mi: &Value) -> Vec<Dest> {
    let mut out: Vec<Dest> = items(at(mi, "destination"))
        .into_iter()
        .filter_map(|d| {
            Some(Dest {
                address: normalize_address(text(at(d, "address"))?)?,
                service: text(at(d, "service")).map(str::to_string),
                selector: text(at(d, "selector")).map(str::to_string),
                code: int(at(d, "rcpt_response")).filter(|c| (200..600).contains(c)),
            })
        })
        .collect();
    if out.is_empty() {
        // `service:selector:address,…`
        for item in text(at(mi, "flattened_destinations"))
            .unwrap_or("")
            .split(',')
        {
            let parts: Vec<&str> = item.trim().splitn(3, ':').collect();
            let (service, selector, address) = match parts.as_slice() {
                [s, sel, a] => (Some(*s), Some(*sel), *a),
                [a] => (None, None, *a),
                _ => continue,
            };
            if let Some(address) = normalize_address(address) {
                let owned = |s: Option<&str>| {
                    s.map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                };
                out.push(Dest {
                    address,
                    service: owned(service),
                    selector: owned(selector),
                    code: None,
                });
            }
        }
    }
    out
}

fn verdict(v: &Value) -> Option<String> {
    boolean(v).map(|b| if b { "pass" } else { "fail" }.to_string())
}

fn attachments_of(mi: &Value) -> Vec<Attachment> {
    let named: Vec<Attachment> = items(at(mi, "attachment"))
        .into_iter()
        .filter_map(|a| text(at(a, "file_name")))
        .map(|name| Attachment {
            filename: Some(name.to_string()),
            ..Attachment::default()
        })
        .collect();
    if !named.is_empty() {
        return named;
    }
    let count = int(at(mi, "num_message_attachments"))
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
        .min(MAX_COUNTED_ATTACHMENTS);
    (0..count).map(|_| Attachment::default()).collect()
}

/// Turn one named-field Gmail log row (BigQuery JSON, or
/// [`rows_from_activity`]'s output) into records, per the module doc. The
/// row may also be a Workspace `activity` table row with the Gmail fields
/// under `gmail`.
pub fn records_from_row(row: &Value) -> Result<RowOutcome, RowError> {
    if !row.is_object() {
        return Err(RowError::new(CODE_SHAPE, "a row is a JSON object"));
    }
    if let Some(rt) = text(at(row, "record_type")) {
        if !rt.eq_ignore_ascii_case(SYSTEM) {
            return Ok(RowOutcome::Skipped(format!("record_type {rt}")));
        }
    }
    let g = match row.get("gmail") {
        Some(inner @ Value::Object(o))
            if o.contains_key("event_info") || o.contains_key("message_info") =>
        {
            inner
        }
        _ => row,
    };
    let ei = at(g, "event_info");
    let mi = at(g, "message_info");
    if !ei.is_object() && !mi.is_object() {
        return Err(RowError::new(
            CODE_SHAPE,
            "no event_info or message_info: not a Gmail log row",
        ));
    }
    let Some(time) = int(at(ei, "timestamp_usec"))
        .or_else(|| int(at(g, "time_usec")))
        .or_else(|| int(at(row, "time_usec")))
        .and_then(time_from_micros)
    else {
        return Err(RowError::new(
            CODE_TIME,
            "no event_info.timestamp_usec or time_usec",
        ));
    };
    let met = int(at(ei, "mail_event_type"));
    if !is_delivery_event(met) {
        return Ok(RowOutcome::Skipped(format!(
            "mail_event_type {}: a user action, not a delivery",
            met.unwrap_or_default()
        )));
    }

    let source = at(mi, "source");
    let ci = at(mi, "connection_info");
    let message_id = text(at(mi, "rfc2822_message_id")).and_then(normalize_message_id);
    let envelope_from = text(at(source, "address")).and_then(normalize_address);
    let from = text(at(source, "from_header_address"))
        .and_then(|a| Mailbox::new(a, text(at(source, "from_header_displayname"))));
    let top_ip = text(at(row, "ip_address"))
        .or_else(|| text(at(g, "ip_address")))
        .and_then(ip_from_bytes_field);
    let client_ip = ip_of(at(ci, "client_ip")).or(top_ip);
    let success = boolean(at(ei, "success"));
    let is_spam = boolean(at(mi, "is_spam")) == Some(true);
    let action = int(at(mi, "action_type"));
    let source_service = text(at(source, "service"));
    let smtp_in =
        source_service.is_some_and(|s| s.eq_ignore_ascii_case("smtp-inbound")) || action == Some(1);
    let row_code = int(at(ci, "smtp_reply_code")).filter(|c| (200..600).contains(c));
    let description = text(at(mi, "description"));
    let relay = relay_of(
        text(at(ci, "smtp_out_remote_host")),
        ip_of(at(ci, "smtp_out_connect_ip")),
    );

    let mut keys = Vec::with_capacity(1);
    match &message_id {
        Some(mid) => keys.push(format!("{SYSTEM}:{mid}")),
        None => {
            let id = text_or_number(at(row, "unique_identifier"))
                .or_else(|| text_or_number(at(row, "event_id")));
            keys.push(match id {
                Some(id) => format!("{SYSTEM}-row:{id}"),
                None => format!(
                    "{SYSTEM}-row:{}:{}",
                    time.timestamp_micros(),
                    envelope_from.as_deref().unwrap_or("")
                ),
            });
        }
    }

    let detail = |code: Option<i64>, dest: Option<&Dest>| -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = code {
            parts.push(format!("SMTP {c}"));
        }
        if met == Some(34) {
            parts.push("rate limited".to_string());
        }
        if let Some(d) = description {
            parts.push(d.to_string());
        }
        if is_spam {
            parts.push("spam".to_string());
        }
        match dest {
            Some(d) => {
                if let Some(service) = &d.service {
                    match &d.selector {
                        Some(sel) => parts.push(format!("service {service}:{sel}")),
                        None => parts.push(format!("service {service}")),
                    }
                }
            }
            None => {
                if let Some(s) = source_service {
                    parts.push(format!("from {s}"));
                }
            }
        }
        if let Some(a) = action {
            parts.push(format!("action_type {a}"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    };

    let dests = destinations(mi);
    let mut recipients: Vec<Recipient> = Vec::new();
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut arrived = false;
    for d in &dests {
        if let Some(r) = Recipient::new(&d.address, None, RecipientKind::Envelope) {
            merge_recipient(&mut recipients, r);
        }
        let code = d.code.or(row_code);
        match fate(met, code, success, smtp_in) {
            Fate::Arrival => arrived = true,
            Fate::Status(status) => deliveries.push(Delivery {
                time,
                recipient: d.address.clone(),
                status,
                detail: detail(code, Some(d)),
                system: SYSTEM.to_string(),
                relay: if smtp_in { None } else { relay.clone() },
                client_ip: None,
                client_host: None,
                local_id: None,
                original_recipient: None,
            }),
        }
    }
    if dests.is_empty() && fate(met, row_code, success, smtp_in) == Fate::Arrival {
        arrived = true;
    }
    if arrived {
        deliveries.insert(
            0,
            Delivery {
                time,
                recipient: String::new(),
                status: DeliveryStatus::Received,
                detail: detail(row_code, None),
                system: SYSTEM.to_string(),
                relay: None,
                client_ip: ip_of(at(ci, "smtp_in_connect_ip")).or_else(|| client_ip.clone()),
                client_host: None,
                local_id: None,
                original_recipient: None,
            },
        );
    }

    // The Exchange-compatible journal's view: every envelope recipient.
    let journal = at(
        at(mi, "structured_policy_log_info"),
        "exchange_journal_info",
    );
    let journal_recipients: Vec<Recipient> = items(at(journal, "recipients"))
        .into_iter()
        .chain(items(at(journal, "unknown_recipients")))
        .filter_map(text)
        .filter_map(|a| Recipient::new(a, None, RecipientKind::Envelope))
        .collect();
    let journal_mid = text(at(journal, "rfc822_message_id")).and_then(normalize_message_id);
    let mut extra: Option<MessageRecord> = None;
    match &journal_mid {
        Some(jmid) if Some(jmid) != message_id.as_ref() && !journal_recipients.is_empty() => {
            let mut jr = Vec::new();
            for r in journal_recipients {
                merge_recipient(&mut jr, r);
            }
            let jtime = int(at(journal, "timestamp"))
                .and_then(time_from_epoch_guess)
                .unwrap_or(time);
            extra = Some(MessageRecord {
                keys: vec![format!("{SYSTEM}:{jmid}")],
                message_id: Some(jmid.clone()),
                first_seen: Some(jtime),
                recipients: jr,
                systems: vec![SYSTEM.to_string()],
                ..MessageRecord::default()
            });
        }
        _ => {
            for r in journal_recipients {
                merge_recipient(&mut recipients, r);
            }
        }
    }

    let auth = AuthResults {
        spf: verdict(at(ci, "spf_pass")),
        dkim: verdict(at(ci, "dkim_pass")),
        dmarc: verdict(at(ci, "dmarc_pass")),
    };
    let record = MessageRecord {
        keys,
        message_id,
        first_seen: Some(time),
        envelope_from,
        from,
        recipients,
        subject: text(at(mi, "subject")).map(str::to_string),
        size: int(at(mi, "payload_size")).and_then(|n| u64::try_from(n).ok()),
        attachments: attachments_of(mi),
        auth,
        client_ip,
        systems: vec![SYSTEM.to_string()],
        deliveries,
        ..MessageRecord::default()
    };
    let mut out = vec![record];
    out.extend(extra);
    Ok(RowOutcome::Records(out))
}

/// The records of a Reports API activity: [`records_from_row`] of each of
/// [`rows_from_activity`].
pub fn records_from_activity(activity: &Value) -> Vec<Result<RowOutcome, RowError>> {
    rows_from_activity(activity)
        .iter()
        .map(records_from_row)
        .collect()
}

// ---------------------------------------------------------------------------
// Import of JSON inputs.

/// Counts from one import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GmailSummary {
    /// Rows read: BigQuery rows, Reports API events, Email Log Search lines
    /// (decoded or not; not schema documents, headers or blank lines).
    pub rows: u64,
    /// Records emitted.
    pub records: u64,
    /// Rejects reported.
    pub rejected: u64,
    /// Rows that are no delivery event (user actions, other record types)
    /// and schema documents: read on purpose, nothing to store.
    pub skipped: u64,
    /// Positional rows decoded with the built-in schema because none was given.
    pub default_schema_rows: u64,
    /// Schema documents read (they give the meaning of the positional rows after them).
    pub schema_documents: u64,
}

/// The largest JSON value (one row, or one response document) read:
/// 1,024 × `max_line_bytes` (64 MiB by default), at most `max_message_bytes`.
pub fn max_json_value_bytes(opts: &DecodeOptions) -> usize {
    opts.max_line_bytes
        .saturating_mul(1024)
        .min(opts.max_message_bytes)
        .max(1)
}

/// A framed piece of the JSON input.
enum Frame<'b> {
    Value(&'b [u8], Position),
    Bad(&'static str, String, &'b [u8], Position),
    ArrayEnd,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FrameState {
    Between,
    InValue,
    Garbage,
}

/// Splits JSON input into top-level values (and the elements of top-level
/// arrays) without parsing them, with a bound on each value's size.
struct Framer {
    limit: usize,
    buf: Vec<u8>,
    state: FrameState,
    depth: usize,
    in_str: bool,
    esc: bool,
    /// Inside a top-level array: its elements are the values.
    in_array: bool,
    /// NDJSON: decided by the first top-level value (on one line or not).
    line_mode: Option<bool>,
    crossed_newline: bool,
    overflow: u64,
    line: u64,
    offset: u64,
    start_line: u64,
    start_offset: u64,
}

impl Framer {
    fn new(limit: usize) -> Framer {
        Framer {
            limit,
            buf: Vec::new(),
            state: FrameState::Between,
            depth: 0,
            in_str: false,
            esc: false,
            in_array: false,
            line_mode: None,
            crossed_newline: false,
            overflow: 0,
            line: 1,
            offset: 0,
            start_line: 1,
            start_offset: 0,
        }
    }

    fn position(&self) -> Position {
        if self.line_mode == Some(true) && !self.in_array {
            Position::Line(self.start_line)
        } else {
            Position::Offset(self.start_offset)
        }
    }

    fn start(&mut self, state: FrameState) {
        self.state = state;
        self.buf.clear();
        self.overflow = 0;
        self.depth = 0;
        self.in_str = false;
        self.esc = false;
        self.crossed_newline = false;
        self.start_line = self.line;
        self.start_offset = self.offset;
    }

    fn push(&mut self, b: u8) {
        if self.buf.len() < self.limit {
            self.buf.push(b);
        } else {
            self.overflow += 1;
        }
    }

    /// The frame ending here (a value complete, cut, too long, or garbage).
    fn finish(
        &mut self,
        cut: bool,
        emit: &mut dyn FnMut(Frame<'_>) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        let position = self.position();
        let state = self.state;
        self.state = FrameState::Between;
        if state == FrameState::Garbage {
            let reason = "not JSON: a line outside any JSON object".to_string();
            return emit(Frame::Bad(CODE_JSON, reason, &self.buf, position));
        }
        if self.overflow > 0 {
            let reason = format!(
                "a JSON value of {} bytes exceeds the limit of {} bytes",
                self.buf.len() as u64 + self.overflow,
                self.limit
            );
            return emit(Frame::Bad(CODE_TOO_LONG, reason, &self.buf, position));
        }
        if cut {
            let reason = if self.line_mode == Some(true) && !self.in_array {
                "a JSON object not closed on its line".to_string()
            } else {
                "a JSON value cut off by the end of the input".to_string()
            };
            return emit(Frame::Bad(CODE_TRUNCATED, reason, &self.buf, position));
        }
        if self.line_mode.is_none() && !self.in_array {
            self.line_mode = Some(!self.crossed_newline);
        }
        emit(Frame::Value(&self.buf, position))
    }

    fn feed(
        &mut self,
        chunk: &[u8],
        emit: &mut dyn FnMut(Frame<'_>) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        for &b in chunk {
            match self.state {
                FrameState::Between => match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b',' if self.in_array => {}
                    b']' if self.in_array => {
                        self.in_array = false;
                        emit(Frame::ArrayEnd)?;
                    }
                    // A top-level array's elements are the values; in
                    // NDJSON a `[` line is one (wrong) value instead.
                    b'[' if !self.in_array && self.line_mode != Some(true) => self.in_array = true,
                    b'{' | b'[' => {
                        self.start(FrameState::InValue);
                        self.depth = 1;
                        self.push(b);
                    }
                    _ => {
                        self.start(FrameState::Garbage);
                        self.push(b);
                    }
                },
                FrameState::Garbage => {
                    if b == b'\n' {
                        self.finish(false, emit)?;
                    } else {
                        self.push(b);
                    }
                }
                FrameState::InValue => {
                    if b == b'\n' {
                        self.crossed_newline = true;
                        if self.line_mode == Some(true) && !self.in_array {
                            self.finish(true, emit)?;
                            self.advance(b);
                            continue;
                        }
                    }
                    self.push(b);
                    if self.in_str {
                        if self.esc {
                            self.esc = false;
                        } else if b == b'\\' {
                            self.esc = true;
                        } else if b == b'"' {
                            self.in_str = false;
                        }
                    } else {
                        match b {
                            b'"' => self.in_str = true,
                            b'{' | b'[' => self.depth += 1,
                            b'}' | b']' => {
                                self.depth = self.depth.saturating_sub(1);
                                if self.depth == 0 {
                                    self.advance(b);
                                    self.finish(false, emit)?;
                                    continue;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            self.advance(b);
        }
        Ok(())
    }

    fn advance(&mut self, b: u8) {
        self.offset += 1;
        if b == b'\n' {
            self.line += 1;
        }
    }

    fn end(
        &mut self,
        emit: &mut dyn FnMut(Frame<'_>) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        match self.state {
            FrameState::Between => Ok(()),
            FrameState::Garbage => self.finish(false, emit),
            FrameState::InValue => self.finish(true, emit),
        }
    }
}

/// NDJSON or not, from the first line of the input: an object that starts
/// there and goes on (`{"event_info": …`) is one row per line; a lone `{` is
/// how pretty printers (bq, jq, Python, PowerShell) start an object; anything
/// else is decided by the first value (see [`Framer::finish`]). Deciding up
/// front keeps a broken first line from swallowing the lines after it.
fn first_line_mode(head: &[u8]) -> Option<bool> {
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &head[start..];
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    let line = line.trim_ascii_end();
    (line.first() == Some(&b'{') && line.len() > 1).then_some(true)
}

/// The state of one JSON import.
struct JsonImport<'s> {
    source: &'s str,
    sink: &'s mut dyn Sink,
    /// A schema given by the caller or read from a schema document.
    schema: Option<Schema>,
    /// The last inline schema (`{"row":…,"schema":…}` repeats it on every line).
    inline: Option<(Value, Schema)>,
    /// Field definitions seen as elements of a top-level array (`bq show --schema`).
    pending_fields: Vec<Value>,
    summary: GmailSummary,
}

fn excerpt(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len().min(QUARANTINE_EXCERPT_BYTES)].to_vec()
}

fn looks_like_field_def(o: &Map<String, Value>) -> bool {
    o.get("name").is_some_and(Value::is_string)
        && o.get("type").is_some_and(Value::is_string)
        && !o.contains_key("event_info")
}

impl JsonImport<'_> {
    fn reject(
        &mut self,
        position: Position,
        code: &str,
        reason: String,
        input: Vec<u8>,
    ) -> Result<(), SinkError> {
        self.summary.rejected += 1;
        self.sink.reject(Reject {
            source: self.source.to_string(),
            position,
            code: code.to_string(),
            reason,
            input,
        })
    }

    fn frame(&mut self, frame: Frame<'_>) -> Result<(), SinkError> {
        match frame {
            Frame::ArrayEnd => self.flush_pending_fields(),
            Frame::Bad(code, reason, bytes, position) => {
                self.reject(position, code, reason, excerpt(bytes))
            }
            Frame::Value(bytes, position) => match serde_json::from_slice::<Value>(bytes) {
                Ok(v) => self.value(&v, position, bytes),
                Err(e) => self.reject(
                    position,
                    CODE_JSON,
                    format!("not JSON: {e}"),
                    excerpt(bytes),
                ),
            },
        }
    }

    fn flush_pending_fields(&mut self) -> Result<(), SinkError> {
        if self.pending_fields.is_empty() {
            return Ok(());
        }
        let list = Value::Array(std::mem::take(&mut self.pending_fields));
        self.schema_document(&list, Position::Offset(0))
    }

    fn schema_document(&mut self, v: &Value, position: Position) -> Result<(), SinkError> {
        match Schema::from_json(v) {
            Ok(schema) => {
                self.schema = Some(schema);
                self.summary.schema_documents += 1;
                self.summary.skipped += 1;
                Ok(())
            }
            Err(e) => self.reject(
                position,
                CODE_SCHEMA,
                format!("a schema document that cannot be read: {e}"),
                excerpt(&serde_json::to_vec(v).unwrap_or_default()),
            ),
        }
    }

    fn value(&mut self, v: &Value, position: Position, raw: &[u8]) -> Result<(), SinkError> {
        let Some(o) = v.as_object() else {
            self.summary.rows += 1;
            return self.reject(
                position,
                CODE_SHAPE,
                "a JSON value that is not an object".to_string(),
                excerpt(raw),
            );
        };
        if o.get("f").is_some_and(Value::is_array) {
            self.summary.rows += 1;
            return self.positional(v, None, position, None);
        }
        if let Some(row) = o.get("row").filter(|r| r.is_object()) {
            self.summary.rows += 1;
            return self.positional(row, o.get("schema"), position, None);
        }
        if o.contains_key("rows")
            || o.get("kind").and_then(Value::as_str).is_some_and(|k| {
                k == "bigquery#tableDataList"
                    || k == "bigquery#getQueryResultsResponse"
                    || k == "bigquery#queryResponse"
            })
        {
            if let Some(schema) = o.get("schema") {
                match Schema::from_json(schema) {
                    Ok(s) => self.schema = Some(s),
                    Err(e) => {
                        return self.reject(
                            position,
                            CODE_SCHEMA,
                            format!("the response's schema cannot be read: {e}"),
                            excerpt(raw),
                        )
                    }
                }
            }
            for (i, row) in items(at(v, "rows")).into_iter().enumerate() {
                self.summary.rows += 1;
                if row.get("f").is_some() {
                    self.positional(row, None, position, Some(i))?;
                } else {
                    self.named(row, position, Some(i))?;
                }
            }
            return Ok(());
        }
        if looks_like_field_def(o) {
            // An element of `bq show --schema`'s list: the list is the schema.
            self.pending_fields.push(v.clone());
            return Ok(());
        }
        if o.get("schema").is_some_and(|s| s.get("fields").is_some())
            || (o.get("fields").is_some_and(Value::is_array) && !o.contains_key("event_info"))
        {
            return self.schema_document(v, position);
        }
        if let Some(list) = o.get("items").filter(|i| i.is_array()) {
            for activity in items(list) {
                self.activity(activity, position)?;
            }
            return Ok(());
        }
        if o.get("events").is_some_and(Value::is_array) {
            return self.activity(v, position);
        }
        if o.contains_key("event_info")
            || o.contains_key("message_info")
            || o.contains_key("gmail")
            || o.contains_key("record_type")
        {
            self.summary.rows += 1;
            return self.named(v, position, None);
        }
        if o.contains_key("kind") && o.len() <= 3 {
            // An empty Reports API page (`{"kind": "admin#reports#activities", "etag": …}`).
            self.summary.skipped += 1;
            return Ok(());
        }
        self.summary.rows += 1;
        self.reject(
            position,
            CODE_SHAPE,
            "not a Gmail log row, Reports API activity, BigQuery response or schema".to_string(),
            excerpt(raw),
        )
    }

    fn activity(&mut self, activity: &Value, position: Position) -> Result<(), SinkError> {
        let rows = rows_from_activity(activity);
        if rows.is_empty() {
            self.summary.skipped += 1;
            return Ok(());
        }
        for row in rows {
            self.summary.rows += 1;
            self.named(&row, position, None)?;
        }
        Ok(())
    }

    fn positional(
        &mut self,
        row: &Value,
        inline: Option<&Value>,
        position: Position,
        index: Option<usize>,
    ) -> Result<(), SinkError> {
        let decoded = if let Some(schema_json) = inline {
            if self
                .inline
                .as_ref()
                .is_none_or(|(raw, _)| raw != schema_json)
            {
                match Schema::from_json(schema_json) {
                    Ok(s) => self.inline = Some((schema_json.clone(), s)),
                    Err(e) => {
                        return self.reject(
                            position,
                            CODE_SCHEMA,
                            format!("{}the row's schema cannot be read: {e}", row_label(index)),
                            excerpt(&serde_json::to_vec(row).unwrap_or_default()),
                        )
                    }
                }
            }
            match &self.inline {
                Some((_, s)) => decode_tabledata_row(row, s, true),
                None => Err("no schema".to_string()),
            }
        } else if let Some(s) = &self.schema {
            decode_tabledata_row(row, s, true)
        } else {
            self.summary.default_schema_rows += 1;
            decode_tabledata_row(row, Schema::gmail_default(), false).map_err(|e| {
                format!("{e} (read with the built-in Gmail schema; give the table's schema as <file>.schema.json)")
            })
        };
        match decoded {
            Ok(named) => self.named(&named, position, index),
            Err(e) => self.reject(
                position,
                CODE_SCHEMA,
                format!("{}{e}", row_label(index)),
                excerpt(&serde_json::to_vec(row).unwrap_or_default()),
            ),
        }
    }

    fn named(
        &mut self,
        row: &Value,
        position: Position,
        index: Option<usize>,
    ) -> Result<(), SinkError> {
        match records_from_row(row) {
            Ok(RowOutcome::Records(records)) => {
                for r in records {
                    self.summary.records += 1;
                    self.sink.record(r)?;
                }
                Ok(())
            }
            Ok(RowOutcome::Skipped(_)) => {
                self.summary.skipped += 1;
                Ok(())
            }
            Err(e) => self.reject(
                position,
                e.code,
                format!("{}{}", row_label(index), e.reason),
                excerpt(&serde_json::to_vec(row).unwrap_or_default()),
            ),
        }
    }
}

fn row_label(index: Option<usize>) -> String {
    index.map_or_else(String::new, |i| format!("row {}: ", i + 1))
}

const PROGRESS_EVERY: u64 = 256 * 1024;

/// Decode Gmail log JSON (BigQuery rows in any of the forms of the module
/// doc, Reports API responses or activities, schema documents) from
/// `reader`: records and rejects to `sink`. `schema` means the positional
/// rows that carry none of their own (see [`schema_file_beside`]). Only I/O
/// and sink failures stop it.
pub fn import_gmail_json<R: BufRead>(
    mut reader: R,
    source: &str,
    schema: Option<Schema>,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<GmailSummary, IngestError> {
    let io_err = |e: std::io::Error| IngestError::Io {
        path: source.to_string(),
        source: e,
    };
    let mut state = JsonImport {
        source,
        sink,
        schema,
        inline: None,
        pending_fields: Vec::new(),
        summary: GmailSummary::default(),
    };
    let mut framer = Framer::new(max_json_value_bytes(opts));
    let mut first = true;
    let mut next_progress = PROGRESS_EVERY;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        if chunk.is_empty() {
            break;
        }
        let mut body = chunk;
        if first {
            first = false;
            if let Some(rest) = body.strip_prefix(b"\xEF\xBB\xBF") {
                framer.offset += 3;
                body = rest;
            }
            framer.line_mode = first_line_mode(body);
        }
        let used = chunk.len();
        framer.feed(body, &mut |f| state.frame(f))?;
        reader.consume(used);
        if framer.offset >= next_progress {
            state.sink.progress(framer.offset);
            next_progress = framer.offset + PROGRESS_EVERY;
        }
    }
    framer.end(&mut |f| state.frame(f))?;
    state.flush_pending_fields()?;
    state.sink.progress(framer.offset);
    Ok(state.summary)
}

/// The schema file that goes with a positional export: `<stem>.schema.json`
/// beside it (`rows.json` → `rows.schema.json`; `.ndjson`, `.jsonl` and
/// `.gz` are stripped too), else `schema.json` in the same folder. The
/// input itself is never its own schema.
pub fn schema_file_beside(input: &Path) -> Option<PathBuf> {
    let name = input.file_name()?.to_string_lossy().into_owned();
    let dir = input.parent().unwrap_or_else(|| Path::new(""));
    let mut stem = name.as_str();
    stem = stem.strip_suffix(".gz").unwrap_or(stem);
    for ext in [".ndjson", ".jsonl", ".json"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s;
            break;
        }
    }
    if stem.ends_with(".schema") || name == "schema.json" {
        return None;
    }
    [format!("{stem}.schema.json"), "schema.json".to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Read a schema file (any form [`Schema::from_json`] takes).
pub fn read_schema_file(path: &Path) -> std::io::Result<Schema> {
    let bytes = std::fs::read(path)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Schema::from_json(&v).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a BigQuery schema: {e}", path.display()),
        )
    })
}

/// Whether the head of an input is Gmail log JSON: it starts with `{` or `[`
/// and names both `event_info` and `message_info` (rows, the schema, Reports
/// API parameters), or is a Reports API response for `gmail`, or a BigQuery
/// positional response whose first row holds a value of Gmail's own
/// (`record_type` `gmail`, a service `gmail-…` or `smtp-inbound`). Other
/// positional pages need `--format gmail`.
pub fn looks_like_gmail_json(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let Some(&first) = head.iter().find(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    if first != b'{' && first != b'[' {
        return false;
    }
    let has = |needle: &[u8]| memchr::memmem::find(head, needle).is_some();
    if has(b"\"message_info\"") && (has(b"\"event_info\"") || has(b"\"rfc2822_message_id\"")) {
        return true;
    }
    if has(b"admin#reports#activit") && has(b"\"gmail\"") {
        return true;
    }
    // Positional rows: a value of Gmail's own (`record_type` gmail, a
    // service `gmail-ui`, `gmail-for-work-catchall`, `smtp-inbound`, …).
    let positional = has(b"\"f\":[") || has(b"\"f\": [");
    positional
        && [
            &b"{\"v\":\"gmail"[..],
            b"{\"v\": \"gmail",
            b"{\"v\":\"smtp-inbound\"}",
            b"{\"v\": \"smtp-inbound\"}",
        ]
        .iter()
        .any(|n| has(n))
}

// ---------------------------------------------------------------------------
// Email Log Search CSV.

/// A column name reduced to lower-case letters and digits (`Message ID` → `messageid`).
fn column_key(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Where the Email Log Search columns are.
#[derive(Debug, Clone, Default)]
struct ElsColumns {
    count: usize,
    message_id: Option<usize>,
    start: Option<usize>,
    end: Option<usize>,
    sender: Option<usize>,
    size: Option<usize>,
    subject: Option<usize>,
    attachments: Option<usize>,
    recipient: Option<usize>,
    target: Option<usize>,
    status: Option<usize>,
    description: Option<usize>,
    target_ip: Option<usize>,
    sender_ip: Option<usize>,
}

impl ElsColumns {
    /// The column map of a header line, if it is one.
    fn from_header(fields: &[Cow<'_, str>]) -> Option<ElsColumns> {
        let mut c = ElsColumns {
            count: fields.len(),
            ..ElsColumns::default()
        };
        for (i, f) in fields.iter().enumerate() {
            let slot = match column_key(f).as_str() {
                "messageid" => &mut c.message_id,
                "startdate" => &mut c.start,
                "enddate" => &mut c.end,
                "sender" => &mut c.sender,
                "messagesize" => &mut c.size,
                "subject" => &mut c.subject,
                "attachments" => &mut c.attachments,
                "recipientaddress" | "recipient" | "recipients" => &mut c.recipient,
                "eventtarget" => &mut c.target,
                "eventstatus" | "status" => &mut c.status,
                "eventdescription" | "description" => &mut c.description,
                "eventtargetipaddress" | "targetipaddress" | "targetip" => &mut c.target_ip,
                "senderipaddress" | "senderip" | "sourceip" | "clientip" => &mut c.sender_ip,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(i);
            }
        }
        let ok = c.message_id.is_some()
            && c.recipient.is_some()
            && (c.start.is_some() || c.end.is_some())
            && (c.target.is_some() || c.sender.is_some());
        ok.then_some(c)
    }
}

fn els_value<'a>(fields: &'a [Cow<'a, str>], col: Option<usize>) -> Option<&'a str> {
    let v = fields.get(col?)?.trim();
    (!v.is_empty() && !v.eq_ignore_ascii_case("N/A") && v != "-").then_some(v)
}

/// The addresses of a cell (`,`, `;` or white space separated; a delegate in parentheses).
fn addresses_in(cell: &str) -> Vec<String> {
    cell.split(|c: char| c == ',' || c == ';' || c == '(' || c == ')' || c.is_whitespace())
        .filter(|t| t.contains('@'))
        .filter_map(normalize_address)
        .collect()
}

/// A status column's word, when it says something we know.
fn status_word(s: &str) -> Option<DeliveryStatus> {
    let s = s.to_ascii_lowercase();
    let has = |w: &str| s.contains(w);
    Some(if has("bounce") {
        DeliveryStatus::Bounced
    } else if has("defer") || has("delay") || has("retry") {
        DeliveryStatus::Deferred
    } else if has("reject") || has("block") || has("refus") {
        DeliveryStatus::Rejected
    } else if has("quarantin") {
        DeliveryStatus::Quarantined
    } else if has("drop") || has("discard") || has("fail") {
        DeliveryStatus::Failed
    } else if has("expand") {
        DeliveryStatus::Expanded
    } else if has("forward") {
        DeliveryStatus::Forwarded
    } else if has("undeliver") || has("not deliver") {
        DeliveryStatus::Failed
    } else if has("deliver") || has("sent") {
        DeliveryStatus::Delivered
    } else if has("receiv") || has("accept") {
        DeliveryStatus::Received
    } else {
        return None;
    })
}

/// A time offset or zone after an Email Log Search date.
enum Zone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
    Default,
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits = |t: &str| !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit());
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        // `+0900`, or `+9` / `+09`.
        None if rest.len() == 4 && rest.bytes().all(|b| b.is_ascii_digit()) => rest.split_at(2),
        None => (rest, "0"),
    };
    if !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

fn parse_zone(z: &str) -> Option<Zone> {
    let z = z
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    if z.is_empty() {
        return Some(Zone::Default);
    }
    let upper = z.to_ascii_uppercase();
    let utc = FixedOffset::east_opt(0)?;
    match upper.as_str() {
        "Z" | "UTC" | "GMT" | "UT" => return Some(Zone::Fixed(utc)),
        "JST" | "KST" => return FixedOffset::east_opt(9 * 3600).map(Zone::Fixed),
        "PST" => return FixedOffset::east_opt(-8 * 3600).map(Zone::Fixed),
        "PDT" => return FixedOffset::east_opt(-7 * 3600).map(Zone::Fixed),
        _ => {}
    }
    let rest = upper
        .strip_prefix("UTC")
        .or_else(|| upper.strip_prefix("GMT"))
        .unwrap_or(&upper);
    if let Some(off) = parse_offset(rest.trim()) {
        return Some(Zone::Fixed(off));
    }
    z.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
}

fn local_to_utc<Z: TimeZone>(zone: &Z, naive: &NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(naive).earliest() {
        Some(t) => Some(t.with_timezone(&Utc)),
        // A time in a daylight-saving gap: read with the offset in force just after.
        None => {
            let offset = zone.offset_from_utc_datetime(naive).fix();
            naive
                .checked_sub_signed(chrono::Duration::seconds(i64::from(
                    offset.local_minus_utc(),
                )))
                .map(|n| n.and_utc())
        }
    }
}

/// An Email Log Search date in any of the layouts of the module doc; a time
/// without a zone is in `tz`.
pub fn parse_log_search_time(s: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    const LAYOUTS: [&str; 10] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M",
        "%b %d, %Y, %I:%M:%S %p",
        "%b %d, %Y %I:%M:%S %p",
        "%b %d, %Y, %H:%M:%S",
        "%d %b %Y %H:%M:%S",
    ];
    for layout in LAYOUTS {
        let Ok((naive, rest)) = NaiveDateTime::parse_and_remainder(s, layout) else {
            continue;
        };
        // `10:30` then `:12` left over means the layout was too short.
        if rest.starts_with(':') || rest.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        return match parse_zone(rest)? {
            Zone::Fixed(off) => local_to_utc(&off, &naive),
            Zone::Named(z) => local_to_utc(&z, &naive),
            Zone::Default => local_to_utc(&tz, &naive),
        };
    }
    None
}

/// One Email Log Search line (already split) as a record.
fn els_record(
    c: &ElsColumns,
    fields: &[Cow<'_, str>],
    tz: chrono_tz::Tz,
) -> Result<MessageRecord, RowError> {
    let start_text = els_value(fields, c.start);
    let end_text = els_value(fields, c.end);
    let parse = |t: Option<&str>, which: &str| -> Result<Option<DateTime<Utc>>, RowError> {
        match t {
            None => Ok(None),
            Some(t) => parse_log_search_time(t, tz).map(Some).ok_or_else(|| {
                RowError::new(
                    CODE_ELS_DATE,
                    format!("{which} {t:?} is no date we can read"),
                )
            }),
        }
    };
    let start = parse(start_text, "Start date")?;
    let end = parse(end_text, "End date")?;
    let Some(first_time) = start.or(end) else {
        return Err(RowError::new(CODE_ELS_DATE, "no Start date or End date"));
    };
    let raw_mid = els_value(fields, c.message_id);
    let refused = raw_mid.is_some_and(|m| m.contains("SMTPIN_ADDED_REJECT_SESSION"));
    let message_id = if refused {
        None
    } else {
        raw_mid.and_then(normalize_message_id)
    };
    let envelope_from =
        els_value(fields, c.sender).and_then(|s| addresses_in(s).into_iter().next());
    let recipients_raw = els_value(fields, c.recipient)
        .map(addresses_in)
        .unwrap_or_default();
    let target = els_value(fields, c.target);
    let status_text = els_value(fields, c.status);
    let description = els_value(fields, c.description);
    let target_upper = target.map(str::to_ascii_uppercase);
    let detail_parts = |extra: Option<&str>| -> Option<String> {
        let parts: Vec<&str> = [target, status_text, description, extra]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    };
    let delivery_time = end.unwrap_or(first_time);
    let status = if refused {
        Some(DeliveryStatus::Rejected)
    } else if let Some(s) = status_text.and_then(status_word) {
        Some(s)
    } else {
        match target_upper.as_deref() {
            None => None,
            Some("SMTP_IN") => Some(DeliveryStatus::Received),
            Some("LIST_SERVER") => Some(DeliveryStatus::Expanded),
            Some(_) => Some(DeliveryStatus::Delivered),
        }
    };
    let mut recipients = Vec::new();
    for a in &recipients_raw {
        if let Some(r) = Recipient::new(a, None, RecipientKind::Envelope) {
            merge_recipient(&mut recipients, r);
        }
    }
    let mut deliveries = Vec::new();
    let delivery = |recipient: String, status: DeliveryStatus, time: DateTime<Utc>| Delivery {
        time,
        recipient,
        status,
        detail: detail_parts(if refused { raw_mid } else { None }),
        system: SYSTEM.to_string(),
        relay: None,
        client_ip: None,
        client_host: None,
        local_id: None,
        original_recipient: None,
    };
    let client_ip = els_value(fields, c.sender_ip).and_then(clean_ip);
    match status {
        Some(DeliveryStatus::Received) => {
            let mut d = delivery(String::new(), DeliveryStatus::Received, first_time);
            d.client_ip = client_ip.clone();
            deliveries.push(d);
        }
        Some(status) => {
            let relay = if target_upper.as_deref() == Some("SMTP_OUT") {
                relay_of(None, els_value(fields, c.target_ip).and_then(clean_ip))
            } else {
                None
            };
            let rcpts: Vec<String> = if recipients_raw.is_empty() {
                vec![String::new()]
            } else {
                recipients_raw.clone()
            };
            for r in rcpts {
                let mut d = delivery(r, status, delivery_time);
                d.relay = relay.clone();
                deliveries.push(d);
            }
        }
        None => {}
    }
    let keys = vec![match &message_id {
        Some(mid) => format!("{SYSTEM}:{mid}"),
        None => format!(
            "{SYSTEM}-els:{}:{}:{}",
            first_time.timestamp(),
            envelope_from.as_deref().unwrap_or(""),
            recipients_raw.join(",")
        ),
    }];
    let attachments = els_value(fields, c.attachments)
        .and_then(|n| n.parse::<u64>().ok())
        .map(|n| {
            (0..n.min(MAX_COUNTED_ATTACHMENTS))
                .map(|_| Attachment::default())
                .collect()
        })
        .unwrap_or_default();
    Ok(MessageRecord {
        keys,
        message_id,
        first_seen: Some(first_time),
        envelope_from,
        recipients,
        subject: els_value(fields, c.subject).map(str::to_string),
        size: els_value(fields, c.size).and_then(|s| s.replace(',', "").parse().ok()),
        attachments,
        client_ip,
        systems: vec![SYSTEM.to_string()],
        deliveries,
        ..MessageRecord::default()
    })
}

/// Whether the head of an input is an Email Log Search CSV export: its first
/// line is a header naming Message ID, Recipient address, a start or end
/// date, and Event target or Sender.
pub fn looks_like_email_log_search(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let Some(first) = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
    else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(first) else {
        return false;
    };
    split_csv(text)
        .ok()
        .and_then(|f| ElsColumns::from_header(&f))
        .is_some()
}

fn els_reject(
    summary: &mut GmailSummary,
    sink: &mut dyn Sink,
    source: &str,
    line: u64,
    code: &str,
    reason: String,
    input: &[u8],
) -> Result<(), SinkError> {
    summary.rejected += 1;
    sink.reject(Reject {
        source: source.to_string(),
        position: Position::Line(line),
        code: code.to_string(),
        reason,
        input: excerpt(input),
    })
}

/// Decode an Email Log Search CSV export: one record per line (the store
/// merges the lines of one email by Message-ID), malformed lines as rejects.
/// A header line may come again (exports appended); it replaces the columns.
pub fn import_email_log_search<R: BufRead>(
    reader: R,
    source: &str,
    opts: &DecodeOptions,
    sink: &mut dyn Sink,
) -> Result<GmailSummary, IngestError> {
    let mut summary = GmailSummary::default();
    let mut lines = LineReader::new(reader, opts.max_line_bytes);
    let mut columns: Option<ElsColumns> = None;
    // A record whose quoted field goes on over the next line(s).
    let mut pending: Option<(u64, String)> = None;
    let mut next_progress = PROGRESS_EVERY;
    loop {
        let line = lines.next_line().map_err(|e| IngestError::Io {
            path: source.to_string(),
            source: e,
        })?;
        let Some(line) = line else { break };
        let (number, bytes) = match line {
            Line::TooLong {
                number,
                head,
                length,
                ..
            } => {
                pending = None;
                summary.rows += 1;
                els_reject(
                    &mut summary,
                    sink,
                    source,
                    number,
                    CODE_TOO_LONG,
                    format!(
                        "line of {length} bytes exceeds the limit of {} bytes",
                        opts.max_line_bytes
                    ),
                    head,
                )?;
                continue;
            }
            Line::Complete { number, bytes, .. } => (number, bytes),
        };
        let decoded = match std::str::from_utf8(bytes) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) => Cow::Owned(crate::mime::sniff_decode(bytes)),
        };
        let text = decoded.strip_prefix('\u{feff}').unwrap_or(&decoded);
        let (start_line, record) = match pending.take() {
            Some((start, mut acc)) => {
                acc.push('\n');
                acc.push_str(text);
                (start, acc)
            }
            None => {
                if text.trim().is_empty() {
                    continue;
                }
                (number, text.to_string())
            }
        };
        // A quoted field still open at the end of the line goes on over the
        // next (a `"` inside an unquoted field is text, not an opening).
        let open = record.bytes().filter(|&b| b == b'"').count() % 2 == 1
            && matches!(split_csv(&record), Err(CsvError::UnterminatedQuote { .. }));
        if open {
            if record.len() > opts.max_line_bytes {
                summary.rows += 1;
                els_reject(
                    &mut summary,
                    sink,
                    source,
                    start_line,
                    CODE_TOO_LONG,
                    format!(
                        "a quoted field runs over more than {} bytes",
                        opts.max_line_bytes
                    ),
                    record.as_bytes(),
                )?;
            } else {
                pending = Some((start_line, record));
            }
            continue;
        }
        let fields = match split_csv(&record) {
            Ok(f) => f,
            Err(e) => {
                summary.rows += 1;
                els_reject(
                    &mut summary,
                    sink,
                    source,
                    start_line,
                    CODE_ELS_CSV,
                    e.to_string(),
                    record.as_bytes(),
                )?;
                continue;
            }
        };
        if let Some(header) = ElsColumns::from_header(&fields) {
            columns = Some(header);
            continue;
        }
        summary.rows += 1;
        let Some(c) = &columns else {
            els_reject(
                &mut summary,
                sink,
                source,
                start_line,
                CODE_ELS_HEADER,
                "no Email Log Search header line (Message ID, Start date, …) before this line"
                    .to_string(),
                record.as_bytes(),
            )?;
            continue;
        };
        if fields.len() != c.count {
            els_reject(
                &mut summary,
                sink,
                source,
                start_line,
                CODE_ELS_CSV,
                format!("{} fields where the header names {}", fields.len(), c.count),
                record.as_bytes(),
            )?;
            continue;
        }
        match els_record(c, &fields, opts.timezone) {
            Ok(r) => {
                summary.records += 1;
                sink.record(r)?;
            }
            Err(e) => els_reject(
                &mut summary,
                sink,
                source,
                start_line,
                e.code,
                e.reason,
                record.as_bytes(),
            )?,
        }
        if lines.offset() >= next_progress {
            sink.progress(lines.offset());
            next_progress = lines.offset() + PROGRESS_EVERY;
        }
    }
    if let Some((start, record)) = pending {
        summary.rows += 1;
        els_reject(
            &mut summary,
            sink,
            source,
            start,
            CODE_ELS_CSV,
            "a quoted field not closed before the end of the input".to_string(),
            record.as_bytes(),
        )?;
    }
    sink.progress(lines.offset());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_schema_parses() {
        let s = Schema::gmail_default();
        let names: Vec<&str> = s.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "domain_name",
                "email",
                "event_id",
                "event_name",
                "event_type",
                "has_sensitive_content",
                "ip_address",
                "record_type",
                "time_usec",
                "unique_identifier",
                "event_info",
                "message_info",
                "resource_details"
            ]
        );
        assert!(s.is_gmail());
        let mi = &s.fields[11];
        assert!(mi.is_record() && !mi.repeated);
        assert_eq!(mi.fields.len(), 28);
        let dest = mi.fields.iter().find(|f| f.name == "destination").unwrap();
        assert!(dest.repeated && dest.is_record());
        assert_eq!(dest.fields.last().unwrap().name, "rcpt_response");
        let ci = mi
            .fields
            .iter()
            .find(|f| f.name == "connection_info")
            .unwrap();
        assert_eq!(ci.fields.len(), 22);
        assert_eq!(s.fields[10].fields.len(), 5);
        assert!(parse_schema_text("a STRING, b RECORD (c INTEGER").is_err());
        assert!(parse_schema_text("a").is_err());
    }

    #[test]
    fn ips_from_bytes_fields() {
        assert_eq!(
            ip_from_bytes_field("wKgBAQ==").as_deref(),
            Some("192.168.1.1")
        );
        assert_eq!(
            ip_from_bytes_field("MjE2LjE2MC44My41Ng==").as_deref(),
            Some("216.160.83.56"),
            "base64 of the text form"
        );
        assert_eq!(
            ip_from_bytes_field("IAENuAAAAAAAAAAAAAAAAQ==").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(ip_from_bytes_field("10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(ip_from_bytes_field("AAA="), None);
        assert_eq!(ip_from_bytes_field("!!"), None);
        assert_eq!(ip_from_bytes_field(""), None);
    }

    #[test]
    fn fates_follow_the_table() {
        use DeliveryStatus as S;
        let st = Fate::Status;
        assert_eq!(
            fate(Some(5), Some(250), Some(true), false),
            st(S::Quarantined)
        );
        assert_eq!(fate(Some(0), Some(250), None, false), st(S::Delivered));
        assert_eq!(fate(Some(0), Some(250), None, true), Fate::Arrival);
        assert_eq!(fate(Some(2), Some(250), None, true), st(S::Delivered));
        assert_eq!(fate(Some(0), Some(451), None, false), st(S::Deferred));
        assert_eq!(fate(Some(0), Some(550), None, false), st(S::Bounced));
        assert_eq!(fate(Some(0), Some(550), None, true), st(S::Rejected));
        assert_eq!(fate(Some(34), None, Some(false), false), st(S::Deferred));
        assert_eq!(fate(Some(0), None, Some(false), true), st(S::Rejected));
        assert_eq!(fate(Some(0), None, Some(false), false), st(S::Failed));
        assert_eq!(fate(Some(1), None, Some(true), false), Fate::Arrival);
        assert_eq!(fate(None, None, None, false), st(S::Delivered));
        assert!(!is_delivery_event(Some(7)));
        assert!(is_delivery_event(Some(30)));
    }

    #[test]
    fn log_search_dates() {
        let tokyo = chrono_tz::Asia::Tokyo;
        let t = |s: &str| parse_log_search_time(s, tokyo).map(|t| t.to_rfc3339());
        let want = Some("2025-11-10T01:02:03+00:00".to_string());
        assert_eq!(t("2025-11-10T01:02:03Z"), want);
        assert_eq!(t("2025-11-10T10:02:03+09:00"), want);
        assert_eq!(t("2025-11-10 01:02:03 UTC"), want);
        assert_eq!(t("2025/11/10 01:02:03 UTC"), want);
        assert_eq!(t("2025/11/10 10:02:03 GMT+9"), want);
        assert_eq!(t("2025/11/10 10:02:03 GMT+09:00"), want);
        assert_eq!(t("2025/11/10 10:02:03 +0900"), want);
        assert_eq!(t("2025/11/10 10:02:03 JST"), want);
        assert_eq!(t("2025/11/10 10:02:03 Asia/Tokyo"), want);
        assert_eq!(
            t("2025/11/10 10:02:03"),
            want,
            "no zone: the configured one"
        );
        assert_eq!(t("2025/11/09 17:02:03 PST"), want);
        assert_eq!(t("Nov 10, 2025, 10:02:03 AM GMT+9"), want);
        assert_eq!(t("Nov 9, 2025, 5:02:03 PM PST"), want);
        assert_eq!(
            t("2025-11-10 01:02:03.250 UTC"),
            Some("2025-11-10T01:02:03.250+00:00".to_string())
        );
        assert_eq!(
            t("2025/11/10 10:02 JST"),
            Some("2025-11-10T01:02:00+00:00".to_string())
        );
        assert_eq!(t("2025/11/10 10:02:03 Mars/Olympus"), None);
        assert_eq!(t("2025/11/10 10:02:03 +1é1"), None);
        assert_eq!(t("2025/11/10 10:02:03 GMT+15"), None);
        assert_eq!(
            t("2025/11/10 10:32:03 +09:30"),
            Some("2025-11-10T01:02:03+00:00".to_string())
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("2025/13/10 10:02:03"), None);
    }

    #[test]
    fn reports_parameters_nest() {
        let params: Value = serde_json::json!([
            {"name": "subject", "value": "x"},
            {"name": "payload_size", "intValue": "12"},
            {"name": "is_spam", "boolValue": false},
            {"name": "link_domain", "multiValue": ["a.example", "b.example"]},
            {"name": "source", "messageValue": {"parameter": [{"name": "address", "value": "a@x"}]}},
            {"name": "destination", "multiMessageValue": [
                {"parameter": [{"name": "address", "value": "b@y"}]},
                {"parameter": [{"name": "address", "value": "c@z"}]}
            ]},
            {"name": "connection_info.client_ip", "value": "192.0.2.1"},
            {"value": "nameless"}
        ]);
        let o = Value::Object(params_to_object(&params, 0));
        assert_eq!(o["subject"], "x");
        assert_eq!(o["payload_size"], "12");
        assert_eq!(o["is_spam"], false);
        assert_eq!(o["source"]["address"], "a@x");
        assert_eq!(o["destination"][1]["address"], "c@z");
        assert_eq!(o["connection_info"]["client_ip"], "192.0.2.1");
        assert_eq!(o["link_domain"][0], "a.example");
    }

    #[test]
    fn detection_is_conservative() {
        assert!(looks_like_gmail_json(
            b"{\"event_info\":{\"timestamp_usec\":\"1\"},\"message_info\":{}}\n"
        ));
        assert!(looks_like_gmail_json(
            b"\xEF\xBB\xBF[\n  {\n    \"event_info\": {},\n    \"message_info\": {}\n"
        ));
        assert!(looks_like_gmail_json(
            b"{\"kind\": \"admin#reports#activities\", \"items\": [{\"id\": {\"applicationName\": \"gmail\"}}]}"
        ));
        assert!(looks_like_gmail_json(
            b"{\"rows\":[{\"f\":[{\"v\":null},{\"v\":\"gmail\"}]}]}"
        ));
        assert!(!looks_like_gmail_json(
            b"{\"rows\":[{\"f\":[{\"v\":\"x\"}]}]}"
        ));
        assert!(!looks_like_gmail_json(
            b"{\"value\":[{\"senderAddress\":\"a@x\",\"status\":\"Delivered\"}]}"
        ));
        assert!(!looks_like_gmail_json(b"event_info message_info"));
        assert!(!looks_like_gmail_json(b""));
        assert!(looks_like_email_log_search(
            b"\xEF\xBB\xBFMessage ID,Start date,End date,Sender,Message size,Subject,Direction,Attachments,Recipient address,Event target\r\n"
        ));
        assert!(!looks_like_email_log_search(
            b"Received,SenderAddress,RecipientAddress,Subject,Status,ToIP,FromIP,Size,MessageId,MessageTraceId\n"
        ));
        assert!(!looks_like_email_log_search(b"Message ID,Subject\n"));
    }
}
