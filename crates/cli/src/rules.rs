//! `mailtrail rules check` and `mailtrail rules test RULE --since 90d`:
//! monitoring rules (the policy engine, `mailtrail-policy`) checked and
//! dry-run over the mail already stored — a retro-hunt that shows what a
//! rule would have raised before anyone switches it on.
//!
//! Why it is shaped this way:
//! - **Read-only and audit-free**: nothing is written (no alerts, no
//!   tags); the store is opened as for `search`.
//! - **Bodies from the stored raw message**, decoded as on import, so a
//!   keyword in the body matches as it will when rules run on arrival;
//!   messages known only from logs are judged on what the logs said.
//! - **The directory and history of the store**, as on arrival: people,
//!   departments and leavers from the imported or synced directory, first
//!   contact and PPAP from the stored mail, each as it stood at the
//!   message's time (a domain's first contact is its earliest outbound mail).
//! - **Narrowed by the index first**: a rule's directions and keywords are a
//!   search ([`mailtrail_policy::store::candidate_query`]), so a keyword rule
//!   over a million messages looks closely only at those the index finds.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use mailtrail_policy::store::{retro_hunt, Hunt, StoreDirectory};
use mailtrail_policy::{Policy, RuleMatch, EXAMPLE_RULES};
use mailtrail_store::Store as _;
use mailtrail_store::StoredMessage;
use serde_json::json;

use crate::config::Config;
use crate::output;

/// The rule files named (files, or folders whose `*.toml` files are read in
/// name order), or the shipped examples when none is named.
fn load(paths: &[PathBuf]) -> Result<Policy> {
    if paths.is_empty() {
        return Policy::compile(EXAMPLE_RULES).map_err(|e| anyhow::anyhow!("{e}"));
    }
    if mailtrail_policy::rule_files(paths)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .is_empty()
    {
        bail!("no rule files (*.toml) in {paths:?}");
    }
    mailtrail_policy::load_rule_paths(paths).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Rule files are valid: list each rule, on or off, and where it comes from.
pub fn check(paths: &[PathBuf]) -> Result<ExitCode> {
    let policy = load(paths)?;
    for r in &policy.rules {
        println!(
            "{} {:<32} {:<28} {}",
            if r.rule.enabled { "on " } else { "off" },
            r.rule.id,
            r.origin,
            r.rule.name.as_deref().unwrap_or_default()
        );
    }
    println!("{} rule(s), valid", policy.rules.len());
    Ok(ExitCode::SUCCESS)
}

/// Our domains only: the directory is not in the store yet.
pub struct TestOptions<'a> {
    pub rule: &'a str,
    pub rules: &'a [PathBuf],
    pub since: &'a str,
    pub limit: usize,
    pub json: bool,
}

/// Run one rule (enabled or not) over the messages of the period; print each
/// match with what matched and where, then the tally.
pub fn test(config: &Config, options: &TestOptions) -> Result<ExitCode> {
    let policy = load(options.rules)?;
    if policy.rule(options.rule).is_none() {
        let ids: Vec<&str> = policy.rules.iter().map(|r| r.rule.id.as_str()).collect();
        bail!(
            "no rule {:?}; the rules are: {}",
            options.rule,
            ids.join(", ")
        );
    }
    let store = crate::open_store(config)?;
    let tz = crate::effective_timezone(config, &store)?;
    let period = crate::parse_query(config, &format!("newer_than:{}", options.since))
        .with_context(|| format!("--since {}: e.g. 90d, 12w, 6m", options.since))?;
    let directory = StoreDirectory::load(&store, &config.org_domains)?;
    let decode = mailtrail_ingest::DecodeOptions {
        timezone: config.timezone,
        ..mailtrail_ingest::DecodeOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let parse = |text: &str| crate::parse_query(config, text).map_err(|e| format!("{e:#}"));
    let mut shown = 0usize;
    let hunt = Hunt {
        store: &store,
        policy: &policy,
        directory: &directory,
        decode: &decode,
    };
    let stats = retro_hunt(&hunt, options.rule, &period, &parse, &mut |m, hit| {
        shown += 1;
        if shown > options.limit {
            return Ok(());
        }
        let written = if options.json {
            // The hunt's message lacks its deliveries (no rule reads them);
            // the JSON shows the whole message.
            let whole = store.message(m.id)?;
            let v = json!({
                "message": output::message_json(whole.as_ref().unwrap_or(m), tz),
                "match": hit,
            });
            writeln!(out, "{v}")
        } else {
            write_match(&mut out, m, &hit, tz)
        };
        written.map_err(|e| mailtrail_store::StoreError::Invalid(format!("output: {e}")))
    })?;
    let (examined, matched) = (stats.candidates, stats.matched);
    if options.json {
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "\nrule {}: {matched} message(s) since {} would match ({examined} examined after the index narrowed the period){}",
        options.rule,
        options.since,
        if matched as usize > options.limit {
            format!(" (the first {} shown; --limit)", options.limit)
        } else {
            String::new()
        }
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// One match as the table shows it: the message, then each hit.
fn write_match(
    out: &mut impl Write,
    m: &StoredMessage,
    hit: &RuleMatch,
    tz: chrono_tz::Tz,
) -> std::io::Result<()> {
    writeln!(
        out,
        "\n#{}  {}  {}  {}",
        m.id,
        output::display_time(m)
            .map(|t| output::local(t, tz))
            .unwrap_or_default(),
        output::printable(m.from.as_ref().map_or("-", |f| f.address.as_str())),
        output::printable(m.subject.as_deref().unwrap_or("(no subject)")),
    )?;
    for h in &hit.hits {
        writeln!(
            out,
            "    [{}] {:?}: {}{}",
            h.condition_type,
            h.location,
            output::printable(&h.text),
            h.detail
                .as_deref()
                .map(|d| format!("  ({})", output::printable(d)))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}
