//! `mailtrail risk`: the risk view on the command line — employees ranked
//! by the day signals of [`mailtrail_policy::risk`], each point explained,
//! or (`--departments`) the department days with unusual after-hours mail.
//!
//! It is a view about people, so it runs only where the organisation has
//! turned it on (`[risk] enabled = true` in mailtrail.toml) and refuses
//! otherwise, saying how. Working time is the `[calendar]` of the `[policy]`
//! rule files (the default calendar when none sets one), the same that the
//! `off_hours` rule condition uses, and the free-mail domains are the
//! policy's `freemail` list, so the view and the rules agree on what is
//! after hours and what is a private address.
//!
//! `--format json` prints one object per line: a person
//! ([`mailtrail_policy::risk::PersonRisk`]: id, name, department, score,
//! days with their signals, each with points and the Japanese and English
//! sentence), or with `--departments` a department day
//! ([`mailtrail_policy::risk::DepartmentDay`]).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, Utc};
use clap::{Args, ValueEnum};
use mailtrail_policy::risk::{self, RiskSettings};
use mailtrail_policy::Policy;
use mailtrail_store::directory::DirectoryStore;

use crate::config::Config;
use crate::{output, OutputFormat};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Ja,
    En,
}

#[derive(Args)]
pub struct RiskArgs {
    /// Days in the period, ending with --until (default: [risk] days, else 30)
    #[arg(long)]
    days: Option<u32>,
    /// The last day of the period, YYYY-MM-DD (default: today in the calendar's zone)
    #[arg(long, value_name = "DATE")]
    until: Option<NaiveDate>,
    /// One person: their directory id (社員番号) or one of their addresses.
    /// They are listed even when nothing scored
    #[arg(long, value_name = "ID|ADDRESS")]
    employee: Option<String>,
    /// The department view instead: days a department sent unusually much
    /// mail after hours (a hint of unrecorded overtime), and who sent it
    #[arg(long, conflicts_with = "employee")]
    departments: bool,
    /// Most people (or department days) to print
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Language of the explanations in the table (json carries both)
    #[arg(long, value_enum, default_value_t = Lang::Ja)]
    lang: Lang,
    /// table for people, json (one object per line) for tools
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

pub fn run(config: &Config, args: RiskArgs) -> Result<ExitCode> {
    if !config.risk.enabled {
        bail!(
            "the risk view is off: it looks at each employee's mail habits, so an \
             organisation turns it on deliberately. To enable it, add to {}:\n\n\
             [risk]\nenabled = true",
            config
                .source
                .as_deref()
                .map_or_else(|| "mailtrail.toml".to_string(), |p| p.display().to_string())
        );
    }
    if args.format == OutputFormat::Csv {
        bail!("risk prints a table or json (--format table|json)");
    }
    let policy = if config.policy.rules.is_empty() {
        Policy::compile(&[]).map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        crate::alerting::load_policy(&config.policy.rules).context("[policy] rules")?
    };
    let calendar = &policy.calendar;
    let store = crate::open_store(config)?;
    let people = store.directory_people()?;
    if people.is_empty() {
        bail!(
            "the directory is empty: the risk view is per employee, so import \
             people first (mailtrail directory import FILE.csv)"
        );
    }
    if let Some(key) = &args.employee {
        if !people.iter().any(|p| risk::person_matches(p, key)) {
            bail!("nobody in the directory has the id or address {key:?}");
        }
    }
    let last_day = args
        .until
        .unwrap_or_else(|| Utc::now().with_timezone(&calendar.timezone).date_naive());
    let settings = RiskSettings {
        last_day,
        days: args
            .days
            .or(config.risk.days)
            .unwrap_or(RiskSettings::DEFAULT_DAYS),
        baseline_days: config
            .risk
            .baseline_days
            .unwrap_or(RiskSettings::DEFAULT_BASELINE_DAYS),
        leaver_days: policy.leaver_days,
        employee: args.employee.clone(),
    };
    let freemail = policy.list("freemail").unwrap_or(&[]);
    let report = risk::assess(&store, &people, &settings, calendar, freemail)?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let ja = args.lang == Lang::Ja;
    let say = |ja_text: &str, en_text: &str| output::printable(if ja { ja_text } else { en_text });
    if args.departments {
        for d in report.departments.iter().take(args.limit) {
            if args.format == OutputFormat::Json {
                writeln!(out, "{}", serde_json::to_string(d)?)?;
            } else {
                writeln!(
                    out,
                    "{}  {:>4} after hours  ×{:<5.1} {}",
                    d.date,
                    d.after_hours,
                    d.ratio,
                    say(&d.ja, &d.en)
                )?;
            }
        }
        if args.format == OutputFormat::Table {
            writeln!(
                out,
                "{} of {} unusual department day(s), {} – {} (each day against the department's previous {} days)",
                report.departments.len().min(args.limit),
                report.departments.len(),
                report.first_day,
                report.last_day,
                report.baseline_days
            )?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    for p in report.people.iter().take(args.limit) {
        if args.format == OutputFormat::Json {
            writeln!(out, "{}", serde_json::to_string(p)?)?;
            continue;
        }
        writeln!(
            out,
            "{:>4}  {}  {}  {}  ({} sent)",
            p.score,
            output::printable(&p.id),
            output::printable(p.name.as_deref().unwrap_or("-")),
            output::printable(p.department.as_deref().unwrap_or("-")),
            p.sent
        )?;
        for d in &p.days {
            for (i, s) in d.signals.iter().enumerate() {
                let day = if i == 0 {
                    format!("{}  {:>4}", d.date, d.score)
                } else {
                    " ".repeat(16)
                };
                writeln!(
                    out,
                    "      {day}  +{:<3} {:<16} {}",
                    s.points,
                    s.kind.as_str(),
                    say(&s.ja, &s.en)
                )?;
            }
        }
    }
    if args.format == OutputFormat::Table {
        writeln!(
            out,
            "{} of {} employee(s) with a score, {} – {} (score: the highest day; each day against the person's previous {} days)",
            report.people.len().min(args.limit),
            report.people.len(),
            report.first_day,
            report.last_day,
            report.baseline_days
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
