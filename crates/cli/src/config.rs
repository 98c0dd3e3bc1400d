//! Configuration: `mailtrail.toml`, overridden by `MAILTRAIL_*` variables, overridden by flags.
//!
//! Precedence follows what administrators expect from daemons they already
//! run: the file is the baseline, the environment adapts it per host or
//! container, and a flag wins for one invocation. A config file the user
//! *named* (`--config` / `MAILTRAIL_CONFIG`) must exist and parse — a typo in a
//! path must never silently fall back to defaults. Without one, `mailtrail.toml`
//! in the current directory is read if present.
//!
//! ```toml
//! # mailtrail.toml
//! data_dir = "/var/lib/mailtrail"      # where the database, blobs and quarantine live
//! timezone = "Asia/Tokyo"              # for log stamps without a zone and for display
//! org_domains = ["example.co.jp", "example.com"]   # decides inbound/outbound/internal
//! journal_addresses = ["journal@example.co.jp"]     # where journal copies go; never a recipient
//!
//! # `mailtrail serve`: one section per source (see each type's documentation)
//! [http]                       # mailtrail_server::HttpConfig
//! listen = "127.0.0.1:8025"
//! [smtp]                       # mailtrail_server::SmtpConfig
//! listen = "0.0.0.0:2525"
//! [syslog]                     # mailtrail_server::SyslogConfig
//! tcp = "0.0.0.0:601"
//! [follow]                     # mailtrail_server::FollowSection
//! paths = ["/var/log/mail.log"]
//! [m365]                       # mailtrail_server::M365Config (Graph message traces, audit feed)
//! tenant_id = "0e1dddce-0000-4000-8000-000000000001"
//! client_id = "5f0c9a4e-0000-4000-8000-000000000002"
//! client_secret_file = "m365-client-secret"
//! [gmail]                      # mailtrail_server::GmailConfig (Reports API)
//! service_account_key_file = "gmail-service-account.json"
//! delegated_admin = "admin@example.co.jp"
//! ```
//!
//! Paths in the file (data directory, certificates, followed logs, secret
//! and key files) are relative to the file itself.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The settings file, as written by an administrator. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory: the SQLite database, the blob store and the quarantine.
    pub data_dir: Option<PathBuf>,
    /// IANA time zone name (`Asia/Tokyo`) for zone-less log stamps and for display.
    pub timezone: Option<String>,
    /// The organisation's own mail domains (sub-domains included).
    pub org_domains: Option<Vec<String>>,
    /// Mailboxes that journal copies are sent to (journal rules, always_bcc):
    /// never counted as recipients of the journaled email.
    pub journal_addresses: Option<Vec<String>>,
    /// `mailtrail serve`: health and metrics endpoint.
    pub http: Option<mailtrail_server::HttpConfig>,
    /// `mailtrail serve`: the SMTP journal receiver (enabled by the section).
    pub smtp: Option<mailtrail_server::SmtpConfig>,
    /// `mailtrail serve`: the syslog receiver.
    pub syslog: Option<mailtrail_server::SyslogConfig>,
    /// `mailtrail serve`: log files to follow.
    pub follow: Option<mailtrail_server::FollowSection>,
    /// `mailtrail serve`: Microsoft 365 pollers (enabled by the section).
    pub m365: Option<mailtrail_server::M365Config>,
    /// `mailtrail serve`: the Gmail poller (enabled by the section).
    pub gmail: Option<mailtrail_server::GmailConfig>,
    /// The monitoring rules every stored message is evaluated with.
    pub policy: Option<PolicySection>,
    /// Where alerts are sent: mail, webhooks, syslog / CEF.
    pub notify: Option<mailtrail_notify::NotifyConfig>,
    /// Directory sources `mailtrail directory sync` reads (LDAP / Active
    /// Directory, Entra ID, Google Workspace).
    pub directory: Option<mailtrail_server::directory::DirectorySyncConfig>,
    /// The risk view (`mailtrail risk`): off unless `enabled = true`.
    pub risk: Option<RiskSection>,
}

/// `[risk]`: the risk view (リスクビュー) — per employee and day, signals such
/// as after-hours sending against the person's own habit, mail to private
/// addresses, outside domains mailed for the first time, attachment volume,
/// leavers and unresolved alerts, each explained in words; and per
/// department, days of unusual after-hours mail (a hint of unrecorded
/// overtime).
///
/// It is a view *about people*, so it is **off by default**: an
/// organisation turns it on when its rules (就業規則, works agreements,
/// privacy notices) allow it. Without `enabled = true`, `mailtrail risk`
/// refuses to run.
///
/// ```toml
/// [risk]
/// enabled = true
/// days = 30            # the period shown, ending today
/// baseline_days = 28   # each day is compared with the person's previous 28 days
/// ```
///
/// Working hours, working days and holidays are the `[calendar]` of the
/// rule files of `[policy]` (Asia/Tokyo, 9:00–18:00, Monday to Friday and
/// the Japanese holidays when none sets one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSection {
    /// Whether the risk view may be computed at all (default false).
    #[serde(default)]
    pub enabled: bool,
    /// Days in the period, ending today (default 30; `--days` overrides).
    #[serde(default)]
    pub days: Option<u32>,
    /// Days before each day that make a person's baseline (default 28).
    #[serde(default)]
    pub baseline_days: Option<u32>,
}

/// `[policy]`: the monitoring rules (監視ルール) `mailtrail serve` evaluates
/// every stored message with, within seconds of its arrival.
///
/// ```toml
/// [policy]
/// rules = ["rules"]          # files, or folders of *.toml rule files
/// console_url = "https://mailtrail.example.co.jp"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Rule files, or folders whose `*.toml` files are read in name order
    /// (relative to this file). Without any, no rules run and no alerts
    /// are raised. Rules created in the console are written to
    /// `console.toml` in the first folder listed here; rules edited there
    /// are written back to their own file (the previous version kept as
    /// `FILE.bak`; comments in a hand-written file are not kept).
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// How often, in seconds, the rule files are checked for changes
    /// (default 5). Changed files are loaded again; files that do not load
    /// are reported with file, line and reason, and the rules loaded
    /// before stay in force.
    #[serde(default = "default_reload_secs")]
    pub reload_secs: u64,
    /// The console's address as administrators reach it
    /// (`https://mailtrail.example.co.jp`): notifications link to the alert
    /// there. Without it they carry no link.
    #[serde(default)]
    pub console_url: Option<String>,
    /// Alerts on mail older than this many hours (default 24) are recorded
    /// for the inbox but notify nobody: importing a year of history must not
    /// send a year of alerts.
    #[serde(default = "default_notify_max_age_hours")]
    pub notify_max_age_hours: u64,
}

fn default_reload_secs() -> u64 {
    5
}

fn default_notify_max_age_hours() -> u64 {
    24
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            rules: Vec::new(),
            reload_secs: default_reload_secs(),
            console_url: None,
            notify_max_age_hours: default_notify_max_age_hours(),
        }
    }
}

/// Settings after file, environment and flags are combined.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub timezone: chrono_tz::Tz,
    /// Whether the zone was given (flag, variable or file) rather than taken
    /// from the system: a store remembers the zone its logs were read in, and
    /// that wins over the system's.
    pub timezone_explicit: bool,
    pub org_domains: Vec<String>,
    /// Normalised journal mailbox addresses.
    pub journal_addresses: Vec<String>,
    /// The `mailtrail serve` sections of the file (flags are applied by `serve`).
    pub serve: ServeSections,
    /// The file that was read, if any.
    pub source: Option<PathBuf>,
    /// `[policy]`, paths resolved.
    pub policy: PolicySection,
    /// `[notify]`, paths resolved.
    pub notify: mailtrail_notify::NotifyConfig,
    /// `[directory]`, paths resolved.
    pub directory: mailtrail_server::directory::DirectorySyncConfig,
    /// `[risk]` (disabled when absent).
    pub risk: RiskSection,
}

/// The sections of mailtrail.toml that configure `mailtrail serve`, with
/// relative paths already resolved against the file's folder.
#[derive(Debug, Clone, Default)]
pub struct ServeSections {
    pub http: Option<mailtrail_server::HttpConfig>,
    pub smtp: Option<mailtrail_server::SmtpConfig>,
    pub syslog: Option<mailtrail_server::SyslogConfig>,
    pub follow: Vec<PathBuf>,
    pub m365: Option<mailtrail_server::M365Config>,
    pub gmail: Option<mailtrail_server::GmailConfig>,
}

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub timezone: Option<String>,
    pub org_domains: Vec<String>,
    pub journal_addresses: Vec<String>,
}

pub const DEFAULT_CONFIG_FILE: &str = "mailtrail.toml";
pub const DEFAULT_DATA_DIR: &str = "mailtrail-data";

impl Config {
    pub fn load(overrides: &Overrides) -> Result<Config> {
        let (file, source) = match &overrides.config {
            Some(path) => (read_file(path)?, Some(path.clone())),
            None => {
                let default = Path::new(DEFAULT_CONFIG_FILE);
                if default.exists() {
                    (read_file(default)?, Some(default.to_path_buf()))
                } else {
                    (FileConfig::default(), None)
                }
            }
        };
        // A relative path in a config file is relative to that file, not to
        // wherever the command happens to be run from.
        let base = source
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        let resolve = |d: PathBuf| match &base {
            Some(base) if d.is_relative() => base.join(d),
            _ => d,
        };
        let file_data_dir = file.data_dir.map(resolve);
        let mut serve = ServeSections {
            http: file.http,
            smtp: file.smtp,
            syslog: file.syslog,
            follow: file
                .follow
                .map(|f| f.paths.into_iter().map(resolve).collect())
                .unwrap_or_default(),
            m365: file.m365,
            gmail: file.gmail,
        };
        let resolve_tls = |t: &mut mailtrail_server::TlsFiles| {
            t.cert = resolve(std::mem::take(&mut t.cert));
            t.key = resolve(std::mem::take(&mut t.key));
        };
        if let Some(tls) = serve.smtp.as_mut().and_then(|s| s.tls.as_mut()) {
            resolve_tls(tls);
        }
        if let Some(tls) = serve.syslog.as_mut().and_then(|s| s.tls_files.as_mut()) {
            resolve_tls(tls);
        }
        if let Some(m365) = serve.m365.as_mut() {
            m365.client_secret_file = m365.client_secret_file.take().map(resolve);
            m365.ca_file = m365.ca_file.take().map(resolve);
        }
        if let Some(gmail) = serve.gmail.as_mut() {
            gmail.service_account_key_file =
                resolve(std::mem::take(&mut gmail.service_account_key_file));
            gmail.ca_file = gmail.ca_file.take().map(resolve);
        }
        let mut directory = file.directory.unwrap_or_default();
        if let Some(base) = &base {
            directory.resolve_paths(base);
        }
        let mut policy = file.policy.unwrap_or_default();
        policy.rules = policy.rules.into_iter().map(resolve).collect();
        let mut notify = file.notify.unwrap_or_default();
        for m in &mut notify.mail {
            m.password_file = m.password_file.take().map(resolve);
            m.ca_file = m.ca_file.take().map(resolve);
        }
        for w in &mut notify.webhook {
            w.secret_file = w.secret_file.take().map(resolve);
            w.ca_file = w.ca_file.take().map(resolve);
        }
        for s in &mut notify.syslog {
            s.ca_file = s.ca_file.take().map(resolve);
        }
        notify
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!(
                    "invalid config file {}",
                    source.as_deref().unwrap_or(Path::new("")).display()
                )
            })?;
        let journal_given = if overrides.journal_addresses.is_empty() {
            file.journal_addresses.unwrap_or_default()
        } else {
            overrides.journal_addresses.clone()
        };
        let mut journal_addresses = Vec::new();
        for a in journal_given
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let Some(normal) = mailtrail_model::normalize_address(a) else {
                bail!("journal address {a:?} is not a mail address (e.g. journal@example.co.jp)");
            };
            journal_addresses.push(normal);
        }
        if let Some(smtp) = serve.smtp.as_mut() {
            smtp.journal_addresses = journal_addresses.clone();
        }
        let data_dir = overrides
            .data_dir
            .clone()
            .or(file_data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let given = overrides.timezone.clone().or(file.timezone);
        let timezone_explicit = given.is_some();
        let tz_name = given.unwrap_or_else(system_timezone);
        let timezone: chrono_tz::Tz = tz_name.parse().map_err(|_| {
            anyhow::anyhow!(
                "unknown time zone {tz_name:?}: use an IANA name such as Asia/Tokyo or UTC"
            )
        })?;
        let org_domains = if overrides.org_domains.is_empty() {
            file.org_domains.unwrap_or_default()
        } else {
            overrides
                .org_domains
                .iter()
                .flat_map(|d| d.split(','))
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect()
        };
        for d in &org_domains {
            if d.contains(char::is_whitespace) || !d.contains('.') {
                bail!("organisation domain {d:?} does not look like a domain (e.g. example.co.jp)");
            }
        }
        Ok(Config {
            data_dir,
            timezone,
            timezone_explicit,
            org_domains,
            journal_addresses,
            serve,
            source,
            policy,
            notify,
            directory,
            risk: file.risk.unwrap_or_default(),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The machine's zone: `TZ`, then /etc/timezone, then the /etc/localtime link, else UTC.
fn system_timezone() -> String {
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim_start_matches(':').trim();
        if !tz.is_empty() && tz.parse::<chrono_tz::Tz>().is_ok() {
            return tz.to_string();
        }
    }
    if let Ok(text) = std::fs::read_to_string("/etc/timezone") {
        let tz = text.trim();
        if tz.parse::<chrono_tz::Tz>().is_ok() {
            return tz.to_string();
        }
    }
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let target = target.to_string_lossy();
        if let Some((_, name)) = target.split_once("zoneinfo/") {
            if name.parse::<chrono_tz::Tz>().is_ok() {
                return name.to_string();
            }
        }
    }
    "UTC".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_missing_file_is_an_error() {
        let err = Config::load(&Overrides {
            config: Some("/nonexistent/mailtrail.toml".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("cannot read the config file"));
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/mt\"\ntimezone = \"Asia/Tokyo\"\norg_domains = [\"example.co.jp\"]\n",
        )
        .unwrap();
        let c = Config::load(&Overrides {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/mt"));
        assert_eq!(c.timezone, chrono_tz::Asia::Tokyo);
        assert_eq!(c.org_domains, vec!["example.co.jp"]);
        let c = Config::load(&Overrides {
            config: Some(path),
            data_dir: Some("/tmp/x".into()),
            org_domains: vec!["a.example,b.example".into()],
            timezone: Some("UTC".into()),
            journal_addresses: Vec::new(),
        })
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.org_domains, vec!["a.example", "b.example"]);
        assert_eq!(c.timezone, chrono_tz::UTC);
    }

    #[test]
    fn a_relative_data_dir_is_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "data_dir = \"store\"\n").unwrap();
        let c = Config::load(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.data_dir, dir.path().join("store"));
    }

    /// The example in the README is a file mailtrail reads as documented.
    #[test]
    fn the_readme_example_is_a_valid_config() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Configuration").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let example = &section[start..start + section[start..].find("```").unwrap()];
        let file: FileConfig = toml::from_str(example).unwrap();
        let smtp = file.smtp.unwrap();
        assert!(smtp.require_tls && smtp.tls.is_some());
        assert_eq!(smtp.users.len(), 1);
        assert_eq!(smtp.idle_timeout, std::time::Duration::from_secs(300));
        assert_eq!(smtp.allowed_networks.len(), 3);
        let syslog = file.syslog.unwrap();
        assert!(syslog.udp.is_some() && syslog.tcp.is_some() && syslog.tls_files.is_some());
        assert_eq!(file.follow.unwrap().paths.len(), 2);
        let m365 = file.m365.unwrap();
        assert_eq!(m365.feeds.len(), 2);
        assert_eq!(m365.overlap, std::time::Duration::from_secs(30 * 60));
        assert_eq!(file.gmail.unwrap().delegated_admin, "admin@example.co.jp");
        assert_eq!(file.journal_addresses.unwrap().len(), 1);
    }

    #[test]
    fn poller_sections_resolve_their_files_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[m365]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"c\"\n\
             client_secret_file = \"secret\"\nfeeds = [\"message_traces\"]\n\
             overlap_minutes = 45\nca_file = \"/etc/ssl/proxy-ca.pem\"\n\
             [gmail]\nservice_account_key_file = \"sa.json\"\ndelegated_admin = \"admin@example.co.jp\"\n",
        )
        .unwrap();
        let c = Config::load(&Overrides {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        let m365 = c.serve.m365.unwrap();
        assert_eq!(m365.client_secret_file, Some(dir.path().join("secret")));
        assert_eq!(m365.ca_file, Some(PathBuf::from("/etc/ssl/proxy-ca.pem")));
        assert_eq!(
            m365.feeds,
            vec![mailtrail_server::poll::M365Feed::MessageTraces]
        );
        assert_eq!(m365.overlap, std::time::Duration::from_secs(45 * 60));
        assert_eq!(m365.graph_url, "https://graph.microsoft.com/beta");
        let gmail = c.serve.gmail.unwrap();
        assert_eq!(gmail.service_account_key_file, dir.path().join("sa.json"));
        std::fs::write(&path, "[m365]\ntenant = \"x\"\n").unwrap();
        let err = Config::load(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("tenant"), "{err:#}");
    }

    #[test]
    fn invalid_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "data_dri = \"/srv/mt\"\n").unwrap();
        let err = Config::load(&Overrides {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("data_dri"), "{err:#}");
        std::fs::write(&path, "timezone = \"Mars/Olympus\"\n").unwrap();
        assert!(Config::load(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .is_err());
    }
}
