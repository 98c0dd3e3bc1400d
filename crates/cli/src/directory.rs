//! `mailtrail directory`: bring the directory (people, PCs) into the store
//! and look at it.
//!
//! An import replaces one source's list and says what changed — who is
//! new, whose facts changed and which facts, who is no longer listed — so
//! that an administrator re-running last month's export sees "nothing
//! changed" and one running this month's sees exactly the joiners, movers
//! and leavers. `--dry-run` shows that report without writing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use mailtrail_ingest::directory_csv::{self, CsvOptions, Field};
use mailtrail_store::directory::{Changed, DirectoryChanges, DirectoryStore};

use crate::config::Config;
use crate::{open_store, open_store_with, OutputFormat};

#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// Import people or PCs from a CSV file as Excel saves it (CP932 "CSV
    /// (コンマ区切り)", "CSV UTF-8" or "Unicode テキスト"). Columns are found by
    /// their headers, in Japanese or English: 社員番号/id, 氏名/name,
    /// フリガナ/kana, ローマ字/romaji, メールアドレス/mail, 別名/aliases, 部署/department
    /// (本社/営業部/第一課), 上長/manager, 在籍区分/status (在籍 休職 退職 無効),
    /// 入社日/hire_date, 退職日/leave_date, 私用アドレス/private_addresses,
    /// グループ/groups; for PCs ホスト名/hostname, 使用者/owner, IPアドレス/ip,
    /// MACアドレス/mac, 利用開始/from, 利用終了/until (one row per address period).
    /// The file is the whole list of its source: people it no longer lists
    /// are marked as no longer listed (their mail stays theirs). A file with
    /// any unreadable row is refused, every bad row listed. Importing the same
    /// file again changes nothing.
    Import {
        /// The CSV file
        file: PathBuf,
        /// Name of the list this file is (a later import under the same name
        /// replaces it); e.g. hr, pcs. Default: csv for people, csv-devices for PCs
        #[arg(long)]
        source: Option<String>,
        /// Use this column for a field, when its header is not one of the
        /// known ones: --column name=漢字氏名 --column id=従業員CD (repeatable)
        #[arg(long = "column", value_name = "FIELD=HEADER")]
        columns: Vec<String>,
        /// Show what would change; write nothing
        #[arg(long)]
        dry_run: bool,
        /// table for people, json (the change report) for tools
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Read the directory sources of mailtrail.toml ([directory.ldap],
    /// [directory.entra], [directory.google]) and apply each as its own
    /// list (sources ldap, entra, google), with the same change report as an
    /// import. Run it from cron, e.g. hourly
    Sync {
        /// Only this source: ldap, entra or google
        #[arg(long)]
        source: Option<String>,
        /// Show what would change; write nothing
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// List the people of the directory (every source), with their addresses
    /// and departments
    List {
        /// Also people their source no longer lists
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

pub fn run(config: &Config, cmd: DirectoryCommand) -> Result<ExitCode> {
    match cmd {
        DirectoryCommand::Import {
            file,
            source,
            columns,
            dry_run,
            format,
        } => import(config, &file, source, &columns, dry_run, format),
        DirectoryCommand::Sync {
            source,
            dry_run,
            format,
        } => sync(config, source.as_deref(), dry_run, format),
        DirectoryCommand::List { all, format } => list(config, all, format),
    }
}

fn parse_columns(columns: &[String]) -> Result<BTreeMap<Field, String>> {
    let mut out = BTreeMap::new();
    for c in columns {
        let Some((field, header)) = c.split_once('=') else {
            bail!("--column {c:?}: expected FIELD=HEADER, e.g. --column name=漢字氏名");
        };
        let Some(f) = Field::from_key(field) else {
            let known: Vec<&str> = Field::ALL.iter().map(|f| f.key()).collect();
            bail!(
                "--column {c:?}: unknown field {field:?}; fields are {}",
                known.join(", ")
            );
        };
        if header.trim().is_empty() {
            bail!("--column {c:?}: the header is empty");
        }
        out.insert(f, header.to_string());
    }
    Ok(out)
}

fn import(
    config: &Config,
    file: &std::path::Path,
    source: Option<String>,
    columns: &[String],
    dry_run: bool,
    format: OutputFormat,
) -> Result<ExitCode> {
    if format == OutputFormat::Csv {
        bail!("directory import prints a table or json (--format table|json)");
    }
    let options = CsvOptions {
        columns: parse_columns(columns)?,
        timezone: config.timezone,
    };
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let csv = directory_csv::decode(&bytes, &options)
        .with_context(|| format!("{}: not imported", file.display()))?;
    let devices = csv.snapshot.people.is_empty() && !csv.snapshot.devices.is_empty();
    let source = source.unwrap_or_else(|| if devices { "csv-devices" } else { "csv" }.into());
    eprintln!(
        "{}: {}, {} row(s); columns: {}{}",
        file.display(),
        csv.encoding,
        csv.rows,
        csv.columns
            .iter()
            .map(|(f, h)| format!("{h} → {}", f.key()))
            .collect::<Vec<_>>()
            .join(", "),
        if csv.ignored.is_empty() {
            String::new()
        } else {
            format!("; not used: {}", csv.ignored.join(", "))
        }
    );
    let mut store = open_store_with(config, true)?;
    let changes = store
        .apply_directory(&source, &csv.snapshot, dry_run)
        .with_context(|| format!("{}: not imported", file.display()))?;
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
    } else {
        print_changes(&changes, dry_run);
    }
    Ok(ExitCode::SUCCESS)
}

fn sync(
    config: &Config,
    only: Option<&str>,
    dry_run: bool,
    format: OutputFormat,
) -> Result<ExitCode> {
    use mailtrail_server::directory::{self as sync, SyncOptions};
    if format == OutputFormat::Csv {
        bail!("directory sync prints a table or json (--format table|json)");
    }
    let d = &config.directory;
    let configured: Vec<&str> = [
        d.ldap.as_ref().map(|_| "ldap"),
        d.entra.as_ref().map(|_| "entra"),
        d.google.as_ref().map(|_| "google"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if configured.is_empty() {
        bail!("no directory source in the config file: add [directory.ldap], [directory.entra] or [directory.google] to mailtrail.toml");
    }
    if let Some(o) = only {
        if !configured.contains(&o) {
            bail!(
                "--source {o}: not configured; configured: {}",
                configured.join(", ")
            );
        }
    }
    let options = SyncOptions {
        progress: Some(std::sync::Arc::new(|p: sync::SyncProgress| {
            eprint!("\r{}: {} people fetched", p.source, p.people);
        })),
        ..SyncOptions::default()
    };
    let mut store = open_store_with(config, true)?;
    let mut reports = Vec::new();
    for source in configured
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == *s))
    {
        let snapshot = match source {
            "ldap" => d.ldap.as_ref().map(|c| sync::sync_ldap_with(c, &options)),
            "entra" => d.entra.as_ref().map(|c| sync::sync_entra_with(c, &options)),
            _ => d
                .google
                .as_ref()
                .map(|c| sync::sync_google_with(c, &options)),
        };
        eprintln!();
        let Some(snapshot) = snapshot else { continue };
        let snapshot = snapshot.with_context(|| format!("directory sync from {source}"))?;
        let changes = store.apply_directory(source, &snapshot, dry_run)?;
        if format == OutputFormat::Table {
            print_changes(&changes, dry_run);
        }
        reports.push(changes);
    }
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_changes(c: &DirectoryChanges, dry_run: bool) {
    let verb = if dry_run { "would change" } else { "changed" };
    if !c.added.is_empty() || !c.changed.is_empty() || !c.removed.is_empty() || c.unchanged > 0 {
        println!(
            "people in {:?}: {} added, {} {verb}, {} unchanged, {} no longer listed",
            c.source,
            c.added.len(),
            c.changed.len(),
            c.unchanged,
            c.removed.len()
        );
    }
    if !c.devices_added.is_empty()
        || !c.devices_changed.is_empty()
        || !c.devices_removed.is_empty()
        || c.devices_unchanged > 0
    {
        println!(
            "PCs in {:?}: {} added, {} {verb}, {} unchanged, {} no longer listed",
            c.source,
            c.devices_added.len(),
            c.devices_changed.len(),
            c.devices_unchanged,
            c.devices_removed.len()
        );
    }
    let line = |what: &str, ch: &Changed| {
        let label = ch.label.as_deref().unwrap_or("");
        if ch.fields.is_empty() {
            println!("  {what:<9} {} {label}", ch.key);
        } else {
            println!("  {what:<9} {} {label}: {}", ch.key, ch.fields.join(", "));
        }
    };
    for ch in c.added.iter().chain(&c.devices_added) {
        line("added", ch);
    }
    for ch in c.changed.iter().chain(&c.devices_changed) {
        line("changed", ch);
    }
    for ch in c.removed.iter().chain(&c.devices_removed) {
        line("not listed", ch);
    }
    if c.is_empty() {
        println!("nothing changed");
    }
    if dry_run {
        println!("(dry run: nothing was written)");
    }
}

fn list(config: &Config, all: bool, format: OutputFormat) -> Result<ExitCode> {
    let store = open_store(config)?;
    let people: Vec<_> = store
        .directory_people()?
        .into_iter()
        .filter(|p| all || p.present)
        .collect();
    match format {
        OutputFormat::Json => {
            for p in &people {
                println!("{}", serde_json::to_string(p)?);
            }
        }
        OutputFormat::Csv => bail!("directory list prints a table or json"),
        OutputFormat::Table => {
            for p in &people {
                println!(
                    "{:<10} {:<12} {:<24} {:<32} {}{}",
                    p.person.id,
                    p.person.name.as_deref().unwrap_or("-"),
                    p.person.department.as_deref().unwrap_or("-"),
                    p.person.addresses.join(" "),
                    p.person.status.as_str(),
                    if p.present {
                        String::new()
                    } else {
                        format!(" (no longer listed by {})", p.source)
                    }
                );
            }
            eprintln!("{} people", people.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct CoverageArgs {
    /// The period: the last N days
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Most names to list per gap (all are counted)
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// table for people, json (the whole report) for tools
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

/// `mailtrail coverage`: who and which PCs had no mail captured in the
/// last N days, overall and per source — the gaps an administrator closes
/// (a mailbox not journaled, a relay whose log is not collected, a PC that
/// sends through a route nobody watches).
pub fn coverage(config: &Config, args: CoverageArgs) -> Result<ExitCode> {
    if args.format == OutputFormat::Csv {
        bail!("coverage prints a table or json (--format table|json)");
    }
    let store = open_store(config)?;
    let tz = crate::effective_timezone(config, &store)?;
    let since = chrono::Utc::now() - chrono::Duration::days(i64::from(args.days));
    let report = store.coverage(since)?;
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    if report.people.is_empty() && report.devices.is_empty() {
        bail!("the directory is empty: import it first (mailtrail directory import FILE.csv)");
    }
    println!(
        "the last {} day(s), since {}: {} message(s); {} employee(s), {} PC(s) in the directory",
        args.days,
        crate::output::local(since, tz),
        report.messages,
        report.people.len(),
        report.devices.len()
    );
    let people = report.people.len().max(1);
    println!("\nemployees with captured mail, per source:");
    for system in &report.systems {
        let n = report
            .people
            .iter()
            .filter(|p| p.seen_by.contains(system))
            .count();
        println!(
            "  {system:<24} {n:>6}  ({:.0}%)",
            100.0 * n as f64 / people as f64
        );
    }
    let show = |title: String, rows: Vec<String>| {
        println!("\n{title}");
        for r in rows.iter().take(args.limit) {
            println!("  {r}");
        }
        if rows.len() > args.limit {
            println!("  … and {} more (--limit)", rows.len() - args.limit);
        }
    };
    let person_line = |p: &mailtrail_store::directory::PersonCoverage| {
        format!(
            "{:<10} {:<12} {:<24} {}",
            p.id,
            p.name.as_deref().unwrap_or("-"),
            p.department.as_deref().unwrap_or("-"),
            p.addresses.first().map(String::as_str).unwrap_or("-")
        )
    };
    let none: Vec<String> = report
        .people
        .iter()
        .filter(|p| p.seen_by.is_empty())
        .map(person_line)
        .collect();
    show(
        format!("employees with no captured mail ({}):", none.len()),
        none,
    );
    // A source that saw only some people: the others, seen by another
    // source, are its gap (a mailbox it does not cover).
    for system in &report.systems {
        let gap: Vec<String> = report
            .people
            .iter()
            .filter(|p| !p.seen_by.is_empty() && !p.seen_by.contains(system))
            .map(person_line)
            .collect();
        if !gap.is_empty() {
            show(
                format!("seen by other sources but not by {system} ({}):", gap.len()),
                gap,
            );
        }
    }
    let silent: Vec<String> = report
        .devices
        .iter()
        .filter(|d| d.messages == 0)
        .map(|d| format!("{:<16} {}", d.hostname, d.owner.as_deref().unwrap_or("-")))
        .collect();
    if !report.devices.is_empty() {
        show(
            format!("PCs with no captured mail ({}):", silent.len()),
            silent,
        );
    }
    Ok(ExitCode::SUCCESS)
}
