//! Synthetic, deterministic mail data for a small (or not so small) Japanese
//! company: a Postfix `maillog` and a Maildir++ mailbox; and, from the same
//! stream of messages, Exchange Server message tracking logs and a Microsoft
//! 365 historical search extended report ([`generate_exchange`], see the
//! "Exchange message tracking logs" section below).
//!
//! Why it is shaped like this:
//!
//! - **One stream of messages feeds both outputs.** Message number `k` is
//!   drawn from its own PRNG seeded by `(seed, k)`, so its sender, recipients,
//!   subject, Message-ID and attachments do not depend on which outputs are
//!   written. When both are written in one run, the Maildir copy of a message
//!   is written at the same moment as its log flow and carries the same
//!   Message-ID, queue id and time, so an import of both merges them.
//! - **Streaming with bounded memory.** Arrival times come from a Poisson
//!   process whose rate follows a business-hours curve in the configured zone;
//!   the log lines of each message (and of its retries, bounces and expiry)
//!   go into a min-heap keyed by time and are written out as soon as no later
//!   message can produce an earlier line. Memory is bounded by the messages in
//!   flight, not by the file size; Maildir files are written one by one.
//! - **No dependencies beyond the cli crate's.** A SplitMix64 PRNG, a CRC-32,
//!   base64, quoted-printable, RFC 2047 / RFC 2231 encoders and a stored-method
//!   zip writer live here. Japanese text is encoded to ISO-2022-JP and
//!   Shift_JIS through a small embedded table (`JIS`) covering exactly the
//!   characters used in this file; it was generated with Python 3's codecs and
//!   the tests compare our encodings with bytes Python produced.
//! - **Realistic on purpose.** Postfix 3.x line shapes as in the corpus
//!   (smtpd / cleanup / qmgr / smtp / lmtp / bounce / anvil / postscreen),
//!   ~3 % deferred-then-sent, ~1 % bounced with the NDR's own flow, ~2 %
//!   NOQUEUE rejects, rare expiries, header_checks warnings with UTF-8
//!   subjects; mail with 社外秘 / 顧客リスト / 見積書, leavers mailing their
//!   private address, PPAP (encrypted zip followed by a password mail), the
//!   same attachment forwarded with identical bytes. Only documentation
//!   address ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
//!   2001:db8::/32) and private ranges appear.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub seed: u64,
    /// e.g. 40 for the demo, 2000 for benchmarks
    pub employees: usize,
    /// e.g. "example.co.jp"
    pub org_domain: String,
    pub start: DateTime<Utc>,
    pub days: u32,
    /// write OUT/maillog with about this many lines (None = none)
    pub postfix_lines: Option<u64>,
    /// write OUT/Maildir with exactly this many messages (None = none)
    pub maildir_messages: Option<u64>,
    /// stamps in the syslog file are local time in this zone (RFC 3164)
    pub timezone: Tz,
}

/// What was generated. `files` lists the top-level outputs (`maillog`,
/// `Maildir`), not every Maildir file.
#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    pub postfix_lines: u64,
    /// Messages queued by Postfix (distinct queue ids with a `qmgr … nrcpt=` line), NDRs included.
    pub postfix_messages: u64,
    pub maildir_messages: u64,
    pub files: Vec<PathBuf>,
}

impl fmt::Display for GenerateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Postfix log lines ({} queued messages), {} Maildir messages",
            self.postfix_lines, self.postfix_messages, self.maildir_messages
        )?;
        for p in &self.files {
            write!(f, "\n  {}", p.display())?;
        }
        Ok(())
    }
}

/// Write `OUT/maillog` and/or `OUT/Maildir` as asked. Refuses to overwrite
/// existing outputs (a Maildir merged with an older one would break the
/// exact count).
/// The generated company's directory, as the HR and IT departments would
/// export it: `employees.csv` (CSV UTF-8, the headers Japanese HR exports
/// use; leavers with their last day two weeks after the mail ends) and
/// `pcs.csv` (each PC, its user and address from the first day). The same
/// seed and size give the people the mail of [`generate`] comes from.
pub fn write_directory(opts: &GenerateOptions, out: &Path) -> Result<Vec<PathBuf>> {
    let org = opts
        .org_domain
        .trim()
        .trim_start_matches('@')
        .to_ascii_lowercase();
    let world = World::new(opts.seed, opts.employees, &org);
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&opts.timezone).date_naive();
    let first_day = local(opts.start);
    let last_day = local(opts.start + chrono::Duration::days(i64::from(opts.days) + 14));
    let mut people = String::from(
        "\u{feff}社員番号,氏名,ローマ字,メールアドレス,部署,在籍区分,入社日,退職日\r\n",
    );
    let mut pcs = String::from("\u{feff}ホスト名,使用者,IPアドレス,利用開始\r\n");
    for (i, e) in world.employees.iter().enumerate() {
        let id = format!("E{:04}", i + 1);
        let romaji = e
            .party
            .addr
            .split('@')
            .next()
            .unwrap_or_default()
            .split('.')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ");
        people.push_str(&format!(
            "{id},{},{romaji},{},本社/{},在籍,2020/04/01,{}\r\n",
            e.party.display,
            e.party.addr,
            DEPTS[e.dept].0,
            if e.leaver {
                last_day.format("%Y/%m/%d").to_string()
            } else {
                String::new()
            }
        ));
        pcs.push_str(&format!(
            "{},{id},{},{}\r\n",
            e.pc,
            e.ip,
            first_day.format("%Y/%m/%d")
        ));
    }
    let mut files = Vec::new();
    for (name, text) in [("employees.csv", people), ("pcs.csv", pcs)] {
        let path = out.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

pub fn generate(opts: &GenerateOptions, out: &Path) -> Result<GenerateSummary> {
    if opts.employees == 0 {
        bail!("employees must be at least 1");
    }
    if opts.days == 0 {
        bail!("days must be at least 1");
    }
    let org = opts
        .org_domain
        .trim()
        .trim_start_matches('@')
        .to_ascii_lowercase();
    if org.is_empty() || org.contains(|c: char| c.is_whitespace() || c == '@' || c == '/') {
        bail!("invalid organisation domain {:?}", opts.org_domain);
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut summary = GenerateSummary::default();

    let world = World::new(opts.seed, opts.employees, &org);
    let start_ms = opts.start.timestamp_millis();
    let end_ms = start_ms + i64::from(opts.days) * DAY_MS;

    let mut log = match opts.postfix_lines {
        Some(target) => {
            let path = out.join("maillog");
            if path.exists() {
                bail!(
                    "{} already exists; remove it or choose another folder",
                    path.display()
                );
            }
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            summary.files.push(path);
            Some(LogOut::new(
                file,
                target,
                opts.timezone,
                opts.seed,
                end_ms,
                &org,
            ))
        }
        None => None,
    };
    let mut maildir = match opts.maildir_messages {
        Some(target) => {
            let root = out.join("Maildir");
            if root.exists() {
                bail!(
                    "{} already exists; remove it or choose another folder",
                    root.display()
                );
            }
            let md = MaildirOut::create(&root, target, opts.seed, start_ms, end_ms)?;
            summary.files.push(root);
            Some(md)
        }
        None => None,
    };

    let initial_estimate = match (&log, &maildir) {
        (Some(l), _) => l.target as f64 / INITIAL_LINES_PER_MESSAGE,
        (None, Some(m)) => m.target as f64,
        (None, None) => 0.0,
    };
    let mut clock = Clock::new(
        start_ms,
        opts.days,
        opts.timezone,
        initial_estimate,
        opts.seed,
    );
    let mut universe = Universe::new(opts.seed);
    let mut select = Rng::new(mix(opts.seed, 0x005e_1ec7));
    let mut qids = QidAlloc::new(opts.seed);
    let mut k: u64 = 0;

    loop {
        let log_active = log.as_ref().is_some_and(|l| l.pushed < l.target);
        let md_active = maildir.as_ref().is_some_and(|m| m.written < m.target);
        if !log_active && !md_active {
            break;
        }
        let log_remaining = log.as_ref().map_or(0.0, |l| l.remaining_messages());
        let md_remaining = maildir
            .as_ref()
            .map_or(0.0, |m| (m.target - m.written) as f64);
        let remaining = if log_active {
            log_remaining
        } else {
            md_remaining
        };
        let t = clock.next_arrival(remaining);
        let (local_hour, weekend) = clock.local_hour(t);
        let mail = universe.next(&world, k, t, local_hour, weekend);
        k += 1;
        let qid = qids.next(t);

        let mut size = None;
        if md_active {
            let take = !log_active || select.chance(md_remaining / log_remaining.max(1.0));
            if let Some(md) = maildir.as_mut().filter(|_| take) {
                size = Some(md.write(&world, &mail, &qid)?);
            }
        }
        if log_active {
            if let Some(l) = log.as_mut() {
                let size = size.unwrap_or_else(|| estimate_size(&mail));
                l.flush_until(t)?;
                l.noise(&world, t)?;
                l.mail(&world, &mail, &qid, size, &mut qids);
            }
        }
    }
    if let Some(l) = log.take() {
        let (lines, messages) = l.finish()?;
        summary.postfix_lines = lines;
        summary.postfix_messages = messages;
    }
    if let Some(m) = maildir.take() {
        summary.maildir_messages = m.written;
    }
    Ok(summary)
}

const SEC_MS: i64 = 1000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Measured average of log lines per queued message (noise included); only a
/// starting point, the running average takes over.
const INITIAL_LINES_PER_MESSAGE: f64 = 9.0;
/// Postfix's default maximal_queue_lifetime.
const QUEUE_LIFETIME_MS: i64 = 5 * DAY_MS;
/// Share of arrivals that come in a burst right after the previous one.
const BURST: f64 = 0.3;

// ---------------------------------------------------------------------------
// PRNG

/// SplitMix64: tiny, fast, good enough statistically, and fully portable.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when n == 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.index(xs.len())]
    }
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len().saturating_sub(1)
    }
    fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        out.reserve(n);
        let mut left = n;
        while left >= 8 {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
            left -= 8;
        }
        let last = self.next_u64().to_le_bytes();
        out.extend_from_slice(&last[..left]);
    }
    fn alnum(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }
}

fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

const HEX_UP: &[u8] = b"0123456789ABCDEF";
const HEX_LO: &[u8] = b"0123456789abcdef";
const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// ---------------------------------------------------------------------------
// Static vocabulary

/// (name, slug used for list addresses, weight)
const DEPTS: &[(&str, &str, u32)] = &[
    ("営業部", "eigyo", 30),
    ("開発部", "kaihatsu", 24),
    ("経理部", "keiri", 7),
    ("人事部", "jinji", 6),
    ("総務部", "somu", 6),
    ("企画部", "kikaku", 7),
    ("購買部", "kobai", 6),
    ("情報システム部", "joho", 5),
    ("法務部", "homu", 3),
    ("海外事業部", "kaigai", 6),
];

const ORG_NAME_JA: &str = "株式会社みらいテクノロジー";
const ORG_NAME_EN: &str = "Mirai Technology Co., Ltd.";

const FAMILY: &[(&str, &str)] = &[
    ("佐藤", "sato"),
    ("鈴木", "suzuki"),
    ("高橋", "takahashi"),
    ("田中", "tanaka"),
    ("伊藤", "ito"),
    ("渡辺", "watanabe"),
    ("山本", "yamamoto"),
    ("中村", "nakamura"),
    ("小林", "kobayashi"),
    ("加藤", "kato"),
    ("吉田", "yoshida"),
    ("山田", "yamada"),
    ("佐々木", "sasaki"),
    ("山口", "yamaguchi"),
    ("松本", "matsumoto"),
    ("井上", "inoue"),
    ("木村", "kimura"),
    ("林", "hayashi"),
    ("斎藤", "saito"),
    ("清水", "shimizu"),
    ("山崎", "yamazaki"),
    ("森", "mori"),
    ("池田", "ikeda"),
    ("橋本", "hashimoto"),
    ("阿部", "abe"),
    ("石川", "ishikawa"),
    ("山下", "yamashita"),
    ("中島", "nakajima"),
    ("石井", "ishii"),
    ("小川", "ogawa"),
    ("前田", "maeda"),
    ("岡田", "okada"),
    ("長谷川", "hasegawa"),
    ("藤田", "fujita"),
    ("後藤", "goto"),
    ("近藤", "kondo"),
    ("村上", "murakami"),
    ("遠藤", "endo"),
    ("青木", "aoki"),
    ("坂本", "sakamoto"),
    ("福田", "fukuda"),
    ("太田", "ota"),
    ("西村", "nishimura"),
    ("藤井", "fujii"),
    ("岡本", "okamoto"),
    ("松田", "matsuda"),
    ("中川", "nakagawa"),
    ("原田", "harada"),
    ("小野", "ono"),
    ("竹内", "takeuchi"),
    ("金子", "kaneko"),
    ("和田", "wada"),
    ("中野", "nakano"),
    ("田村", "tamura"),
    ("上田", "ueda"),
    ("森田", "morita"),
];

const GIVEN: &[(&str, &str)] = &[
    ("太郎", "taro"),
    ("一郎", "ichiro"),
    ("健", "ken"),
    ("翔太", "shota"),
    ("大輔", "daisuke"),
    ("誠", "makoto"),
    ("拓也", "takuya"),
    ("直樹", "naoki"),
    ("健一", "kenichi"),
    ("浩", "hiroshi"),
    ("隆", "takashi"),
    ("亮", "ryo"),
    ("蓮", "ren"),
    ("悠真", "yuma"),
    ("和也", "kazuya"),
    ("達也", "tatsuya"),
    ("修", "osamu"),
    ("学", "manabu"),
    ("剛", "tsuyoshi"),
    ("聡", "satoshi"),
    ("花子", "hanako"),
    ("陽子", "yoko"),
    ("美咲", "misaki"),
    ("愛", "ai"),
    ("裕子", "yuko"),
    ("恵", "megumi"),
    ("直美", "naomi"),
    ("由美", "yumi"),
    ("真由美", "mayumi"),
    ("彩", "aya"),
    ("さくら", "sakura"),
    ("結衣", "yui"),
    ("葵", "aoi"),
    ("明美", "akemi"),
    ("久美子", "kumiko"),
    ("智子", "tomoko"),
];

const EN_FIRST: &[&str] = &[
    "John", "Emily", "Michael", "Sarah", "David", "Jessica", "Daniel", "Laura", "James", "Olivia",
    "Kevin", "Anna", "Raj", "Wei", "Maria", "Thomas",
];
const EN_LAST: &[&str] = &[
    "Smith", "Johnson", "Brown", "Davis", "Wilson", "Taylor", "Clark", "Lewis", "Walker", "Hall",
    "Lee", "Mueller", "Patel", "Zhang", "Garcia", "Martin",
];

struct PartnerDef {
    domain: &'static str,
    ja: &'static str,
    en: &'static str,
    japanese: bool,
    /// hosted on Microsoft 365 (relay name differs)
    m365: bool,
}

const PARTNERS: &[PartnerDef] = &[
    PartnerDef {
        domain: "tokyo-shoji.co.jp",
        ja: "東京商事株式会社",
        en: "Tokyo Shoji Co., Ltd.",
        japanese: true,
        m365: false,
    },
    PartnerDef {
        domain: "osaka-seiki.co.jp",
        ja: "大阪精機株式会社",
        en: "Osaka Seiki Co., Ltd.",
        japanese: true,
        m365: true,
    },
    PartnerDef {
        domain: "nagoya-buhin.co.jp",
        ja: "名古屋部品工業株式会社",
        en: "Nagoya Buhin Kogyo",
        japanese: true,
        m365: false,
    },
    PartnerDef {
        domain: "yokohama-logi.co.jp",
        ja: "横浜ロジスティクス株式会社",
        en: "Yokohama Logistics",
        japanese: true,
        m365: true,
    },
    PartnerDef {
        domain: "kyoto-soft.co.jp",
        ja: "京都ソフトウェア株式会社",
        en: "Kyoto Software Inc.",
        japanese: true,
        m365: false,
    },
    PartnerDef {
        domain: "sapporo-foods.co.jp",
        ja: "札幌フーズ株式会社",
        en: "Sapporo Foods",
        japanese: true,
        m365: false,
    },
    PartnerDef {
        domain: "fukuoka-kensetsu.co.jp",
        ja: "福岡建設株式会社",
        en: "Fukuoka Kensetsu",
        japanese: true,
        m365: true,
    },
    PartnerDef {
        domain: "mirai-consulting.jp",
        ja: "株式会社ミライコンサルティング",
        en: "Mirai Consulting",
        japanese: true,
        m365: false,
    },
    PartnerDef {
        domain: "sakura-insatsu.co.jp",
        ja: "さくら印刷株式会社",
        en: "Sakura Printing",
        japanese: true,
        m365: false,
    },
    PartnerDef {
        domain: "hikari-denki.co.jp",
        ja: "光電機株式会社",
        en: "Hikari Electric",
        japanese: true,
        m365: true,
    },
    PartnerDef {
        domain: "acme-corp.com",
        ja: "アクメ社",
        en: "Acme Corporation",
        japanese: false,
        m365: true,
    },
    PartnerDef {
        domain: "globex-intl.com",
        ja: "グローベックス社",
        en: "Globex International",
        japanese: false,
        m365: false,
    },
    PartnerDef {
        domain: "northwind-traders.com",
        ja: "ノースウィンド社",
        en: "Northwind Traders",
        japanese: false,
        m365: true,
    },
    PartnerDef {
        domain: "pacific-rim-partners.com",
        ja: "パシフィック社",
        en: "Pacific Rim Partners",
        japanese: false,
        m365: false,
    },
    PartnerDef {
        domain: "bluewave-systems.com",
        ja: "ブルーウェーブ社",
        en: "BlueWave Systems",
        japanese: false,
        m365: false,
    },
];

/// (domain, relay host, relay ip, inbound client host, inbound client ip)
const FREEMAIL: &[(&str, &str, &str, &str, &str)] = &[
    (
        "gmail.com",
        "gmail-smtp-in.l.google.com",
        "2001:db8:4860:4864::1b",
        "mail-sor-f41.google.com",
        "2001:db8:4860:4864::29",
    ),
    (
        "yahoo.co.jp",
        "mx.mail.yahoo.co.jp",
        "198.51.100.88",
        "mo-csw.securemx.jp",
        "198.51.100.89",
    ),
    (
        "outlook.jp",
        "outlook-jp.olc.protection.outlook.com",
        "198.51.100.99",
        "mail-tycjpn01olkn2010.outbound.protection.outlook.com",
        "198.51.100.100",
    ),
    (
        "docomo.ne.jp",
        "mfsmax.docomo.ne.jp",
        "198.51.100.120",
        "mfsmax.docomo.ne.jp",
        "198.51.100.121",
    ),
    (
        "ezweb.ne.jp",
        "lsean.ezweb.ne.jp",
        "198.51.100.130",
        "dmail.ezweb.ne.jp",
        "198.51.100.131",
    ),
    (
        "icloud.com",
        "mx01.mail.icloud.com",
        "198.51.100.140",
        "st43p00im-ztfb10073301.me.com",
        "198.51.100.141",
    ),
];

struct Newsletter {
    from: &'static str,
    display: &'static str,
    list_id: &'static str,
    ja: bool,
    /// a mailing list (List-Id, VERP-style bounces) rather than a marketing mail
    ml: bool,
}

const NEWSLETTERS: &[Newsletter] = &[
    Newsletter {
        from: "news@it-trend-news.jp",
        display: "ITトレンドニュース",
        list_id: "it-trend-news.jp",
        ja: true,
        ml: false,
    },
    Newsletter {
        from: "info@keiri-seminar.jp",
        display: "経理セミナー事務局",
        list_id: "keiri-seminar.jp",
        ja: true,
        ml: false,
    },
    Newsletter {
        from: "members@ml.jisa-kenkyukai.or.jp",
        display: "情報セキュリティ研究会",
        list_id: "members.ml.jisa-kenkyukai.or.jp",
        ja: true,
        ml: true,
    },
    Newsletter {
        from: "newsletter@techweekly.com",
        display: "TechWeekly",
        list_id: "techweekly.com",
        ja: false,
        ml: false,
    },
    Newsletter {
        from: "announce@lists.oss-users.org",
        display: "OSS Users Announce",
        list_id: "announce.lists.oss-users.org",
        ja: false,
        ml: true,
    },
    Newsletter {
        from: "no-reply@cloud-status.net",
        display: "Cloud Status",
        list_id: "cloud-status.net",
        ja: false,
        ml: false,
    },
];

const JA_SUBJECTS: &[&str] = &[
    "見積書の件",
    "【社外秘】新製品の価格表",
    "会議のご案内",
    "議事録の送付",
    "請求書送付のご案内",
    "顧客リストの更新について",
    "機密：事業計画書",
    "打ち合わせ日程のご相談",
    "発注書の送付",
    "納期についてのご確認",
    "契約書のご確認のお願い",
    "来週の定例会議について",
    "出張報告書",
    "経費精算のお願い",
    "人事異動のお知らせ",
    "新規案件のご相談",
    "お打ち合わせのお礼",
    "資料送付のご連絡",
    "社外秘 営業戦略資料",
    "四半期売上報告",
    "採用面接の日程調整",
    "製品カタログ送付の件",
    "請求書の再発行について",
    "見積依頼",
    "議事録（第3回プロジェクト会議）",
    "展示会のご案内",
    "在庫状況のご報告",
    "仕様変更のお知らせ",
    "取引条件のご相談",
    "顧客リスト（最新版）",
    "個人情報の取り扱いについて",
];

/// The second half of PPAP.
const JA_PASSWORD_SUBJECT: &str = "パスワードのお知らせ";

const JA_NEWS_SUBJECTS: &[&str] = &[
    "【ITニュース】週刊ダイジェスト",
    "セミナー開催のお知らせ",
    "年末年始休業のお知らせ",
    "システムメンテナンスのお知らせ",
    "【研究会】次回勉強会のご案内",
];

const EN_SUBJECTS: &[&str] = &[
    "Quotation for your order",
    "Meeting minutes",
    "Confidential: pricing proposal",
    "Project schedule",
    "Purchase order",
    "Shipping update",
    "Weekly report",
    "Contract renewal",
    "Customer list update",
    "Board meeting agenda",
    "Invoice for services",
    "Invoice attached",
    "Confidential - do not forward",
    "Lunch on Friday?",
    "Draft specification for review",
];

const EN_NEWS_SUBJECTS: &[&str] = &[
    "TechWeekly: ten trends in cloud security",
    "Scheduled maintenance notice",
    "[announce] Release 4.2 is out",
    "Your monthly usage summary",
    "Webinar invitation: zero trust in practice",
];

const JA_BODY: &[&str] = &[
    "標記の件、資料を添付いたしますのでご確認ください。",
    "先日はお忙しい中、お時間をいただきありがとうございました。",
    "見積書を送付いたします。",
    "ご不明な点がございましたら、お気軽にお問い合わせください。",
    "先日の会議の議事録を共有します。",
    "本資料は社外秘のため、取り扱いにご注意ください。",
    "請求書を添付いたしますので、期日までにお支払いをお願いいたします。",
    "顧客リストを更新しましたので、ご確認をお願いします。",
    "納期については、改めてご連絡いたします。",
    "日程のご都合をお知らせいただけますでしょうか。",
    "機密情報を含みますので、転送はお控えください。",
    "来週の会議室は第二会議室を予約しました。",
    "仕様の変更点を下記にまとめました。",
    "在庫の状況について確認させてください。",
    "契約書の内容について、法務部の確認が完了しました。",
];

const EN_BODY: &[&str] = &[
    "Please find the attached document for your review.",
    "Thank you for your time at the meeting yesterday.",
    "Attached is our quotation as discussed.",
    "Let me know if you have any questions.",
    "Sharing the minutes of last week's meeting.",
    "This document is confidential; please do not forward it outside the company.",
    "Please find our invoice attached; payment is due by the end of the month.",
    "I have updated the customer list, please check it.",
    "We will confirm the delivery date shortly.",
    "Could you let me know your availability next week?",
    "The specification changes are summarised below.",
];

/// Warned by the (imaginary) header_checks: `/^Subject:.*(見積|社外秘|…)/ WARN`.
const WARN_WORDS: &[&str] = &[
    "見積書",
    "社外秘",
    "機密",
    "顧客リスト",
    "個人情報",
    "Confidential",
];

/// Attachment names by kind: (Japanese names, English names).
const PDF_NAMES: (&[&str], &[&str]) = (
    &[
        "見積書.pdf",
        "請求書.pdf",
        "議事録.pdf",
        "契約書（案）.pdf",
        "会社案内.pdf",
        "発注書.pdf",
    ],
    &[
        "Invoice_2026.pdf",
        "Quotation.pdf",
        "Minutes.pdf",
        "Proposal.pdf",
        "Contract_draft.pdf",
    ],
);
const XLSX_NAMES: (&[&str], &[&str]) = (
    &[
        "顧客リスト.xlsx",
        "売上集計.xlsx",
        "見積明細.xlsx",
        "社員名簿.xlsx",
        "予算計画.xlsx",
    ],
    &[
        "customer_list.xlsx",
        "sales_report.xlsx",
        "forecast_Q3.xlsx",
    ],
);
const DOCX_NAMES: (&[&str], &[&str]) = (
    &["議事録.docx", "企画書.docx", "仕様書.docx"],
    &["Meeting_minutes.docx", "Specification.docx"],
);
const ZIP_NAMES: (&[&str], &[&str]) = (
    &["資料一式.zip", "見積書.zip", "顧客データ.zip"],
    &["documents.zip", "project_files.zip"],
);

// ---------------------------------------------------------------------------
// The company and its counterparts

#[derive(Clone)]
struct Party {
    addr: String,
    /// UTF-8 display name ("" for none)
    display: String,
    /// family name for salutations (Japanese) or first name (English)
    call: String,
    /// company / organisation for signatures
    company: String,
}

struct Employee {
    party: Party,
    dept: usize,
    leaver: bool,
    private: Option<Party>,
    pc: String,
    ip: String,
}

struct Partner {
    def: &'static PartnerDef,
    contacts: Vec<Party>,
    relay: (String, String),
    client: (String, String),
}

struct World {
    org: String,
    employees: Vec<Employee>,
    /// cumulative activity weights for picking a sender
    activity: Vec<u64>,
    depts: Vec<Vec<usize>>,
    partners: Vec<Partner>,
    freemail_people: Vec<Party>,
}

fn ja_name(r: &mut Rng) -> (usize, usize) {
    (r.index(FAMILY.len()), r.index(GIVEN.len()))
}

impl World {
    fn new(seed: u64, n: usize, org: &str) -> World {
        let mut r = Rng::new(mix(seed, 0x0123_4567));
        let mut taken: HashSet<String> = HashSet::new();
        let mut unique = |local: String| -> String {
            let mut candidate = local.clone();
            let mut i = 2;
            while !taken.insert(candidate.clone()) {
                candidate = format!("{local}{i}");
                i += 1;
            }
            candidate
        };
        let dept_weights: Vec<u32> = DEPTS.iter().map(|d| d.2).collect();
        let mut employees = Vec::with_capacity(n);
        let mut activity = Vec::with_capacity(n);
        let mut depts = vec![Vec::new(); DEPTS.len()];
        let mut cumulative = 0u64;
        let forced_leaver = if n >= 5 { Some(n / 2) } else { None };
        for i in 0..n {
            let dept = if i < DEPTS.len() && n >= DEPTS.len() * 2 {
                i
            } else {
                r.weighted(&dept_weights)
            };
            let english = r.chance(0.1);
            let (local, display, call, private_local) = if english {
                let first = *r.pick(EN_FIRST);
                let last = *r.pick(EN_LAST);
                let local = format!(
                    "{}.{}",
                    first.to_ascii_lowercase(),
                    last.to_ascii_lowercase()
                );
                let private = format!(
                    "{}{}{}",
                    first.to_ascii_lowercase(),
                    last.to_ascii_lowercase(),
                    r.range(1, 99)
                );
                (local, format!("{first} {last}"), first.to_string(), private)
            } else {
                let (f, g) = ja_name(&mut r);
                let local = format!("{}.{}", GIVEN[g].1, FAMILY[f].1);
                let private = match r.below(3) {
                    0 => format!("{}.{}{}", GIVEN[g].1, FAMILY[f].1, r.range(1970, 2002)),
                    1 => format!("{}_{}{}", FAMILY[f].1, GIVEN[g].1, r.range(1, 99)),
                    _ => format!("{}{}.{}", &GIVEN[g].1[..1], FAMILY[f].1, r.range(10, 99)),
                };
                (
                    local,
                    format!("{} {}", FAMILY[f].0, GIVEN[g].0),
                    FAMILY[f].0.to_string(),
                    private,
                )
            };
            let local = unique(local);
            let leaver = forced_leaver == Some(i) || r.chance(0.03);
            let private = leaver.then(|| {
                let domain = if r.chance(0.7) {
                    "gmail.com"
                } else {
                    "yahoo.co.jp"
                };
                Party {
                    addr: format!("{private_local}@{domain}"),
                    display: display.clone(),
                    call: call.clone(),
                    company: String::new(),
                }
            });
            let mut weight = r.range(1, 4) * r.range(1, 4);
            if leaver {
                weight *= 2;
            }
            cumulative += weight;
            activity.push(cumulative);
            depts[dept].push(i);
            employees.push(Employee {
                party: Party {
                    addr: format!("{local}@{org}"),
                    display,
                    call,
                    company: ORG_NAME_JA.to_string(),
                },
                dept,
                leaver,
                private,
                pc: format!("PC-{:04}", i + 1),
                ip: format!("10.1.{}.{}", i / 200, i % 200 + 20),
            });
        }
        let partners = PARTNERS
            .iter()
            .enumerate()
            .map(|(i, def)| {
                let count = r.range(3, 8);
                let contacts = (0..count)
                    .map(|_| {
                        if def.japanese {
                            let (f, g) = ja_name(&mut r);
                            let local = match r.below(3) {
                                0 => format!("{}-{}", FAMILY[f].1, &GIVEN[g].1[..1]),
                                1 => format!("{}.{}", GIVEN[g].1, FAMILY[f].1),
                                _ => format!("{}{}", &GIVEN[g].1[..1], FAMILY[f].1),
                            };
                            Party {
                                addr: format!("{local}@{}", def.domain),
                                display: format!("{} {}", FAMILY[f].0, GIVEN[g].0),
                                call: FAMILY[f].0.to_string(),
                                company: def.ja.to_string(),
                            }
                        } else {
                            let first = *r.pick(EN_FIRST);
                            let last = *r.pick(EN_LAST);
                            Party {
                                addr: format!(
                                    "{}.{}@{}",
                                    first.to_ascii_lowercase(),
                                    last.to_ascii_lowercase(),
                                    def.domain
                                ),
                                display: format!("{first} {last}"),
                                call: first.to_string(),
                                company: def.en.to_string(),
                            }
                        }
                    })
                    .collect();
                let relay = if def.m365 {
                    (
                        format!(
                            "{}.mail.protection.outlook.com",
                            def.domain.replace('.', "-")
                        ),
                        format!("198.51.100.{}", 10 + i),
                    )
                } else {
                    (
                        format!("mx.{}", def.domain),
                        format!("203.0.113.{}", 20 + i),
                    )
                };
                let client = if def.m365 {
                    (
                        format!(
                            "mail-os0jpn01on20{}.outbound.protection.outlook.com",
                            60 + i
                        ),
                        format!("2001:db8:a01:{:x}::6{}", 0x10 + i, i),
                    )
                } else {
                    (
                        format!("mail.{}", def.domain),
                        format!("203.0.113.{}", 120 + i),
                    )
                };
                Partner {
                    def,
                    contacts,
                    relay,
                    client,
                }
            })
            .collect();
        let freemail_people = (0..40)
            .map(|_| {
                let domain = FREEMAIL[r.index(FREEMAIL.len())].0;
                let (f, g) = ja_name(&mut r);
                let local = match r.below(3) {
                    0 => format!("{}.{}{}", GIVEN[g].1, FAMILY[f].1, r.range(1, 99)),
                    1 => format!(
                        "{}-{}{}",
                        &GIVEN[g].1[..1],
                        FAMILY[f].1,
                        r.range(1970, 2005)
                    ),
                    _ => format!("{}{}_{}", FAMILY[f].1, GIVEN[g].1, r.range(1, 999)),
                };
                Party {
                    addr: format!("{local}@{domain}"),
                    display: if r.chance(0.6) {
                        format!("{} {}", FAMILY[f].0, GIVEN[g].0)
                    } else {
                        String::new()
                    },
                    call: FAMILY[f].0.to_string(),
                    company: String::new(),
                }
            })
            .collect();
        World {
            org: org.to_string(),
            employees,
            activity,
            depts,
            partners,
            freemail_people,
        }
    }

    fn pick_employee(&self, r: &mut Rng) -> usize {
        let total = self.activity.last().copied().unwrap_or(1);
        let x = r.below(total);
        self.activity
            .partition_point(|&c| c <= x)
            .min(self.employees.len() - 1)
    }

    fn colleague(&self, of: usize, r: &mut Rng) -> usize {
        let team = &self.depts[self.employees[of].dept];
        if team.len() > 1 && r.chance(0.7) {
            for _ in 0..4 {
                let c = *r.pick(team);
                if c != of {
                    return c;
                }
            }
        }
        let c = r.index(self.employees.len());
        if c == of && self.employees.len() > 1 {
            (c + 1) % self.employees.len()
        } else {
            c
        }
    }

    fn is_org(&self, addr: &str) -> bool {
        addr.rsplit_once('@').is_some_and(|(_, d)| d == self.org)
    }

    /// Outbound relay (host, ip) for a recipient domain.
    fn relay_for(&self, domain: &str) -> (String, String) {
        if let Some(p) = self.partners.iter().find(|p| p.def.domain == domain) {
            return p.relay.clone();
        }
        if let Some(f) = FREEMAIL.iter().find(|f| f.0 == domain) {
            return (f.1.to_string(), f.2.to_string());
        }
        let h = mix(
            0x7e1a,
            domain
                .bytes()
                .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b))),
        );
        (
            format!("mx.{domain}"),
            format!("203.0.113.{}", 200 + h % 50),
        )
    }

    /// Inbound client (host, ip, helo) for a sender domain.
    fn client_for(&self, domain: &str) -> (String, String, String) {
        if let Some(p) = self.partners.iter().find(|p| p.def.domain == domain) {
            return (p.client.0.clone(), p.client.1.clone(), p.client.0.clone());
        }
        if let Some(f) = FREEMAIL.iter().find(|f| f.0 == domain) {
            return (f.3.to_string(), f.4.to_string(), f.3.to_string());
        }
        let h = mix(
            0xc11e,
            domain
                .bytes()
                .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b))),
        );
        let host = format!("mta{}.{domain}", h % 9 + 1);
        (host.clone(), format!("192.0.2.{}", 20 + h % 200), host)
    }
}

// ---------------------------------------------------------------------------
// Messages

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Inbound,
    Outbound,
    Internal,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Charset {
    Ascii,
    Iso2022Jp,
    Utf8,
    ShiftJis,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AttKind {
    Pdf,
    Xlsx,
    Docx,
    Zip,
}

#[derive(Clone)]
struct AttSpec {
    kind: AttKind,
    name: String,
    size: usize,
    seed: u64,
    encrypted: bool,
    inner: Vec<String>,
}

struct Mail {
    k: u64,
    dir: Dir,
    time_ms: i64,
    from: Party,
    env_from: String,
    to: Vec<Party>,
    cc: Vec<Party>,
    bcc: Vec<Party>,
    /// internal list address in To and its members (virtual alias expansion)
    list: Option<(String, Vec<String>)>,
    sender_emp: Option<usize>,
    charset: Charset,
    subject_prefix: &'static str,
    subject: String,
    body: Vec<String>,
    html: bool,
    attachments: Vec<AttSpec>,
    message_id: String,
    in_reply_to: Option<String>,
    newsletter: Option<&'static Newsletter>,
    /// 8bit / base64 choice for UTF-8 and Shift_JIS bodies
    base64_body: bool,
    mailer: &'static str,
}

impl Mail {
    /// Envelope recipients: (address, orig_to when expanded from a list).
    fn envelope(&self) -> Vec<(String, Option<String>)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for p in self.to.iter().chain(&self.cc).chain(&self.bcc) {
            match &self.list {
                Some((list, members)) if *list == p.addr => {
                    for m in members {
                        if seen.insert(m.clone()) {
                            out.push((m.clone(), Some(list.clone())));
                        }
                    }
                }
                _ => {
                    if seen.insert(p.addr.clone()) {
                        out.push((p.addr.clone(), None));
                    }
                }
            }
        }
        out
    }

    fn full_subject(&self) -> String {
        format!("{}{}", self.subject_prefix, self.subject)
    }
}

struct Universe {
    seed: u64,
    /// recent attachments that may be forwarded with identical bytes
    recent: Vec<AttSpec>,
    /// PPAP: the password mail that follows an encrypted zip
    pending_password: Option<(usize, Vec<Party>, bool, String)>,
}

impl Universe {
    fn new(seed: u64) -> Self {
        Universe {
            seed,
            recent: Vec::new(),
            pending_password: None,
        }
    }

    fn next(&mut self, w: &World, k: u64, t: i64, local_hour: u32, weekend: bool) -> Mail {
        let mut r = Rng::new(mix(self.seed, k.wrapping_add(1)));
        if let Some((sender, to, ja, original)) = self.pending_password.take() {
            return password_mail(w, &mut r, k, t, sender, to, ja, &original);
        }
        let quiet = !(7..21).contains(&local_hour) || weekend;
        // inbound partner, newsletter, inbound free-mail, outbound partner, outbound free-mail, internal
        let weights: [u32; 6] = if quiet {
            [10, 55, 8, 10, 6, 11]
        } else {
            [30, 12, 4, 25, 3, 26]
        };
        let kind = r.weighted(&weights);
        let mut m = match kind {
            0 | 3 => partner_mail(w, &mut r, k, t, kind == 0),
            1 => newsletter_mail(w, &mut r, k, t),
            2 => freemail_in(w, &mut r, k, t),
            4 => freemail_out(w, &mut r, k, t),
            _ => internal_mail(w, &mut r, k, t),
        };
        // attachments (a leaver's mail home may already carry one)
        if m.newsletter.is_none() && m.attachments.is_empty() && r.chance(0.22) {
            if !self.recent.is_empty() && r.chance(0.25) {
                let spec = self.recent[r.index(self.recent.len())].clone();
                m.subject_prefix = if m.charset == Charset::Ascii {
                    "Fwd: "
                } else {
                    "FW: "
                };
                m.in_reply_to = None;
                m.attachments.push(spec);
            } else {
                let ja = m.charset != Charset::Ascii;
                let spec = new_attachment(&mut r, ja, &m.subject);
                m.attachments.push(spec);
                if r.chance(0.08) {
                    let spec = new_attachment(&mut r, ja, &m.subject);
                    m.attachments.push(spec);
                }
            }
        }
        for a in &m.attachments {
            if self.recent.len() >= 16 {
                self.recent.remove(0);
            }
            self.recent.push(a.clone());
        }
        if let (Some(sender), Some(a)) = (m.sender_emp, m.attachments.iter().find(|a| a.encrypted))
        {
            let mut to = m.to.clone();
            to.extend(m.cc.iter().cloned());
            self.pending_password = Some((sender, to, m.charset != Charset::Ascii, a.name.clone()));
        }
        m
    }
}

fn message_id(r: &mut Rng, k: u64, t: i64, domain: &str, style: u64) -> String {
    let h = r.next_u64() ^ k;
    match style % 4 {
        0 => format!(
            "{}-{}-{}-{}-{}@{domain}",
            r.alnum(8, HEX_LO),
            r.alnum(4, HEX_LO),
            r.alnum(4, HEX_LO),
            r.alnum(4, HEX_LO),
            r.alnum(12, HEX_LO)
        ),
        1 => format!(
            "000001{:02x}{:08x}${:08x}${:08x}@{domain}",
            k % 256,
            h as u32,
            (h >> 32) as u32,
            t as u32
        ),
        2 => {
            let d = jst(t);
            format!("{}.{:016X}@{domain}", d.format("%Y%m%d%H%M%S"), h)
        }
        _ => format!("CA{}{:x}@mail.gmail.com", r.alnum(30, B62), h & 0xffff),
    }
}

fn ja_lang(r: &mut Rng) -> Charset {
    match r.weighted(&[55, 30, 15]) {
        0 => Charset::Iso2022Jp,
        1 => Charset::Utf8,
        _ => Charset::ShiftJis,
    }
}

/// "Re: " from most clients, "RE: " from Outlook (common in Japanese offices).
fn reply_prefix(r: &mut Rng, ja: bool) -> &'static str {
    match r.weighted(&[70, 15, 12]) {
        0 => "",
        1 if ja => "RE: ",
        _ => "Re: ",
    }
}

struct MailDraft<'a> {
    dir: Dir,
    from: Party,
    sender_emp: Option<usize>,
    to: Vec<Party>,
    cc: Vec<Party>,
    bcc: Vec<Party>,
    ja: bool,
    salutation: &'a str,
}

fn assemble(r: &mut Rng, k: u64, t: i64, d: MailDraft<'_>) -> Mail {
    let charset = if d.ja { ja_lang(r) } else { Charset::Ascii };
    let subject = if d.ja {
        r.pick(JA_SUBJECTS).to_string()
    } else {
        r.pick(EN_SUBJECTS).to_string()
    };
    let subject_prefix = reply_prefix(r, d.ja);
    let from_domain = d
        .from
        .addr
        .rsplit_once('@')
        .map_or("localhost", |x| x.1)
        .to_string();
    let style = if from_domain == "gmail.com" {
        3
    } else if d.dir == Dir::Inbound {
        2
    } else {
        r.below(2)
    };
    let mid = message_id(r, k, t, &from_domain, style);
    let in_reply_to = (!subject_prefix.is_empty()).then(|| {
        let other = d.to.first().map_or(from_domain.clone(), |p| {
            p.addr
                .rsplit_once('@')
                .map_or(String::new(), |x| x.1.to_string())
        });
        message_id(r, k ^ 0xffff, t - 86_400_000, &other, 2)
    });
    let body = compose_body(r, &d, &subject);
    let html = r.chance(if d.dir == Dir::Inbound { 0.4 } else { 0.25 });
    let mailer = *r.pick(&[
        "Microsoft Outlook 16.0",
        "Mozilla Thunderbird",
        "Becky! ver. 2.81.04",
        "",
        "Microsoft Outlook 16.0",
    ]);
    Mail {
        k,
        dir: d.dir,
        time_ms: t,
        env_from: d.from.addr.clone(),
        from: d.from,
        to: d.to,
        cc: d.cc,
        bcc: d.bcc,
        list: None,
        sender_emp: d.sender_emp,
        charset,
        subject_prefix,
        subject,
        body,
        html,
        attachments: Vec::new(),
        message_id: mid,
        in_reply_to,
        newsletter: None,
        base64_body: r.chance(0.5),
        mailer,
    }
}

fn compose_body(r: &mut Rng, d: &MailDraft<'_>, subject: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let to = d.to.first();
    if d.ja {
        match d.dir {
            Dir::Internal => {
                if let Some(p) = to {
                    lines.push(format!("{}さん", p.call));
                }
                lines.push(String::new());
                let dept = d.sender_emp.map_or("", |_| d.salutation);
                lines.push(format!("お疲れ様です。{}の{}です。", dept, d.from.call));
            }
            _ => {
                if let Some(p) = to {
                    if !p.company.is_empty() {
                        lines.push(p.company.clone());
                    }
                    lines.push(format!("{}様", p.call));
                }
                lines.push(String::new());
                lines.push("いつもお世話になっております。".to_string());
                if !d.from.company.is_empty() {
                    lines.push(format!("{}の{}です。", d.from.company, d.from.call));
                }
            }
        }
        lines.push(String::new());
        lines.push(format!("{subject}について、ご連絡いたします。"));
        for _ in 0..r.range(1, 3) {
            lines.push(r.pick(JA_BODY).to_string());
        }
        lines.push(String::new());
        lines.push(
            if d.dir == Dir::Internal {
                "よろしくお願いします。"
            } else {
                "以上、よろしくお願いいたします。"
            }
            .to_string(),
        );
        lines.push(String::new());
        lines.push("--".to_string());
        if !d.from.company.is_empty() {
            lines.push(d.from.company.clone());
        }
        if d.sender_emp.is_some() {
            lines.push(d.salutation.to_string());
        }
        lines.push(d.from.display.clone());
    } else {
        lines.push(match to {
            Some(p) => format!("Dear {},", p.call),
            None => "Hello,".to_string(),
        });
        lines.push(String::new());
        for _ in 0..r.range(1, 3) {
            lines.push(r.pick(EN_BODY).to_string());
        }
        lines.push(String::new());
        lines.push("Best regards,".to_string());
        lines.push(d.from.display.clone());
        if d.sender_emp.is_some() {
            lines.push(ORG_NAME_EN.to_string());
        } else if !d.from.company.is_empty() && d.from.company.is_ascii() {
            lines.push(d.from.company.clone());
        }
    }
    lines.push(d.from.addr.clone());
    lines.push(format!(
        "TEL: 03-{}-{}",
        r.range(1000, 9999),
        r.range(1000, 9999)
    ));
    lines
}

fn employee_party(w: &World, i: usize) -> Party {
    w.employees[i].party.clone()
}

fn partner_mail(w: &World, r: &mut Rng, k: u64, t: i64, inbound: bool) -> Mail {
    let p = &w.partners[r.index(w.partners.len())];
    let emp = w.pick_employee(r);
    let contact = p.contacts[r.index(p.contacts.len())].clone();
    let mut cc = Vec::new();
    if r.chance(0.3) {
        cc.push(employee_party(w, w.colleague(emp, r)));
    }
    if r.chance(0.15) {
        cc.push(p.contacts[r.index(p.contacts.len())].clone());
    }
    let ja = p.def.japanese && r.chance(0.45);
    let mut bcc = Vec::new();
    let (from, to, sender_emp) = if inbound {
        let mut to = vec![employee_party(w, emp)];
        if r.chance(0.2) {
            to.push(employee_party(w, w.colleague(emp, r)));
        }
        (contact, to, None)
    } else {
        let mut to = vec![contact];
        if r.chance(0.2) {
            to.push(p.contacts[r.index(p.contacts.len())].clone());
        }
        if r.chance(0.05) {
            bcc.push(employee_party(w, w.colleague(emp, r)));
        }
        if let Some(private) = w.employees[emp].private.as_ref().filter(|_| r.chance(0.1)) {
            bcc.push(private.clone());
        }
        (employee_party(w, emp), to, Some(emp))
    };
    dedupe(&mut cc, &to);
    let salutation = DEPTS[w.employees[emp].dept].0;
    let dir = if inbound { Dir::Inbound } else { Dir::Outbound };
    assemble(
        r,
        k,
        t,
        MailDraft {
            dir,
            from,
            sender_emp,
            to,
            cc,
            bcc,
            ja,
            salutation,
        },
    )
}

fn dedupe(list: &mut Vec<Party>, against: &[Party]) {
    let mut seen: HashSet<String> = against.iter().map(|p| p.addr.clone()).collect();
    list.retain(|p| seen.insert(p.addr.clone()));
}

fn newsletter_mail(w: &World, r: &mut Rng, k: u64, t: i64) -> Mail {
    let n = r.pick(NEWSLETTERS);
    let emp = w.pick_employee(r);
    let to = employee_party(w, emp);
    let domain = n.from.rsplit_once('@').map_or("", |x| x.1);
    let from = Party {
        addr: n.from.to_string(),
        display: n.display.to_string(),
        call: String::new(),
        company: String::new(),
    };
    let subject = if n.ja {
        r.pick(JA_NEWS_SUBJECTS).to_string()
    } else {
        r.pick(EN_NEWS_SUBJECTS).to_string()
    };
    let local = to.addr.replace('@', "=");
    let env_from = if n.ml {
        let (l, d) = n.from.split_once('@').unwrap_or((n.from, domain));
        format!("{l}-bounces+{local}@{d}")
    } else {
        format!(
            "bounce-{}-{}-{local}@mail.{domain}",
            r.range(1000, 99999),
            k % 1000
        )
    };
    let mut body = Vec::new();
    for _ in 0..r.range(12, 40) {
        body.push(if n.ja {
            r.pick(JA_BODY).to_string()
        } else {
            r.pick(EN_BODY).to_string()
        });
    }
    body.push(String::new());
    body.push(
        if n.ja {
            "配信停止はこちら: https://".to_string()
        } else {
            "Unsubscribe: https://".to_string()
        } + domain
            + "/unsubscribe",
    );
    Mail {
        k,
        dir: Dir::Inbound,
        time_ms: t,
        env_from,
        message_id: message_id(r, k, t, &format!("mail.{domain}"), 2),
        from,
        to: vec![to],
        cc: Vec::new(),
        bcc: Vec::new(),
        list: None,
        sender_emp: None,
        charset: if n.ja {
            if r.chance(0.7) {
                Charset::Utf8
            } else {
                Charset::Iso2022Jp
            }
        } else {
            Charset::Ascii
        },
        subject_prefix: "",
        subject,
        body,
        html: r.chance(0.85),
        attachments: Vec::new(),
        in_reply_to: None,
        newsletter: Some(n),
        base64_body: r.chance(0.6),
        mailer: "",
    }
}

fn freemail_in(w: &World, r: &mut Rng, k: u64, t: i64) -> Mail {
    let from = w.freemail_people[r.index(w.freemail_people.len())].clone();
    let emp = w.pick_employee(r);
    let to = vec![employee_party(w, emp)];
    let ja = r.chance(0.5);
    let salutation = DEPTS[w.employees[emp].dept].0;
    assemble(
        r,
        k,
        t,
        MailDraft {
            dir: Dir::Inbound,
            from,
            sender_emp: None,
            to,
            cc: Vec::new(),
            bcc: Vec::new(),
            ja,
            salutation,
        },
    )
}

fn freemail_out(w: &World, r: &mut Rng, k: u64, t: i64) -> Mail {
    // leavers sending company data home are the story the demo tells
    let leavers: Vec<usize> = (0..w.employees.len())
        .filter(|&i| w.employees[i].leaver)
        .collect();
    let emp = if !leavers.is_empty() && r.chance(0.5) {
        *r.pick(&leavers)
    } else {
        w.pick_employee(r)
    };
    let e = &w.employees[emp];
    let salutation = DEPTS[e.dept].0;
    if let Some(private) = &e.private {
        let ja = r.chance(0.6);
        let mut m = assemble(
            r,
            k,
            t,
            MailDraft {
                dir: Dir::Outbound,
                from: e.party.clone(),
                sender_emp: Some(emp),
                to: vec![private.clone()],
                cc: Vec::new(),
                bcc: Vec::new(),
                ja,
                salutation,
            },
        );
        if r.chance(0.6) {
            let name = if ja {
                *r.pick(&["顧客リスト.xlsx", "顧客データ.zip", "売上集計.xlsx"])
            } else {
                "customer_list.xlsx"
            };
            let kind = if name.ends_with(".zip") {
                AttKind::Zip
            } else {
                AttKind::Xlsx
            };
            m.attachments.push(att_spec(r, kind, name.to_string(), ja));
        }
        return m;
    }
    let to = vec![w.freemail_people[r.index(w.freemail_people.len())].clone()];
    let ja = r.chance(0.5);
    assemble(
        r,
        k,
        t,
        MailDraft {
            dir: Dir::Outbound,
            from: e.party.clone(),
            sender_emp: Some(emp),
            to,
            cc: Vec::new(),
            bcc: Vec::new(),
            ja,
            salutation,
        },
    )
}

fn internal_mail(w: &World, r: &mut Rng, k: u64, t: i64) -> Mail {
    let emp = w.pick_employee(r);
    let dept = w.employees[emp].dept;
    let salutation = DEPTS[dept].0;
    let mut list = None;
    let mut to = Vec::new();
    if r.chance(0.08) && w.depts[dept].len() > 2 {
        let addr = format!("{}@{}", DEPTS[dept].1, w.org);
        let members: Vec<String> = w.depts[dept]
            .iter()
            .take(25)
            .map(|&i| w.employees[i].party.addr.clone())
            .collect();
        to.push(Party {
            addr: addr.clone(),
            display: DEPTS[dept].0.to_string(),
            call: DEPTS[dept].0.to_string(),
            company: String::new(),
        });
        list = Some((addr, members));
    } else {
        for _ in 0..r.range(1, 3) {
            to.push(employee_party(w, w.colleague(emp, r)));
        }
    }
    let mut cc = Vec::new();
    if r.chance(0.3) {
        for _ in 0..r.range(1, 3) {
            cc.push(employee_party(w, w.colleague(emp, r)));
        }
    }
    let mut bcc = Vec::new();
    if r.chance(0.04) {
        bcc.push(employee_party(w, w.colleague(emp, r)));
    }
    let mut seen_to = Vec::new();
    to.retain(|p| {
        let keep = !seen_to.contains(&p.addr);
        seen_to.push(p.addr.clone());
        keep
    });
    dedupe(&mut cc, &to);
    let mut both = to.clone();
    both.extend(cc.iter().cloned());
    dedupe(&mut bcc, &both);
    let ja = r.chance(0.33);
    let mut m = assemble(
        r,
        k,
        t,
        MailDraft {
            dir: Dir::Internal,
            from: employee_party(w, emp),
            sender_emp: Some(emp),
            to,
            cc,
            bcc,
            ja,
            salutation,
        },
    );
    m.list = list;
    m
}

#[allow(clippy::too_many_arguments)]
fn password_mail(
    w: &World,
    r: &mut Rng,
    k: u64,
    t: i64,
    sender: usize,
    to: Vec<Party>,
    ja: bool,
    file: &str,
) -> Mail {
    let e = &w.employees[sender];
    let dir = if to.iter().all(|p| w.is_org(&p.addr)) {
        Dir::Internal
    } else {
        Dir::Outbound
    };
    let from = e.party.clone();
    let password: String = r.alnum(10, B62);
    let domain = w.org.clone();
    let body = if ja {
        vec![
            format!("{}様", to.first().map_or("", |p| p.call.as_str())),
            String::new(),
            "先ほどお送りしたファイルのパスワードをお知らせします。".to_string(),
            String::new(),
            format!("ファイル名: {file}"),
            format!("パスワード: {password}"),
            String::new(),
            "--".to_string(),
            from.display.clone(),
        ]
    } else {
        vec![
            "Hello,".to_string(),
            String::new(),
            format!("The password for {file} is: {password}"),
            String::new(),
            from.display.clone(),
        ]
    };
    Mail {
        k,
        dir,
        time_ms: t,
        env_from: from.addr.clone(),
        message_id: message_id(r, k, t, &domain, 1),
        from,
        to,
        cc: Vec::new(),
        bcc: Vec::new(),
        list: None,
        sender_emp: Some(sender),
        charset: if ja {
            Charset::Iso2022Jp
        } else {
            Charset::Ascii
        },
        subject_prefix: "",
        subject: if ja {
            JA_PASSWORD_SUBJECT
        } else {
            "Password for the attached file"
        }
        .to_string(),
        body,
        html: false,
        attachments: Vec::new(),
        in_reply_to: None,
        newsletter: None,
        base64_body: false,
        mailer: "Microsoft Outlook 16.0",
    }
}

fn att_spec(r: &mut Rng, kind: AttKind, name: String, ja: bool) -> AttSpec {
    // log-uniform 5 KB .. 250 KB: mean ≈ 63 KB, so with ~20 % of messages
    // carrying one the average message stays near 20 KB.
    let size = (5000.0 * 50f64.powf(r.unit())) as usize;
    let names = if ja {
        PDF_NAMES.0.iter().chain(XLSX_NAMES.0).chain(DOCX_NAMES.0)
    } else {
        PDF_NAMES.1.iter().chain(XLSX_NAMES.1).chain(DOCX_NAMES.1)
    };
    let all: Vec<&str> = names.copied().collect();
    let (encrypted, inner) = if kind == AttKind::Zip {
        let n = r.range(1, 4) as usize;
        let mut inner: Vec<String> = Vec::new();
        for _ in 0..n {
            let s = r.pick(&all).to_string();
            if !inner.contains(&s) {
                inner.push(s);
            }
        }
        (r.chance(0.45), inner)
    } else {
        (false, Vec::new())
    };
    AttSpec {
        kind,
        name,
        size,
        seed: r.next_u64(),
        encrypted,
        inner,
    }
}

fn new_attachment(r: &mut Rng, ja: bool, subject: &str) -> AttSpec {
    let mut kind = match r.weighted(&[40, 30, 12, 18]) {
        0 => AttKind::Pdf,
        1 => AttKind::Xlsx,
        2 => AttKind::Docx,
        _ => AttKind::Zip,
    };
    if subject.contains("顧客リスト") || subject.contains("Customer list") {
        kind = AttKind::Xlsx;
    }
    let (names_ja, names_en) = match kind {
        AttKind::Pdf => PDF_NAMES,
        AttKind::Xlsx => XLSX_NAMES,
        AttKind::Docx => DOCX_NAMES,
        AttKind::Zip => ZIP_NAMES,
    };
    let name = if ja && r.chance(0.8) {
        r.pick(names_ja)
    } else {
        r.pick(names_en)
    };
    att_spec(r, kind, name.to_string(), ja)
}

fn estimate_size(m: &Mail) -> u64 {
    let body: usize = m.body.iter().map(|l| l.len() + 1).sum();
    let mut size = 1400 + body * if m.html { 3 } else { 1 } + 300 * (m.to.len() + m.cc.len());
    for a in &m.attachments {
        size += a.size * 4 / 3 + a.size / 38 + 400;
    }
    size as u64
}

// ---------------------------------------------------------------------------
// Time

struct Clock {
    start: i64,
    t: i64,
    weights: Vec<f64>,
    suffix: Vec<f64>,
    tz: Tz,
    /// messages per unit of weight beyond the period (when the target is not reached yet)
    base_rate: f64,
    rng: Rng,
}

fn hour_weight(local_hour: u32, weekend: bool) -> f64 {
    const CURVE: [f64; 24] = [
        0.03, 0.02, 0.02, 0.02, 0.03, 0.05, 0.12, 0.45, 1.3, 2.1, 2.3, 2.0, 1.0, 1.8, 2.1, 2.0,
        1.9, 1.6, 1.0, 0.7, 0.45, 0.3, 0.15, 0.06,
    ];
    let w = CURVE[local_hour as usize % 24];
    if weekend {
        w * 0.12 + 0.02
    } else {
        w
    }
}

impl Clock {
    fn new(start: i64, days: u32, tz: Tz, estimate: f64, seed: u64) -> Clock {
        let hours = days as usize * 24;
        let mut c = Clock {
            start,
            t: start,
            weights: Vec::with_capacity(hours),
            suffix: Vec::new(),
            tz,
            base_rate: 0.0,
            rng: Rng::new(mix(seed, 0xc10c)),
        };
        for h in 0..hours {
            let w = c.weight_at(start + h as i64 * HOUR_MS);
            c.weights.push(w);
        }
        c.suffix = vec![0.0; hours + 1];
        for h in (0..hours).rev() {
            c.suffix[h] = c.suffix[h + 1] + c.weights[h];
        }
        c.base_rate = estimate / c.suffix[0].max(1e-9);
        c
    }

    fn local_hour(&self, t: i64) -> (u32, bool) {
        let local = self.tz.from_utc_datetime(&utc(t).naive_utc());
        (
            local.hour(),
            matches!(local.weekday(), Weekday::Sat | Weekday::Sun),
        )
    }

    fn weight_at(&self, t: i64) -> f64 {
        let (h, weekend) = self.local_hour(t);
        hour_weight(h, weekend)
    }

    /// Next arrival of a non-homogeneous Poisson process that spreads
    /// `remaining` messages over what is left of the period.
    fn next_arrival(&mut self, remaining: f64) -> i64 {
        let mut first = true;
        loop {
            let h = ((self.t - self.start) / HOUR_MS).max(0) as usize;
            let bucket_end = self.start + (h as i64 + 1) * HOUR_MS;
            let rate_per_hour = if h < self.weights.len() {
                let w = self.weights[h];
                let frac = (bucket_end - self.t) as f64 / HOUR_MS as f64;
                let left = w * frac + self.suffix[h + 1];
                // never more than twice the planned intensity: near the end
                // the estimate's residual error would otherwise be crammed
                // into the last seconds (the overflow spills past the end)
                (remaining.max(0.5) * w / left.max(1e-6)).min(2.0 * self.base_rate * w)
            } else {
                self.base_rate.max(1e-3) * self.weight_at(self.t)
            };
            let mean_gap_ms = HOUR_MS as f64 / rate_per_hour.max(1e-9);
            // mail comes in bursts (an invitation and its replies, a
            // campaign): 30 % of arrivals follow the previous one within a
            // fraction of the usual gap (at most 2.5 s); the rest come from
            // the Poisson process at 70 % of the planned rate
            if first && self.rng.chance(BURST) {
                let gap = (self.rng.unit() * (0.2 * mean_gap_ms).min(2500.0)) as i64;
                if self.t + gap < bucket_end {
                    self.t += gap;
                    return self.t;
                }
            }
            first = false;
            let u = self.rng.unit();
            let gap_ms = (-(1.0 - u).ln() * mean_gap_ms / (1.0 - BURST)).min(1e15) as i64;
            if self.t + gap_ms < bucket_end {
                self.t += gap_ms;
                return self.t;
            }
            self.t = bucket_end;
        }
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Wall-clock time in Japan (the company's clients stamp Date: in +0900).
fn jst(ms: i64) -> DateTime<Utc> {
    utc(ms + 9 * HOUR_MS)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// RFC 3164 stamp `Mmm dd hh:mm:ss` (day space-padded) in `tz`.
fn syslog_stamp(tz: Tz, ms: i64) -> String {
    let l = tz.from_utc_datetime(&utc(ms).naive_utc());
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[l.month0() as usize],
        l.day(),
        l.hour(),
        l.minute(),
        l.second()
    )
}

/// RFC 5322 date in +0900.
fn rfc5322_date(ms: i64) -> String {
    let d = jst(ms);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0900",
        WEEKDAYS[d.weekday().num_days_from_monday() as usize],
        d.day(),
        MONTHS[d.month0() as usize],
        d.year(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

// ---------------------------------------------------------------------------
// Postfix log

struct QidAlloc {
    n: u64,
    offset: u64,
}

impl QidAlloc {
    /// Short-form Postfix queue id: a time-derived prefix and a bijectively
    /// scrambled counter, so ids look random but are unique in the file.
    fn new(seed: u64) -> QidAlloc {
        QidAlloc {
            n: 0,
            offset: mix(seed, 0x91d) & 0xFF_FFFF,
        }
    }

    fn next(&mut self, t: i64) -> String {
        let c = self.n;
        self.n += 1;
        let prefix = (t.rem_euclid(1000) as u64 * 1000 + (c * 7919) % 1000) & 0xFFFF;
        if c < 1 << 24 {
            // (c + offset) mod 2^24 is still a bijection on 0..2^24
            let mut x = (c + self.offset).wrapping_mul(0xB5_AD4B) & 0xFF_FFFF;
            x ^= x >> 12;
            x = x.wrapping_mul(0x2C_1B3D) & 0xFF_FFFF;
            format!("{prefix:04X}{x:06X}")
        } else {
            let mut x = c.wrapping_mul(0xB5A_D4BB) & 0xFFF_FFFF;
            x ^= x >> 14;
            x = x.wrapping_mul(0x2C1_B3D5) & 0xFFF_FFFF;
            format!("{prefix:04X}{x:07X}")
        }
    }
}

struct Pids {
    next: u32,
    smtpd: Vec<u32>,
    submission: Vec<u32>,
    cleanup: Vec<u32>,
    smtp: Vec<u32>,
    lmtp: Vec<u32>,
    bounce: Vec<u32>,
    qmgr: u32,
    anvil: u32,
    postscreen: u32,
}

#[derive(Clone, Copy)]
enum Svc {
    Smtpd,
    Submission,
    Cleanup,
    Smtp,
    Lmtp,
    Bounce,
}

impl Pids {
    fn new(r: &mut Rng) -> Pids {
        let mut next = r.range(1200, 9000) as u32;
        let mut pool = |n: usize| -> Vec<u32> {
            (0..n)
                .map(|_| {
                    next += r.range(1, 40) as u32;
                    next
                })
                .collect()
        };
        let qmgr = 1100;
        Pids {
            smtpd: pool(6),
            submission: pool(3),
            cleanup: pool(3),
            smtp: pool(5),
            lmtp: pool(2),
            bounce: pool(1),
            qmgr,
            anvil: 1180,
            postscreen: 1120,
            next: next + 10,
        }
    }

    fn get(&mut self, s: Svc, r: &mut Rng) -> u32 {
        let pool = match s {
            Svc::Smtpd => &mut self.smtpd,
            Svc::Submission => &mut self.submission,
            Svc::Cleanup => &mut self.cleanup,
            Svc::Smtp => &mut self.smtp,
            Svc::Lmtp => &mut self.lmtp,
            Svc::Bounce => &mut self.bounce,
        };
        let i = r.index(pool.len());
        if r.chance(0.004) {
            // process reached max_use / max_idle: a fresh one takes over
            self.next += r.range(3, 120) as u32;
            if self.next > 4_000_000 {
                self.next = 1200;
            }
            pool[i] = self.next;
        }
        pool[i]
    }
}

/// Postfix's delay formatting: two significant-ish digits, 0 as "0".
fn fmt_delay(v: f64) -> String {
    if v < 0.005 {
        "0".to_string()
    } else if v < 1.0 {
        trim_zeros(format!("{v:.2}"))
    } else if v < 10.0 {
        trim_zeros(format!("{v:.1}"))
    } else {
        format!("{v:.0}")
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

struct LogOut {
    w: BufWriter<File>,
    heap: BinaryHeap<Reverse<(i64, u64, String)>>,
    seq: u64,
    pushed: u64,
    written: u64,
    messages: u64,
    target: u64,
    tz: Tz,
    stamp_sec: i64,
    stamp: String,
    r: Rng,
    pids: Pids,
    next_anvil: i64,
    end_ms: i64,
    org: String,
}

const HOST: &str = "mx1";
const LMTP_RELAY: &str = "10.0.1.20";

enum Fate {
    Sent,
    Deferred,
    Bounced,
    Expired,
}

impl LogOut {
    fn new(file: File, target: u64, tz: Tz, seed: u64, end_ms: i64, org: &str) -> LogOut {
        let mut r = Rng::new(mix(seed, 0x10c));
        let pids = Pids::new(&mut r);
        LogOut {
            w: BufWriter::with_capacity(1 << 20, file),
            heap: BinaryHeap::new(),
            seq: 0,
            pushed: 0,
            written: 0,
            messages: 0,
            target,
            tz,
            stamp_sec: i64::MIN,
            stamp: String::new(),
            r,
            pids,
            next_anvil: i64::MIN,
            end_ms,
            org: org.to_string(),
        }
    }

    fn remaining_messages(&self) -> f64 {
        let per = if self.messages >= 50 {
            self.pushed as f64 / self.messages as f64
        } else {
            INITIAL_LINES_PER_MESSAGE
        };
        self.target.saturating_sub(self.pushed) as f64 / per.max(1.0)
    }

    fn push(&mut self, t: i64, line: String) {
        self.heap.push(Reverse((t, self.seq, line)));
        self.seq += 1;
        self.pushed += 1;
    }

    fn flush_until(&mut self, t: i64) -> Result<()> {
        while self.heap.peek().is_some_and(|Reverse((tt, _, _))| *tt <= t) {
            if let Some(Reverse((tt, _, line))) = self.heap.pop() {
                self.write_line(tt, &line)?;
            }
        }
        Ok(())
    }

    fn write_line(&mut self, t: i64, line: &str) -> Result<()> {
        let sec = t.div_euclid(SEC_MS);
        if sec != self.stamp_sec {
            self.stamp_sec = sec;
            self.stamp = syslog_stamp(self.tz, t);
        }
        self.w.write_all(self.stamp.as_bytes())?;
        self.w.write_all(b" ")?;
        self.w.write_all(HOST.as_bytes())?;
        self.w.write_all(b" ")?;
        self.w.write_all(line.as_bytes())?;
        self.w.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<(u64, u64)> {
        self.flush_until(i64::MAX)?;
        self.w.flush()?;
        Ok((self.written, self.messages))
    }

    fn pid(&mut self, s: Svc) -> u32 {
        let mut r = self.r.clone();
        let p = self.pids.get(s, &mut r);
        self.r = r;
        p
    }

    fn secs(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.r.unit()
    }

    /// Connection-level noise and rejects that are not messages.
    fn noise(&mut self, w: &World, t: i64) -> Result<()> {
        if self.next_anvil == i64::MIN {
            self.next_anvil = t + self.r.range(300, 1800) as i64 * SEC_MS;
        }
        if t >= self.next_anvil {
            let pid = self.pids.anvil;
            let at = syslog_stamp(self.tz, t - self.r.range(1, 300) as i64 * SEC_MS);
            let ip = format!("203.0.113.{}", self.r.range(120, 140));
            let rate = self.r.range(1, 6);
            let count = self.r.range(1, 4);
            let cache = self.r.range(1, 12);
            self.push(t, format!("postfix/anvil[{pid}]: statistics: max connection rate {rate}/60s for (smtp:{ip}) at {at}"));
            self.push(t, format!("postfix/anvil[{pid}]: statistics: max connection count {count} for (smtp:{ip}) at {at}"));
            self.push(
                t,
                format!("postfix/anvil[{pid}]: statistics: max cache size {cache} at {at}"),
            );
            self.next_anvil = t + self.r.range(600, 3600) as i64 * SEC_MS;
        }
        let x = self.r.unit();
        if x < 0.022 {
            self.noqueue(w, t);
        } else if x < 0.032 {
            let ip = format!("198.51.100.{}", self.r.range(150, 250));
            let pid = self.pid(Svc::Smtpd);
            let name = format!(
                "mail{}.bulk-sender{}.example",
                self.r.range(1, 40),
                self.r.range(1, 9)
            );
            self.push(t, format!("postfix/smtpd[{pid}]: warning: hostname {name} does not resolve to address {ip}: Name or service not known"));
            self.push(
                t,
                format!("postfix/smtpd[{pid}]: connect from unknown[{ip}]"),
            );
            let t2 = t + self.r.range(200, 5000) as i64;
            self.push(
                t2,
                format!("postfix/smtpd[{pid}]: lost connection after EHLO from unknown[{ip}]"),
            );
            self.push(
                t2,
                format!("postfix/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=1 commands=1"),
            );
        } else if x < 0.040 {
            let ip = format!("203.0.113.{}", self.r.range(160, 250));
            let pid = self.pid(Svc::Submission);
            self.push(
                t,
                format!("postfix/submission/smtpd[{pid}]: connect from unknown[{ip}]"),
            );
            let t2 = t + self.r.range(500, 3000) as i64;
            self.push(t2, format!("postfix/submission/smtpd[{pid}]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"));
            let t3 = t2 + self.r.range(50, 900) as i64;
            self.push(t3, format!("postfix/submission/smtpd[{pid}]: lost connection after AUTH from unknown[{ip}]"));
            self.push(t3, format!("postfix/submission/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=2 starttls=1 auth=0/1 commands=3/4"));
        } else if x < 0.050 {
            let ip = format!("192.0.2.{}", self.r.range(150, 250));
            let port = self.r.range(1024, 65535);
            let pid = self.pids.postscreen;
            self.push(
                t,
                format!("postfix/postscreen[{pid}]: CONNECT from [{ip}]:{port} to [192.0.2.10]:25"),
            );
            let t2 = t + self.r.range(50, 900) as i64;
            if self.r.chance(0.5) {
                let after = fmt_delay(self.secs(0.02, 0.4));
                self.push(t2, format!("postfix/postscreen[{pid}]: PREGREET 11 after {after} from [{ip}]:{port}: EHLO User\\r\\n"));
            } else {
                let rank = self.r.range(2, 6);
                self.push(
                    t2,
                    format!("postfix/postscreen[{pid}]: DNSBL rank {rank} for [{ip}]:{port}"),
                );
            }
            self.push(
                t2 + 5,
                format!("postfix/postscreen[{pid}]: DISCONNECT [{ip}]:{port}"),
            );
        }
        Ok(())
    }

    fn noqueue(&mut self, w: &World, t: i64) {
        let ip = format!("198.51.100.{}", self.r.range(2, 140));
        let pid = self.pid(Svc::Smtpd);
        let helo = match self.r.below(3) {
            0 => format!(
                "WIN-{}",
                self.r.alnum(11, b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
            ),
            1 => format!("[{ip}]"),
            _ => format!("mail{}.example.net", self.r.range(1, 99)),
        };
        let from = format!(
            "{}@{}",
            self.r.alnum(8, b"abcdefghijklmnopqrstuvwxyz"),
            *self
                .r
                .pick(&["example.net", "example.org", "mailer.example.com"])
        );
        self.push(
            t,
            format!("postfix/smtpd[{pid}]: connect from unknown[{ip}]"),
        );
        let t2 = t + self.r.range(300, 4000) as i64;
        let line = match self.r.below(3) {
            0 => {
                let to = format!(
                    "{}@{}",
                    self.r.alnum(6, b"abcdefghijklmnopqrstuvwxyz"),
                    *self
                        .r
                        .pick(&["example.com", "example.org", "relay-target.example"])
                );
                format!("NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <{to}>: Relay access denied; from=<{from}> to=<{to}> proto=ESMTP helo=<{helo}>")
            }
            1 => {
                let (f, g) = (self.r.index(FAMILY.len()), self.r.index(GIVEN.len()));
                let to = format!("{}.{}x@{}", GIVEN[g].1, FAMILY[f].1, w.org);
                format!("NOQUEUE: reject: RCPT from unknown[{ip}]: 550 5.1.1 <{to}>: Recipient address rejected: User unknown in virtual mailbox table; from=<{from}> to=<{to}> proto=ESMTP helo=<{helo}>")
            }
            _ => {
                let e = &w.employees[self.r.index(w.employees.len())];
                let to = e.party.addr.clone();
                format!("NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/{ip}; from=<{from}> to=<{to}> proto=ESMTP helo=<{helo}>")
            }
        };
        self.push(t2, format!("postfix/smtpd[{pid}]: {line}"));
        let t3 = t2 + self.r.range(20, 800) as i64;
        self.push(t3, format!("postfix/smtpd[{pid}]: disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4"));
    }

    fn lmtp_line(&mut self, qid: &str, rcpt: &str, orig: Option<&str>, t0: i64, at: i64) -> String {
        let pid = self.pid(Svc::Lmtp);
        let total = (at - t0) as f64 / 1000.0;
        let c = self.secs(0.0, 0.01);
        let d = self.secs(0.005, 0.08);
        let a = (total - c - d).max(0.0) * 0.8;
        let b = (total - a - c - d).max(0.0);
        let orig = orig.map(|o| format!("orig_to=<{o}>, ")).unwrap_or_default();
        let id = self.r.alnum(22, B62);
        format!(
            "postfix/lmtp[{pid}]: {qid}: to=<{rcpt}>, {orig}relay=mbox1.{}[{LMTP_RELAY}]:24, delay={}, delays={}/{}/{}/{}, dsn=2.0.0, status=sent (250 2.0.0 <{rcpt}> {id} Saved)",
            self.org,
            fmt_delay(total),
            fmt_delay(a),
            fmt_delay(b),
            fmt_delay(c),
            fmt_delay(d)
        )
    }

    /// The whole Postfix flow of one message (and its NDR, when it bounces).
    fn mail(&mut self, w: &World, m: &Mail, qid: &str, size: u64, qids: &mut QidAlloc) {
        self.messages += 1;
        let t0 = m.time_ms;
        let rcpts = m.envelope();
        let n = rcpts.len();
        let submission = m.dir != Dir::Inbound;
        let (smtpd, host, ip, helo) = if submission {
            let e = m.sender_emp.map(|i| &w.employees[i]);
            let ip = e.map_or("10.1.0.5".to_string(), |e| e.ip.clone());
            let pc = e.map_or("PC-0000".to_string(), |e| e.pc.clone());
            let host = if self.r.chance(0.6) {
                format!("{}.corp.{}", pc.to_ascii_lowercase(), w.org)
            } else {
                "unknown".to_string()
            };
            (Svc::Submission, host, ip, pc)
        } else {
            let domain = m.env_from.rsplit_once('@').map_or("", |x| x.1);
            let (h, i, helo) = w.client_for(domain);
            (Svc::Smtpd, h, i, helo)
        };
        let prog = if submission {
            "postfix/submission/smtpd"
        } else {
            "postfix/smtpd"
        };
        let pid = self.pid(smtpd);
        self.push(t0, format!("{prog}[{pid}]: connect from {host}[{ip}]"));
        let t1 = t0 + self.r.range(80, 900) as i64;
        if submission {
            self.push(t1, format!("{prog}[{pid}]: {qid}: client={host}[{ip}], sasl_method=PLAIN, sasl_username={}", m.from.addr));
        } else {
            self.push(t1, format!("{prog}[{pid}]: {qid}: client={host}[{ip}]"));
        }
        let cpid = self.pid(Svc::Cleanup);
        let t2 = t1 + self.r.range(20, 400) as i64 + (size / 50_000) as i64 * 40;
        self.push(
            t2,
            format!(
                "postfix/cleanup[{cpid}]: {qid}: message-id=<{}>",
                m.message_id
            ),
        );
        let subject = m.full_subject();
        if WARN_WORDS.iter().any(|k| subject.contains(k)) {
            let first = rcpts.first().map_or("", |r| r.0.as_str());
            self.push(
                t2,
                format!(
                    "postfix/cleanup[{cpid}]: {qid}: warning: header Subject: {subject} from {host}[{ip}]; from=<{}> to=<{first}> proto=ESMTP helo=<{helo}>",
                    m.env_from
                ),
            );
        }
        let tq = t2 + self.r.range(2, 60) as i64;
        let qpid = self.pids.qmgr;
        self.push(
            tq,
            format!(
                "postfix/qmgr[{qpid}]: {qid}: from=<{}>, size={size}, nrcpt={n} (queue active)",
                m.env_from
            ),
        );
        let tdis = tq + self.r.range(5, 300) as i64;
        let cmds = if submission {
            format!(
                "ehlo=2 starttls=1 auth=1 mail=1 rcpt={n} data=1 quit=1 commands={}",
                7 + n
            )
        } else {
            format!(
                "ehlo=2 starttls=1 mail=1 rcpt={n} data=1 quit=1 commands={}",
                6 + n
            )
        };
        self.push(
            tdis,
            format!("{prog}[{pid}]: disconnect from {host}[{ip}] {cmds}"),
        );

        // deliveries: internal recipients by LMTP, external ones grouped by domain over SMTP
        let mut last = tq;
        let mut at = tq + self.r.range(10, 200) as i64;
        for (rcpt, orig) in rcpts.iter().filter(|(a, _)| w.is_org(a)) {
            at += self.r.range(3, 60) as i64;
            let line = self.lmtp_line(qid, rcpt, orig.as_deref(), t0, at);
            self.push(at, line);
            last = last.max(at);
        }
        let mut domains: Vec<&str> = Vec::new();
        for (rcpt, _) in &rcpts {
            if let Some((_, d)) = rcpt.rsplit_once('@') {
                if d != w.org && !domains.contains(&d) {
                    domains.push(d);
                }
            }
        }
        let mut bounced: Option<String> = None;
        let mut expired = false;
        let mut pending_until = last;
        for d in domains {
            let (relay, rip) = w.relay_for(d);
            let relay_s = format!("{relay}[{rip}]:25");
            let x = self.r.unit();
            let can_expire = t0 + QUEUE_LIFETIME_MS + HOUR_MS < self.end_ms;
            // about a third of all messages leave the company, so these
            // per-destination rates give ~3 % deferred and ~1 % bounced overall
            let fate = if x < 0.085 {
                Fate::Deferred
            } else if x < 0.115 && bounced.is_none() {
                Fate::Bounced
            } else if x < 0.1165 && can_expire && !expired {
                Fate::Expired
            } else {
                Fate::Sent
            };
            let spid = self.pid(Svc::Smtp);
            let group: Vec<&String> = rcpts
                .iter()
                .map(|r| &r.0)
                .filter(|a| a.ends_with(&format!("@{d}")))
                .collect();
            let start = tq + self.r.range(20, 400) as i64;
            let conn = self.secs(0.05, 0.6);
            let mut at = start + (conn * 1000.0) as i64;
            match fate {
                Fate::Sent => {
                    let remote = remote_queue_reply(&mut self.r, d, &m.message_id);
                    for rcpt in group {
                        let xfer = self.secs(0.05, 0.4) + size as f64 / 2_000_000.0;
                        at += (xfer * 1000.0) as i64;
                        let line = self.smtp_line(
                            spid,
                            qid,
                            rcpt,
                            &relay_s,
                            t0,
                            tq,
                            at,
                            conn,
                            "2.0.0",
                            &format!("sent ({remote})"),
                        );
                        self.push(at, line);
                    }
                    last = last.max(at);
                    pending_until = pending_until.max(at);
                }
                Fate::Deferred | Fate::Expired => {
                    // (reason, dsn, seconds the attempt takes)
                    let (reason, dsn, wait) = match self.r.below(3) {
                        0 => (format!("connect to {relay}[{rip}]:25: Connection timed out"), "4.4.1", 30.0),
                        1 => (format!("host {relay}[{rip}] said: 451 4.7.1 Greylisting in action, please come back later (in reply to RCPT TO command)"), "4.7.1", 0.6),
                        _ => (format!("conversation with {relay}[{rip}] timed out while receiving the initial server greeting"), "4.4.2", 300.0),
                    };
                    let wait_ms = (wait * 1000.0) as i64;
                    let mut attempt = start + wait_ms;
                    for rcpt in &group {
                        let line = self.smtp_line(
                            spid,
                            qid,
                            rcpt,
                            &relay_s,
                            t0,
                            tq,
                            attempt,
                            wait,
                            dsn,
                            &format!("deferred ({reason})"),
                        );
                        self.push(attempt, line);
                    }
                    if matches!(fate, Fate::Expired) {
                        expired = true;
                        let mut backoff = 300i64;
                        loop {
                            let next = attempt + backoff * SEC_MS + self.r.range(0, 60_000) as i64;
                            if next >= t0 + QUEUE_LIFETIME_MS {
                                break;
                            }
                            attempt = next;
                            self.push(attempt, format!("postfix/qmgr[{qpid}]: {qid}: from=<{}>, size={size}, nrcpt={n} (queue active)", m.env_from));
                            let spid = self.pid(Svc::Smtp);
                            for rcpt in &group {
                                let line = self.smtp_line(
                                    spid,
                                    qid,
                                    rcpt,
                                    &relay_s,
                                    t0,
                                    attempt - wait_ms,
                                    attempt,
                                    wait,
                                    dsn,
                                    &format!("deferred ({reason})"),
                                );
                                self.push(attempt, line);
                            }
                            backoff = (backoff * 2).min(4000);
                        }
                        let te = t0 + QUEUE_LIFETIME_MS + self.r.range(1000, 600_000) as i64;
                        self.push(te, format!("postfix/qmgr[{qpid}]: {qid}: from=<{}>, status=expired, returned to sender", m.env_from));
                        pending_until = pending_until.max(te);
                        bounced = Some(group[0].clone());
                    } else {
                        let retry = attempt + self.r.range(300, 1800) as i64 * SEC_MS;
                        self.push(retry, format!("postfix/qmgr[{qpid}]: {qid}: from=<{}>, size={size}, nrcpt={n} (queue active)", m.env_from));
                        let spid = self.pid(Svc::Smtp);
                        let remote = remote_queue_reply(&mut self.r, d, &m.message_id);
                        let mut at = retry + self.r.range(100, 900) as i64;
                        for rcpt in &group {
                            at += self.r.range(50, 400) as i64;
                            let line = self.smtp_line(
                                spid,
                                qid,
                                rcpt,
                                &relay_s,
                                t0,
                                retry,
                                at,
                                0.3,
                                "2.0.0",
                                &format!("sent ({remote})"),
                            );
                            self.push(at, line);
                        }
                        pending_until = pending_until.max(at);
                    }
                }
                Fate::Bounced => {
                    let victim = group[self.r.index(group.len())].clone();
                    for rcpt in group {
                        let xfer = self.secs(0.05, 0.3);
                        at += (xfer * 1000.0) as i64;
                        let line = if *rcpt == victim {
                            let status = format!("bounced (host {relay}[{rip}] said: 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown (in reply to RCPT TO command))");
                            self.smtp_line(
                                spid, qid, rcpt, &relay_s, t0, tq, at, conn, "5.1.1", &status,
                            )
                        } else {
                            let remote = remote_queue_reply(&mut self.r, d, &m.message_id);
                            self.smtp_line(
                                spid,
                                qid,
                                rcpt,
                                &relay_s,
                                t0,
                                tq,
                                at,
                                conn,
                                "2.0.0",
                                &format!("sent ({remote})"),
                            )
                        };
                        self.push(at, line);
                    }
                    bounced = Some(victim);
                    pending_until = pending_until.max(at);
                }
            }
        }
        let mut tr = pending_until + self.r.range(1, 30) as i64;
        if bounced.is_some() && m.env_from.contains('@') {
            let ndr = qids.next(tr);
            let bpid = self.pid(Svc::Bounce);
            let cpid = self.pid(Svc::Cleanup);
            let tb = tr + self.r.range(5, 60) as i64;
            let d = jst(tb);
            self.push(
                tb,
                format!(
                    "postfix/cleanup[{cpid}]: {ndr}: message-id=<{}.{ndr}@{HOST}.{}>",
                    d.format("%Y%m%d%H%M%S"),
                    w.org
                ),
            );
            self.push(
                tb + 2,
                format!("postfix/bounce[{bpid}]: {qid}: sender non-delivery notification: {ndr}"),
            );
            let ndr_size = 2400 + size.min(100_000) + self.r.range(0, 300);
            self.push(
                tb + 4,
                format!(
                    "postfix/qmgr[{qpid}]: {ndr}: from=<>, size={ndr_size}, nrcpt=1 (queue active)"
                ),
            );
            self.messages += 1;
            tr = tb + 6;
            let td = tb + self.r.range(20, 200) as i64;
            if w.is_org(&m.env_from) {
                let line = self.lmtp_line(&ndr, &m.env_from, None, tb, td);
                self.push(td, line);
            } else {
                let line = self.smtp_line(
                    self.pids.smtp[0],
                    &ndr,
                    &m.env_from,
                    "mx.example.net[192.0.2.99]:25",
                    tb,
                    tb,
                    td,
                    0.2,
                    "2.0.0",
                    "sent (250 2.0.0 Ok)",
                );
                self.push(td, line);
            }
            self.push(td + 1, format!("postfix/qmgr[{qpid}]: {ndr}: removed"));
        }
        self.push(tr, format!("postfix/qmgr[{qpid}]: {qid}: removed"));
    }

    #[allow(clippy::too_many_arguments)]
    fn smtp_line(
        &mut self,
        pid: u32,
        qid: &str,
        rcpt: &str,
        relay: &str,
        t0: i64,
        tq: i64,
        at: i64,
        conn: f64,
        dsn: &str,
        status: &str,
    ) -> String {
        let total = ((at - t0) as f64 / 1000.0).max(0.0);
        let a = ((tq - t0) as f64 / 1000.0).max(0.0);
        let b = self.secs(0.0, 0.02);
        let c = conn.min((total - a - b).max(0.0));
        let d = (total - a - b - c).max(0.0);
        format!(
            "postfix/smtp[{pid}]: {qid}: to=<{rcpt}>, relay={relay}, delay={}, delays={}/{}/{}/{}, dsn={dsn}, status={status}",
            fmt_delay(total),
            fmt_delay(a),
            fmt_delay(b),
            fmt_delay(c),
            fmt_delay(d)
        )
    }
}

/// The remote server's 250 reply, in the style of the software that hosts the domain.
fn remote_queue_reply(r: &mut Rng, domain: &str, message_id: &str) -> String {
    match domain {
        "gmail.com" => format!(
            "250 2.0.0 OK  {} {}.{} - gsmtp",
            r.range(1_700_000_000, 1_800_000_000),
            r.alnum(16, B62),
            r.range(100, 999)
        ),
        "outlook.jp" => format!(
            "250 2.6.0 <{message_id}> [InternalId={}] Queued mail for delivery",
            r.range(10_000_000_000, 99_999_999_999)
        ),
        _ if domain.ends_with(".co.jp") || domain.ends_with(".jp") => {
            format!("250 2.0.0 Ok: queued as {}", r.alnum(11, HEX_UP))
        }
        _ => format!("250 2.0.0 Ok: queued as 4{}", r.alnum(12, B62)),
    }
}

// ---------------------------------------------------------------------------
// Maildir

struct MaildirOut {
    root: PathBuf,
    target: u64,
    written: u64,
    pid: u32,
    r: Rng,
    start_ms: i64,
    end_ms: i64,
}

impl MaildirOut {
    fn create(
        root: &Path,
        target: u64,
        seed: u64,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<MaildirOut> {
        for folder in ["", ".Sent", ".Archive"] {
            let base = root.join(folder);
            for sub in ["cur", "new", "tmp"] {
                let p = base.join(sub);
                fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
            }
            if !folder.is_empty() {
                File::create(base.join("maildirfolder"))
                    .with_context(|| format!("cannot create {}", base.display()))?;
            }
        }
        let mut r = Rng::new(mix(seed, 0x003a_11d1));
        let pid = r.range(2000, 60000) as u32;
        Ok(MaildirOut {
            root: root.to_path_buf(),
            target,
            written: 0,
            pid,
            r,
            start_ms,
            end_ms,
        })
    }

    /// Write one message; returns its size (used as the log's size=).
    fn write(&mut self, w: &World, m: &Mail, qid: &str) -> Result<u64> {
        let sent_copy = match m.dir {
            Dir::Outbound => true,
            Dir::Internal => self.r.chance(0.5),
            Dir::Inbound => false,
        };
        let bytes = build_mime(w, m, qid, sent_copy);
        let secs = (m.time_ms + 2000).div_euclid(SEC_MS);
        let (folder, sub, flags) = if sent_copy {
            (".Sent", "cur", Some("S"))
        } else if m.time_ms > self.end_ms - DAY_MS && self.r.chance(0.5) {
            ("", "new", None)
        } else if m.time_ms < self.start_ms + (self.end_ms - self.start_ms) / 2
            && self.r.chance(0.3)
        {
            (".Archive", "cur", Some("S"))
        } else {
            let f = match self.r.weighted(&[80, 12, 8]) {
                0 => "S",
                1 => "RS",
                _ => "",
            };
            ("", "cur", Some(f))
        };
        if self.r.chance(0.003) {
            self.pid = self.r.range(2000, 60000) as u32;
        }
        let name = match flags {
            Some(f) => format!("{secs}.{}_{}.mbox1:2,{f}", self.pid, self.written + 1),
            None => format!("{secs}.{}_{}.mbox1", self.pid, self.written + 1),
        };
        let path = self.root.join(folder).join(sub).join(name);
        let mut f =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(&bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
        // best effort: some file systems refuse, the content is what matters
        let _ = f.set_modified(mtime);
        self.written += 1;
        Ok(bytes.len() as u64)
    }
}

// ---------------------------------------------------------------------------
// MIME

fn push_line(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(b'\n');
}

/// `Name <addr>` with the name encoded as the message's charset prefers.
fn address(p: &Party, cs: Charset) -> String {
    if p.display.is_empty() {
        return format!("<{}>", p.addr);
    }
    if p.display.is_ascii() {
        let needs_quotes = p.display.contains(|c: char| ",.;:<>()[]\"@".contains(c));
        return if needs_quotes {
            format!("\"{}\" <{}>", p.display, p.addr)
        } else {
            format!("{} <{}>", p.display, p.addr)
        };
    }
    format!("{} <{}>", encode_words(&p.display, cs), p.addr)
}

fn address_list(ps: &[Party], cs: Charset) -> String {
    ps.iter()
        .map(|p| address(p, cs))
        .collect::<Vec<_>>()
        .join(",\n ")
}

fn body_bytes(text: &str, cs: Charset) -> Vec<u8> {
    match cs {
        Charset::Iso2022Jp => to_iso2022jp(text).unwrap_or_else(|| text.as_bytes().to_vec()),
        Charset::ShiftJis => to_sjis(text).unwrap_or_else(|| text.as_bytes().to_vec()),
        _ => text.as_bytes().to_vec(),
    }
}

fn charset_name(cs: Charset) -> &'static str {
    match cs {
        Charset::Ascii => "us-ascii",
        Charset::Iso2022Jp => "ISO-2022-JP",
        Charset::Utf8 => "UTF-8",
        Charset::ShiftJis => "Shift_JIS",
    }
}

fn text_part(out: &mut Vec<u8>, m: &Mail) {
    let text = m.body.join("\n") + "\n";
    // a Shift_JIS or ISO-2022-JP body must only hold characters the table has
    let cs = match m.charset {
        Charset::Iso2022Jp if to_iso2022jp(&text).is_none() => Charset::Utf8,
        Charset::ShiftJis if to_sjis(&text).is_none() => Charset::Utf8,
        Charset::Ascii if !text.is_ascii() => Charset::Utf8,
        cs => cs,
    };
    // Outlook and Becky! write the bare form, Thunderbird quotes
    if matches!(cs, Charset::Ascii | Charset::Iso2022Jp) {
        push_line(
            out,
            &format!("Content-Type: text/plain; charset={}", charset_name(cs)),
        );
    } else {
        push_line(
            out,
            &format!("Content-Type: text/plain; charset=\"{}\"", charset_name(cs)),
        );
    }
    let bytes = body_bytes(&text, cs);
    match cs {
        Charset::Ascii | Charset::Iso2022Jp => {
            push_line(out, "Content-Transfer-Encoding: 7bit");
            out.push(b'\n');
            out.extend_from_slice(&bytes);
        }
        _ if m.base64_body => {
            push_line(out, "Content-Transfer-Encoding: base64");
            out.push(b'\n');
            base64_lines(out, &bytes);
        }
        _ => {
            push_line(out, "Content-Transfer-Encoding: 8bit");
            out.push(b'\n');
            out.extend_from_slice(&bytes);
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html_part(out: &mut Vec<u8>, m: &Mail) {
    let mut html = String::from("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"><style>body{font-family:'Meiryo UI',sans-serif;font-size:10.5pt} p{margin:0}</style></head><body>\n");
    if m.newsletter.is_some() {
        html.push_str("<table width=\"600\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"border:1px solid #dddddd\"><tr><td style=\"padding:16px;background:#1a4f8b;color:#ffffff\">");
        html.push_str(&html_escape(&m.subject));
        html.push_str("</td></tr>\n");
        for l in &m.body {
            html.push_str("<tr><td style=\"padding:8px 16px;line-height:1.6;color:#333333\">");
            html.push_str(&html_escape(l));
            html.push_str("</td></tr>\n");
        }
        html.push_str("</table>\n");
    } else {
        for l in &m.body {
            if l.is_empty() {
                html.push_str("<p>&nbsp;</p>\n");
            } else {
                html.push_str("<p>");
                html.push_str(&html_escape(l));
                html.push_str("</p>\n");
            }
        }
    }
    html.push_str("</body></html>\n");
    push_line(out, "Content-Type: text/html; charset=\"UTF-8\"");
    push_line(out, "Content-Transfer-Encoding: quoted-printable");
    out.push(b'\n');
    quoted_printable(out, html.as_bytes());
}

fn boundary(m: &Mail, n: u32) -> String {
    format!(
        "----=_Part_{}_{:08x}.{}",
        n,
        mix(m.k, u64::from(n)) as u32,
        m.time_ms / 1000
    )
}

fn build_mime(w: &World, m: &Mail, qid: &str, sent_copy: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        4096 + m
            .attachments
            .iter()
            .map(|a| a.size * 4 / 3 + 200)
            .sum::<usize>(),
    );
    let mut r = Rng::new(mix(m.k, 0x6d696d65));
    let date_ms = m.time_ms - r.range(1_000, 40_000) as i64;
    let hdr_cs = if m.charset == Charset::Ascii {
        Charset::Utf8
    } else {
        m.charset
    };
    if !sent_copy {
        let rcpt = m
            .envelope()
            .into_iter()
            .map(|x| x.0)
            .find(|a| w.is_org(a))
            .unwrap_or_else(|| m.to.first().map_or(String::new(), |p| p.addr.clone()));
        let arrive = m.time_ms + r.range(300, 3000) as i64;
        push_line(&mut out, &format!("Return-Path: <{}>", m.env_from));
        push_line(&mut out, &format!("Delivered-To: {rcpt}"));
        push_line(&mut out, &format!("Received: from {HOST}.{org} ({HOST}.{org} [10.0.0.25])\n\tby mbox1.{org} with LMTP\n\tid {} (envelope-from <{}>)\n\tfor <{rcpt}>; {}", r.alnum(22, B62), m.env_from, rfc5322_date(arrive), org = w.org));
        if m.dir == Dir::Inbound {
            let domain = m.env_from.rsplit_once('@').map_or("", |x| x.1);
            let (host, ip, helo) = w.client_for(domain);
            let ipl = if ip.contains(':') {
                format!("IPv6:{ip}")
            } else {
                ip.clone()
            };
            let from_domain = m.from.addr.rsplit_once('@').map_or("", |x| x.1);
            push_line(&mut out, &format!("Received: from {helo} ({host} [{ipl}])\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\n\t(No client certificate requested)\n\tby {HOST}.{} (Postfix) with ESMTPS id {qid}\n\tfor <{rcpt}>; {} (JST)", w.org, rfc5322_date(m.time_ms + 800)));
            push_line(&mut out, &format!("Received: from [10.{}.{}.{}] (unknown [10.{0}.{1}.{2}])\n\tby {host} with ESMTPSA id {}\n\tfor <{rcpt}>; {}", r.range(0, 40), r.range(0, 255), r.range(2, 250), r.alnum(12, HEX_LO), rfc5322_date(m.time_ms - 400)));
            let dkim = if m.newsletter.is_some() || r.chance(0.85) {
                "pass"
            } else {
                "none"
            };
            push_line(&mut out, &format!("Authentication-Results: {HOST}.{};\n\tspf=pass smtp.mailfrom={domain};\n\tdkim={dkim} header.d={from_domain};\n\tdmarc=pass (p=none dis=none) header.from={from_domain}", w.org));
        } else {
            let e = m.sender_emp.map(|i| &w.employees[i]);
            let ip = e.map_or("10.1.0.5".to_string(), |e| e.ip.clone());
            let pc = e.map_or("PC-0000".to_string(), |e| e.pc.clone());
            push_line(&mut out, &format!("Received: from {pc} ({}.corp.{} [{ip}])\n\t(Authenticated sender: {})\n\tby {HOST}.{} (Postfix) with ESMTPSA id {qid};\n\t{} (JST)", pc.to_ascii_lowercase(), w.org, m.from.addr, w.org, rfc5322_date(m.time_ms + 800)));
        }
    }
    push_line(&mut out, &format!("Date: {}", rfc5322_date(date_ms)));
    push_line(&mut out, &format!("From: {}", address(&m.from, hdr_cs)));
    if let Some(n) = m.newsletter {
        push_line(
            &mut out,
            &format!(
                "List-Id: {} <{}>",
                if n.display.is_ascii() {
                    n.display
                } else {
                    "list"
                },
                n.list_id
            ),
        );
        push_line(
            &mut out,
            &format!(
                "List-Unsubscribe: <https://{}/unsubscribe?u={}>",
                n.list_id,
                r.alnum(16, HEX_LO)
            ),
        );
        if !n.ml {
            push_line(&mut out, "Precedence: bulk");
        }
    }
    push_line(&mut out, &format!("To: {}", address_list(&m.to, hdr_cs)));
    if !m.cc.is_empty() {
        push_line(&mut out, &format!("Cc: {}", address_list(&m.cc, hdr_cs)));
    }
    if sent_copy && !m.bcc.is_empty() {
        push_line(&mut out, &format!("Bcc: {}", address_list(&m.bcc, hdr_cs)));
    }
    let subject = if m.subject.is_ascii() {
        format!("{}{}", m.subject_prefix, m.subject)
    } else {
        format!("{}{}", m.subject_prefix, encode_words(&m.subject, hdr_cs))
    };
    push_line(&mut out, &format!("Subject: {subject}"));
    push_line(&mut out, &format!("Message-ID: <{}>", m.message_id));
    if let Some(parent) = &m.in_reply_to {
        push_line(&mut out, &format!("In-Reply-To: <{parent}>"));
        push_line(&mut out, &format!("References: <{parent}>"));
    }
    if !m.mailer.is_empty() {
        if m.mailer.starts_with("Mozilla") {
            push_line(&mut out, "User-Agent: Mozilla Thunderbird");
        } else {
            push_line(&mut out, &format!("X-Mailer: {}", m.mailer));
        }
    }
    push_line(&mut out, "MIME-Version: 1.0");
    let has_att = !m.attachments.is_empty();
    if !has_att && !m.html {
        text_part(&mut out, m);
        return out;
    }
    let alt = boundary(m, 1);
    if has_att {
        let mixed = boundary(m, 2);
        push_line(
            &mut out,
            &format!("Content-Type: multipart/mixed;\n boundary=\"{mixed}\""),
        );
        out.push(b'\n');
        push_line(&mut out, "This is a multi-part message in MIME format.");
        out.push(b'\n');
        push_line(&mut out, &format!("--{mixed}"));
        if m.html {
            alternative(&mut out, m, &alt);
        } else {
            text_part(&mut out, m);
        }
        for a in &m.attachments {
            push_line(&mut out, &format!("\n--{mixed}"));
            attachment_part(&mut out, a, &mut r);
        }
        push_line(&mut out, &format!("\n--{mixed}--"));
    } else {
        alternative(&mut out, m, &alt);
    }
    out
}

fn alternative(out: &mut Vec<u8>, m: &Mail, b: &str) {
    push_line(
        out,
        &format!("Content-Type: multipart/alternative;\n boundary=\"{b}\""),
    );
    out.push(b'\n');
    push_line(out, &format!("--{b}"));
    text_part(out, m);
    push_line(out, &format!("\n--{b}"));
    html_part(out, m);
    push_line(out, &format!("\n--{b}--"));
}

fn attachment_part(out: &mut Vec<u8>, a: &AttSpec, r: &mut Rng) {
    let ctype = match a.kind {
        AttKind::Pdf => "application/pdf",
        AttKind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        AttKind::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        AttKind::Zip => {
            if r.chance(0.5) {
                "application/zip"
            } else {
                "application/x-zip-compressed"
            }
        }
    };
    if a.name.is_ascii() {
        push_line(
            out,
            &format!("Content-Type: {ctype};\n name=\"{}\"", a.name),
        );
        push_line(
            out,
            &format!("Content-Disposition: attachment;\n filename=\"{}\"", a.name),
        );
    } else if r.chance(0.5) {
        // Thunderbird / RFC 2231
        push_line(
            out,
            &format!(
                "Content-Type: {ctype};\n name=\"{}\"",
                encode_words(&a.name, Charset::Utf8)
            ),
        );
        push_line(
            out,
            &format!(
                "Content-Disposition: attachment;\n {}",
                rfc2231("filename", &a.name)
            ),
        );
    } else {
        // Outlook / Becky!: encoded-words inside the quotes
        let words = encode_words(&a.name, Charset::Iso2022Jp);
        push_line(out, &format!("Content-Type: {ctype};\n name=\"{words}\""));
        push_line(
            out,
            &format!("Content-Disposition: attachment;\n filename=\"{words}\""),
        );
    }
    push_line(out, "Content-Transfer-Encoding: base64");
    out.push(b'\n');
    let bytes = attachment_bytes(a);
    base64_lines(out, &bytes);
}

/// RFC 2231 `name*=UTF-8''…`, split into `name*0*`, `name*1*`… when long.
fn rfc2231(param: &str, value: &str) -> String {
    let mut enc = String::new();
    let mut pieces = Vec::new();
    for b in value.bytes() {
        let piece = if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            (b as char).to_string()
        } else {
            format!("%{b:02X}")
        };
        if enc.len() + piece.len() > 60 {
            pieces.push(std::mem::take(&mut enc));
        }
        enc.push_str(&piece);
    }
    pieces.push(enc);
    if pieces.len() == 1 {
        return format!("{param}*=UTF-8''{}", pieces[0]);
    }
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 0 {
                format!("{param}*0*=UTF-8''{p}")
            } else {
                format!("{param}*{i}*={p}")
            }
        })
        .collect::<Vec<_>>()
        .join(";\n ")
}

// ---------------------------------------------------------------------------
// Attachments

fn attachment_bytes(a: &AttSpec) -> Vec<u8> {
    let mut r = Rng::new(a.seed);
    match a.kind {
        AttKind::Pdf => pdf_bytes(&mut r, a.size),
        AttKind::Xlsx => office_zip(&mut r, a.size, true),
        AttKind::Docx => office_zip(&mut r, a.size, false),
        AttKind::Zip => {
            let n = a.inner.len().max(1);
            let each = a.size / n;
            let entries: Vec<(String, Vec<u8>)> = a
                .inner
                .iter()
                .map(|name| {
                    let data = if name.ends_with(".pdf") {
                        pdf_bytes(&mut r, each)
                    } else {
                        office_zip(&mut r, each, name.ends_with(".xlsx"))
                    };
                    (name.clone(), data)
                })
                .collect();
            zip_bytes(&mut r, &entries, a.encrypted)
        }
    }
}

fn pdf_bytes(r: &mut Rng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 512);
    out.extend_from_slice(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n");
    out.extend_from_slice(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
    out.extend_from_slice(b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n");
    // some text content (compressible), then a compressed stream (not)
    let text_len = size / 4;
    let mut content = String::new();
    while content.len() < text_len {
        let _ = std::fmt::Write::write_fmt(
            &mut content,
            format_args!(
                "BT /F1 10 Tf {} {} Td ({}) Tj ET\n",
                r.range(40, 500),
                r.range(40, 800),
                r.pick(EN_BODY)
            ),
        );
    }
    out.extend_from_slice(format!("4 0 obj\n<< /Length {} >>\nstream\n", content.len()).as_bytes());
    out.extend_from_slice(content.as_bytes());
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let bin = size.saturating_sub(out.len() + 200);
    out.extend_from_slice(
        format!("6 0 obj\n<< /Length {bin} /Filter /FlateDecode >>\nstream\n").as_bytes(),
    );
    r.fill(&mut out, bin);
    out.extend_from_slice(b"\nendstream\nendobj\n5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n");
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 7\n0000000000 65535 f \ntrailer\n<< /Size 7 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes());
    out
}

fn office_zip(r: &mut Rng, size: usize, sheet: bool) -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    entries.push(("[Content_Types].xml".into(), b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/></Types>".to_vec()));
    entries.push(("_rels/.rels".into(), b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>".to_vec()));
    let mut xml = String::new();
    let text_len = size / 3;
    if sheet {
        xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>");
        let mut row = 1;
        while xml.len() < text_len {
            let (f, g) = (r.index(FAMILY.len()), r.index(GIVEN.len()));
            let _ = std::fmt::Write::write_fmt(
                &mut xml,
                format_args!(
                    "<row r=\"{row}\"><c r=\"A{row}\" t=\"inlineStr\"><is><t>{} {}</t></is></c><c r=\"B{row}\" t=\"inlineStr\"><is><t>{}.{}@example.com</t></is></c><c r=\"C{row}\"><v>{}</v></c></row>",
                    FAMILY[f].0,
                    GIVEN[g].0,
                    GIVEN[g].1,
                    FAMILY[f].1,
                    r.range(1000, 999_999)
                ),
            );
            row += 1;
        }
        xml.push_str("</sheetData></worksheet>");
        entries.push(("xl/workbook.xml".into(), b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheets><sheet name=\"Sheet1\" sheetId=\"1\"/></sheets></workbook>".to_vec()));
        entries.push(("xl/worksheets/sheet1.xml".into(), xml.into_bytes()));
    } else {
        xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>");
        while xml.len() < text_len {
            let _ = std::fmt::Write::write_fmt(
                &mut xml,
                format_args!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", r.pick(JA_BODY)),
            );
        }
        xml.push_str("</w:body></w:document>");
        entries.push(("word/document.xml".into(), xml.into_bytes()));
    }
    let used: usize = entries.iter().map(|e| e.1.len() + e.0.len() + 76).sum();
    let mut media = Vec::new();
    r.fill(&mut media, size.saturating_sub(used + 22));
    entries.push((
        if sheet {
            "xl/media/image1.png"
        } else {
            "word/media/image1.png"
        }
        .into(),
        media,
    ));
    zip_bytes(r, &entries, false)
}

fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// A real zip (method 0, stored). With `encrypted`, entries carry the
/// traditional-encryption flag and a 12-byte header, and their data is
/// random as encrypted data is: the PPAP case.
fn zip_bytes(r: &mut Rng, entries: &[(String, Vec<u8>)], encrypted: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let (dos_time, dos_date) = (
        0x6A00u16 | r.range(0, 0x1F) as u16,
        0x5A61u16 + r.range(0, 20) as u16,
    );
    for (name, data) in entries {
        let offset = out.len() as u32;
        let utf8 = !name.is_ascii();
        let flags: u16 = u16::from(encrypted) | if utf8 { 1 << 11 } else { 0 };
        let crc = crc32(data);
        let stored: Vec<u8> = if encrypted {
            let mut v = Vec::with_capacity(data.len() + 12);
            r.fill(&mut v, data.len() + 12);
            v
        } else {
            data.clone()
        };
        let header = |sig: u32, central: bool| -> Vec<u8> {
            let mut h = Vec::new();
            h.extend_from_slice(&sig.to_le_bytes());
            if central {
                h.extend_from_slice(&0x033Fu16.to_le_bytes()); // made by: UNIX, 6.3
            }
            h.extend_from_slice(&20u16.to_le_bytes());
            h.extend_from_slice(&flags.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&dos_time.to_le_bytes());
            h.extend_from_slice(&dos_date.to_le_bytes());
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            if central {
                h.extend_from_slice(&0u16.to_le_bytes()); // comment
                h.extend_from_slice(&0u16.to_le_bytes()); // disk
                h.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
                h.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend_from_slice(&header(0x0403_4b50, false));
        out.extend_from_slice(&stored);
        central.extend_from_slice(&header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

// ---------------------------------------------------------------------------
// Exchange message tracking logs and the Microsoft 365 extended report
//
// The same company and the same stream of messages as the Postfix log (the
// same `Universe` and `Clock` with the same seed), as an Exchange
// organisation records them:
//
// - **Exchange Server 2019** (`OUT/msgtrk/EX01`, `OUT/msgtrk/EX02`): two
//   mailbox servers in a DAG, each writing the three tracking logs of a
//   2013+ server — `MSGTRK` (Transport: RECEIVE, AGENTINFO, EXPAND, TRANSFER,
//   SENDEXTERNAL, DEFER, FAIL, DSN and the HA* shadow-redundancy events),
//   `MSGTRKMS` (Mailbox Transport Submission: NOTIFYMAPI, SUBMIT) and
//   `MSGTRKMD` (Mailbox Transport Delivery: DELIVER, STOREDRIVER DEFER) — in
//   files named `MSGTRKyyyymmddhh-N.LOG` that roll at 10 MB (Exchange's
//   `MessageTrackingLogMaxFileSize`) and at midnight UTC, each starting
//   with the W3C header block (BOM, `#Software`, `#Version`, `#Log-type`,
//   `#Date`, the 30 `#Fields`), CRLF line ends. Inbound mail comes through
//   the front end (client-ip is our own server, the real client in
//   `original-client-ip` and `ProxiedClientIPAddress`); mailbox mail is
//   submitted by STOREDRIVER with To/Cc/Bcc as recipient status; internal
//   recipients get a DELIVER on the server that holds their mailbox
//   (employees alternate between the two), external ones a SENDEXTERNAL per
//   destination domain. ~8.5 % of destinations defer 1–3 times (retries at
//   most 15 minutes apart) before they take the message, ~3 % reject one
//   recipient (FAIL, then a DSN message to the sender and its DELIVER), a
//   few expire after two days of DEFERs (Exchange's
//   `MessageExpirationTimeout`); 1 % of inbound mail names an unknown
//   recipient (ROUTING FAIL and a DSN back out); department lists are
//   expanded (EXPAND with the group as related recipient, then TRANSFER to a
//   new internal id); 0.5 % of mailbox deliveries are deferred by the store
//   first. Subjects are the Japanese and English ones of the Postfix log,
//   some with commas or quotes (CSV-quoted as Exchange does); addresses of
//   Google and Microsoft 365 hosted partners are IPv6, local hops
//   `fe80::…%N`.
// - **Microsoft 365 historical search, extended report**
//   (`OUT/m365/extended_report.csv`): the same events as Exchange Online
//   writes them, one row per event with the 27 `snake_case` columns of the
//   report (`date_time_utc` … `custom_data`), sorted by time, UTF-8, CRLF;
//   servers are a pool of `TYCPR01MB…` mailbox servers with IPv6 addresses,
//   the tenant id is on every row, no NOTIFYMAPI (it has no message id) and
//   HA* only rarely.
//
// Next to each output the generator writes what it knows
// (`msgtrk-truth.json`, `m365-truth.json`): files, lines, bytes, messages
// (originals and DSNs, each with its own Message-ID and network message id),
// events by id, and the delivery counts `mailtrail stats` must show after an
// import into an empty store, following the decoders' documented mapping:
// RECEIVE → received; DELIVER, SEND, SENDEXTERNAL → delivered per
// recipient; FAIL → bounced (message tracking) or failed (message trace);
// EXPAND → expanded per member; DEFER → deferred per recipient, for
// message tracking once per message, recipient and server (one `mailtrail
// import` of the folder decodes its files as one stream in time order and
// folds repeated deferrals; the retries here are at most 15 minutes apart,
// well inside the decoder's 30-minute window), for the report once per row.

/// What to generate for Exchange Server and Exchange Online.
#[derive(Debug, Clone, Default)]
pub struct ExchangeOptions {
    /// write `OUT/msgtrk/EX0n/MSGTRK*.LOG`, about this many bytes in all
    pub msgtrk_bytes: Option<u64>,
    /// size at which a tracking log rolls over (0: Exchange's default, 10 MB)
    pub msgtrk_file_bytes: u64,
    /// write `OUT/m365/extended_report.csv` with about this many rows
    pub m365_rows: Option<u64>,
}

/// One Exchange output and what an import of it must give.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ExchangeTruth {
    /// `msgtrk` or `m365-extended`
    pub format: &'static str,
    pub path: PathBuf,
    pub files: u64,
    pub bytes: u64,
    /// every line, headers included
    pub lines: u64,
    /// header lines (`#…` of each tracking log, the report's column names)
    pub header_lines: u64,
    /// event lines / report rows
    pub events: u64,
    /// distinct messages (originals and DSNs)
    pub messages: u64,
    pub dsn_messages: u64,
    pub by_event: std::collections::BTreeMap<String, u64>,
    /// HA* lines (shadow redundancy: no deliveries)
    pub shadow_lines: u64,
    /// NOTIFYMAPI lines (no message id: not placed)
    pub lines_without_ids: u64,
    /// `mailtrail stats` deliveries by status after importing this output alone
    pub expected_deliveries: std::collections::BTreeMap<String, u64>,
}

/// What [`generate_exchange`] wrote.
#[derive(Debug, Clone, Default)]
pub struct ExchangeSummary {
    pub msgtrk: Option<ExchangeTruth>,
    pub m365: Option<ExchangeTruth>,
}

impl fmt::Display for ExchangeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in [&self.msgtrk, &self.m365].into_iter().flatten() {
            if !first {
                writeln!(f)?;
            }
            first = false;
            let deliveries: Vec<String> = t
                .expected_deliveries
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            write!(
                f,
                "{}: {} file(s), {} lines ({} events), {} bytes, {} messages ({} DSNs); deliveries: {}\n  {}",
                t.format,
                t.files,
                t.lines,
                t.events,
                t.bytes,
                t.messages,
                t.dsn_messages,
                deliveries.join(", "),
                t.path.display()
            )?;
        }
        Ok(())
    }
}

/// Exchange's default `MessageTrackingLogMaxFileSize`.
pub const MSGTRK_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Exchange's default `MessageExpirationTimeout`.
const EXCHANGE_EXPIRY_MS: i64 = 2 * DAY_MS;
const EXCHANGE_VERSION: &str = "15.02.1544.004";
const MSGTRK_FIELDS: &str = "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version";
const M365_EXTENDED_COLUMNS: &str = "date_time_utc,client_ip,client_hostname,server_ip,server_hostname,source_context,connector_id,source,event_id,internal_message_id,message_id,network_message_id,recipient_address,recipient_status,total_bytes,recipient_count,related_recipient_address,reference,message_subject,sender_address,return_path,message_info,directionality,tenant_id,original_client_ip,original_server_ip,custom_data";

/// `"1G"`, `"100M"`, `"64k"`, `"1000000"` (powers of 1000; `Gi`, `Mi`, `Ki` of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is no size (e.g. 1G, 100M, 1000000)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().trim_end_matches('b') {
        "" => 1,
        "k" => 1000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit (use k, M, G, Ki, Mi, Gi)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Write the Exchange message tracking logs and/or the Microsoft 365
/// extended report asked for, and a truth file next to each. Refuses to
/// overwrite existing outputs.
pub fn generate_exchange(
    opts: &GenerateOptions,
    ex: &ExchangeOptions,
    out: &Path,
) -> Result<ExchangeSummary> {
    if opts.employees == 0 {
        bail!("employees must be at least 1");
    }
    if opts.days == 0 {
        bail!("days must be at least 1");
    }
    let org = opts
        .org_domain
        .trim()
        .trim_start_matches('@')
        .to_ascii_lowercase();
    if org.is_empty() || org.contains(|c: char| c.is_whitespace() || c == '@' || c == '/') {
        bail!("invalid organisation domain {:?}", opts.org_domain);
    }
    let mut summary = ExchangeSummary::default();
    let targets = [
        (ex.msgtrk_bytes, false, "msgtrk", "msgtrk-truth.json"),
        (ex.m365_rows, true, "m365", "m365-truth.json"),
    ];
    for (target, _, dir, truth) in targets {
        if target.is_some() {
            for p in [out.join(dir), out.join(truth)] {
                if p.exists() {
                    bail!(
                        "{} already exists; remove it or choose another folder",
                        p.display()
                    );
                }
            }
        }
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let world = World::new(opts.seed, opts.employees, &org);
    for (target, online, dir, truth_name) in targets {
        let Some(target) = target else { continue };
        let file_bytes = match ex.msgtrk_file_bytes {
            0 => MSGTRK_FILE_BYTES,
            n => n.max(4096),
        };
        let mut truth = exchange_pass(
            opts,
            &world,
            &org,
            online,
            target,
            file_bytes,
            &out.join(dir),
        )?;
        // relative to OUT, where the truth file is
        if let Ok(rel) = truth.path.strip_prefix(out) {
            truth.path = rel.to_path_buf();
        }
        let path = out.join(truth_name);
        let json = serde_json::to_string_pretty(&truth)?;
        fs::write(&path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        if online {
            summary.m365 = Some(truth);
        } else {
            summary.msgtrk = Some(truth);
        }
    }
    Ok(summary)
}

fn exchange_pass(
    opts: &GenerateOptions,
    world: &World,
    org: &str,
    online: bool,
    target: u64,
    file_bytes: u64,
    dir: &Path,
) -> Result<ExchangeTruth> {
    let start_ms = opts.start.timestamp_millis();
    let end_ms = start_ms + i64::from(opts.days) * DAY_MS;
    let mut flows = Flows::new(world, org, online, opts.seed, end_ms);
    let mut out = ExWriter::create(dir, online, file_bytes, &flows.servers)?;
    // bytes (tracking logs) or rows (report) of one message, until measured
    let initial_per_message = if online { 7.0 } else { 5500.0 };
    let mut clock = Clock::new(
        start_ms,
        opts.days,
        opts.timezone,
        target as f64 / initial_per_message,
        opts.seed,
    );
    let mut universe = Universe::new(opts.seed);
    let mut k: u64 = 0;
    while flows.pushed() < target {
        let per = if flows.messages >= 50 {
            flows.pushed() as f64 / flows.messages as f64
        } else {
            initial_per_message
        };
        let remaining = (target - flows.pushed()) as f64 / per.max(1.0);
        let t = clock.next_arrival(remaining);
        let (local_hour, weekend) = clock.local_hour(t);
        let mail = universe.next(world, k, t, local_hour, weekend);
        k += 1;
        flows.flush_until(t, &mut out)?;
        flows.mail(&mail, estimate_size(&mail));
    }
    flows.flush_until(i64::MAX, &mut out)?;
    let mut truth = out.finish()?;
    truth.messages = flows.messages;
    truth.dsn_messages = flows.dsns;
    Ok(truth)
}

#[derive(Clone)]
struct ExServer {
    /// short name (`EX01`, `TYCPR01MB0042`)
    name: String,
    fqdn: String,
    ip: String,
    /// how the server names itself on local hops (`fe80::…%N`, or its IPv6)
    local_ip: String,
    db: String,
}

/// What every event of one message carries.
struct ExMsg {
    mid: String,
    nmid: String,
    subject: String,
    sender: String,
    return_path: String,
    size: u64,
    directionality: &'static str,
}

/// One event line, the message fields aside.
#[derive(Default)]
struct ExRow {
    client_ip: String,
    client_host: String,
    server_ip: String,
    server_host: String,
    context: String,
    connector: String,
    source: &'static str,
    event: &'static str,
    internal: String,
    rcpts: Vec<String>,
    statuses: String,
    rcpt_count: String,
    related: String,
    reference: String,
    info: String,
    orig_client_ip: String,
    orig_server_ip: String,
    custom: String,
    /// NOTIFYMAPI: no message id, subject or size yet
    no_ids: bool,
    /// SUBMIT: no size
    no_size: bool,
}

/// What a line counts for in the truth file.
struct ExTag {
    event: &'static str,
    recipients: u32,
    /// DEFER: `nmid|server|recipient` per recipient
    defer_keys: Vec<String>,
}

struct Pending {
    t: i64,
    seq: u64,
    stream: usize,
    line: String,
    tag: ExTag,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.t, self.seq) == (other.t, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.t, self.seq).cmp(&(other.t, other.seq))
    }
}

/// The three tracking logs of a 2013+ server.
const TRK: usize = 0;
const TRK_MS: usize = 1;
const TRK_MD: usize = 2;
const TRK_PREFIXES: [&str; 3] = ["MSGTRK", "MSGTRKMS", "MSGTRKMD"];

/// `2025-11-10T00:00:01.100Z`
fn iso_ms(ms: i64) -> String {
    let d = utc(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        ms.rem_euclid(1000)
    )
}

/// A field as Exchange writes CSV: quoted when it holds a comma or a quote.
fn csv_push(out: &mut String, v: &str) {
    if v.contains([',', '"']) {
        out.push('"');
        for c in v.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(v);
    }
}

fn guid(r: &mut Rng) -> String {
    let (a, b) = (r.next_u64(), r.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

struct Flows<'w> {
    w: &'w World,
    online: bool,
    r: Rng,
    servers: Vec<ExServer>,
    /// employee address → index of the server holding the mailbox
    home: std::collections::HashMap<String, usize>,
    next_internal: Vec<u64>,
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    pushed_lines: u64,
    pushed_bytes: u64,
    messages: u64,
    dsns: u64,
    end_ms: i64,
    org: String,
    tenant: String,
    system_mailbox: String,
    mapi_event: u64,
}

impl<'w> Flows<'w> {
    fn new(w: &'w World, org: &str, online: bool, seed: u64, end_ms: i64) -> Flows<'w> {
        let mut r = Rng::new(mix(seed, if online { 0x0365 } else { 0xe8c4 }));
        let servers: Vec<ExServer> = if online {
            (0..16)
                .map(|i| {
                    let name = format!("TYCPR01MB{:04}", r.range(1000, 9999));
                    let ip = format!("2001:db8:400:{:x}::{:x}", 0x10 + i, r.range(2, 250));
                    ExServer {
                        fqdn: format!("{name}.jpnprd01.prod.outlook.com"),
                        name,
                        local_ip: ip.clone(),
                        ip,
                        db: guid(&mut r),
                    }
                })
                .collect()
        } else {
            (1..=2)
                .map(|i| ExServer {
                    name: format!("EX{i:02}"),
                    fqdn: format!("EX{i:02}.{org}"),
                    ip: format!("10.0.1.{}", 10 + i),
                    local_ip: format!(
                        "fe80::{:x}:{:x}%{}",
                        r.range(0x1000, 0xffff),
                        r.range(0x1000, 0xffff),
                        r.range(3, 12)
                    ),
                    db: guid(&mut r),
                })
                .collect()
        };
        let mut home = std::collections::HashMap::new();
        for (i, e) in w.employees.iter().enumerate() {
            home.insert(e.party.addr.clone(), i % servers.len());
        }
        let next_internal = (0..servers.len())
            .map(|_| r.range(10_000_000_000_000, 90_000_000_000_000))
            .collect();
        let tenant = if online { guid(&mut r) } else { String::new() };
        Flows {
            w,
            online,
            servers,
            home,
            next_internal,
            heap: BinaryHeap::new(),
            seq: 0,
            pushed_lines: 0,
            pushed_bytes: 0,
            messages: 0,
            dsns: 0,
            end_ms,
            org: org.to_string(),
            tenant,
            system_mailbox: format!("MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@{org}"),
            mapi_event: r.range(100_000_000, 200_000_000),
            r,
        }
    }

    /// Bytes (tracking logs) or rows (report) pushed so far.
    fn pushed(&self) -> u64 {
        if self.online {
            self.pushed_lines
        } else {
            self.pushed_bytes
        }
    }

    fn stream(&self, server: usize, log: usize) -> usize {
        if self.online {
            0
        } else {
            server * 3 + log
        }
    }

    fn internal_id(&mut self, server: usize) -> String {
        self.next_internal[server] += 1;
        self.next_internal[server].to_string()
    }

    fn nmid(&mut self, t: i64) -> String {
        let a = self.r.next_u64();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-08de{:08x}",
            a >> 32,
            (a >> 16) & 0xffff,
            0x4000 | (a & 0x0fff),
            0x8000 | ((a >> 20) & 0x0fff),
            (t / 1000) as u32
        )
    }

    fn hex16(&mut self) -> String {
        format!("{:016X}", self.r.next_u64())
    }

    fn home_of(&mut self, addr: &str) -> usize {
        match self.home.get(addr) {
            Some(&s) => s,
            None => self.r.index(self.servers.len()),
        }
    }

    fn push(&mut self, t: i64, stream: usize, m: &ExMsg, row: ExRow, defer_keys: Vec<String>) {
        let mut line = String::with_capacity(768);
        let size = if row.no_ids || row.no_size || m.size == 0 {
            String::new()
        } else {
            m.size.to_string()
        };
        let (mid, nmid, subject, return_path, directionality) = if row.no_ids {
            ("", "", "", "", "")
        } else {
            (
                m.mid.as_str(),
                m.nmid.as_str(),
                m.subject.as_str(),
                m.return_path.as_str(),
                m.directionality,
            )
        };
        let rcpts = row.rcpts.join(";");
        let fields: [&str; 27] = [
            &iso_ms(t),
            &row.client_ip,
            &row.client_host,
            &row.server_ip,
            &row.server_host,
            &row.context,
            &row.connector,
            row.source,
            row.event,
            &row.internal,
            mid,
            nmid,
            &rcpts,
            &row.statuses,
            &size,
            &row.rcpt_count,
            &row.related,
            &row.reference,
            subject,
            &m.sender,
            return_path,
            &row.info,
            directionality,
            &self.tenant,
            &row.orig_client_ip,
            &row.orig_server_ip,
            &row.custom,
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            csv_push(&mut line, f);
        }
        if !self.online {
            line.push_str(",Email,");
            line.push_str(&guid(&mut self.r));
            line.push(',');
            line.push_str(EXCHANGE_VERSION);
        }
        self.pushed_lines += 1;
        self.pushed_bytes += line.len() as u64 + 2;
        let tag = ExTag {
            event: row.event,
            recipients: row.rcpts.len() as u32,
            defer_keys,
        };
        self.heap.push(Reverse(Pending {
            t,
            seq: self.seq,
            stream,
            line,
            tag,
        }));
        self.seq += 1;
    }

    fn flush_until(&mut self, t: i64, out: &mut ExWriter) -> Result<()> {
        while self.heap.peek().is_some_and(|Reverse(p)| p.t <= t) {
            if let Some(Reverse(p)) = self.heap.pop() {
                out.write(p)?;
            }
        }
        Ok(())
    }

    /// Where the sender's client connects from: the LAN, or (10 %) IPv6 from home.
    fn client_of(&mut self, emp: usize) -> String {
        if self.r.chance(0.1) {
            format!("2001:db8:1f00:{:x}::{:x}", emp / 100 + 1, emp % 100 + 2)
        } else if self.online {
            format!("198.51.100.{}", 200 + emp % 50)
        } else {
            self.w.employees[emp].ip.clone()
        }
    }

    fn subject_of(&mut self, m: &Mail) -> String {
        let s = m.full_subject();
        let x = self.r.unit();
        if x < 0.05 {
            format!("{s}, 第2版")
        } else if x < 0.07 {
            format!("{s} \"ご確認\"")
        } else if x < 0.09 {
            format!("（再送）{s}")
        } else if x < 0.10 && s.is_ascii() {
            format!("{s} - {ORG_NAME_EN}")
        } else {
            s
        }
    }

    fn mdb_context(&mut self, s: usize, t: i64, with_conn: bool) -> String {
        self.mapi_event += self.r.range(1, 40);
        let client = *self.r.pick(&["OWA", "MOMT", "MOMT", "MOMT", "AirSync"]);
        let mut c = format!(
            "MDB:{}, Mailbox:{}, Event:{}, MessageClass:IPM.Note, CreationTime:{}, ClientType:{client}, SubmissionAssistant:MailboxTransportSubmissionEmailAssistant",
            self.servers[s].db,
            guid(&mut self.r),
            self.mapi_event,
            iso_ms(t)
        );
        if with_conn {
            c.push_str(", ServerMdbConnectionId:");
            c.push_str(&self.hex16());
        }
        c
    }

    /// The whole life of one message in the tracking logs (or the report).
    fn mail(&mut self, m: &Mail, size: u64) {
        self.messages += 1;
        let online = self.online;
        let t0 = m.time_ms;
        let sender_emp = m.sender_emp;
        let originating = sender_emp.is_some();
        let n = self.servers.len();
        let s = if originating {
            self.home_of(&m.from.addr)
        } else {
            self.r.index(n)
        };
        let shadow = (s + 1) % n;
        let nmid = self.nmid(t0);
        let msg = ExMsg {
            mid: format!("<{}>", m.message_id),
            nmid,
            subject: self.subject_of(m),
            sender: m.from.addr.clone(),
            return_path: m.env_from.clone(),
            size,
            directionality: if originating {
                "Originating"
            } else {
                "Incoming"
            },
        };
        // recipients as addressed (lists unexpanded) with To/Cc/Bcc, and the envelope
        let mut written: Vec<(String, &'static str)> = Vec::new();
        let mut seen = HashSet::new();
        for (parties, kind) in [(&m.to, "To"), (&m.cc, "Cc"), (&m.bcc, "Bcc")] {
            for p in parties {
                if seen.insert(p.addr.clone()) {
                    written.push((p.addr.clone(), kind));
                }
            }
        }
        let unknown = (!originating && self.r.chance(0.01)).then(|| {
            let (f, g) = (self.r.index(FAMILY.len()), self.r.index(GIVEN.len()));
            format!("{}.{}x@{}", GIVEN[g].1, FAMILY[f].1, self.org)
        });
        if let Some(u) = &unknown {
            written.push((u.clone(), ""));
        }
        let envelope = m.envelope();
        let sv = self.servers[s].clone();
        let iid = self.internal_id(s);
        let mut t = t0;
        if let Some(emp) = sender_emp {
            let client = self.client_of(emp);
            if !online {
                let created = t0 - self.r.range(20, 80) as i64;
                let context = self.mdb_context(s, created, false);
                let info = format!(
                    "{};LSRV={}:TOTAL-SUB={:.3}|SA={:.3}|MTSS-PEN=0.000",
                    iso_ms(t0 - 50),
                    sv.fqdn,
                    self.r.range(20, 90) as f64 / 1000.0,
                    self.r.range(10, 60) as f64 / 1000.0
                );
                let custom = format!(
                    "S:ItemEntryId=00-00-00-00-{:02X}-{:02X}",
                    self.r.below(256),
                    self.r.below(256)
                );
                self.push(
                    t0,
                    self.stream(s, TRK_MS),
                    &msg,
                    ExRow {
                        client_ip: sv.local_ip.clone(),
                        client_host: sv.name.clone(),
                        context,
                        source: "STOREDRIVER",
                        event: "NOTIFYMAPI",
                        info,
                        custom,
                        no_ids: true,
                        ..ExRow::default()
                    },
                    Vec::new(),
                );
            }
            t = t0 + self.r.range(60, 400) as i64;
            let context = self.mdb_context(s, t0 - 50, true);
            let statuses: Vec<&str> = written.iter().map(|w| w.1).collect();
            let row = ExRow {
                client_ip: if online {
                    client.clone()
                } else {
                    sv.local_ip.clone()
                },
                client_host: sv.fqdn.clone(),
                server_ip: sv.local_ip.clone(),
                server_host: sv.name.clone(),
                context: context.clone(),
                source: "STOREDRIVER",
                event: "RECEIVE",
                internal: iid.clone(),
                rcpts: written.iter().map(|w| w.0.clone()).collect(),
                statuses: statuses.join(";"),
                rcpt_count: written.len().to_string(),
                info: "04I: ".to_string(),
                orig_client_ip: client,
                orig_server_ip: self.servers[shadow].local_ip.clone(),
                custom: format!(
                    "S:MailboxDatabaseGuid={};S:DeliveryPriority=Normal;S:AccountForest={}",
                    sv.db, self.org
                ),
                ..ExRow::default()
            };
            self.push(t, self.stream(s, TRK), &msg, row, Vec::new());
            let ts = t + self.r.range(5, 80) as i64;
            self.push(
                ts,
                self.stream(s, TRK_MS),
                &msg,
                ExRow {
                    client_host: sv.name.clone(),
                    context,
                    source: "STOREDRIVER",
                    event: "SUBMIT",
                    rcpt_count: written.len().to_string(),
                    no_size: true,
                    ..ExRow::default()
                },
                Vec::new(),
            );
        } else {
            let domain = m.env_from.rsplit_once('@').map_or("", |x| x.1);
            let (host, ip, _) = self.w.client_for(domain);
            let row = if online {
                ExRow {
                    client_ip: ip.clone(),
                    client_host: host.clone(),
                    server_ip: sv.ip.clone(),
                    server_host: sv.name.clone(),
                    context: format!("{};{};0", self.hex16(), iso_ms(t0 - 180)),
                    source: "SMTP",
                    event: "RECEIVE",
                    internal: iid.clone(),
                    rcpts: written.iter().map(|w| w.0.clone()).collect(),
                    rcpt_count: written.len().to_string(),
                    info: "0cI: ".to_string(),
                    orig_client_ip: ip.clone(),
                    custom: "S:FromEntity=Internet;S:ToEntity=Hosted;S:DeliveryPriority=Normal;S:SFV=NSPM;S:SCL=1".to_string(),
                    ..ExRow::default()
                }
            } else {
                ExRow {
                    client_ip: sv.ip.clone(),
                    client_host: sv.fqdn.clone(),
                    server_ip: sv.ip.clone(),
                    server_host: sv.name.clone(),
                    context: format!("{};{};0", self.hex16(), iso_ms(t0 - 180)),
                    connector: format!("{}\\Default {}", sv.name, sv.name),
                    source: "SMTP",
                    event: "RECEIVE",
                    internal: iid.clone(),
                    rcpts: written.iter().map(|w| w.0.clone()).collect(),
                    rcpt_count: written.len().to_string(),
                    info: "0cA: ".to_string(),
                    orig_client_ip: ip.clone(),
                    orig_server_ip: sv.ip.clone(),
                    custom: format!(
                        "S:ProxyHop1={}({});S:FromEntity=Internet;S:ProxiedClientIPAddress={ip};S:ProxiedClientHostname={host};S:DeliveryPriority=Normal;S:AccountForest={}",
                        sv.fqdn, sv.ip, self.org
                    ),
                    ..ExRow::default()
                }
            };
            self.push(t0, self.stream(s, TRK), &msg, row, Vec::new());
        }
        let all: Vec<String> = envelope.iter().map(|e| e.0.clone()).collect();
        // shadow redundancy: a copy on the other server until delivery is done
        let mut shadow_iid = None;
        if !online || self.r.chance(0.03) {
            let th = t + self.r.range(50, 300) as i64;
            let other = self.servers[shadow].clone();
            let siid = self.internal_id(shadow);
            let context = format!(
                "{} = 250 2.6.0 {} [InternalId={siid}, Hostname={}] Queued mail for redundancy",
                other.fqdn, msg.mid, other.fqdn
            );
            self.push(
                th,
                self.stream(s, TRK),
                &msg,
                ExRow {
                    server_host: sv.name.clone(),
                    context,
                    source: "SMTP",
                    event: "HAREDIRECT",
                    internal: iid.clone(),
                    rcpts: all.clone(),
                    rcpt_count: all.len().to_string(),
                    ..ExRow::default()
                },
                Vec::new(),
            );
            if !online {
                let tr = th + self.r.range(5, 60) as i64;
                let context = format!("{};{};0", self.hex16(), iso_ms(th));
                self.push(
                    tr,
                    self.stream(shadow, TRK),
                    &msg,
                    ExRow {
                        client_ip: sv.ip.clone(),
                        client_host: sv.fqdn.clone(),
                        server_ip: other.ip.clone(),
                        server_host: other.name.clone(),
                        context,
                        connector: format!("{}\\Default {}", other.name, other.name),
                        source: "SMTP",
                        event: "HARECEIVE",
                        internal: siid.clone(),
                        rcpts: all.clone(),
                        rcpt_count: all.len().to_string(),
                        ..ExRow::default()
                    },
                    Vec::new(),
                );
                shadow_iid = Some(siid);
            }
        }
        if self.r.chance(if originating { 0.4 } else { 0.85 }) {
            let custom = if originating {
                format!(
                    "S:TRA=ETR|ruleId={}|st={}|action=SetHeader;S:CompCost=|ETR=0;S:DeliveryPriority=Normal",
                    guid(&mut self.r),
                    iso_ms(t - DAY_MS)
                )
            } else {
                format!(
                    "S:CompCost=|ETR=0;S:DeliveryPriority=Normal;S:SFV=NSPM;S:SCL={};S:AMA=SUM|v=1|action=|error=|atch={}",
                    self.r.range(0, 1),
                    m.attachments.len()
                )
            };
            let ta = t + self.r.range(100, 600) as i64;
            self.push(
                ta,
                self.stream(s, TRK),
                &msg,
                ExRow {
                    client_host: sv.name.clone(),
                    source: "AGENT",
                    event: "AGENTINFO",
                    internal: iid.clone(),
                    rcpts: all.clone(),
                    custom,
                    ..ExRow::default()
                },
                Vec::new(),
            );
        }
        let route = t + self.r.range(600, 1500) as i64;
        let mut last = route;
        let mut deliver_iid = iid.clone();
        if let Some(u) = &unknown {
            let dsn_mid = format!("<{}@{}>", self.hex16(), sv.fqdn);
            self.push(
                route,
                self.stream(s, TRK),
                &msg,
                ExRow {
                    server_host: sv.name.clone(),
                    source: "ROUTING",
                    event: "FAIL",
                    internal: iid.clone(),
                    rcpts: vec![u.clone()],
                    statuses: "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup".to_string(),
                    rcpt_count: "1".to_string(),
                    reference: dsn_mid.clone(),
                    ..ExRow::default()
                },
                Vec::new(),
            );
            if m.env_from.contains('@') {
                let end = self.dsn(route + 100, s, &msg, &m.env_from, dsn_mid);
                last = last.max(end);
            }
        }
        if let Some((list, _)) = &m.list {
            let expanded: Vec<String> = envelope
                .iter()
                .filter(|(_, o)| o.as_deref() == Some(list.as_str()))
                .map(|(a, _)| a.clone())
                .collect();
            if !expanded.is_empty() {
                self.push(
                    route,
                    self.stream(s, TRK),
                    &msg,
                    ExRow {
                        server_host: sv.name.clone(),
                        source: "ROUTING",
                        event: "EXPAND",
                        internal: iid.clone(),
                        rcpt_count: expanded.len().to_string(),
                        rcpts: expanded,
                        statuses: "250 2.1.5 RESOLVER.GRP.Expanded; distribution list expanded"
                            .to_string(),
                        related: list.clone(),
                        ..ExRow::default()
                    },
                    Vec::new(),
                );
                let new_iid = self.internal_id(s);
                let internal_rcpts: Vec<String> =
                    all.iter().filter(|a| self.w.is_org(a)).cloned().collect();
                let tt = route + self.r.range(5, 60) as i64;
                self.push(
                    tt,
                    self.stream(s, TRK),
                    &msg,
                    ExRow {
                        server_host: sv.name.clone(),
                        source: "ROUTING",
                        event: "TRANSFER",
                        internal: iid.clone(),
                        statuses: ";".repeat(internal_rcpts.len().saturating_sub(1)),
                        rcpt_count: internal_rcpts.len().to_string(),
                        rcpts: internal_rcpts,
                        reference: new_iid.clone(),
                        ..ExRow::default()
                    },
                    Vec::new(),
                );
                deliver_iid = new_iid;
            }
        }
        // mailbox deliveries, one DELIVER per mailbox server
        let mut groups: std::collections::BTreeMap<usize, Vec<String>> = Default::default();
        for (a, _) in &envelope {
            if self.w.is_org(a) {
                let x = self.home_of(a);
                groups.entry(x).or_default().push(a.clone());
            }
        }
        for (x, addrs) in groups {
            let mut at = route + self.r.range(200, 3000) as i64;
            if self.r.chance(0.005) {
                let status = "432 4.3.2 STOREDRV.Deliver; mailbox database thread limit exceeded"
                    .to_string();
                let xs = self.servers[x].name.clone();
                let keys = addrs
                    .iter()
                    .map(|a| format!("{}|{xs}|{a}", msg.nmid))
                    .collect();
                self.push(
                    at,
                    self.stream(x, TRK_MD),
                    &msg,
                    ExRow {
                        server_host: xs,
                        context: format!("[{{LED={status}}}]"),
                        source: "STOREDRIVER",
                        event: "DEFER",
                        internal: deliver_iid.clone(),
                        rcpt_count: addrs.len().to_string(),
                        rcpts: addrs.clone(),
                        statuses: status,
                        ..ExRow::default()
                    },
                    keys,
                );
                at += self.r.range(60_000, 600_000) as i64;
            }
            self.deliver(at, s, x, &msg, &deliver_iid, addrs, t0);
            last = last.max(at);
        }
        // external destinations, one connection per domain
        if originating {
            let mut domains: Vec<(String, Vec<String>)> = Vec::new();
            for (a, _) in &envelope {
                if self.w.is_org(a) {
                    continue;
                }
                let d = a.rsplit_once('@').map_or("", |x| x.1).to_string();
                match domains.iter_mut().find(|(dd, _)| *dd == d) {
                    Some((_, g)) => g.push(a.clone()),
                    None => domains.push((d, vec![a.clone()])),
                }
            }
            let mut bounced = false;
            let mut expired = false;
            let can_expire = t0 + EXCHANGE_EXPIRY_MS + HOUR_MS < self.end_ms;
            for (d, group) in domains {
                let x = self.r.unit();
                let mut at = route + self.r.range(300, 3000) as i64;
                if x < 0.085 {
                    let reason = self.defer_reason(&d);
                    for _ in 0..self.r.range(1, 3) {
                        self.defer(at, s, &msg, &iid, &d, &group, &reason);
                        at += self.r.range(300_000, 900_000) as i64;
                    }
                    self.send_external(at, s, &msg, &iid, &d, group, t);
                } else if x < 0.115 && !bounced {
                    bounced = true;
                    let victim = group[self.r.index(group.len())].clone();
                    let others: Vec<String> =
                        group.iter().filter(|a| **a != victim).cloned().collect();
                    if !others.is_empty() {
                        self.send_external(at, s, &msg, &iid, &d, others, t);
                    }
                    at += self.r.range(50, 500) as i64;
                    let (relay, rip) = self.w.relay_for(&d);
                    let dsn_mid = format!("<{}@{}>", self.hex16(), sv.fqdn);
                    let status = format!("550 5.1.1 <{victim}>: Recipient address rejected: User unknown in virtual mailbox table");
                    self.push(
                        at,
                        self.stream(s, TRK),
                        &msg,
                        ExRow {
                            client_ip: sv.ip.clone(),
                            client_host: sv.name.clone(),
                            server_ip: rip.clone(),
                            server_host: relay.clone(),
                            context: format!(
                                "[{{LRT=}};{{LED={status}}};{{FQDN={relay}}};{{IP={rip}}}]"
                            ),
                            connector: "Outbound to Internet".to_string(),
                            source: "SMTP",
                            event: "FAIL",
                            internal: iid.clone(),
                            rcpts: vec![victim],
                            statuses: status,
                            rcpt_count: "1".to_string(),
                            reference: dsn_mid.clone(),
                            ..ExRow::default()
                        },
                        Vec::new(),
                    );
                    at = self.dsn(at + 50, s, &msg, &m.from.addr, dsn_mid);
                } else if x < 0.1165 && can_expire && !expired {
                    expired = true;
                    let reason = self.defer_reason(&d);
                    while at < t0 + EXCHANGE_EXPIRY_MS {
                        self.defer(at, s, &msg, &iid, &d, &group, &reason);
                        at += self.r.range(600_000, 900_000) as i64;
                    }
                    let dsn_mid = format!("<{}@{}>", self.hex16(), sv.fqdn);
                    let status = format!(
                        "550 4.4.7 QUEUE.Expired; message expired [LastAttemptedServerName={d}]"
                    );
                    self.push(
                        at,
                        self.stream(s, TRK),
                        &msg,
                        ExRow {
                            client_host: sv.name.clone(),
                            server_host: d.clone(),
                            context: format!("[{{LED={reason}}};{{FQDN={d}}}]"),
                            connector: "Outbound to Internet".to_string(),
                            source: "SMTP",
                            event: "FAIL",
                            internal: iid.clone(),
                            rcpt_count: group.len().to_string(),
                            rcpts: group,
                            statuses: status,
                            reference: dsn_mid.clone(),
                            ..ExRow::default()
                        },
                        Vec::new(),
                    );
                    at = self.dsn(at + 50, s, &msg, &m.from.addr, dsn_mid);
                } else {
                    self.send_external(at, s, &msg, &iid, &d, group, t);
                }
                last = last.max(at);
            }
        }
        if let Some(siid) = shadow_iid {
            let other = self.servers[shadow].name.clone();
            let td = last + self.r.range(1000, 20_000) as i64;
            self.push(
                td,
                self.stream(shadow, TRK),
                &msg,
                ExRow {
                    server_host: other,
                    source: "REDUNDANCY",
                    event: "HADISCARD",
                    internal: siid,
                    rcpt_count: all.len().to_string(),
                    rcpts: all,
                    ..ExRow::default()
                },
                Vec::new(),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        at: i64,
        hub: usize,
        x: usize,
        msg: &ExMsg,
        iid: &str,
        addrs: Vec<String>,
        t_org: i64,
    ) {
        let (h, mbx) = (self.servers[hub].clone(), self.servers[x].clone());
        let latency = (at - t_org) as f64 / 1000.0;
        let row = ExRow {
            client_ip: if self.online {
                String::new()
            } else {
                h.local_ip.clone()
            },
            client_host: if self.online {
                String::new()
            } else {
                h.name.clone()
            },
            server_ip: mbx.local_ip.clone(),
            server_host: mbx.fqdn.clone(),
            context: format!(
                "{};250 2.0.0 OK;ClientSubmitTime:{}",
                self.hex16(),
                iso_ms(t_org)
            ),
            source: "STOREDRIVER",
            event: "DELIVER",
            internal: iid.to_string(),
            statuses: ";".repeat(addrs.len().saturating_sub(1)),
            rcpt_count: addrs.len().to_string(),
            rcpts: addrs,
            info: format!(
                "{};SRV={}:TOTAL-FE={:.3}|SMR={:.3}",
                iso_ms(t_org),
                h.fqdn,
                self.r.range(5, 60) as f64 / 1000.0,
                self.r.range(5, 60) as f64 / 1000.0
            ),
            custom: format!(
                "S:Mailboxes={};S:DeliveryLatency={latency:.3};S:AccountForest={}",
                guid(&mut self.r),
                self.org
            ),
            ..ExRow::default()
        };
        self.push(at, self.stream(x, TRK_MD), msg, row, Vec::new());
    }

    #[allow(clippy::too_many_arguments)]
    fn send_external(
        &mut self,
        at: i64,
        s: usize,
        msg: &ExMsg,
        iid: &str,
        domain: &str,
        group: Vec<String>,
        t_org: i64,
    ) {
        let sv = self.servers[s].clone();
        let (relay, rip) = self.w.relay_for(domain);
        let secs = self.r.range(40, 900) as f64 / 1000.0;
        let reply = if relay.ends_with(".outlook.com") {
            format!(
                "250 2.6.0 {} [InternalId={}, Hostname={}] {} bytes in {secs:.3}, {:.1} KB/sec Queued mail for delivery",
                msg.mid,
                self.r.range(10_000_000_000, 99_999_999_999),
                relay.to_ascii_uppercase(),
                msg.size,
                msg.size as f64 / 1024.0 / secs
            )
        } else {
            remote_queue_reply(&mut self.r, domain, msg.mid.trim_matches(['<', '>']))
        };
        let e2e = (at - t_org) as f64 / 1000.0;
        let row = ExRow {
            client_ip: sv.ip.clone(),
            client_host: sv.name.clone(),
            server_ip: rip,
            server_host: relay,
            context: format!(";{reply};ClientSubmitTime:"),
            connector: if self.online {
                String::new()
            } else {
                "Outbound to Internet".to_string()
            },
            source: "SMTP",
            event: "SENDEXTERNAL",
            internal: iid.to_string(),
            statuses: vec!["250 2.1.5 Recipient OK"; group.len()].join(";"),
            rcpt_count: group.len().to_string(),
            rcpts: group,
            info: format!("{};SRV={}:TOTAL-HUB={e2e:.3}", iso_ms(t_org), sv.fqdn),
            custom: format!(
                "S:E2ELatency={e2e:.3};S:ToEntity=Internet;S:FromEntity=Hosted;S:IsSmtpResponseFromExternalServer=True"
            ),
            ..ExRow::default()
        };
        self.push(at, self.stream(s, TRK), msg, row, Vec::new());
    }

    fn defer_reason(&mut self, domain: &str) -> String {
        let (relay, rip) = self.w.relay_for(domain);
        match self.r.below(4) {
            0 => "451 4.4.0 DNS query failed".to_string(),
            1 => format!("451 4.7.1 Greylisting in action, please come back later (in reply to RCPT TO command) [{relay}]"),
            2 => "421 4.4.2 Connection dropped due to SocketError".to_string(),
            _ => format!("441 4.4.1 Error encountered while communicating with primary target IP address: \"Failed to connect. Winsock error code: 10060, Win32 error code: 10060.\" Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, or delivery failed to all alternate hosts. The last endpoint attempted was {rip}:25"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn defer(
        &mut self,
        at: i64,
        s: usize,
        msg: &ExMsg,
        iid: &str,
        domain: &str,
        group: &[String],
        reason: &str,
    ) {
        let sv = self.servers[s].clone();
        let keys = group
            .iter()
            .map(|a| format!("{}|{}|{a}", msg.nmid, sv.name))
            .collect();
        let row = ExRow {
            client_host: sv.name.clone(),
            server_host: domain.to_string(),
            context: format!("[{{LED={reason}}};{{MSG=}};{{FQDN={domain}}};{{IP=}};{{LRT=}}]"),
            connector: if self.online {
                String::new()
            } else {
                "Outbound to Internet".to_string()
            },
            source: "SMTP",
            event: "DEFER",
            internal: iid.to_string(),
            rcpts: group.to_vec(),
            statuses: reason.to_string(),
            rcpt_count: group.len().to_string(),
            ..ExRow::default()
        };
        self.push(at, self.stream(s, TRK), msg, row, keys);
    }

    /// A delivery status notification to `to`: its own message (DSN event),
    /// then its delivery. Returns the time of the last event.
    fn dsn(&mut self, t: i64, s: usize, original: &ExMsg, to: &str, dsn_mid: String) -> i64 {
        self.messages += 1;
        self.dsns += 1;
        let sv = self.servers[s].clone();
        let nmid = self.nmid(t);
        let msg = ExMsg {
            mid: dsn_mid,
            nmid,
            subject: format!("Undeliverable: {}", original.subject),
            sender: self.system_mailbox.clone(),
            return_path: "<>".to_string(),
            size: 6000 + original.size.min(64_000) / 8 + self.r.range(0, 800),
            directionality: "Originating",
        };
        let iid = self.internal_id(s);
        self.push(
            t,
            self.stream(s, TRK),
            &msg,
            ExRow {
                server_host: sv.name.clone(),
                source: "DSN",
                event: "DSN",
                internal: iid.clone(),
                rcpts: vec![to.to_string()],
                rcpt_count: "1".to_string(),
                reference: original.mid.clone(),
                ..ExRow::default()
            },
            Vec::new(),
        );
        let at = t + self.r.range(300, 5000) as i64;
        if self.w.is_org(to) {
            let x = self.home_of(to);
            self.deliver(at, s, x, &msg, &iid, vec![to.to_string()], t);
        } else {
            let domain = to.rsplit_once('@').map_or("", |x| x.1).to_string();
            self.send_external(at, s, &msg, &iid, &domain, vec![to.to_string()], t);
        }
        at
    }
}

struct TrackFile {
    dir: PathBuf,
    prefix: &'static str,
    w: Option<BufWriter<File>>,
    written: u64,
    day: i64,
    today: u32,
}

struct ExWriter {
    online: bool,
    file_bytes: u64,
    files: Vec<TrackFile>,
    truth: ExchangeTruth,
    /// deferrals already counted (`nmid|server|recipient`)
    defers: HashSet<String>,
}

impl ExWriter {
    fn create(dir: &Path, online: bool, file_bytes: u64, servers: &[ExServer]) -> Result<ExWriter> {
        let mut truth = ExchangeTruth {
            format: if online { "m365-extended" } else { "msgtrk" },
            path: dir.to_path_buf(),
            ..ExchangeTruth::default()
        };
        let mut files = Vec::new();
        if online {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let path = dir.join("extended_report.csv");
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            w.write_all(M365_EXTENDED_COLUMNS.as_bytes())?;
            w.write_all(b"\r\n")?;
            truth.path = path;
            truth.files = 1;
            truth.lines = 1;
            truth.header_lines = 1;
            truth.bytes = M365_EXTENDED_COLUMNS.len() as u64 + 2;
            files.push(TrackFile {
                dir: dir.to_path_buf(),
                prefix: "",
                w: Some(w),
                written: 0,
                day: 0,
                today: 0,
            });
        } else {
            for s in servers {
                let d = dir.join(&s.name);
                fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
                for prefix in TRK_PREFIXES {
                    files.push(TrackFile {
                        dir: d.clone(),
                        prefix,
                        w: None,
                        written: 0,
                        day: i64::MIN,
                        today: 0,
                    });
                }
            }
        }
        Ok(ExWriter {
            online,
            file_bytes,
            files,
            truth,
            defers: HashSet::new(),
        })
    }

    fn write(&mut self, p: Pending) -> Result<()> {
        let len = p.line.len() as u64 + 2;
        let truth = &mut self.truth;
        let f = &mut self.files[p.stream];
        if !self.online {
            let day = p.t.div_euclid(DAY_MS);
            if f.w.is_none() || day != f.day || f.written + len > self.file_bytes {
                if let Some(mut w) = f.w.take() {
                    w.flush()?;
                }
                if day != f.day {
                    f.day = day;
                    f.today = 0;
                }
                f.today += 1;
                let d = utc(p.t);
                let name = format!(
                    "{}{:04}{:02}{:02}{:02}-{}.LOG",
                    f.prefix,
                    d.year(),
                    d.month(),
                    d.day(),
                    d.hour(),
                    f.today
                );
                let path = f.dir.join(name);
                let file = File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                let mut w = BufWriter::with_capacity(256 * 1024, file);
                let header = format!(
                    "\u{feff}#Software: Microsoft Exchange Server\r\n#Version: {EXCHANGE_VERSION}\r\n#Log-type: Message Tracking Log\r\n#Date: {}\r\n#Fields: {MSGTRK_FIELDS}\r\n",
                    iso_ms(p.t)
                );
                w.write_all(header.as_bytes())?;
                f.written = header.len() as u64;
                f.w = Some(w);
                truth.files += 1;
                truth.bytes += header.len() as u64;
                truth.lines += 5;
                truth.header_lines += 5;
            }
        }
        let Some(w) = f.w.as_mut() else {
            bail!("no open file");
        };
        w.write_all(p.line.as_bytes())?;
        w.write_all(b"\r\n")?;
        f.written += len;
        truth.bytes += len;
        truth.lines += 1;
        truth.events += 1;
        *truth.by_event.entry(p.tag.event.to_string()).or_default() += 1;
        let n = u64::from(p.tag.recipients);
        let status = match p.tag.event {
            "RECEIVE" => Some(("received", 1)),
            "DELIVER" | "SEND" | "SENDEXTERNAL" => Some(("delivered", n)),
            "FAIL" if self.online => Some(("failed", n)),
            "FAIL" => Some(("bounced", n)),
            "EXPAND" => Some(("expanded", n)),
            "DEFER" if self.online => Some(("deferred", n)),
            "DEFER" => {
                let fresh = p
                    .tag
                    .defer_keys
                    .into_iter()
                    .filter(|k| self.defers.insert(k.clone()))
                    .count();
                Some(("deferred", fresh as u64))
            }
            "NOTIFYMAPI" => {
                truth.lines_without_ids += 1;
                None
            }
            e if e.starts_with("HA") => {
                truth.shadow_lines += 1;
                None
            }
            _ => None,
        };
        if let Some((status, k)) = status {
            *truth
                .expected_deliveries
                .entry(status.to_string())
                .or_default() += k;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ExchangeTruth> {
        for f in &mut self.files {
            if let Some(mut w) = f.w.take() {
                w.flush()?;
            }
        }
        Ok(self.truth)
    }
}

// ---------------------------------------------------------------------------
// Encodings

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_into(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63]
        } else {
            b'='
        });
    }
}

fn base64(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    base64_into(&mut out, data);
    out.into_iter().map(char::from).collect()
}

/// Base64 in 76-column lines.
fn base64_lines(out: &mut Vec<u8>, data: &[u8]) {
    out.reserve(data.len().div_ceil(57) * 77);
    for chunk in data.chunks(57) {
        base64_into(out, chunk);
        out.push(b'\n');
    }
}

fn quoted_printable(out: &mut Vec<u8>, data: &[u8]) {
    let mut col = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            out.push(b'\n');
            col = 0;
            continue;
        }
        let next_is_eol = data.get(i + 1).is_none_or(|&n| n == b'\n');
        let literal =
            (b == b' ' || b == b'\t') && !next_is_eol || (33..=126).contains(&b) && b != b'=';
        let width = if literal { 1 } else { 3 };
        if col + width > 75 {
            out.extend_from_slice(b"=\n");
            col = 0;
        }
        if literal {
            out.push(b);
        } else {
            out.extend_from_slice(format!("={b:02X}").as_bytes());
        }
        col += width;
    }
}

/// RFC 2047 B encoded-words, each self-contained and at most 75 characters,
/// joined by folding white space.
fn encode_words(s: &str, cs: Charset) -> String {
    let (label, limit) = match cs {
        Charset::Iso2022Jp => ("ISO-2022-JP", 39),
        Charset::ShiftJis => ("Shift_JIS", 42),
        _ => ("UTF-8", 42),
    };
    let encode = |t: &str| -> Option<Vec<u8>> {
        match cs {
            Charset::Iso2022Jp => to_iso2022jp(t),
            Charset::ShiftJis => to_sjis(t),
            _ => Some(t.as_bytes().to_vec()),
        }
    };
    if encode(s).is_none() {
        return encode_words(s, Charset::Utf8);
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        let mut tentative = chunk.clone();
        tentative.push(c);
        let len = encode(&tentative).map_or(usize::MAX, |b| b.len());
        if len > limit && !chunk.is_empty() {
            words.push(std::mem::take(&mut chunk));
            chunk.push(c);
        } else {
            chunk = tentative;
        }
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| format!("=?{label}?B?{}?=", base64(&encode(w).unwrap_or_default())))
        .collect::<Vec<_>>()
        .join("\n ")
}

fn jis_lookup(c: char) -> Option<(u16, u16)> {
    JIS.binary_search_by_key(&c, |e| e.0)
        .ok()
        .map(|i| (JIS[i].1, JIS[i].2))
}

/// ISO-2022-JP (RFC 1468) for the characters in `JIS`; `None` when a
/// character is missing. Same bytes as Python's `str.encode('iso-2022-jp')`.
fn to_iso2022jp(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 2);
    let mut kanji = false;
    for c in s.chars() {
        if c.is_ascii() {
            if c == '\x1b' || c == '\x0e' || c == '\x0f' {
                return None;
            }
            if kanji {
                out.extend_from_slice(b"\x1b(B");
                kanji = false;
            }
            out.push(c as u8);
        } else {
            let (j, _) = jis_lookup(c)?;
            if !kanji {
                out.extend_from_slice(b"\x1b$B");
                kanji = true;
            }
            out.extend_from_slice(&j.to_be_bytes());
        }
    }
    if kanji {
        out.extend_from_slice(b"\x1b(B");
    }
    Some(out)
}

/// Shift_JIS for the characters in `JIS`; `None` when one is missing.
fn to_sjis(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            out.extend_from_slice(&jis_lookup(c)?.1.to_be_bytes());
        }
    }
    Some(out)
}

// To add characters: for every non-ASCII character c in this file's string
// literals, emit (c, c.encode('iso-2022-jp')[3:5] as u16, c.encode('shift_jis')
// as u16), sorted by c. Strings with a missing character fall back to UTF-8;
// the tests check that every subject, body line and name is covered.
// BEGIN GENERATED JIS TABLE
// Generated by Python 3 from the characters in this file's string literals:
// (char, JIS X 0208 code as used by str.encode('iso-2022-jp'), str.encode('shift_jis')).
#[rustfmt::skip]
const JIS: &[(char, u16, u16)] = &[
    ('、', 0x2122, 0x8141), ('。', 0x2123, 0x8142), ('々', 0x2139, 0x8158), ('【', 0x215A, 0x8179),
    ('】', 0x215B, 0x817A), ('あ', 0x2422, 0x82A0), ('い', 0x2424, 0x82A2), ('う', 0x2426, 0x82A4),
    ('え', 0x2428, 0x82A6), ('お', 0x242A, 0x82A8), ('か', 0x242B, 0x82A9), ('が', 0x242C, 0x82AA),
    ('き', 0x242D, 0x82AB), ('く', 0x242F, 0x82AD), ('け', 0x2431, 0x82AF), ('こ', 0x2433, 0x82B1),
    ('ご', 0x2434, 0x82B2), ('さ', 0x2435, 0x82B3), ('ざ', 0x2436, 0x82B4), ('し', 0x2437, 0x82B5),
    ('す', 0x2439, 0x82B7), ('せ', 0x243B, 0x82B9), ('た', 0x243F, 0x82BD), ('だ', 0x2440, 0x82BE),
    ('ち', 0x2441, 0x82BF), ('っ', 0x2443, 0x82C1), ('つ', 0x2444, 0x82C2), ('て', 0x2446, 0x82C4),
    ('で', 0x2447, 0x82C5), ('と', 0x2448, 0x82C6), ('ど', 0x2449, 0x82C7), ('な', 0x244A, 0x82C8),
    ('に', 0x244B, 0x82C9), ('の', 0x244E, 0x82CC), ('は', 0x244F, 0x82CD), ('ほ', 0x245B, 0x82D9),
    ('ま', 0x245E, 0x82DC), ('み', 0x245F, 0x82DD), ('め', 0x2461, 0x82DF), ('も', 0x2462, 0x82E0),
    ('ょ', 0x2467, 0x82E5), ('よ', 0x2468, 0x82E6), ('ら', 0x2469, 0x82E7), ('り', 0x246A, 0x82E8),
    ('れ', 0x246C, 0x82EA), ('ろ', 0x246D, 0x82EB), ('わ', 0x246F, 0x82ED), ('を', 0x2472, 0x82F0),
    ('ん', 0x2473, 0x82F1), ('ァ', 0x2521, 0x8340), ('ア', 0x2522, 0x8341), ('ィ', 0x2523, 0x8342),
    ('イ', 0x2524, 0x8343), ('ウ', 0x2526, 0x8345), ('ェ', 0x2527, 0x8346), ('カ', 0x252B, 0x834A),
    ('キ', 0x252D, 0x834C), ('ク', 0x252F, 0x834E), ('グ', 0x2530, 0x834F), ('コ', 0x2533, 0x8352),
    ('サ', 0x2535, 0x8354), ('シ', 0x2537, 0x8356), ('ジ', 0x2538, 0x8357), ('ス', 0x2539, 0x8358),
    ('ズ', 0x253A, 0x8359), ('セ', 0x253B, 0x835A), ('ソ', 0x253D, 0x835C), ('タ', 0x253F, 0x835E),
    ('ダ', 0x2540, 0x835F), ('ッ', 0x2543, 0x8362), ('テ', 0x2546, 0x8365), ('デ', 0x2547, 0x8366),
    ('ト', 0x2548, 0x8367), ('ド', 0x2549, 0x8368), ('ナ', 0x254A, 0x8369), ('ニ', 0x254B, 0x836A),
    ('ノ', 0x254E, 0x836D), ('パ', 0x2551, 0x8370), ('フ', 0x2555, 0x8374), ('ブ', 0x2556, 0x8375),
    ('プ', 0x2557, 0x8376), ('ベ', 0x2559, 0x8378), ('ミ', 0x255F, 0x837E), ('ム', 0x2560, 0x8380),
    ('メ', 0x2561, 0x8381), ('ュ', 0x2565, 0x8385), ('ラ', 0x2569, 0x8389), ('リ', 0x256A, 0x838A),
    ('ル', 0x256B, 0x838B), ('レ', 0x256C, 0x838C), ('ロ', 0x256D, 0x838D), ('ワ', 0x256F, 0x838F),
    ('ン', 0x2573, 0x8393), ('ー', 0x213C, 0x815B), ('一', 0x306C, 0x88EA), ('上', 0x3E65, 0x8FE3),
    ('下', 0x323C, 0x89BA), ('不', 0x4954, 0x9573), ('世', 0x4024, 0x90A2), ('中', 0x4366, 0x9286),
    ('久', 0x3557, 0x8B76), ('也', 0x4C69, 0x96E7), ('了', 0x4E3B, 0x97B9), ('予', 0x4D3D, 0x975C),
    ('事', 0x3B76, 0x8E96), ('二', 0x4673, 0x93F1), ('井', 0x3066, 0x88E4), ('京', 0x357E, 0x8B9E),
    ('亮', 0x4E3C, 0x97BA), ('人', 0x3F4D, 0x906C), ('仕', 0x3B45, 0x8E64), ('付', 0x4955, 0x9574),
    ('以', 0x304A, 0x88C8), ('件', 0x376F, 0x8C8F), ('企', 0x346B, 0x8AE9), ('伊', 0x304B, 0x88C9),
    ('休', 0x3559, 0x8B78), ('会', 0x3271, 0x89EF), ('佐', 0x3A34, 0x8DB2), ('例', 0x4E63, 0x97E1),
    ('依', 0x304D, 0x88CB), ('価', 0x3241, 0x89BF), ('信', 0x3F2E, 0x904D), ('修', 0x3D24, 0x8F43),
    ('個', 0x3844, 0x8CC2), ('停', 0x4464, 0x92E2), ('健', 0x3772, 0x8C92), ('催', 0x3A45, 0x8DC3),
    ('先', 0x4068, 0x90E6), ('光', 0x3877, 0x8CF5), ('共', 0x3626, 0x8BA4), ('内', 0x4662, 0x93E0),
    ('再', 0x3A46, 0x8DC4), ('出', 0x3D50, 0x8F6F), ('刊', 0x3429, 0x8AA7), ('刷', 0x3A7E, 0x8DFC),
    ('前', 0x4130, 0x914F), ('剛', 0x3964, 0x8D84), ('加', 0x3243, 0x89C1), ('勉', 0x4A59, 0x95D7),
    ('動', 0x4630, 0x93AE), ('務', 0x4C33, 0x96B1), ('半', 0x483E, 0x94BC), ('印', 0x3075, 0x88F3),
    ('原', 0x3836, 0x8CB4), ('取', 0x3C68, 0x8EE6), ('口', 0x387D, 0x8CFB), ('古', 0x3845, 0x8CC3),
    ('合', 0x3967, 0x8D87), ('吉', 0x3548, 0x8B67), ('名', 0x4C3E, 0x96BC), ('含', 0x345E, 0x8ADC),
    ('告', 0x3970, 0x8D90), ('和', 0x4F42, 0x9861), ('咲', 0x3A69, 0x8DE7), ('品', 0x494A, 0x9569),
    ('員', 0x3077, 0x88F5), ('商', 0x3E26, 0x8FA4), ('問', 0x4C64, 0x96E2), ('営', 0x3144, 0x8963),
    ('四', 0x3B4D, 0x8E6C), ('回', 0x3273, 0x89F1), ('在', 0x3A5F, 0x8DDD), ('坂', 0x3A64, 0x8DE2),
    ('報', 0x4A73, 0x95F1), ('売', 0x4764, 0x9484), ('変', 0x4A51, 0x95CF), ('外', 0x3330, 0x8A4F),
    ('大', 0x4267, 0x91E5), ('太', 0x4240, 0x91BE), ('契', 0x3740, 0x8C5F), ('始', 0x3B4F, 0x8E6E),
    ('子', 0x3B52, 0x8E71), ('学', 0x3358, 0x8A77), ('完', 0x3430, 0x8AAE), ('定', 0x446A, 0x92E8),
    ('客', 0x3552, 0x8B71), ('室', 0x3C3C, 0x8EBA), ('容', 0x4D46, 0x9765), ('密', 0x4C29, 0x96A7),
    ('小', 0x3E2E, 0x8FAC), ('局', 0x3649, 0x8BC7), ('屋', 0x3230, 0x89AE), ('展', 0x4538, 0x9357),
    ('山', 0x3B33, 0x8E52), ('岡', 0x322C, 0x89AA), ('島', 0x4567, 0x9387), ('崎', 0x3A6A, 0x8DE8),
    ('川', 0x406E, 0x90EC), ('工', 0x3929, 0x8D48), ('幌', 0x4B5A, 0x9679), ('年', 0x472F, 0x944E),
    ('庫', 0x384B, 0x8CC9), ('建', 0x377A, 0x8C9A), ('式', 0x3C30, 0x8EAE), ('引', 0x307A, 0x88F8),
    ('張', 0x4425, 0x92A3), ('強', 0x362F, 0x8BAD), ('彩', 0x3A4C, 0x8DCA), ('後', 0x3865, 0x8CE3),
    ('忙', 0x4B3B, 0x965A), ('恵', 0x3743, 0x8C62), ('悠', 0x4D2A, 0x9749), ('情', 0x3E70, 0x8FEE),
    ('意', 0x3055, 0x88D3), ('愛', 0x3026, 0x88A4), ('戦', 0x406F, 0x90ED), ('打', 0x4247, 0x91C5),
    ('払', 0x4A27, 0x95A5), ('扱', 0x3037, 0x88B5), ('拓', 0x4273, 0x91F1), ('採', 0x3A4E, 0x8DCC),
    ('接', 0x405C, 0x90DA), ('控', 0x3935, 0x8D54), ('支', 0x3B59, 0x8E78), ('改', 0x327E, 0x89FC),
    ('整', 0x4030, 0x90AE), ('斎', 0x3A58, 0x8DD6), ('料', 0x4E41, 0x97BF), ('新', 0x3F37, 0x9056),
    ('日', 0x467C, 0x93FA), ('明', 0x4C40, 0x96BE), ('時', 0x3B7E, 0x8E9E), ('智', 0x4352, 0x9271),
    ('更', 0x3939, 0x8D58), ('書', 0x3D71, 0x8F91), ('最', 0x3A47, 0x8DC5), ('有', 0x4D2D, 0x974C),
    ('期', 0x347C, 0x8AFA), ('木', 0x4C5A, 0x96D8), ('末', 0x4B76, 0x9696), ('本', 0x4B5C, 0x967B),
    ('札', 0x3B25, 0x8E44), ('村', 0x423C, 0x91BA), ('条', 0x3E72, 0x8FF0), ('来', 0x4D68, 0x9788),
    ('東', 0x456C, 0x938C), ('松', 0x3E3E, 0x8FBC), ('林', 0x4E53, 0x97D1), ('株', 0x3374, 0x8A94),
    ('格', 0x334A, 0x8A69), ('案', 0x3046, 0x88C4), ('森', 0x3F39, 0x9058), ('業', 0x3648, 0x8BC6),
    ('様', 0x4D4D, 0x976C), ('標', 0x4938, 0x9557), ('横', 0x3223, 0x89A1), ('樹', 0x3C79, 0x8EF7),
    ('橋', 0x3636, 0x8BB4), ('機', 0x3521, 0x8B40), ('次', 0x3C21, 0x8E9F), ('止', 0x3B5F, 0x8E7E),
    ('気', 0x3524, 0x8B43), ('水', 0x3F65, 0x9085), ('求', 0x3561, 0x8B81), ('池', 0x4353, 0x9272),
    ('況', 0x3637, 0x8BB5), ('法', 0x4B21, 0x9640), ('注', 0x436D, 0x928D), ('浜', 0x494D, 0x956C),
    ('浩', 0x3940, 0x8D5F), ('海', 0x3324, 0x8A43), ('添', 0x453A, 0x9359), ('清', 0x4036, 0x90B4),
    ('渡', 0x454F, 0x936E), ('点', 0x4540, 0x935F), ('版', 0x4847, 0x94C5), ('状', 0x3E75, 0x8FF3),
    ('理', 0x4D7D, 0x979D), ('用', 0x4D51, 0x9770), ('田', 0x4544, 0x9363), ('由', 0x4D33, 0x9752),
    ('画', 0x3268, 0x89E6), ('略', 0x4E2C, 0x97AA), ('異', 0x305B, 0x88D9), ('疲', 0x4868, 0x94E6),
    ('発', 0x482F, 0x94AD), ('直', 0x443E, 0x92BC), ('相', 0x416A, 0x918A), ('真', 0x3F3F, 0x905E),
    ('知', 0x434E, 0x926D), ('石', 0x4050, 0x90CE), ('研', 0x3826, 0x8CA4), ('確', 0x334E, 0x8A6D),
    ('示', 0x3C28, 0x8EA6), ('礼', 0x4E69, 0x97E7), ('社', 0x3C52, 0x8ED0), ('福', 0x4A21, 0x959F),
    ('秘', 0x486B, 0x94E9), ('程', 0x4478, 0x92F6), ('積', 0x4051, 0x90CF), ('究', 0x3566, 0x8B86),
    ('竹', 0x435D, 0x927C), ('第', 0x4268, 0x91E6), ('算', 0x3B3B, 0x8E5A), ('簿', 0x4A6D, 0x95EB),
    ('精', 0x403A, 0x90B8), ('約', 0x4C73, 0x96F1), ('納', 0x473C, 0x945B), ('細', 0x3A59, 0x8DD7),
    ('経', 0x3750, 0x8C6F), ('結', 0x376B, 0x8C8B), ('絡', 0x4D6D, 0x978D), ('総', 0x416D, 0x918D),
    ('美', 0x487E, 0x94FC), ('翔', 0x6646, 0xE3C4), ('聡', 0x416F, 0x918F), ('花', 0x3256, 0x89D4),
    ('葵', 0x302A, 0x88A8), ('蓮', 0x4F21, 0x9840), ('藤', 0x4623, 0x93A1), ('行', 0x3954, 0x8D73),
    ('衣', 0x3061, 0x88DF), ('表', 0x493D, 0x955C), ('裕', 0x4D35, 0x9754), ('製', 0x403D, 0x90BB),
    ('西', 0x403E, 0x90BC), ('見', 0x382B, 0x8CA9), ('規', 0x352C, 0x8B4B), ('計', 0x3757, 0x8C76),
    ('記', 0x352D, 0x8B4C), ('設', 0x405F, 0x90DD), ('話', 0x4F43, 0x9862), ('認', 0x4727, 0x9446),
    ('誠', 0x403F, 0x90BD), ('調', 0x4434, 0x92B2), ('談', 0x434C, 0x926B), ('請', 0x4041, 0x90BF),
    ('議', 0x3544, 0x8B63), ('谷', 0x432B, 0x924A), ('買', 0x4763, 0x9483), ('費', 0x4871, 0x94EF),
    ('資', 0x3B71, 0x8E91), ('購', 0x3958, 0x8D77), ('転', 0x453E, 0x935D), ('軽', 0x375A, 0x8C79),
    ('輔', 0x4A65, 0x95E3), ('辺', 0x4A55, 0x95D3), ('近', 0x3661, 0x8BDF), ('送', 0x4177, 0x9197),
    ('連', 0x4F22, 0x9841), ('週', 0x3D35, 0x8F54), ('達', 0x4323, 0x9242), ('遠', 0x3173, 0x8993),
    ('郎', 0x4F3A, 0x9859), ('部', 0x4974, 0x9594), ('都', 0x4554, 0x9373), ('配', 0x475B, 0x947A),
    ('野', 0x4C6E, 0x96EC), ('金', 0x3662, 0x8BE0), ('鈴', 0x4E6B, 0x97E9), ('録', 0x4F3F, 0x985E),
    ('長', 0x4439, 0x92B7), ('開', 0x332B, 0x8A4A), ('間', 0x3456, 0x8AD4), ('阪', 0x3A65, 0x8DE3),
    ('阿', 0x3024, 0x88A2), ('陽', 0x4D5B, 0x977A), ('隆', 0x4E34, 0x97B2), ('集', 0x3D38, 0x8F57),
    ('電', 0x4545, 0x9364), ('青', 0x4044, 0x90C2), ('面', 0x4C4C, 0x96CA), ('頼', 0x4D6A, 0x978A),
    ('願', 0x346A, 0x8AE8), ('顧', 0x385C, 0x8CDA), ('高', 0x3962, 0x8D82), ('（', 0x214A, 0x8169),
    ('）', 0x214B, 0x816A), ('：', 0x2127, 0x8146),
];
// END GENERATED JIS TABLE

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn opts(seed: u64, lines: Option<u64>, messages: Option<u64>) -> GenerateOptions {
        GenerateOptions {
            seed,
            employees: 30,
            org_domain: "example.co.jp".to_string(),
            start: DateTime::from_timestamp(1_772_323_200, 0).unwrap(), // 2026-03-01T00:00Z
            days: 14,
            postfix_lines: lines,
            maildir_messages: messages,
            timezone: chrono_tz::Asia::Tokyo,
        }
    }

    fn run(o: &GenerateOptions) -> (tempfile::TempDir, GenerateSummary) {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(o, dir.path()).unwrap();
        (dir, s)
    }

    fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.insert(rel, fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    fn messages(root: &Path) -> Vec<(String, Vec<u8>)> {
        tree(&root.join("Maildir"))
            .into_iter()
            .filter(|(k, _)| !k.ends_with("maildirfolder"))
            .collect()
    }

    fn b64decode(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for c in s.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => continue,
            };
            acc = (acc << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    /// Unfolded value of the first header `name` (header section only).
    fn header(msg: &[u8], name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(msg);
        let head = text.split("\n\n").next().unwrap_or("");
        let prefix = format!("{name}:");
        let mut lines = head.lines();
        while let Some(l) = lines.next() {
            if l.len() >= prefix.len() && l[..prefix.len()].eq_ignore_ascii_case(&prefix) {
                let mut v = l[prefix.len()..].trim().to_string();
                for cont in lines.by_ref() {
                    if cont.starts_with([' ', '\t']) {
                        v.push(' ');
                        v.push_str(cont.trim());
                    } else {
                        break;
                    }
                }
                return Some(v);
            }
        }
        None
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        let o = opts(7, Some(4000), Some(60));
        let (a, sa) = run(&o);
        let (b, sb) = run(&o);
        assert_eq!(tree(a.path()), tree(b.path()));
        assert_eq!(
            (sa.postfix_lines, sa.postfix_messages),
            (sb.postfix_lines, sb.postfix_messages)
        );
        let (c, _) = run(&opts(8, Some(4000), Some(60)));
        assert_ne!(
            fs::read(a.path().join("maillog")).unwrap(),
            fs::read(c.path().join("maillog")).unwrap()
        );
    }

    #[test]
    fn counts_are_exact_and_lines_near_target() {
        let target = 20_000;
        let (dir, s) = run(&opts(1, Some(target), Some(137)));
        assert_eq!(s.maildir_messages, 137);
        assert_eq!(messages(dir.path()).len(), 137);
        let log = fs::read_to_string(dir.path().join("maillog")).unwrap();
        assert_eq!(log.lines().count() as u64, s.postfix_lines);
        let off = (s.postfix_lines as f64 - target as f64).abs() / target as f64;
        assert!(
            off < 0.03,
            "{} lines for a target of {target}",
            s.postfix_lines
        );
        let queued: HashSet<&str> = log
            .lines()
            .filter(|l| l.contains(" postfix/qmgr[") && l.contains(" nrcpt="))
            .filter_map(|l| l.split(": ").nth(1))
            .collect();
        assert_eq!(queued.len() as u64, s.postfix_messages);
        assert_eq!(
            s.files,
            vec![dir.path().join("maillog"), dir.path().join("Maildir")]
        );
    }

    fn parse_stamp(line: &str) -> Option<(u32, u32, u32, u32, u32)> {
        let b = line.as_bytes();
        if b.len() < 16
            || b[3] != b' '
            || b[6] != b' '
            || b[9] != b':'
            || b[12] != b':'
            || b[15] != b' '
        {
            return None;
        }
        let month = MONTHS.iter().position(|m| *m == &line[..3])? as u32 + 1;
        let day_s = &line[4..6];
        // RFC 3164: day space-padded, never zero-padded
        if day_s.starts_with('0') {
            return None;
        }
        let day: u32 = day_s.trim_start().parse().ok()?;
        let h: u32 = line[7..9].parse().ok()?;
        let m: u32 = line[10..12].parse().ok()?;
        let s: u32 = line[13..15].parse().ok()?;
        ((1..=31).contains(&day) && h < 24 && m < 60 && s < 60).then_some((month, day, h, m, s))
    }

    #[test]
    fn every_line_has_an_rfc3164_stamp_and_time_never_goes_back() {
        let (dir, _) = run(&opts(3, Some(15_000), None));
        let log = fs::read_to_string(dir.path().join("maillog")).unwrap();
        let mut last = (0, 0, 0, 0, 0);
        for line in log.lines() {
            let stamp = parse_stamp(line).unwrap_or_else(|| panic!("bad stamp: {line}"));
            assert!(stamp >= last, "time went back at: {line}");
            last = stamp;
            let rest = &line[16..];
            assert!(rest.starts_with("mx1 postfix/"), "{line}");
            let prog_end = rest.find("]: ").unwrap_or_else(|| panic!("no pid: {line}"));
            let pid = &rest[rest[..prog_end].rfind('[').unwrap() + 1..prog_end];
            assert!(pid.parse::<u32>().is_ok(), "{line}");
        }
        // the first line is at the start (09:xx in Tokyo on Mar 1), the period is two weeks
        assert!(last >= (3, 14, 0, 0, 0), "{last:?}");
    }

    #[test]
    fn queue_ids_are_short_uppercase_hex_and_unique() {
        let (dir, s) = run(&opts(4, Some(15_000), None));
        let log = fs::read_to_string(dir.path().join("maillog")).unwrap();
        let mut seen = HashSet::new();
        for l in log
            .lines()
            .filter(|l| l.contains("]: ") && l.contains(": message-id=<"))
        {
            let qid = l.split("]: ").nth(1).unwrap().split(':').next().unwrap();
            assert!(
                (10..=11).contains(&qid.len()) && qid.bytes().all(|b| HEX_UP.contains(&b)),
                "{qid}"
            );
            assert!(seen.insert(qid.to_string()), "queue id {qid} used twice");
        }
        assert_eq!(seen.len() as u64, s.postfix_messages);
        let mut alloc = QidAlloc::new(9);
        let ids: HashSet<String> = (0..200_000).map(|i| alloc.next(i)).collect();
        assert_eq!(ids.len(), 200_000);
    }

    #[test]
    fn log_has_the_failure_and_noise_kinds_and_only_documentation_addresses() {
        let (dir, _) = run(&opts(5, Some(40_000), None));
        let log = fs::read_to_string(dir.path().join("maillog")).unwrap();
        for needle in [
            "status=deferred (",
            "dsn=5.1.1, status=bounced (host ",
            "sender non-delivery notification: ",
            ": from=<>, size=",
            "NOQUEUE: reject: RCPT from unknown[",
            "warning: header Subject: ",
            "postfix/anvil[",
            "postfix/postscreen[",
            "lost connection after AUTH from",
            "does not resolve to address",
            "sasl_username=",
            "orig_to=<",
            "postfix/lmtp[",
            "relay=mx.tokyo-shoji.co.jp[203.0.113.20]:25",
        ] {
            assert!(log.contains(needle), "no {needle:?} in the log");
        }
        // a deferred message is later sent
        let deferred = log
            .lines()
            .find(|l| l.contains("status=deferred (") && !l.contains("Greylisting"))
            .unwrap();
        let qid = deferred
            .split("]: ")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string();
        assert!(log.lines().any(|l| l.contains(&format!("{qid}: to=<"))
            && l.contains("status=sent")
            || l.contains(&format!("{qid}: from=<")) && l.contains("status=expired")));
        assert!(
            log.lines()
                .any(|l| l.contains("warning: header Subject: ") && !l.is_ascii()),
            "no UTF-8 subject warning"
        );
        for l in log.lines() {
            let mut rest = l;
            while let Some(i) = rest.find('[') {
                let tail = &rest[i + 1..];
                let j = tail.find(']').unwrap_or(tail.len());
                let inside = &tail[..j];
                if inside.contains('.') && inside.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                    let ok = ["192.0.2.", "198.51.100.", "203.0.113.", "10.", "127."]
                        .iter()
                        .any(|p| inside.starts_with(p));
                    assert!(ok, "non-documentation address {inside} in {l}");
                } else if inside.contains(':')
                    && inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
                {
                    assert!(
                        inside.starts_with("2001:db8:"),
                        "non-documentation address {inside} in {l}"
                    );
                }
                rest = &tail[j.min(tail.len())..];
            }
        }
    }

    fn normalize_jis(mut b: Vec<u8>) -> Vec<u8> {
        // joining self-contained encoded-words leaves "ESC ( B ESC $ B" between kanji runs
        while let Some(i) = b.windows(6).position(|w| w == b"\x1b(B\x1b$B") {
            b.drain(i..i + 6);
        }
        b
    }

    #[test]
    fn encoders_match_python() {
        for (s, iso, sjis) in PY_VECTORS {
            assert_eq!(to_iso2022jp(s).as_deref(), Some(*iso), "ISO-2022-JP of {s}");
            assert_eq!(to_sjis(s).as_deref(), Some(*sjis), "Shift_JIS of {s}");
        }
        // every Japanese string this file uses is encodable
        for s in JA_SUBJECTS.iter().chain(JA_NEWS_SUBJECTS).chain(JA_BODY) {
            assert!(to_iso2022jp(s).is_some(), "{s}");
        }
        for (f, _) in FAMILY {
            for (g, _) in GIVEN {
                assert!(to_iso2022jp(&format!("{f} {g}")).is_some());
            }
        }
        assert!(to_iso2022jp("😀").is_none());
        // encoded-words stay within 75 characters
        for s in JA_SUBJECTS {
            for w in encode_words(s, Charset::Iso2022Jp).split("\n ") {
                assert!(w.len() <= 75, "{w}");
            }
        }
    }

    #[test]
    fn iso2022jp_subjects_decode_back_to_known_phrases() {
        let (dir, _) = run(&opts(6, None, Some(300)));
        let known: HashMap<&[u8], &str> = PY_VECTORS.iter().map(|(s, iso, _)| (*iso, *s)).collect();
        let mut found = 0;
        for (name, msg) in messages(dir.path()) {
            let subject = header(&msg, "Subject").unwrap_or_else(|| panic!("no Subject in {name}"));
            if !subject.contains("=?ISO-2022-JP?B?") {
                continue;
            }
            let mut bytes = Vec::new();
            for word in subject
                .split_whitespace()
                .filter(|w| w.starts_with("=?ISO-2022-JP?B?"))
            {
                let b64 = word
                    .trim_start_matches("=?ISO-2022-JP?B?")
                    .trim_end_matches("?=");
                bytes.extend(b64decode(b64));
            }
            let bytes = normalize_jis(bytes);
            assert!(
                known.contains_key(bytes.as_slice()),
                "{name}: subject {subject} decodes to unknown bytes {bytes:?}"
            );
            found += 1;
        }
        assert!(found >= 10, "only {found} ISO-2022-JP subjects");
    }

    #[test]
    fn zip_attachments_parse() {
        let (dir, _) = run(&opts(2, None, Some(400)));
        let (mut zips, mut encrypted, mut japanese_names) = (0, 0, 0);
        for (name, msg) in messages(dir.path()) {
            let text = String::from_utf8_lossy(&msg).into_owned();
            let mut rest = text.as_str();
            while let Some(i) = rest.find("Content-Type: application/") {
                rest = &rest[i..];
                let kind = rest.split([';', '\n']).next().unwrap().to_string();
                let body_start = rest.find("\n\n").unwrap() + 2;
                let body_end = rest[body_start..]
                    .find("\n--")
                    .map_or(rest.len(), |e| body_start + e);
                let data = b64decode(&rest[body_start..body_end]);
                rest = &rest[body_end..];
                let is_zip = kind.ends_with("zip")
                    || kind.ends_with("compressed")
                    || kind.contains("openxmlformats");
                if !is_zip {
                    assert!(data.starts_with(b"%PDF-1.7"), "{name}: {kind}");
                    continue;
                }
                assert!(data.starts_with(b"PK\x03\x04"), "{name}: no local header");
                let eocd = data
                    .windows(4)
                    .rposition(|w| w == b"PK\x05\x06")
                    .expect("no end of central directory");
                let u16at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
                let u32at = |o: usize| {
                    u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]) as usize
                };
                let entries = u16at(eocd + 10);
                let mut p = u32at(eocd + 16);
                assert_eq!(p + u32at(eocd + 12), eocd, "{name}: central directory size");
                assert!(entries >= 1);
                for _ in 0..entries {
                    assert_eq!(
                        &data[p..p + 4],
                        b"PK\x01\x02",
                        "{name}: central directory entry"
                    );
                    let flags = u16at(p + 8);
                    let name_len = u16at(p + 28);
                    let local = u32at(p + 42);
                    assert_eq!(&data[local..local + 4], b"PK\x03\x04");
                    let inner = std::str::from_utf8(&data[p + 46..p + 46 + name_len])
                        .expect("inner name is UTF-8");
                    if kind.ends_with("zip") || kind.ends_with("compressed") {
                        if flags & 1 != 0 {
                            encrypted += 1;
                        }
                        if !inner.is_ascii() {
                            assert_ne!(flags & (1 << 11), 0, "UTF-8 flag for {inner}");
                            japanese_names += 1;
                        }
                    }
                    p += 46 + name_len;
                }
                if kind.ends_with("zip") || kind.ends_with("compressed") {
                    zips += 1;
                }
            }
        }
        assert!(
            zips >= 3 && encrypted >= 1 && japanese_names >= 1,
            "zips {zips}, encrypted entries {encrypted}, Japanese names {japanese_names}"
        );
    }

    #[test]
    fn maildir_is_maildir_plus_plus_and_shares_message_ids_with_the_log() {
        let (dir, s) = run(&opts(11, Some(12_000), Some(150)));
        for folder in ["", ".Sent", ".Archive"] {
            for sub in ["cur", "new", "tmp"] {
                assert!(dir.path().join("Maildir").join(folder).join(sub).is_dir());
            }
        }
        let log = fs::read_to_string(dir.path().join("maillog")).unwrap();
        let logged: HashSet<&str> = log
            .lines()
            .filter_map(|l| l.split("message-id=<").nth(1))
            .map(|x| x.trim_end_matches('>'))
            .collect();
        let (mut sent, mut with_bcc) = (0, 0);
        for (name, msg) in messages(dir.path()) {
            let file = name.rsplit('/').next().unwrap();
            let (base, info) = file
                .split_once(":2,")
                .map_or((file, None), |(b, i)| (b, Some(i)));
            let parts: Vec<&str> = base.split('.').collect();
            assert_eq!(parts.len(), 3, "{name}");
            assert!(
                parts[0].parse::<u64>().is_ok() && parts[1].split_once('_').is_some(),
                "{name}"
            );
            assert_eq!(info.is_none(), name.contains("new/"), "{name}");
            let mid = header(&msg, "Message-ID").unwrap();
            let mid = mid.trim_start_matches('<').trim_end_matches('>');
            assert!(logged.contains(mid), "{name}: {mid} not in the log");
            for h in [
                "Date",
                "From",
                "To",
                "Subject",
                "MIME-Version",
                "Content-Type",
            ] {
                assert!(header(&msg, h).is_some(), "{name} has no {h}");
            }
            assert!(header(&msg, "Date").unwrap().ends_with("+0900"));
            if name.starts_with(".Sent/") {
                sent += 1;
                with_bcc += usize::from(header(&msg, "Bcc").is_some());
            } else {
                assert!(header(&msg, "Bcc").is_none(), "{name}: Bcc outside Sent");
                assert!(header(&msg, "Received").is_some(), "{name}: no Received");
            }
        }
        assert!(sent > 0 && with_bcc > 0, "sent {sent}, with Bcc {with_bcc}");
        assert_eq!(s.maildir_messages, 150);
    }

    /// Deliveries by status over decoded records.
    fn by_status(records: &[mailtrail_model::MessageRecord]) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for r in records {
            for d in &r.deliveries {
                *out.entry(d.status.as_str().to_string()).or_default() += 1;
            }
        }
        out
    }

    #[test]
    fn exchange_outputs_are_deterministic_and_decode_to_their_truth() {
        let o = opts(21, None, None);
        let ex = ExchangeOptions {
            msgtrk_bytes: Some(1_500_000),
            msgtrk_file_bytes: 200_000,
            m365_rows: Some(3_000),
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let summary = generate_exchange(&o, &ex, a.path()).unwrap();
        generate_exchange(&o, &ex, b.path()).unwrap();
        let (ta, tb) = (tree(a.path()), tree(b.path()));
        let differ: Vec<&String> = ta.keys().filter(|k| ta.get(*k) != tb.get(*k)).collect();
        assert!(
            differ.is_empty() && ta.len() == tb.len(),
            "same seed, other bytes: {differ:?}"
        );
        assert!(
            generate_exchange(&o, &ex, a.path()).is_err(),
            "no overwrite"
        );

        // Message tracking: rolled files with the W3C header and 30 fields a line.
        let truth = summary.msgtrk.unwrap();
        let mut paths: Vec<PathBuf> = Vec::new();
        for server in ["EX01", "EX02"] {
            for e in fs::read_dir(a.path().join("msgtrk").join(server)).unwrap() {
                paths.push(e.unwrap().path());
            }
        }
        paths.sort();
        assert_eq!(paths.len() as u64, truth.files);
        assert!(truth.files > 12, "{} files", truth.files);
        let (mut lines, mut bytes, mut quoted, mut japanese, mut ipv6) = (0u64, 0u64, 0, 0, 0);
        for p in &paths {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("MSGTRK") && name.ends_with(".LOG") && name.contains('-'),
                "{name}"
            );
            let text = fs::read_to_string(p).unwrap();
            assert!(text.len() <= 200_000, "{name} not rolled");
            assert!(text.starts_with("\u{feff}#Software: Microsoft Exchange Server\r\n"));
            assert!(text.contains("#Log-type: Message Tracking Log\r\n"));
            bytes += text.len() as u64;
            for line in text.split_terminator("\r\n") {
                lines += 1;
                if line.starts_with('#') || line.starts_with('\u{feff}') {
                    continue;
                }
                let fields = mailtrail_ingest::msgtrk::split_csv(line).unwrap();
                assert_eq!(fields.len(), 30, "{line}");
                quoted += usize::from(line.contains(",\""));
                japanese += usize::from(!fields[18].is_ascii());
                ipv6 += usize::from(fields[24].contains(':') || fields[3].contains(':'));
            }
        }
        assert_eq!((lines, bytes), (truth.lines, truth.bytes));
        assert!(
            quoted > 100 && japanese > 100 && ipv6 > 100,
            "{quoted} {japanese} {ipv6}"
        );
        for event in [
            "RECEIVE",
            "SUBMIT",
            "DELIVER",
            "SENDEXTERNAL",
            "DEFER",
            "FAIL",
            "DSN",
            "EXPAND",
            "HAREDIRECT",
            "HARECEIVE",
            "HADISCARD",
            "NOTIFYMAPI",
            "AGENTINFO",
            "TRANSFER",
        ] {
            assert!(
                truth.by_event.get(event).copied().unwrap_or(0) > 0,
                "no {event}"
            );
        }
        let inputs: Vec<mailtrail_ingest::msgtrk::MsgtrkInput<'_>> = paths
            .iter()
            .map(|p| mailtrail_ingest::msgtrk::MsgtrkInput {
                name: p.display().to_string(),
                open: Box::new(move || {
                    Ok(Box::new(std::io::BufReader::new(File::open(p)?))
                        as Box<dyn std::io::BufRead>)
                }),
            })
            .collect();
        let mut sink = mailtrail_ingest::VecSink::default();
        let decoded = mailtrail_ingest::msgtrk::import_msgtrk_files(
            inputs,
            &mailtrail_ingest::DecodeOptions::default(),
            &mut sink,
        )
        .unwrap();
        assert!(sink.rejects.is_empty(), "{:?}", sink.rejects.first());
        assert_eq!(decoded.lines, truth.lines);
        assert_eq!(decoded.shadow, truth.shadow_lines);
        let messages: HashSet<&str> = sink
            .records
            .iter()
            .filter_map(|r| r.message_id.as_deref())
            .collect();
        assert_eq!(messages.len() as u64, truth.messages);
        assert_eq!(
            sink.records.len() as u64,
            truth.messages,
            "one record a message"
        );
        assert_eq!(by_status(&sink.records), truth.expected_deliveries);

        // The extended report: the decoder's column set, one row an event.
        let truth = summary.m365.unwrap();
        let report = fs::read(a.path().join(&truth.path)).unwrap();
        assert_eq!(report.len() as u64, truth.bytes);
        let mut sink = mailtrail_ingest::VecSink::default();
        let decoded = mailtrail_ingest::m365::import_trace(
            &report[..],
            "report",
            &mailtrail_ingest::DecodeOptions::default(),
            &mut sink,
        )
        .unwrap();
        assert_eq!(
            decoded.input,
            Some(mailtrail_ingest::m365::TraceInput::Csv(
                mailtrail_ingest::m365::TraceCsv::Extended
            ))
        );
        assert!(sink.rejects.is_empty(), "{:?}", sink.rejects.first());
        assert!(
            truth.events >= 3_000 && truth.events < 3_100,
            "{}",
            truth.events
        );
        let messages: HashSet<&str> = sink
            .records
            .iter()
            .filter_map(|r| r.message_id.as_deref())
            .collect();
        assert_eq!(messages.len() as u64, truth.messages);
        assert_eq!(by_status(&sink.records), truth.expected_deliveries);
        assert!(truth.expected_deliveries.contains_key("failed"));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("100M"), Ok(100_000_000));
        assert_eq!(parse_size("64k"), Ok(64_000));
        assert_eq!(parse_size("10Mi"), Ok(10 << 20));
        assert_eq!(parse_size("1_000_000"), Ok(1_000_000));
        assert!(parse_size("1X").is_err() && parse_size("G").is_err());
    }

    #[test]
    fn maildir_alone_and_refuses_to_overwrite() {
        let o = opts(12, None, Some(25));
        let dir = tempfile::tempdir().unwrap();
        let s = generate(&o, dir.path()).unwrap();
        assert_eq!(
            (s.postfix_lines, s.postfix_messages, s.maildir_messages),
            (0, 0, 25)
        );
        assert!(!dir.path().join("maillog").exists());
        assert!(generate(&o, dir.path()).is_err());
    }

    // BEGIN GENERATED TEST VECTORS
    // (text, text.encode('iso-2022-jp'), text.encode('shift_jis')) from Python 3.
    #[rustfmt::skip]
    const PY_VECTORS: &[(&str, &[u8], &[u8])] = &[
        ("見積書の件", b"\x1b\x24\x42\x38\x2b\x40\x51\x3d\x71\x24\x4e\x37\x6f\x1b\x28\x42", b"\x8c\xa9\x90\xcf\x8f\x91\x82\xcc\x8c\x8f"),
        ("【社外秘】新製品の価格表", b"\x1b\x24\x42\x21\x5a\x3c\x52\x33\x30\x48\x6b\x21\x5b\x3f\x37\x40\x3d\x49\x4a\x24\x4e\x32\x41\x33\x4a\x49\x3d\x1b\x28\x42", b"\x81\x79\x8e\xd0\x8a\x4f\x94\xe9\x81\x7a\x90\x56\x90\xbb\x95\x69\x82\xcc\x89\xbf\x8a\x69\x95\x5c"),
        ("会議のご案内", b"\x1b\x24\x42\x32\x71\x35\x44\x24\x4e\x24\x34\x30\x46\x46\x62\x1b\x28\x42", b"\x89\xef\x8b\x63\x82\xcc\x82\xb2\x88\xc4\x93\xe0"),
        ("議事録の送付", b"\x1b\x24\x42\x35\x44\x3b\x76\x4f\x3f\x24\x4e\x41\x77\x49\x55\x1b\x28\x42", b"\x8b\x63\x8e\x96\x98\x5e\x82\xcc\x91\x97\x95\x74"),
        ("請求書送付のご案内", b"\x1b\x24\x42\x40\x41\x35\x61\x3d\x71\x41\x77\x49\x55\x24\x4e\x24\x34\x30\x46\x46\x62\x1b\x28\x42", b"\x90\xbf\x8b\x81\x8f\x91\x91\x97\x95\x74\x82\xcc\x82\xb2\x88\xc4\x93\xe0"),
        ("顧客リストの更新について", b"\x1b\x24\x42\x38\x5c\x35\x52\x25\x6a\x25\x39\x25\x48\x24\x4e\x39\x39\x3f\x37\x24\x4b\x24\x44\x24\x24\x24\x46\x1b\x28\x42", b"\x8c\xda\x8b\x71\x83\x8a\x83\x58\x83\x67\x82\xcc\x8d\x58\x90\x56\x82\xc9\x82\xc2\x82\xa2\x82\xc4"),
        ("機密：事業計画書", b"\x1b\x24\x42\x35\x21\x4c\x29\x21\x27\x3b\x76\x36\x48\x37\x57\x32\x68\x3d\x71\x1b\x28\x42", b"\x8b\x40\x96\xa7\x81\x46\x8e\x96\x8b\xc6\x8c\x76\x89\xe6\x8f\x91"),
        ("打ち合わせ日程のご相談", b"\x1b\x24\x42\x42\x47\x24\x41\x39\x67\x24\x6f\x24\x3b\x46\x7c\x44\x78\x24\x4e\x24\x34\x41\x6a\x43\x4c\x1b\x28\x42", b"\x91\xc5\x82\xbf\x8d\x87\x82\xed\x82\xb9\x93\xfa\x92\xf6\x82\xcc\x82\xb2\x91\x8a\x92\x6b"),
        ("発注書の送付", b"\x1b\x24\x42\x48\x2f\x43\x6d\x3d\x71\x24\x4e\x41\x77\x49\x55\x1b\x28\x42", b"\x94\xad\x92\x8d\x8f\x91\x82\xcc\x91\x97\x95\x74"),
        ("納期についてのご確認", b"\x1b\x24\x42\x47\x3c\x34\x7c\x24\x4b\x24\x44\x24\x24\x24\x46\x24\x4e\x24\x34\x33\x4e\x47\x27\x1b\x28\x42", b"\x94\x5b\x8a\xfa\x82\xc9\x82\xc2\x82\xa2\x82\xc4\x82\xcc\x82\xb2\x8a\x6d\x94\x46"),
        ("契約書のご確認のお願い", b"\x1b\x24\x42\x37\x40\x4c\x73\x3d\x71\x24\x4e\x24\x34\x33\x4e\x47\x27\x24\x4e\x24\x2a\x34\x6a\x24\x24\x1b\x28\x42", b"\x8c\x5f\x96\xf1\x8f\x91\x82\xcc\x82\xb2\x8a\x6d\x94\x46\x82\xcc\x82\xa8\x8a\xe8\x82\xa2"),
        ("来週の定例会議について", b"\x1b\x24\x42\x4d\x68\x3d\x35\x24\x4e\x44\x6a\x4e\x63\x32\x71\x35\x44\x24\x4b\x24\x44\x24\x24\x24\x46\x1b\x28\x42", b"\x97\x88\x8f\x54\x82\xcc\x92\xe8\x97\xe1\x89\xef\x8b\x63\x82\xc9\x82\xc2\x82\xa2\x82\xc4"),
        ("出張報告書", b"\x1b\x24\x42\x3d\x50\x44\x25\x4a\x73\x39\x70\x3d\x71\x1b\x28\x42", b"\x8f\x6f\x92\xa3\x95\xf1\x8d\x90\x8f\x91"),
        ("経費精算のお願い", b"\x1b\x24\x42\x37\x50\x48\x71\x40\x3a\x3b\x3b\x24\x4e\x24\x2a\x34\x6a\x24\x24\x1b\x28\x42", b"\x8c\x6f\x94\xef\x90\xb8\x8e\x5a\x82\xcc\x82\xa8\x8a\xe8\x82\xa2"),
        ("人事異動のお知らせ", b"\x1b\x24\x42\x3f\x4d\x3b\x76\x30\x5b\x46\x30\x24\x4e\x24\x2a\x43\x4e\x24\x69\x24\x3b\x1b\x28\x42", b"\x90\x6c\x8e\x96\x88\xd9\x93\xae\x82\xcc\x82\xa8\x92\x6d\x82\xe7\x82\xb9"),
        ("新規案件のご相談", b"\x1b\x24\x42\x3f\x37\x35\x2c\x30\x46\x37\x6f\x24\x4e\x24\x34\x41\x6a\x43\x4c\x1b\x28\x42", b"\x90\x56\x8b\x4b\x88\xc4\x8c\x8f\x82\xcc\x82\xb2\x91\x8a\x92\x6b"),
        ("お打ち合わせのお礼", b"\x1b\x24\x42\x24\x2a\x42\x47\x24\x41\x39\x67\x24\x6f\x24\x3b\x24\x4e\x24\x2a\x4e\x69\x1b\x28\x42", b"\x82\xa8\x91\xc5\x82\xbf\x8d\x87\x82\xed\x82\xb9\x82\xcc\x82\xa8\x97\xe7"),
        ("資料送付のご連絡", b"\x1b\x24\x42\x3b\x71\x4e\x41\x41\x77\x49\x55\x24\x4e\x24\x34\x4f\x22\x4d\x6d\x1b\x28\x42", b"\x8e\x91\x97\xbf\x91\x97\x95\x74\x82\xcc\x82\xb2\x98\x41\x97\x8d"),
        ("社外秘 営業戦略資料", b"\x1b\x24\x42\x3c\x52\x33\x30\x48\x6b\x1b\x28\x42\x20\x1b\x24\x42\x31\x44\x36\x48\x40\x6f\x4e\x2c\x3b\x71\x4e\x41\x1b\x28\x42", b"\x8e\xd0\x8a\x4f\x94\xe9\x20\x89\x63\x8b\xc6\x90\xed\x97\xaa\x8e\x91\x97\xbf"),
        ("四半期売上報告", b"\x1b\x24\x42\x3b\x4d\x48\x3e\x34\x7c\x47\x64\x3e\x65\x4a\x73\x39\x70\x1b\x28\x42", b"\x8e\x6c\x94\xbc\x8a\xfa\x94\x84\x8f\xe3\x95\xf1\x8d\x90"),
        ("採用面接の日程調整", b"\x1b\x24\x42\x3a\x4e\x4d\x51\x4c\x4c\x40\x5c\x24\x4e\x46\x7c\x44\x78\x44\x34\x40\x30\x1b\x28\x42", b"\x8d\xcc\x97\x70\x96\xca\x90\xda\x82\xcc\x93\xfa\x92\xf6\x92\xb2\x90\xae"),
        ("製品カタログ送付の件", b"\x1b\x24\x42\x40\x3d\x49\x4a\x25\x2b\x25\x3f\x25\x6d\x25\x30\x41\x77\x49\x55\x24\x4e\x37\x6f\x1b\x28\x42", b"\x90\xbb\x95\x69\x83\x4a\x83\x5e\x83\x8d\x83\x4f\x91\x97\x95\x74\x82\xcc\x8c\x8f"),
        ("請求書の再発行について", b"\x1b\x24\x42\x40\x41\x35\x61\x3d\x71\x24\x4e\x3a\x46\x48\x2f\x39\x54\x24\x4b\x24\x44\x24\x24\x24\x46\x1b\x28\x42", b"\x90\xbf\x8b\x81\x8f\x91\x82\xcc\x8d\xc4\x94\xad\x8d\x73\x82\xc9\x82\xc2\x82\xa2\x82\xc4"),
        ("見積依頼", b"\x1b\x24\x42\x38\x2b\x40\x51\x30\x4d\x4d\x6a\x1b\x28\x42", b"\x8c\xa9\x90\xcf\x88\xcb\x97\x8a"),
        ("議事録（第3回プロジェクト会議）", b"\x1b\x24\x42\x35\x44\x3b\x76\x4f\x3f\x21\x4a\x42\x68\x1b\x28\x42\x33\x1b\x24\x42\x32\x73\x25\x57\x25\x6d\x25\x38\x25\x27\x25\x2f\x25\x48\x32\x71\x35\x44\x21\x4b\x1b\x28\x42", b"\x8b\x63\x8e\x96\x98\x5e\x81\x69\x91\xe6\x33\x89\xf1\x83\x76\x83\x8d\x83\x57\x83\x46\x83\x4e\x83\x67\x89\xef\x8b\x63\x81\x6a"),
        ("展示会のご案内", b"\x1b\x24\x42\x45\x38\x3c\x28\x32\x71\x24\x4e\x24\x34\x30\x46\x46\x62\x1b\x28\x42", b"\x93\x57\x8e\xa6\x89\xef\x82\xcc\x82\xb2\x88\xc4\x93\xe0"),
        ("在庫状況のご報告", b"\x1b\x24\x42\x3a\x5f\x38\x4b\x3e\x75\x36\x37\x24\x4e\x24\x34\x4a\x73\x39\x70\x1b\x28\x42", b"\x8d\xdd\x8c\xc9\x8f\xf3\x8b\xb5\x82\xcc\x82\xb2\x95\xf1\x8d\x90"),
        ("仕様変更のお知らせ", b"\x1b\x24\x42\x3b\x45\x4d\x4d\x4a\x51\x39\x39\x24\x4e\x24\x2a\x43\x4e\x24\x69\x24\x3b\x1b\x28\x42", b"\x8e\x64\x97\x6c\x95\xcf\x8d\x58\x82\xcc\x82\xa8\x92\x6d\x82\xe7\x82\xb9"),
        ("取引条件のご相談", b"\x1b\x24\x42\x3c\x68\x30\x7a\x3e\x72\x37\x6f\x24\x4e\x24\x34\x41\x6a\x43\x4c\x1b\x28\x42", b"\x8e\xe6\x88\xf8\x8f\xf0\x8c\x8f\x82\xcc\x82\xb2\x91\x8a\x92\x6b"),
        ("顧客リスト（最新版）", b"\x1b\x24\x42\x38\x5c\x35\x52\x25\x6a\x25\x39\x25\x48\x21\x4a\x3a\x47\x3f\x37\x48\x47\x21\x4b\x1b\x28\x42", b"\x8c\xda\x8b\x71\x83\x8a\x83\x58\x83\x67\x81\x69\x8d\xc5\x90\x56\x94\xc5\x81\x6a"),
        ("個人情報の取り扱いについて", b"\x1b\x24\x42\x38\x44\x3f\x4d\x3e\x70\x4a\x73\x24\x4e\x3c\x68\x24\x6a\x30\x37\x24\x24\x24\x4b\x24\x44\x24\x24\x24\x46\x1b\x28\x42", b"\x8c\xc2\x90\x6c\x8f\xee\x95\xf1\x82\xcc\x8e\xe6\x82\xe8\x88\xb5\x82\xa2\x82\xc9\x82\xc2\x82\xa2\x82\xc4"),
        ("【ITニュース】週刊ダイジェスト", b"\x1b\x24\x42\x21\x5a\x1b\x28\x42\x49\x54\x1b\x24\x42\x25\x4b\x25\x65\x21\x3c\x25\x39\x21\x5b\x3d\x35\x34\x29\x25\x40\x25\x24\x25\x38\x25\x27\x25\x39\x25\x48\x1b\x28\x42", b"\x81\x79\x49\x54\x83\x6a\x83\x85\x81\x5b\x83\x58\x81\x7a\x8f\x54\x8a\xa7\x83\x5f\x83\x43\x83\x57\x83\x46\x83\x58\x83\x67"),
        ("セミナー開催のお知らせ", b"\x1b\x24\x42\x25\x3b\x25\x5f\x25\x4a\x21\x3c\x33\x2b\x3a\x45\x24\x4e\x24\x2a\x43\x4e\x24\x69\x24\x3b\x1b\x28\x42", b"\x83\x5a\x83\x7e\x83\x69\x81\x5b\x8a\x4a\x8d\xc3\x82\xcc\x82\xa8\x92\x6d\x82\xe7\x82\xb9"),
        ("年末年始休業のお知らせ", b"\x1b\x24\x42\x47\x2f\x4b\x76\x47\x2f\x3b\x4f\x35\x59\x36\x48\x24\x4e\x24\x2a\x43\x4e\x24\x69\x24\x3b\x1b\x28\x42", b"\x94\x4e\x96\x96\x94\x4e\x8e\x6e\x8b\x78\x8b\xc6\x82\xcc\x82\xa8\x92\x6d\x82\xe7\x82\xb9"),
        ("システムメンテナンスのお知らせ", b"\x1b\x24\x42\x25\x37\x25\x39\x25\x46\x25\x60\x25\x61\x25\x73\x25\x46\x25\x4a\x25\x73\x25\x39\x24\x4e\x24\x2a\x43\x4e\x24\x69\x24\x3b\x1b\x28\x42", b"\x83\x56\x83\x58\x83\x65\x83\x80\x83\x81\x83\x93\x83\x65\x83\x69\x83\x93\x83\x58\x82\xcc\x82\xa8\x92\x6d\x82\xe7\x82\xb9"),
        ("【研究会】次回勉強会のご案内", b"\x1b\x24\x42\x21\x5a\x38\x26\x35\x66\x32\x71\x21\x5b\x3c\x21\x32\x73\x4a\x59\x36\x2f\x32\x71\x24\x4e\x24\x34\x30\x46\x46\x62\x1b\x28\x42", b"\x81\x79\x8c\xa4\x8b\x86\x89\xef\x81\x7a\x8e\x9f\x89\xf1\x95\xd7\x8b\xad\x89\xef\x82\xcc\x82\xb2\x88\xc4\x93\xe0"),
        ("パスワードのお知らせ", b"\x1b\x24\x42\x25\x51\x25\x39\x25\x6f\x21\x3c\x25\x49\x24\x4e\x24\x2a\x43\x4e\x24\x69\x24\x3b\x1b\x28\x42", b"\x83\x70\x83\x58\x83\x8f\x81\x5b\x83\x68\x82\xcc\x82\xa8\x92\x6d\x82\xe7\x82\xb9"),
        ("社外秘", b"\x1b\x24\x42\x3c\x52\x33\x30\x48\x6b\x1b\x28\x42", b"\x8e\xd0\x8a\x4f\x94\xe9"),
        ("山田 太郎", b"\x1b\x24\x42\x3b\x33\x45\x44\x1b\x28\x42\x20\x1b\x24\x42\x42\x40\x4f\x3a\x1b\x28\x42", b"\x8e\x52\x93\x63\x20\x91\xbe\x98\x59"),
        ("顧客リスト.xlsx", b"\x1b\x24\x42\x38\x5c\x35\x52\x25\x6a\x25\x39\x25\x48\x1b\x28\x42\x2e\x78\x6c\x73\x78", b"\x8c\xda\x8b\x71\x83\x8a\x83\x58\x83\x67\x2e\x78\x6c\x73\x78"),
        ("お疲れ様です。営業部の佐藤です。", b"\x1b\x24\x42\x24\x2a\x48\x68\x24\x6c\x4d\x4d\x24\x47\x24\x39\x21\x23\x31\x44\x36\x48\x49\x74\x24\x4e\x3a\x34\x46\x23\x24\x47\x24\x39\x21\x23\x1b\x28\x42", b"\x82\xa8\x94\xe6\x82\xea\x97\x6c\x82\xc5\x82\xb7\x81\x42\x89\x63\x8b\xc6\x95\x94\x82\xcc\x8d\xb2\x93\xa1\x82\xc5\x82\xb7\x81\x42"),
    ];
    // END GENERATED TEST VECTORS
}
