//! `mailtrail alerts` (the inbox on the command line) and `mailtrail alert
//! ID` (one alert: show it, change its state, assign it, comment on it).
//!
//! `--format json` prints one object per alert with what scripts and the
//! SIEM need to act on it: the rule, the message (mailtrail's number and
//! its Message-ID), the matched condition and text, severity and state —
//! the same object the API's `/api/v1/alerts` lists
//! ([`mailtrail_web::json::AlertJson`]).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use mailtrail_store::alerts::{AlertFilter, AlertState, AlertStore, AlertUpdate};
use mailtrail_store::{Page, Store};
use mailtrail_web::json::{AlertDetailJson, AlertJson};

use crate::config::Config;
use crate::{output, OutputFormat};

#[derive(Args)]
pub struct AlertsArgs {
    /// Only alerts of this rule (its id)
    #[arg(long)]
    rule: Option<String>,
    /// Only alerts in this state: open, acknowledged, resolved, false-positive.
    /// Default: open and acknowledged ones
    #[arg(long)]
    state: Option<String>,
    /// Every alert, whatever its state
    #[arg(long, conflicts_with = "state")]
    all: bool,
    /// Most alerts to print, newest first
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// table for people, json (one object per line) for tools
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

#[derive(Args)]
pub struct AlertArgs {
    /// The alert's number
    id: i64,
    /// New state: open, acknowledged (対応中), resolved (解決済), false-positive (誤検知)
    #[arg(long)]
    state: Option<String>,
    /// Who handles it (a console user); an empty value takes the assignment away
    #[arg(long)]
    assign: Option<String>,
    /// A comment for the alert's history
    #[arg(long)]
    comment: Option<String>,
    /// Who is making the change, for the history (default: the login name)
    #[arg(long)]
    user: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

fn parse_state(text: &str) -> Result<AlertState> {
    AlertState::parse(text).with_context(|| {
        format!("unknown state {text:?}: open, acknowledged, resolved or false-positive")
    })
}

pub fn list(config: &Config, args: AlertsArgs) -> Result<ExitCode> {
    if args.format == OutputFormat::Csv {
        bail!("alerts prints a table or json (--format table|json)");
    }
    let store = crate::open_store(config)?;
    let tz = crate::effective_timezone(config, &store)?;
    let filter = AlertFilter {
        rule: args.rule.clone(),
        state: args.state.as_deref().map(parse_state).transpose()?,
        unresolved: !args.all && args.state.is_none(),
        message: None,
        page: Page {
            limit: args.limit,
            offset: 0,
        },
    };
    let (total, alerts) = store.alerts(&filter)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for a in &alerts {
        let message = store.message(a.message)?;
        let message_id = message.as_ref().and_then(|m| m.message_id.as_deref());
        let v = AlertJson::new(a, message_id);
        if args.format == OutputFormat::Json {
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
            continue;
        }
        writeln!(
            out,
            "{:>6}  {}  {:<8} {:<14} {:<32} #{:<7} {}: {}",
            a.id,
            output::local(a.raised, tz),
            a.severity,
            a.state.as_str(),
            a.rule,
            a.message,
            v.condition.as_deref().unwrap_or("-"),
            output::printable(v.matched.as_deref().unwrap_or("")),
        )?;
    }
    if args.format == OutputFormat::Table {
        writeln!(
            out,
            "{} of {total} alert(s){}",
            alerts.len(),
            if filter.unresolved {
                " open or acknowledged (--all for every state)"
            } else {
                ""
            }
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn one(config: &Config, args: AlertArgs) -> Result<ExitCode> {
    let changing = args.state.is_some() || args.assign.is_some() || args.comment.is_some();
    let mut store = if changing {
        crate::open_store_with(config, true)?
    } else {
        crate::open_store(config)?
    };
    if changing {
        let user = args
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "cli".into());
        let update = AlertUpdate {
            state: args.state.as_deref().map(parse_state).transpose()?,
            assignee: args
                .assign
                .as_ref()
                .map(|a| Some(a.trim().to_string()).filter(|a| !a.is_empty())),
            comment: args.comment.clone(),
        };
        if store.update_alert(args.id, &user, &update)?.is_none() {
            bail!("no alert {}", args.id);
        }
    }
    let Some((alert, events)) = store.alert(args.id)? else {
        bail!("no alert {}", args.id);
    };
    let message = store.message(alert.message)?;
    let message_id = message.as_ref().and_then(|m| m.message_id.as_deref());
    if args.format == OutputFormat::Json {
        let v = AlertDetailJson::new(&alert, message_id, &events);
        println!("{}", serde_json::to_string(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let tz = crate::effective_timezone(config, &store)?;
    println!(
        "alert {}  {}  {}  rule {}{}",
        alert.id,
        alert.severity,
        alert.state.as_str(),
        alert.rule,
        alert
            .rule_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    println!("raised   {}", output::local(alert.raised, tz));
    if let Some(a) = &alert.assignee {
        println!("assignee {a}");
    }
    if let Some(m) = &message {
        println!(
            "message  #{} {} {}  {}",
            m.id,
            m.message_id.as_deref().unwrap_or("-"),
            output::printable(m.from.as_ref().map_or("-", |f| f.address.as_str())),
            output::printable(m.subject.as_deref().unwrap_or("(no subject)"))
        );
    }
    for h in alert.hits.as_array().into_iter().flatten() {
        println!(
            "  [{}] {}: {}{}",
            h["condition_type"].as_str().unwrap_or("-"),
            h["location"]["at"].as_str().unwrap_or("-"),
            output::printable(h["text"].as_str().unwrap_or("")),
            h["detail"]
                .as_str()
                .map(|d| format!("  ({})", output::printable(d)))
                .unwrap_or_default()
        );
    }
    for e in &events {
        println!(
            "{}  {}{}{}{}",
            output::local(e.time, tz),
            e.user,
            e.state
                .map(|s| format!("  state → {}", s.as_str()))
                .unwrap_or_default(),
            e.assignee
                .as_deref()
                .map(|a| format!("  assigned → {a}"))
                .unwrap_or_default(),
            e.comment
                .as_deref()
                .map(|c| format!("  \"{}\"", output::printable(c)))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
