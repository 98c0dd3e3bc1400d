//! `mailtrail`: the one binary. Each subcommand wires the library crates
//! together; no mail logic lives here beyond presentation.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};
use mailtrail_ingest::{DecodeOptions, Format};
use mailtrail_model::OrgDomains;
use mailtrail_store::query::{self, QueryContext};
use mailtrail_store::sqlite::SqliteOptions;
use mailtrail_store::{Page, SqliteStore, Store, StoredMessage};

mod alerting;
mod alerts;
mod config;
mod demo;
mod directory;
mod generate;
mod import;
mod output;
mod risk;
mod rules;
mod trace;

use config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "mailtrail",
    version,
    about = "Unified mail-log management: every message your organisation sends or receives, in one searchable place",
    long_about = "Unified mail-log management: every message your organisation sends or receives, \
from mail-server logs and mailboxes, in one searchable place.\n\n\
Start with `mailtrail demo` to see it work on a generated company's mail, then \
`mailtrail import /var/log/mail.log` and `mailtrail search 'from:someone@example.co.jp'`.",
    after_help = "Configuration: mailtrail.toml in the current directory (or --config FILE) with \
data_dir, timezone and org_domains; every setting can also be given as a flag or MAILTRAIL_* variable."
)]
struct Cli {
    /// Data directory (database, blobs, quarantine). Default: ./mailtrail-data
    #[arg(long, global = true, env = "MAILTRAIL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file. Default: ./mailtrail.toml when it exists
    #[arg(long, global = true, env = "MAILTRAIL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Time zone for log stamps without one and for display (IANA name, e.g. Asia/Tokyo)
    #[arg(long, global = true, env = "MAILTRAIL_TIMEZONE", value_name = "ZONE")]
    timezone: Option<String>,
    /// The organisation's own mail domain; repeat or separate with commas. Decides the direction
    #[arg(
        long = "org-domain",
        global = true,
        env = "MAILTRAIL_ORG_DOMAINS",
        value_name = "DOMAIN",
        value_delimiter = ','
    )]
    org_domains: Vec<String>,
    /// Mailbox that receives journal copies (journal rule, always_bcc); repeat
    /// or separate with commas. Never counted as a recipient of the email
    #[arg(
        long = "journal-address",
        global = true,
        env = "MAILTRAIL_JOURNAL_ADDRESSES",
        value_name = "ADDRESS",
        value_delimiter = ','
    )]
    journal_addresses: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import mail logs and mailboxes (format detected from content)
    #[command(
        long_about = "Import mail logs and mailboxes. Each PATH may be a file (Postfix, \
Sendmail or Exim syslog file, Exim main log, Exchange message tracking log MSGTRK*.LOG, Microsoft \
365 message trace export (CSV or JSON, Graph messageTraces), Microsoft 365 audit records (JSON or \
audit log search CSV), Gmail logs from BigQuery (JSON rows or tabledata), Gmail Email Log Search \
CSV, .eml, mbox) or a folder (a Maildir, or a folder whose files are imported one by one). Importing the same input again adds nothing; the same email seen \
in a log and in a mailbox becomes one message. Malformed input never stops the import: it is \
counted, reported with its file and line, and kept in the quarantine (see `mailtrail quarantine`)."
    )]
    Import(ImportArgs),
    /// Search messages with the query language
    #[command(long_about = QUERY_HELP)]
    Search(SearchArgs),
    /// Show one message: headers, decoded body, attachments and deliveries
    Show(ShowArgs),
    /// One message's trail across every system that saw it, in time order
    #[command(
        long_about = "One message's trail: every event that Postfix, Sendmail, Exim, the \
journal receiver, Exchange, Microsoft 365 or Gmail reported for it, in time order — system, \
time, event, recipient, and what the system said (next hop, client, status text). ID is the ID \
column of `mailtrail search`, or a Message-ID (with or without <>)."
    )]
    Trace(TraceArgs),
    /// Totals: messages, and deliveries by status
    Stats(FormatArgs),
    /// List rejected input kept in the quarantine
    Quarantine(QuarantineArgs),
    /// Run the service: journal copies over SMTP, syslog, followed log files
    #[command(
        long_about = "Run the service. The SMTP journal receiver takes the copies that \
journal rules (Microsoft 365 / Exchange), compliance routing (Google Workspace) or Postfix \
always_bcc / recipient_bcc_maps send; each message is searchable as soon as it is acknowledged, \
and `250` is only sent once it is durably stored. The syslog receiver (UDP, TCP, TLS) and the \
log followers read Postfix, Sendmail and Exim logs as they are written. Every source can be \
set in mailtrail.toml ([smtp], [syslog], [follow], [http]) or with the flags below; flags win. \
Bound addresses are printed as `listening smtp ADDR`. Stops on SIGTERM or Ctrl-C after \
in-flight messages finish."
    )]
    Serve(Box<ServeArgs>),
    /// Hash a password (read from standard input) for [[smtp.users]] in mailtrail.toml
    #[command(
        long_about = "Hash a password for an SMTP AUTH account. Reads the password from \
standard input (the first line) and prints an argon2id hash to put into mailtrail.toml:\n\n\
  [[smtp.users]]\n  name = \"postfix-relay\"\n  password_hash = \"$argon2id$...\"\n\n\
Example: printf '%s' \"$PASSWORD\" | mailtrail hash-password"
    )]
    HashPassword,
    /// Console accounts: add or update one (password from standard input), list them
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens for scripts: create one (printed once), list, revoke
    #[command(subcommand)]
    Token(TokenCommand),
    /// Monitoring rules: check rule files, dry-run a rule over stored mail
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Alerts raised by the monitoring rules, newest first (open and
    /// acknowledged ones unless --state or --all)
    Alerts(alerts::AlertsArgs),
    /// One alert: what matched, its history; --state, --assign, --comment change it
    Alert(alerts::AlertArgs),
    /// Send the daily digest of a day's alerts now (serve sends yesterday's
    /// after midnight to [[notify.mail]] channels with daily_digest = true)
    Digest(alerting::DigestArgs),
    /// The directory: import people and PCs from CSV, list them. Mail is
    /// attributed to them by address and client IP (search employee:, dept:, device:)
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// Gaps in collection: employees and PCs of the directory with no
    /// captured mail in the last N days, overall and per source
    Coverage(directory::CoverageArgs),
    /// Risk view (off unless [risk] enabled = true): employees ranked by day
    /// signals — after-hours sending against their own habit, private
    /// addresses, new outside domains, attachment volume, leavers, alerts —
    /// each explained; --departments: unusual after-hours mail per department
    Risk(risk::RiskArgs),
    /// Generate a small company's mail, import it, show example searches, then
    /// start the web console on it with a demo administrator (--no-serve: stop after the import)
    Demo(DemoArgs),
    /// Generate synthetic Postfix logs, Maildirs, Exchange tracking logs and M365 reports (tests, benchmarks)
    Generate(GenerateArgs),
}

const QUERY_HELP: &str = "Search messages. Words and \"quoted phrases\" search subject, body, \
attachment names and addresses; Japanese text matches as an exact substring (社外秘, 機密), \
full-width/half-width and upper/lower case are the same.\n\n\
Operators:\n  from: to: cc: bcc:      address or name (to: also matches recipients known only from a log, whose header is unknown)\n  \
subject: body: filename: text in one field\n  has:attachment\n  \
direction:inbound|outbound|internal|relayed\n  \
status:delivered|sent|deferred|bounced|expired|rejected|received|quarantined|\n         expanded|forwarded|failed   (any delivery of the message had it)\n  \
system:postfix|sendmail|exim|mailbox (or postfix@HOST)\n  \
after:2026-11-01  before:2026-11-27  (dates in the configured time zone)\n  \
newer_than:7d  older_than:2w  (h d w m y)\n  larger:5M  smaller:100K\n  \
-term  NOT;  a OR b;  ( ... ) grouping; terms side by side must all match.\n\n\
Examples:\n  mailtrail search '社外秘 direction:outbound newer_than:30d'\n  \
mailtrail search --count 'from:taro.yamada@example.co.jp has:attachment'\n  \
mailtrail search --format json 'filename:顧客リスト OR subject:confidential'";

#[derive(Args)]
struct ImportArgs {
    /// Files or folders to import
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Input format instead of detection: syslog (Postfix/Sendmail/Exim via syslog), exim-mainlog, eml, mbox, maildir
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    format: Option<Format>,
    /// Year of the first line of syslog files whose stamps have none (default: inferred from the file's modification time)
    #[arg(long)]
    year: Option<i32>,
    /// No progress bar
    #[arg(long, short)]
    quiet: bool,
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s)
        .ok_or_else(|| format!("unknown format {s:?}; known: {}", import::format_names()))
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Args)]
struct SearchArgs {
    /// The query (quote it for the shell); empty matches everything
    #[arg(value_name = "QUERY", default_value = "", allow_hyphen_values = true)]
    query: Vec<String>,
    /// Print only the number of matching messages
    #[arg(long)]
    count: bool,
    /// Most messages to print
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Skip this many messages first (for paging)
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Output: table for people, json (one object per line) or csv for tools
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

#[derive(Args)]
struct ShowArgs {
    /// Message id (the ID column of `search`) or Message-ID
    #[arg(value_name = "ID")]
    id: String,
    /// Write the original message bytes to standard output
    #[arg(long)]
    raw: bool,
    /// json prints the search record plus the decoded body
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

#[derive(Args)]
struct TraceArgs {
    /// Message id (the ID column of `search`) or Message-ID
    #[arg(value_name = "ID")]
    id: String,
    /// table for people, json (one object with the trail) for tools
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a console account, or set a new password and role for one.
    /// The password is read from standard input (its first line), e.g.
    /// `printf '%s' "$PASSWORD" | mailtrail user add sato --role viewer`.
    /// Changing an account ends its sessions.
    Add {
        /// User name (one word)
        name: String,
        /// administrator (everything) or viewer (metadata search only: no content, no downloads)
        #[arg(long, default_value = "administrator")]
        role: String,
    },
    /// List the console accounts
    List,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Parse and check rule files (TOML); list each rule, on or off. Without
    /// --rules, the shipped example rules (crates/policy/data/rules)
    Check {
        /// Rule file, or a folder of *.toml rule files (repeatable)
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
    },
    /// Evaluate the stored messages that wait for the rules now (what
    /// `mailtrail serve` does continuously), raising their alerts and
    /// queueing their notifications. Rules from --rules, else [policy] rules
    Run {
        /// Rule file, or a folder of *.toml rule files (repeatable)
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
    },
    /// Dry-run one rule (enabled or not) over the stored mail of a period and
    /// show what it would have raised, with what matched and where; nothing
    /// is written. Example: mailtrail rules test confidential-to-freemail --since 90d
    Test {
        /// The rule's id
        rule: String,
        /// Rule file, or a folder of *.toml rule files (repeatable); default the shipped examples
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        /// How far back: 90d, 12w, 6m (as newer_than: in the query language)
        #[arg(long, default_value = "90d")]
        since: String,
        /// Most matches to print (all are counted)
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// table for people, json (one line per match: the message and the match) for tools
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a bearer token for the JSON API and print it (only this once:
    /// the store keeps its hash). Use it as
    /// `curl -H "Authorization: Bearer $TOKEN" http://HOST:8025/api/v1/search?q=...`.
    /// Requests made with it are audited as `token:NAME`.
    Create {
        /// What the token is for (letters, digits, '-', '_', '.'), e.g. siem-export
        name: String,
        /// administrator (messages, raw and attachment downloads too) or
        /// viewer (metadata search and trails only)
        #[arg(long, default_value = "administrator")]
        role: String,
    },
    /// List the tokens: name, role, created, last used, revoked
    List,
    /// Revoke a token: requests carrying it are refused from now on
    Revoke { name: String },
}

#[derive(Args)]
struct FormatArgs {
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

#[derive(Args)]
struct QuarantineArgs {
    /// Most entries to list, newest first
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

#[derive(Args, Default)]
pub struct ServeArgs {
    /// Address of the SMTP journal receiver (port 0 picks a free port). Also
    /// `[smtp] listen`. When no source is configured at all: 127.0.0.1:2525
    #[arg(long, value_name = "ADDR", env = "MAILTRAIL_SMTP")]
    smtp: Option<std::net::SocketAddr>,
    /// Serve /healthz and /metrics (Prometheus) on this address. Also `[http] listen`
    #[arg(long, value_name = "ADDR", env = "MAILTRAIL_HTTP")]
    http: Option<std::net::SocketAddr>,
    /// Receive Postfix / Sendmail / Exim syslog over UDP on this address. Also `[syslog] udp`
    #[arg(long, value_name = "ADDR", env = "MAILTRAIL_SYSLOG_UDP")]
    syslog_udp: Option<std::net::SocketAddr>,
    /// Receive syslog over TCP (octet-counting or newline framing, RFC 6587). Also `[syslog] tcp`
    #[arg(long, value_name = "ADDR", env = "MAILTRAIL_SYSLOG_TCP")]
    syslog_tcp: Option<std::net::SocketAddr>,
    /// Receive syslog over TLS (RFC 5425; needs --tls-cert and --tls-key). Also `[syslog] tls`
    #[arg(long, value_name = "ADDR", env = "MAILTRAIL_SYSLOG_TLS")]
    syslog_tls: Option<std::net::SocketAddr>,
    /// Follow a growing mail log (repeatable), across rotation and restarts. Also `[follow] paths`
    #[arg(long = "follow", value_name = "PATH")]
    follow: Vec<PathBuf>,
    /// Certificate (PEM, with intermediates) for SMTP STARTTLS and syslog TLS.
    /// Also `[smtp.tls] cert` / `[syslog.tls_files] cert`
    #[arg(
        long,
        value_name = "FILE",
        env = "MAILTRAIL_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert
    #[arg(
        long,
        value_name = "FILE",
        env = "MAILTRAIL_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Client network allowed to send over SMTP (repeatable, e.g. 10.0.0.0/8).
    /// Also `[smtp] allowed_networks`. Default: loopback and private ranges
    #[arg(long = "allow-network", value_name = "CIDR")]
    allow_networks: Vec<ipnet::IpNet>,
    /// Largest message accepted over SMTP, in bytes. Also `[smtp] max_message_size`. Default 50 MiB
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<usize>,
    /// Most recipients per SMTP message. Also `[smtp] max_recipients`. Default 1000
    #[arg(long, value_name = "N")]
    max_recipients: Option<usize>,
    /// Seconds before a silent SMTP client is disconnected. Also `[smtp] idle_timeout_secs`. Default 300
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// SMTP connections served at once (more get 421). Also `[smtp] max_connections`. Default 200
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Lines of Postfix log to generate
    #[arg(long, default_value_t = 30_000)]
    pub log_lines: u64,
    /// Messages to put in the demo Maildir
    #[arg(long, default_value_t = 800)]
    pub messages: u64,
    /// Only generate and import; do not start the web console afterwards
    #[arg(long)]
    pub no_serve: bool,
    /// Where the demo's web console listens (loopback only unless you say otherwise)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8025")]
    pub http: std::net::SocketAddr,
    /// Where the demo's SMTP journal receiver listens
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2525")]
    pub smtp: std::net::SocketAddr,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Output folder (maillog, Maildir/, msgtrk/ and m365/ are written inside)
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Approximate number of Postfix log lines (0 for none)
    #[arg(long, default_value_t = 0)]
    pub postfix_lines: u64,
    /// Number of Maildir messages (0 for none)
    #[arg(long, default_value_t = 0)]
    pub maildir_messages: u64,
    /// Exchange Server 2019 message tracking logs (OUT/msgtrk/EX0n/MSGTRK*.LOG, rolling at
    /// 10 MB) of about this many bytes in all, e.g. 1G or 100M; a truth file goes beside them
    #[arg(long, value_name = "SIZE", value_parser = generate::parse_size)]
    pub msgtrk_bytes: Option<u64>,
    /// Size at which a message tracking log rolls over (Exchange's default: 10Mi)
    #[arg(long, value_name = "SIZE", value_parser = generate::parse_size, hide = true)]
    pub msgtrk_file_bytes: Option<u64>,
    /// Microsoft 365 historical search extended report (OUT/m365/extended_report.csv) with
    /// about this many rows; a truth file goes beside it
    #[arg(long, value_name = "N")]
    pub m365_rows: Option<u64>,
    /// Employees of the generated company (its domain is the first --org-domain, else example.co.jp)
    #[arg(long, default_value_t = 200)]
    pub employees: usize,
    /// Days of mail, ending now (or from --start)
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// First day of the mail (YYYY-MM-DD, midnight UTC) instead of DAYS before now: with
    /// the same seed, the same bytes
    #[arg(long, value_name = "DATE")]
    pub start: Option<chrono::NaiveDate>,
    /// Seed: the same seed gives the same data
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the company's directory as HR and IT export it
    /// (OUT/directory/employees.csv and pcs.csv, for `mailtrail directory import`)
    #[arg(long)]
    pub directory: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) {
        // `mailtrail search … | head` must end quietly when `head` has read
        // enough, as other command-line tools do. The service keeps Rust's
        // default (SIGPIPE ignored): a vanished client is an error on its
        // socket, not the end of the process.
        // SAFETY: restoring the default disposition of a signal at start-up,
        // before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailtrail: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let overrides = Overrides {
        config: cli.config,
        data_dir: cli.data_dir,
        timezone: cli.timezone,
        org_domains: cli.org_domains,
        journal_addresses: cli.journal_addresses,
    };
    let config = Config::load(&overrides)?;
    match cli.command {
        Command::Import(args) => cmd_import(&config, args),
        Command::Search(args) => cmd_search(&config, args),
        Command::Show(args) => cmd_show(&config, args),
        Command::Stats(args) => cmd_stats(&config, args),
        Command::Trace(args) => {
            if args.format == OutputFormat::Csv {
                bail!("trace prints a table or json (--format table|json), not csv");
            }
            trace::run(&config, &args.id, args.format == OutputFormat::Json)
        }
        Command::Quarantine(args) => cmd_quarantine(&config, args),
        Command::Serve(args) => cmd_serve(&config, *args),
        Command::Demo(args) => {
            let config = demo::run(&config, &args)?;
            if args.no_serve {
                return Ok(ExitCode::SUCCESS);
            }
            cmd_serve(
                &config,
                ServeArgs {
                    http: Some(args.http),
                    smtp: Some(args.smtp),
                    ..ServeArgs::default()
                },
            )
        }
        Command::Generate(args) => demo::generate_cmd(&config, &args).map(|()| ExitCode::SUCCESS),
        Command::HashPassword => cmd_hash_password(),
        Command::User(cmd) => cmd_user(&config, cmd),
        Command::Token(cmd) => cmd_token(&config, cmd),
        Command::Directory(cmd) => directory::run(&config, cmd),
        Command::Coverage(args) => directory::coverage(&config, args),
        Command::Risk(args) => risk::run(&config, args),
        Command::Alerts(args) => alerts::list(&config, args),
        Command::Alert(args) => alerts::one(&config, args),
        Command::Digest(args) => alerting::digest(&config, args),
        Command::Rules(RulesCommand::Run { rules }) => alerting::run_pending(&config, &rules),
        Command::Rules(RulesCommand::Check { rules }) => rules::check(&rules),
        Command::Rules(RulesCommand::Test {
            rule,
            rules,
            since,
            limit,
            format,
        }) => rules::test(
            &config,
            &rules::TestOptions {
                rule: &rule,
                rules: &rules,
                since: &since,
                limit,
                json: matches!(format, OutputFormat::Json),
            },
        ),
    }
}

/// Open the store. `durable`: every batch durable on its own (see
/// [`SqliteOptions::durable`]); bulk imports pass false and sync at the end.
pub fn open_store_with(config: &Config, durable: bool) -> Result<SqliteStore> {
    SqliteStore::open(
        &config.data_dir,
        SqliteOptions {
            org_domains: OrgDomains::new(&config.org_domains),
            durable,
            read_only: false,
            journal_addresses: config.journal_addresses.clone(),
        },
    )
    .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))
}

/// Open the store for reading (search, show, stats).
pub fn open_store(config: &Config) -> Result<SqliteStore> {
    SqliteStore::open(
        &config.data_dir,
        SqliteOptions {
            org_domains: OrgDomains::new(&config.org_domains),
            durable: true,
            read_only: true,
            journal_addresses: config.journal_addresses.clone(),
        },
    )
    .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))
}

/// The zone for zone-less log stamps and display: the configured one, else
/// the one this store's logs were read in, else the system's.
pub fn effective_timezone(config: &Config, store: &dyn Store) -> Result<chrono_tz::Tz> {
    if config.timezone_explicit {
        return Ok(config.timezone);
    }
    Ok(store
        .setting("timezone")?
        .and_then(|z| z.parse().ok())
        .unwrap_or(config.timezone))
}

/// Remember the zone an import read its stamps in; say so when it changes,
/// because the same log read in two zones gives two sets of times.
pub fn record_import_timezone(store: &mut dyn Store, timezone: chrono_tz::Tz) -> Result<()> {
    match store.setting("timezone")? {
        None => store.set_setting("timezone", timezone.name())?,
        Some(stored) if stored != timezone.name() => eprintln!(
            "note: earlier imports into this store read zone-less log stamps as {stored}, \
             this one as {}; importing the same log in both zones stores its events twice",
            timezone.name()
        ),
        Some(_) => {}
    }
    Ok(())
}

fn cmd_import(config: &Config, args: ImportArgs) -> Result<ExitCode> {
    if config.org_domains.is_empty() {
        eprintln!(
            "note: no organisation domains configured (org_domains / --org-domain): \
             directions will all be `relayed`"
        );
    }
    let mut store = open_store_with(config, false)?;
    let timezone = effective_timezone(config, &store)?;
    record_import_timezone(&mut store, timezone)?;
    let options = import::ImportOptions {
        format: args.format,
        data_dir: config.data_dir.clone(),
        timezone,
        year: args.year,
        quiet: args.quiet,
    };
    let (report, elapsed) = import::timed(|| import::run(&mut store, &args.paths, &options))?;
    import::print_report(&report, elapsed);
    Ok(ExitCode::SUCCESS)
}

pub fn parse_query(config: &Config, text: &str) -> Result<query::Expr> {
    let ctx = QueryContext {
        now: Utc::now(),
        timezone: config.timezone,
    };
    query::parse(text, &ctx).map_err(|e| anyhow::anyhow!("query: {e}"))
}

fn cmd_search(config: &Config, args: SearchArgs) -> Result<ExitCode> {
    let text = args.query.join(" ");
    // A mistyped query is reported before anything else is looked at.
    parse_query(config, &text)?;
    let store = open_store(config)?;
    let mut config = config.clone();
    config.timezone = effective_timezone(&config, &store)?;
    let config = &config;
    let expr = parse_query(config, &text)?;
    if args.count {
        println!("{}", store.count(&expr)?);
        return Ok(ExitCode::SUCCESS);
    }
    let messages = store.search(
        &expr,
        Page {
            limit: args.limit,
            offset: args.offset,
        },
    )?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.format {
        OutputFormat::Json => {
            for m in &messages {
                writeln!(out, "{}", output::message_json(m, config.timezone))?;
            }
        }
        OutputFormat::Csv => {
            writeln!(out, "{}", output::CSV_HEADER)?;
            for m in &messages {
                writeln!(out, "{}", output::csv_row(m, config.timezone))?;
            }
        }
        OutputFormat::Table => {
            let total = store.count(&expr)?;
            writeln!(out, "{}", output::table_header())?;
            for m in &messages {
                writeln!(out, "{}", output::table_row(m, config.timezone))?;
            }
            let shown = messages.len() as u64;
            writeln!(
                out,
                "{total} message(s) match; showing {}–{}",
                if shown == 0 { 0 } else { args.offset + 1 },
                args.offset + shown
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn find_message(store: &SqliteStore, id: &str) -> Result<StoredMessage> {
    let found = match id.parse::<i64>() {
        Ok(n) => store.message(n)?,
        Err(_) => match mailtrail_model::normalize_message_id(id) {
            Some(mid) => store.message_by_message_id(&mid)?,
            None => None,
        },
    };
    found.with_context(|| {
        format!("no message {id:?} (use the ID column of `mailtrail search` or a Message-ID)")
    })
}

fn cmd_show(config: &Config, args: ShowArgs) -> Result<ExitCode> {
    let store = open_store(config)?;
    let m = find_message(&store, &args.id)?;
    let raw = match &m.content_hash {
        Some(hash) => Some(store.raw_message(hash)?.with_context(|| {
            format!(
                "the captured content of message {} (blob {hash}) is missing from the store: \
                 the data directory is damaged; importing the message's source again restores it",
                m.id
            )
        })?),
        None => None,
    };
    if args.raw {
        let Some(raw) = raw else {
            bail!(
                "message {} was seen only in logs ({}): no content was captured",
                m.id,
                m.systems.join(", ")
            );
        };
        std::io::stdout().lock().write_all(&raw)?;
        return Ok(ExitCode::SUCCESS);
    }
    let body = raw.and_then(|raw| {
        mailtrail_ingest::mime::parse_message(raw, &DecodeOptions::default())
            .ok()
            .and_then(|r| r.body_text)
    });
    let tz = effective_timezone(config, &store)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.format == OutputFormat::Json {
        let mut v = output::message_json(&m, tz);
        v["body"] = serde_json::Value::from(body);
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    // Header values come from the message: no control character reaches the terminal.
    let line =
        |out: &mut dyn Write, k: &str, v: &str| writeln!(out, "{k:<14} {}", output::printable(v));
    line(&mut out, "ID:", &m.id.to_string())?;
    line(
        &mut out,
        "Message-ID:",
        m.message_id.as_deref().unwrap_or("-"),
    )?;
    if let Some(t) = m.date {
        line(&mut out, "Date:", &output::local(t, tz))?;
    }
    if let Some(t) = m.first_seen {
        line(&mut out, "First seen:", &output::local(t, tz))?;
    }
    line(&mut out, "Direction:", m.direction.as_str())?;
    let from = match &m.from {
        Some(f) => match &f.display_name {
            Some(n) => format!("{n} <{}>", f.address),
            None => f.address.clone(),
        },
        None => "-".into(),
    };
    line(&mut out, "From:", &from)?;
    if let Some(env) = &m.envelope_from {
        line(&mut out, "Envelope from:", env)?;
    }
    for (label, kind) in [
        ("To:", mailtrail_model::RecipientKind::To),
        ("Cc:", mailtrail_model::RecipientKind::Cc),
        ("Bcc:", mailtrail_model::RecipientKind::Bcc),
        ("Envelope to:", mailtrail_model::RecipientKind::Envelope),
    ] {
        let list: Vec<String> = m
            .recipients
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| match &r.display_name {
                Some(n) => format!("{n} <{}>", r.address),
                None => r.address.clone(),
            })
            .collect();
        if !list.is_empty() {
            line(&mut out, label, &list.join(", "))?;
        }
    }
    line(&mut out, "Subject:", m.subject.as_deref().unwrap_or(""))?;
    if let Some(size) = m.size {
        line(&mut out, "Size:", &format!("{size} bytes"))?;
    }
    line(&mut out, "Systems:", &m.systems.join(", "))?;
    if !m.auth.is_empty() {
        line(
            &mut out,
            "Auth:",
            &format!(
                "spf={} dkim={} dmarc={}",
                m.auth.spf.as_deref().unwrap_or("-"),
                m.auth.dkim.as_deref().unwrap_or("-"),
                m.auth.dmarc.as_deref().unwrap_or("-")
            ),
        )?;
    }
    if !m.attachments.is_empty() {
        writeln!(out, "\nAttachments:")?;
        for a in &m.attachments {
            writeln!(
                out,
                "  {}  {} bytes  {}{}  blake3:{}",
                output::printable(a.filename.as_deref().unwrap_or("(no name)")),
                a.size,
                a.content_type,
                if a.encrypted { "  [encrypted]" } else { "" },
                a.blake3
            )?;
            for inner in &a.inner_names {
                writeln!(out, "      └ {}", output::printable(inner))?;
            }
        }
    }
    if !m.deliveries.is_empty() {
        writeln!(out, "\nDeliveries:")?;
        for d in &m.deliveries {
            writeln!(
                out,
                "  {}  {:<10} {:<32} {:<20} {}",
                output::local(d.time, tz),
                d.status.as_str(),
                if d.recipient.is_empty() {
                    "(message)"
                } else {
                    &d.recipient
                },
                d.system,
                output::printable(d.detail.as_deref().or(d.relay.as_deref()).unwrap_or(""))
            )?;
        }
    }
    writeln!(out)?;
    match body {
        Some(body) => writeln!(out, "{}", output::printable_text(&body))?,
        None if m.content_hash.is_none() => {
            writeln!(out, "(seen only in logs: no content was captured)")?
        }
        None => writeln!(out, "(no text body)")?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_stats(config: &Config, args: FormatArgs) -> Result<ExitCode> {
    let store = open_store(config)?;
    let stats = store.stats()?;
    if args.format == OutputFormat::Json {
        let deliveries: serde_json::Map<String, serde_json::Value> =
            mailtrail_model::DeliveryStatus::ALL
                .iter()
                .map(|s| {
                    let n = stats
                        .deliveries
                        .iter()
                        .find(|(k, _)| k == s)
                        .map_or(0, |(_, n)| *n);
                    (s.as_str().to_string(), n.into())
                })
                .collect();
        let directions: serde_json::Map<String, serde_json::Value> = stats
            .by_direction
            .iter()
            .map(|(d, n)| (d.as_str().to_string(), (*n).into()))
            .collect();
        let systems: serde_json::Map<String, serde_json::Value> = stats
            .by_system
            .iter()
            .map(|(s, n)| (s.clone(), (*n).into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "messages": stats.messages,
                "deliveries": deliveries,
                "directions": directions,
                "systems": systems,
                "rejects": stats.rejects,
                "blobs": stats.blobs,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("messages     {}", stats.messages);
    for status in mailtrail_model::DeliveryStatus::ALL {
        let n = stats
            .deliveries
            .iter()
            .find(|(k, _)| *k == status)
            .map_or(0, |(_, n)| *n);
        if n > 0
            || matches!(
                status.as_str(),
                "received" | "delivered" | "deferred" | "bounced" | "rejected"
            )
        {
            println!("{:<12} {n}", status.as_str());
        }
    }
    for (d, n) in &stats.by_direction {
        println!("direction {:<9} {n}", d.as_str());
    }
    for (s, n) in &stats.by_system {
        println!("system {s:<20} {n} message(s)");
    }
    println!("quarantined  {}", stats.rejects);
    Ok(ExitCode::SUCCESS)
}

pub fn cmd_serve(config: &Config, args: ServeArgs) -> Result<ExitCode> {
    let store = open_store_with(config, true)?;
    // Flags win over the file's sections, field by field.
    let sections = config.serve.clone();
    let flag_tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(mailtrail_server::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let mut smtp = sections.smtp;
    if let Some(listen) = args.smtp {
        smtp.get_or_insert_with(mailtrail_server::SmtpConfig::default)
            .listen = listen;
    }
    let mut syslog = sections.syslog.unwrap_or_default();
    syslog.udp = args.syslog_udp.or(syslog.udp);
    syslog.tcp = args.syslog_tcp.or(syslog.tcp);
    syslog.tls = args.syslog_tls.or(syslog.tls);
    if syslog.tls.is_some() && flag_tls.is_some() {
        syslog.tls_files = flag_tls.clone();
    }
    let mut follow = sections.follow;
    for path in &args.follow {
        if !follow.contains(path) {
            follow.push(path.clone());
        }
    }
    let pollers = sections.m365.is_some() || sections.gmail.is_some();
    if smtp.is_none() && !syslog.enabled() && follow.is_empty() && !pollers {
        smtp = Some(mailtrail_server::SmtpConfig::default());
    }
    if let Some(smtp) = smtp.as_mut() {
        if let Some(n) = args.max_message_size {
            smtp.max_message_bytes = n;
        }
        if let Some(n) = args.max_recipients {
            smtp.max_recipients = n;
        }
        if let Some(secs) = args.idle_timeout {
            smtp.idle_timeout = std::time::Duration::from_secs(secs);
        }
        if let Some(n) = args.max_connections {
            smtp.max_connections = n;
        }
        if !args.allow_networks.is_empty() {
            smtp.allowed_networks = args.allow_networks.clone();
        }
        if flag_tls.is_some() {
            smtp.tls = flag_tls.clone();
        }
        smtp.journal_addresses = config.journal_addresses.clone();
    } else if args.max_message_size.is_some()
        || args.max_recipients.is_some()
        || args.idle_timeout.is_some()
        || args.max_connections.is_some()
        || !args.allow_networks.is_empty()
    {
        bail!("SMTP settings were given but the SMTP receiver is off: add --smtp ADDR or an [smtp] section");
    }
    if flag_tls.is_some() && smtp.is_none() && syslog.tls.is_none() {
        bail!("--tls-cert/--tls-key were given but neither SMTP (--smtp) nor syslog TLS (--syslog-tls) is on");
    }
    let timezone = effective_timezone(config, &store)?;
    // Rules and notifications run beside the receivers, from the store's
    // queues; they stop when `serve` returns.
    let _alerting = alerting::start(config)?;
    let http = args.http.or(sections.http.as_ref().map(|h| h.listen));
    // The web console is served wherever /healthz and /metrics are; its
    // sources page reads the same counters /healthz does.
    let metrics = std::sync::Arc::new(mailtrail_server::metrics::Metrics::default());
    let health = metrics.clone();
    let console = match http {
        Some(_) => Some(
            mailtrail_web::router(mailtrail_web::WebOptions {
                data_dir: config.data_dir.clone(),
                org_domains: config.org_domains.clone(),
                timezone,
                secure_cookies: sections.http.as_ref().is_some_and(|h| h.secure_cookies),
                session_length: std::time::Duration::from_secs(
                    3600 * sections.http.as_ref().map_or(8, |h| h.session_hours),
                ),
                sources: Some(mailtrail_web::SourcesProvider(std::sync::Arc::new(
                    move || health.health_json(),
                ))),
                rules: config.policy.rules.clone(),
                rules_reload_secs: config.policy.reload_secs.max(1),
                risk: config.risk.enabled.then(|| mailtrail_web::RiskPageOptions {
                    days: config
                        .risk
                        .days
                        .unwrap_or(mailtrail_web::RiskPageOptions::default().days),
                    baseline_days: config
                        .risk
                        .baseline_days
                        .unwrap_or(mailtrail_web::RiskPageOptions::default().baseline_days),
                }),
            })
            .map_err(|e| anyhow::anyhow!("cannot start the web console: {e}"))?,
        ),
        None => None,
    };
    let options = mailtrail_server::ServeOptions {
        http,
        console,
        smtp,
        syslog,
        follow,
        m365: sections.m365,
        gmail: sections.gmail,
        decode: DecodeOptions {
            timezone,
            ..DecodeOptions::default()
        },
        queue: 1024,
        grace: std::time::Duration::from_secs(10),
        metrics: Some(metrics),
    };
    mailtrail_server::serve(
        store,
        options,
        |what, addr| {
            println!("listening {what} {addr}");
            let _ = std::io::stdout().flush();
        },
        |what, path| {
            println!("{what} {}", path.display());
            let _ = std::io::stdout().flush();
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_user(config: &Config, cmd: UserCommand) -> Result<ExitCode> {
    use mailtrail_store::console::{ConsoleStore, Role};
    match cmd {
        UserCommand::Add { name, role } => {
            let role = Role::parse(&role)
                .with_context(|| format!("unknown role {role:?}: administrator or viewer"))?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let existed = mailtrail_web::add_user(&config.data_dir, &name, password, role)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{} {name} ({})",
                if existed { "updated" } else { "added" },
                role.as_str()
            );
        }
        UserCommand::List => {
            let store = open_store(config)?;
            for user in store.users()? {
                println!(
                    "{:<24} {:<14} {}{}",
                    user.name,
                    user.role.as_str(),
                    output::local(user.created, effective_timezone(config, &store)?),
                    if user.disabled { "  (disabled)" } else { "" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_token(config: &Config, cmd: TokenCommand) -> Result<ExitCode> {
    use mailtrail_store::console::{ConsoleStore, Role};
    match cmd {
        TokenCommand::Create { name, role } => {
            let role = Role::parse(&role)
                .with_context(|| format!("unknown role {role:?}: administrator or viewer"))?;
            let token = mailtrail_web::create_api_token(&config.data_dir, &name, role)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!(
                "created token {name} ({}); it is shown only now, keep it secret:",
                role.as_str()
            );
            println!("{token}");
        }
        TokenCommand::List => {
            let store = open_store(config)?;
            let tz = effective_timezone(config, &store)?;
            for t in store.api_tokens()? {
                println!(
                    "{:<24} {:<14} created {}  last used {}{}",
                    t.name,
                    t.role.as_str(),
                    output::local(t.created, tz),
                    t.last_used
                        .map_or_else(|| "never".to_string(), |u| output::local(u, tz)),
                    t.revoked
                        .map(|r| format!("  (revoked {})", output::local(r, tz)))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { name } => {
            let revoked = mailtrail_web::revoke_api_token(&config.data_dir, &name)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if !revoked {
                bail!("no live token named {name} (`mailtrail token list` shows them)");
            }
            println!("revoked {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_hash_password() -> Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("no password on standard input (e.g. printf '%s' \"$PASSWORD\" | mailtrail hash-password)");
    }
    let hash = mailtrail_server::smtp::hash_password(password)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}

fn cmd_quarantine(config: &Config, args: QuarantineArgs) -> Result<ExitCode> {
    let store = open_store(config)?;
    let entries = store.quarantine(args.limit)?;
    if entries.is_empty() {
        println!("the quarantine is empty");
    }
    for e in entries {
        println!(
            "{}: {}: {} [{}]\n    kept in {}",
            e.source, e.position, e.reason, e.code, e.file
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
