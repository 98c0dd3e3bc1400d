//! Employee and device lists exported from Excel (社員一覧.csv) to a
//! [`DirectorySnapshot`].
//!
//! Why it is shaped this way:
//! - **Encodings as Excel in Japan writes them**: "CSV (コンマ区切り)" is
//!   Shift_JIS (in fact Windows-31J / CP932, with ①, ㈱ and NEC/IBM
//!   extensions — the WHATWG Shift_JIS decoder covers them), "CSV UTF-8" has
//!   a byte-order mark, and "Unicode テキスト" is UTF-16LE with a BOM and
//!   tabs. The encoding is recognised, not asked for: a BOM decides; else
//!   valid UTF-8 is UTF-8; else Shift_JIS, and bytes that are not Shift_JIS
//!   either are an error with their line.
//! - **Headers by name, in Japanese or English**: columns are found by their
//!   header (社員番号, 氏名, フリガナ, メールアドレス, 部署, 退職日, ホスト名, IPアドレス, …;
//!   compared after NFKC, case folding and dropping spaces and brackets, so
//!   `氏名（ｶﾅ）` is `氏名(カナ)`), and the administrator can name any
//!   column for a field (`--column name=漢字氏名`). Unknown columns are
//!   ignored and listed, so a typo in a header is visible.
//! - **All or nothing**: a snapshot replaces the source's list, and people
//!   missing from it are marked gone. A file with one unreadable row must
//!   therefore not be applied as if that person had left: every bad row is
//!   reported with its line and reason, and the caller refuses the file.
//! - A file lists people or devices; which one is told by its headers (a
//!   host name column and no person id or address).

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use mailtrail_model::directory::{
    Device, DeviceAssignment, DirectorySnapshot, EmploymentStatus, Person,
};

/// A field a column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Id,
    Name,
    Kana,
    Romaji,
    Address,
    Aliases,
    Department,
    Manager,
    Status,
    HireDate,
    LeaveDate,
    PrivateAddresses,
    Groups,
    Hostname,
    Owner,
    Ip,
    Mac,
    From,
    Until,
}

impl Field {
    pub const ALL: [Field; 19] = [
        Field::Id,
        Field::Name,
        Field::Kana,
        Field::Romaji,
        Field::Address,
        Field::Aliases,
        Field::Department,
        Field::Manager,
        Field::Status,
        Field::HireDate,
        Field::LeaveDate,
        Field::PrivateAddresses,
        Field::Groups,
        Field::Hostname,
        Field::Owner,
        Field::Ip,
        Field::Mac,
        Field::From,
        Field::Until,
    ];

    /// The name used on the command line (`--column leave_date=最終出社日`).
    pub fn key(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Name => "name",
            Field::Kana => "kana",
            Field::Romaji => "romaji",
            Field::Address => "address",
            Field::Aliases => "aliases",
            Field::Department => "department",
            Field::Manager => "manager",
            Field::Status => "status",
            Field::HireDate => "hire_date",
            Field::LeaveDate => "leave_date",
            Field::PrivateAddresses => "private_addresses",
            Field::Groups => "groups",
            Field::Hostname => "hostname",
            Field::Owner => "owner",
            Field::Ip => "ip",
            Field::Mac => "mac",
            Field::From => "from",
            Field::Until => "until",
        }
    }

    pub fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.key() == key.trim())
    }

    /// Headers recognised without configuration (compared in [`header_key`] form).
    fn default_headers(self) -> &'static [&'static str] {
        match self {
            Field::Id => &[
                "社員番号",
                "従業員番号",
                "社員コード",
                "社員id",
                "職員番号",
                "employeeid",
                "employeenumber",
                "id",
            ],
            Field::Name => &[
                "氏名",
                "名前",
                "社員名",
                "表示名",
                "氏名漢字",
                "name",
                "displayname",
                "fullname",
            ],
            Field::Kana => &[
                "フリガナ",
                "ふりがな",
                "カナ",
                "氏名カナ",
                "氏名フリガナ",
                "kana",
                "furigana",
            ],
            Field::Romaji => &[
                "ローマ字",
                "氏名ローマ字",
                "英字氏名",
                "氏名英字",
                "romaji",
                "englishname",
            ],
            Field::Address => &[
                "メールアドレス",
                "メール",
                "email",
                "mail",
                "emailaddress",
                "primaryemail",
                "address",
            ],
            Field::Aliases => &["別名", "エイリアス", "別名アドレス", "aliases", "alias"],
            Field::Department => &[
                "部署",
                "所属",
                "所属部署",
                "部門",
                "部署名",
                "department",
                "dept",
            ],
            Field::Manager => &[
                "上長",
                "上司",
                "上長社員番号",
                "上司社員番号",
                "manager",
                "managerid",
            ],
            Field::Status => &[
                "在籍区分",
                "在籍状況",
                "在籍",
                "状態",
                "ステータス",
                "status",
            ],
            Field::HireDate => &["入社日", "入社年月日", "hiredate"],
            Field::LeaveDate => &["退職日", "退職予定日", "退職年月日", "leavedate"],
            Field::PrivateAddresses => &[
                "私用アドレス",
                "私用メール",
                "個人アドレス",
                "私用メールアドレス",
                "privateaddresses",
                "privateemail",
            ],
            Field::Groups => &["グループ", "ウォッチリスト", "groups", "watchlists"],
            Field::Hostname => &[
                "ホスト名",
                "コンピューター名",
                "コンピュータ名",
                "pc名",
                "端末名",
                "hostname",
                "computername",
                "device",
            ],
            Field::Owner => &["使用者", "利用者", "所有者", "使用者社員番号", "owner"],
            Field::Ip => &["ipアドレス", "ip", "ipaddress"],
            Field::Mac => &["macアドレス", "mac", "macaddress"],
            Field::From => &["利用開始", "開始日", "割当開始", "from", "validfrom"],
            Field::Until => &["利用終了", "終了日", "割当終了", "until", "validuntil"],
        }
    }
}

/// How to read a file.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Header names for fields, overriding the defaults (as typed; compared
    /// like every header).
    pub columns: BTreeMap<Field, String>,
    /// The zone of dates and times without one (device assignment periods).
    pub timezone: Tz,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            columns: BTreeMap::new(),
            timezone: chrono_tz::Asia::Tokyo,
        }
    }
}

/// A decoded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryCsv {
    pub snapshot: DirectorySnapshot,
    /// `UTF-8`, `UTF-8 (BOM)`, `UTF-16LE (BOM)` or `Shift_JIS (CP932)`.
    pub encoding: &'static str,
    /// Data rows read (blank rows are not counted).
    pub rows: usize,
    /// Which column fills which field, in file order.
    pub columns: Vec<(Field, String)>,
    /// Headers no field uses.
    pub ignored: Vec<String>,
}

/// A row that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line of the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsvError {
    #[error("line {line}: the bytes are neither UTF-8 nor Shift_JIS (CP932); save the file as \"CSV UTF-8\" or \"CSV (コンマ区切り)\"")]
    Encoding { line: u64 },
    #[error("the file is empty: the first line must name the columns")]
    Empty,
    #[error("line 1: no column for {0} (headers: {1}); name it with --column {2}=HEADER")]
    MissingColumn(&'static str, String, &'static str),
    #[error("line 1: two columns, {first:?} and {second:?}, are headed as {field}; name one with --column {field}=HEADER")]
    Ambiguous {
        field: &'static str,
        first: String,
        second: String,
    },
    #[error("{} row(s) cannot be read, nothing was applied:\n{}", .0.len(), .0.iter().map(|e| format!("  line {}: {}", e.line, e.reason)).collect::<Vec<_>>().join("\n"))]
    Rows(Vec<RowError>),
    #[error("line {line}: {reason}")]
    Syntax { line: u64, reason: String },
}

/// A header as compared: NFKC (full-width ASCII and half-width katakana
/// folded), lower case, letters and digits only.
pub fn header_key(header: &str) -> String {
    fold_width(header)
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Full-width ASCII to ASCII and half-width katakana to full-width: what
/// matters for headers and values typed in a Japanese spreadsheet.
fn fold_width(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfkc().collect()
}

/// Decodes the bytes of a file to text and names the encoding.
fn decode_text(bytes: &[u8]) -> Result<(String, &'static str), CsvError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return match std::str::from_utf8(rest) {
            Ok(t) => Ok((t.to_string(), "UTF-8 (BOM)")),
            Err(e) => Err(CsvError::Encoding {
                line: line_of(rest, e.valid_up_to()),
            }),
        };
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        let (text, had_errors) = encoding_rs::UTF_16LE.decode_without_bom_handling(rest);
        if had_errors {
            let bad = text.find('\u{FFFD}').unwrap_or(0);
            return Err(CsvError::Encoding {
                line: 1 + text[..bad].matches('\n').count() as u64,
            });
        }
        return Ok((text.into_owned(), "UTF-16LE (BOM)"));
    }
    if let Ok(t) = std::str::from_utf8(bytes) {
        return Ok((t.to_string(), "UTF-8"));
    }
    let (text, had_errors) = encoding_rs::SHIFT_JIS.decode_without_bom_handling(bytes);
    if had_errors {
        let bad = text.find('\u{FFFD}').unwrap_or(0);
        return Err(CsvError::Encoding {
            line: 1 + text[..bad].matches('\n').count() as u64,
        });
    }
    Ok((text.into_owned(), "Shift_JIS (CP932)"))
}

fn line_of(bytes: &[u8], offset: usize) -> u64 {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
}

/// Decodes one file. Any unreadable row makes the whole file an error
/// ([`CsvError::Rows`], every bad row listed).
pub fn decode(bytes: &[u8], options: &CsvOptions) -> Result<DirectoryCsv, CsvError> {
    let (text, encoding) = decode_text(bytes)?;
    let first_line = text.lines().next().unwrap_or_default();
    if first_line.trim().is_empty() {
        return Err(CsvError::Empty);
    }
    let delimiter = if first_line.contains('\t') && !first_line.contains(',') {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| syntax(&e))?
        .iter()
        .map(str::to_string)
        .collect::<Vec<_>>();

    // Which column fills which field.
    let wanted: Vec<(Field, Vec<String>)> = Field::ALL
        .into_iter()
        .map(|f| match options.columns.get(&f) {
            Some(h) => (f, vec![header_key(h)]),
            None => (
                f,
                f.default_headers().iter().map(|h| header_key(h)).collect(),
            ),
        })
        .collect();
    let mut by_field: BTreeMap<Field, usize> = BTreeMap::new();
    let mut columns = Vec::new();
    let mut ignored = Vec::new();
    for (i, header) in headers.iter().enumerate() {
        let key = header_key(header);
        // A configured header wins over a default one.
        let found = wanted
            .iter()
            .find(|(f, names)| options.columns.contains_key(f) && names.contains(&key))
            .or_else(|| {
                wanted
                    .iter()
                    .find(|(f, names)| !options.columns.contains_key(f) && names.contains(&key))
            });
        let Some((field, _)) = found else {
            ignored.push(header.clone());
            continue;
        };
        if let Some(&first) = by_field.get(field) {
            if options.columns.contains_key(field) {
                return Err(CsvError::Ambiguous {
                    field: field.key(),
                    first: headers[first].clone(),
                    second: header.clone(),
                });
            }
            ignored.push(header.clone());
            continue;
        }
        by_field.insert(*field, i);
        columns.push((*field, header.clone()));
    }
    let devices = by_field.contains_key(&Field::Hostname)
        && !by_field.contains_key(&Field::Id)
        && !by_field.contains_key(&Field::Address);
    if !devices && !by_field.contains_key(&Field::Id) && !by_field.contains_key(&Field::Address) {
        return Err(CsvError::MissingColumn(
            "the employee id or mail address",
            headers.join(", "),
            "id",
        ));
    }

    let mut snapshot = DirectorySnapshot::default();
    let mut errors = Vec::new();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.map_err(|e| syntax(&e))?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        rows += 1;
        let get = |f: Field| {
            by_field
                .get(&f)
                .and_then(|&i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let result = if devices {
            device_row(&get, options.timezone).map(|d| snapshot.devices.push(d))
        } else {
            person_row(&get).map(|p| snapshot.people.push(p))
        };
        if let Err(reason) = result {
            errors.push(RowError { line, reason });
        }
    }
    if !errors.is_empty() {
        return Err(CsvError::Rows(errors));
    }
    merge_device_rows(&mut snapshot);
    snapshot.normalize();
    Ok(DirectoryCsv {
        snapshot,
        encoding,
        rows,
        columns,
        ignored,
    })
}

fn syntax(e: &csv::Error) -> CsvError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    CsvError::Syntax {
        line,
        reason: match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "not valid text".to_string(),
            _ => e.to_string(),
        },
    }
}

/// Values of a multi-valued cell: `a@x; b@x`, `a@x, b@x`, `a@x、b@x`, one per line.
fn list(cell: Option<&str>) -> Vec<String> {
    cell.map(|c| {
        c.split([';', ',', '、', '\n', ' ', '\t', '　', '；', '，'])
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn addresses(cell: Option<&str>, field: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in list(cell) {
        let a = fold_width(&a);
        match mailtrail_model::normalize_address(&a) {
            Some(n) if n.contains('@') => out.push(n),
            _ => return Err(format!("{field}: {a:?} is not a mail address")),
        }
    }
    Ok(out)
}

/// `2026/4/1`, `2026-04-01`, `2026年4月1日`, `20260401`.
fn date(text: &str) -> Option<NaiveDate> {
    let t = fold_width(text);
    let t = t.trim();
    for f in ["%Y/%m/%d", "%Y-%m-%d", "%Y年%m月%d日", "%Y%m%d", "%Y.%m.%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(t, f) {
            return Some(d);
        }
    }
    None
}

fn date_field(cell: Option<&str>, field: &str) -> Result<Option<NaiveDate>, String> {
    match cell {
        None => Ok(None),
        Some(c) => date(c).map(Some).ok_or_else(|| {
            format!("{field}: {c:?} is not a date (expected 2026/04/01 or 2026-04-01)")
        }),
    }
}

/// A date (the start of that day) or a date and time, in `tz`; or RFC 3339.
fn instant(cell: Option<&str>, tz: Tz, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    let Some(c) = cell else { return Ok(None) };
    let t = fold_width(c);
    let t = t.trim();
    if let Ok(i) = DateTime::parse_from_rfc3339(t) {
        return Ok(Some(i.with_timezone(&Utc)));
    }
    let local = [
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .or_else(|| date(t).map(|d| d.and_time(NaiveTime::MIN)));
    match local.and_then(|l| tz.from_local_datetime(&l).earliest()) {
        Some(i) => Ok(Some(i.with_timezone(&Utc))),
        None => Err(format!("{field}: {c:?} is not a date or time")),
    }
}

fn person_row<'a>(get: &dyn Fn(Field) -> Option<&'a str>) -> Result<Person, String> {
    let mut addrs = addresses(get(Field::Address), "address")?;
    addrs.extend(addresses(get(Field::Aliases), "aliases")?);
    let id = match get(Field::Id) {
        Some(id) => fold_width(id),
        None => match addrs.first() {
            Some(a) => a.clone(),
            None => return Err("no employee id and no mail address".into()),
        },
    };
    let status = match get(Field::Status) {
        None => EmploymentStatus::Active,
        Some(s) => EmploymentStatus::parse(&fold_width(s)).ok_or_else(|| {
            format!("status: {s:?} is not one of 在籍, 休職, 退職, 無効 (active, on-leave, resigned, disabled)")
        })?,
    };
    let department = get(Field::Department).map(|d| {
        d.split(['/', '／', '>', '＞', '\\', '＼'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    });
    Ok(Person {
        id,
        name: get(Field::Name).map(str::to_string),
        kana: get(Field::Kana).map(fold_width),
        romaji: get(Field::Romaji).map(fold_width),
        addresses: addrs,
        department,
        manager: get(Field::Manager).map(fold_width),
        status,
        hire_date: date_field(get(Field::HireDate), "hire_date")?,
        leave_date: date_field(get(Field::LeaveDate), "leave_date")?,
        private_addresses: addresses(get(Field::PrivateAddresses), "private_addresses")?,
        groups: list(get(Field::Groups)),
    })
}

fn device_row<'a>(get: &dyn Fn(Field) -> Option<&'a str>, tz: Tz) -> Result<Device, String> {
    let hostname = get(Field::Hostname)
        .map(fold_width)
        .ok_or_else(|| "no host name".to_string())?;
    let ip = match get(Field::Ip) {
        None => None,
        Some(text) => Some(
            fold_width(text)
                .parse::<IpAddr>()
                .map_err(|_| format!("ip: {text:?} is not an IP address"))?,
        ),
    };
    let mac = match get(Field::Mac) {
        None => None,
        Some(text) => {
            let m = fold_width(text).to_lowercase().replace('-', ":");
            let hex: String = m.chars().filter(|c| *c != ':').collect();
            if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("mac: {text:?} is not a MAC address"));
            }
            Some(m)
        }
    };
    let from = instant(get(Field::From), tz, "from")?;
    let until = instant(get(Field::Until), tz, "until")?;
    if let (Some(f), Some(u)) = (from, until) {
        if u <= f {
            return Err("until is not after from".into());
        }
    }
    let assignments = if ip.is_some() || mac.is_some() {
        vec![DeviceAssignment {
            ip,
            mac,
            from,
            until,
        }]
    } else {
        Vec::new()
    };
    Ok(Device {
        hostname,
        owner: get(Field::Owner).map(fold_width),
        assignments,
    })
}

/// A device listed on several rows (one per address period) is one device
/// with several assignments: merges rows by host name, keeping file order.
pub fn merge_device_rows(snapshot: &mut DirectorySnapshot) {
    let mut merged: Vec<Device> = Vec::new();
    for d in std::mem::take(&mut snapshot.devices) {
        match merged.iter_mut().find(|m| m.hostname == d.hostname) {
            Some(m) => {
                m.assignments.extend(d.assignments);
                if m.owner.is_none() {
                    m.owner = d.owner;
                }
            }
            None => merged.push(d),
        }
    }
    snapshot.devices = merged;
}
