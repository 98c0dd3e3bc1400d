//! `mailtrail trace ID|MESSAGE-ID`: one message's journey through every
//! system that saw it, in time order.
//!
//! The store already holds one message per email with the deliveries of
//! every source (Postfix, the journal, Exchange, Microsoft 365, Gmail); the
//! trail is those deliveries sorted by time, one line per event, with where
//! it happened (system, relay or client) and what the system said. Ties in
//! time keep the order the sources reported them in, which is the order of
//! events within one system.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use mailtrail_model::Delivery;
use mailtrail_web::json::{trail, TrailJson};

use crate::config::Config;
use crate::output;

/// Where the event happened, beyond the system: the next hop for a
/// delivery, the client for a receipt.
fn place(d: &Delivery) -> String {
    match (&d.relay, &d.client_host, &d.client_ip) {
        (Some(relay), _, _) => format!("→ {relay}"),
        (None, Some(host), Some(ip)) => format!("← {host}[{ip}]"),
        (None, None, Some(ip)) => format!("← [{ip}]"),
        (None, Some(host), None) => format!("← {host}"),
        (None, None, None) => String::new(),
    }
}

pub fn run(config: &Config, id: &str, json_output: bool) -> Result<ExitCode> {
    let store = crate::open_store(config)?;
    let m = crate::find_message(&store, id)?;
    let tz = crate::effective_timezone(config, &store)?;
    let events = trail(&m);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if json_output {
        let v = serde_json::to_string(&TrailJson::new(&m, tz))?;
        writeln!(out, "{v}")?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let from = m
        .from
        .as_ref()
        .map(|f| f.address.as_str())
        .or(m.envelope_from.as_deref())
        .unwrap_or("-");
    writeln!(
        out,
        "Message {}  <{}>\n  {}  from {}  ({}; seen by {})",
        m.id,
        output::printable(m.message_id.as_deref().unwrap_or("no Message-ID")),
        output::printable(m.subject.as_deref().unwrap_or("(no subject)")),
        output::printable(from),
        m.direction.as_str(),
        m.systems.join(", ")
    )?;
    if events.is_empty() {
        writeln!(
            out,
            "\n(no delivery events: the message is known only from its content)"
        )?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "\n{:<25}  {:<18}  {:<11}  {:<34}  DETAIL",
        "TIME", "SYSTEM", "EVENT", "RECIPIENT"
    )?;
    for d in events {
        let recipient = match (&d.recipient, &d.original_recipient) {
            (r, _) if r.is_empty() => "(message)".to_string(),
            (r, Some(orig)) if orig != r => format!("{r} (for {orig})"),
            (r, _) => r.clone(),
        };
        let mut detail = place(d);
        if let Some(text) = &d.detail {
            if !detail.is_empty() {
                detail.push_str("  ");
            }
            detail.push_str(text);
        }
        writeln!(
            out,
            "{:<25}  {:<18}  {:<11}  {:<34}  {}",
            output::local(d.time, tz),
            output::fit(&output::printable(&d.system), 18),
            d.status.as_str(),
            output::fit(&output::printable(&recipient), 34),
            output::printable(&detail)
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
