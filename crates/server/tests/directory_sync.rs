//! Directory sync against real and stand-in directories.
//!
//! - **LDAP** against a real OpenLDAP `slapd` that the test starts itself:
//!   its own `slapd.conf` and mdb database in a temporary folder, a free
//!   port on 127.0.0.1, run as the current user, killed when the test ends.
//!   The data is loaded with `slapadd` before the server starts (which
//!   also lets the test fix `entryUUID`s). A small schema written by the
//!   test gives OpenLDAP Active Directory's attributes (`objectGUID`,
//!   `userAccountControl`, `proxyAddresses`, `memberOf`, …). The bind
//!   account has a size limit of 5 entries per search and per page, so the
//!   23 people can only be read with the paged results control.
//!   Without slapd the test fails and says to install `slapd ldap-utils`
//!   (CI installs them, see `.ci/run`); `MAILTRAIL_SKIP_SLAPD=1` skips it.
//! - **Microsoft Graph and the Directory API** against a local stand-in
//!   that speaks their documented request and response shapes, as the
//!   pollers' tests do: tokens that expire after a few seconds (an expired
//!   one is refused with 401), lists in pages, 429 with `Retry-After` once,
//!   every request checked, whatever is wrong collected and asserted empty.

mod common;
mod slapd;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::NaiveDate;
use mailtrail_model::directory::{DirectorySnapshot, EmploymentStatus, Person};
use mailtrail_server::directory::{
    self, DirectorySyncError, GroupSource, LdapAttributes, LdapDirectoryConfig, SyncOptions,
    SyncProgress,
};

use slapd::{free_port, Slapd, READER, READER_PW, SUFFIX};

use common::{
    bearer, fast_retries, fault, invalid_token, params, reply, token_reply, Fault, Logs, Reply,
    Request,
};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An LDIF attribute line, base64 when the value is not plain ASCII.
fn line(name: &str, value: &str) -> String {
    if value.is_ascii() && !value.starts_with([' ', ':', '<']) {
        format!("{name}: {value}\n")
    } else {
        format!("{name}:: {}\n", b64(value.as_bytes()))
    }
}

const YAMADA_GUID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const SATO_GUID: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
const SUZUKI_GUID: [u8; 16] = [
    0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
];
/// Printable ASCII: valid UTF-8 by chance, still a GUID.
const PRESIDENT_GUID: &[u8; 16] = b"ABCDEFGHIJKLMNOP";

const PEOPLE_BASE: &str = "ou=本社,dc=example,dc=co,dc=jp";
const GROUPS_BASE: &str = "ou=groups,dc=example,dc=co,dc=jp";
const SALES_ALL: &str = "cn=営業部全員,ou=groups,dc=example,dc=co,dc=jp";
const IT: &str = "cn=情報システム,ou=groups,dc=example,dc=co,dc=jp";
const GENERATED: u32 = 19;

fn generated_dn(n: u32) -> String {
    let unit = if n.is_multiple_of(2) {
        "ou=第二課,ou=営業部"
    } else {
        "ou=総務部"
    };
    format!("cn=社員 {n:02},{unit},{PEOPLE_BASE}")
}

/// The directory: 24 people under `ou=本社` (23 with mail), a president
/// outside it, a service account, two groups.
fn ldif() -> String {
    let mut out = String::new();
    let mut entry = |lines: &[(&str, &str)]| {
        for (k, v) in lines {
            out.push_str(&line(k, v));
        }
        out.push('\n');
    };
    entry(&[
        ("dn", SUFFIX),
        ("objectClass", "dcObject"),
        ("objectClass", "organization"),
        ("dc", "example"),
        ("o", "Example"),
    ]);
    for (dn, ou) in [
        ("ou=service,dc=example,dc=co,dc=jp", "service"),
        ("ou=groups,dc=example,dc=co,dc=jp", "groups"),
        ("ou=役員,dc=example,dc=co,dc=jp", "役員"),
        (PEOPLE_BASE, "本社"),
        ("ou=営業部,ou=本社,dc=example,dc=co,dc=jp", "営業部"),
        (
            "ou=第一課,ou=営業部,ou=本社,dc=example,dc=co,dc=jp",
            "第一課",
        ),
        (
            "ou=第二課,ou=営業部,ou=本社,dc=example,dc=co,dc=jp",
            "第二課",
        ),
        ("ou=総務部,ou=本社,dc=example,dc=co,dc=jp", "総務部"),
    ] {
        entry(&[
            ("dn", dn),
            ("objectClass", "organizationalUnit"),
            ("ou", ou),
        ]);
    }
    entry(&[
        ("dn", READER),
        ("objectClass", "organizationalRole"),
        ("objectClass", "simpleSecurityObject"),
        ("cn", "mailtrail"),
        ("userPassword", READER_PW),
    ]);
    out.push_str(&format!(
        "dn:: {}\nobjectClass: inetOrgPerson\nobjectClass: adLikeAccount\n{}{}{}objectGUID:: {}\nmail: president@example.co.jp\nuserAccountControl: 512\n\n",
        b64("cn=社長 一郎,ou=役員,dc=example,dc=co,dc=jp".as_bytes()),
        line("cn", "社長 一郎"),
        line("sn", "社長"),
        line("displayName", "社長 一郎"),
        b64(PRESIDENT_GUID),
    ));
    let yamada = "cn=山田 太郎,ou=第一課,ou=営業部,ou=本社,dc=example,dc=co,dc=jp";
    let sato = "cn=佐藤 花子,ou=営業部,ou=本社,dc=example,dc=co,dc=jp";
    let suzuki = "cn=鈴木 一郎,ou=総務部,ou=本社,dc=example,dc=co,dc=jp";
    let tanaka = r"cn=Tanaka\, Jiro,ou=第一課,ou=営業部,ou=本社,dc=example,dc=co,dc=jp";
    out.push_str(&format!(
        "dn:: {}\nobjectClass: inetOrgPerson\nobjectClass: adLikeAccount\n{}{}{}displayName;lang-en: Taro Yamada\n{}objectGUID:: {}\nmail: taro.yamada@example.co.jp\nproxyAddresses: smtp:t-yamada@example.co.jp\nproxyAddresses: SMTP:Taro.Yamada@example.co.jp\nproxyAddresses: X500:/o=ExchangeLabs/ou=Exchange/cn=Recipients/cn=yamada\nproxyAddresses: sip:taro.yamada@example.co.jp\n{}{}{}employeeNumber: 1001\nextensionAttribute1: 2015-04-01\nuserAccountControl: 512\n\n",
        b64(yamada.as_bytes()),
        line("cn", "山田 太郎"),
        line("sn", "山田"),
        line("displayName", "山田 太郎"),
        line("msDS-PhoneticDisplayName", "ヤマダ タロウ"),
        b64(&YAMADA_GUID),
        line("manager", sato),
        line("memberOf", SALES_ALL),
        line("memberOf", IT),
    ));
    out.push_str(&format!(
        "dn:: {}\nobjectClass: inetOrgPerson\nobjectClass: adLikeAccount\n{}{}{}{}objectGUID:: {}\nmail: hanako.sato@example.co.jp\nmail: h-sato@example.co.jp\n{}{}{}extensionAttribute1: 20120401000000Z\nuserAccountControl: 66048\n\n",
        b64(sato.as_bytes()),
        line("cn", "佐藤 花子"),
        line("sn", "佐藤"),
        line("displayName", "佐藤 花子"),
        line("msDS-PhoneticDisplayName", "サトウ ハナコ"),
        b64(&SATO_GUID),
        line("department", "営業本部"),
        line("manager", "CN=社長 一郎,OU=役員,DC=example,DC=co,DC=jp"),
        line("memberOf", SALES_ALL),
    ));
    out.push_str(&format!(
        "dn:: {}\nobjectClass: inetOrgPerson\nobjectClass: adLikeAccount\n{}{}{}objectGUID:: {}\nmail: ichiro.suzuki@example.co.jp\nuserAccountControl: 514\naccountExpires: 134194752000000000\n{}\n",
        b64(suzuki.as_bytes()),
        line("cn", "鈴木 一郎"),
        line("sn", "鈴木"),
        line("displayName", "鈴木 一郎"),
        b64(&SUZUKI_GUID),
        line("manager", sato),
    ));
    // No objectGUID: keyed by entryUUID. A DN with an escaped comma.
    out.push_str(&format!(
        "dn: {tanaka}\nobjectClass: inetOrgPerson\ncn: Tanaka, Jiro\nsn: Tanaka\nmail: jiro.tanaka@example.co.jp\nentryUUID: 00000000-0000-4000-8000-0000000000aa\n{}\n",
        line("manager", yamada),
    ));
    // No mail: not a person by the filter.
    out.push_str(&format!(
        "dn:: {}\nobjectClass: inetOrgPerson\n{}{}\n",
        b64("cn=高橋 三郎,ou=総務部,ou=本社,dc=example,dc=co,dc=jp".as_bytes()),
        line("cn", "高橋 三郎"),
        line("sn", "高橋"),
    ));
    for n in 1..=GENERATED {
        out.push_str(&format!(
            "dn:: {}\nobjectClass: inetOrgPerson\nobjectClass: adLikeAccount\n{}{}uid: e{n:02}\nmail: e{n:02}@example.co.jp\nentryUUID: 00000000-0000-4000-8000-0000000000{n:02}\n{}\n",
            b64(generated_dn(n).as_bytes()),
            line("cn", &format!("社員 {n:02}")),
            line("sn", "社員"),
            if n <= 3 { line("memberOf", IT) } else { String::new() },
        ));
    }
    // The groups, listing the same members as the people's memberOf.
    let mut it_members = vec![yamada.to_string()];
    it_members.extend((1..=3).map(generated_dn));
    for (dn, cn, members) in [
        (
            SALES_ALL,
            "営業部全員",
            vec![yamada.to_string(), sato.to_string()],
        ),
        (IT, "情報システム", it_members),
    ] {
        out.push_str(&format!(
            "dn:: {}\nobjectClass: groupOfNames\n{}",
            b64(dn.as_bytes()),
            line("cn", cn)
        ));
        for m in members {
            out.push_str(&line("member", &m));
        }
        out.push('\n');
    }
    out
}

fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, day)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const YAMADA_ID: &str = "03020100-0504-0706-0809-0a0b0c0d0e0f";
const SATO_ID: &str = "a3a2a1a0-a5a4-a7a6-a8a9-aaabacadaeaf";
const SUZUKI_ID: &str = "76543210-ba98-fedc-0123-456789abcdef";
const PRESIDENT_ID: &str = "44434241-4645-4847-494a-4b4c4d4e4f50";
const TANAKA_ID: &str = "00000000-0000-4000-8000-0000000000aa";

/// What the sync must return for [`ldif`], written out by hand.
fn expected_ldap() -> DirectorySnapshot {
    let mut people = vec![
        Person {
            id: YAMADA_ID.into(),
            name: Some("山田 太郎".into()),
            kana: Some("ヤマダ タロウ".into()),
            romaji: Some("Taro Yamada".into()),
            // SMTP: is the primary; mail repeats it; smtp: is an alias;
            // X500: and sip: are not mail addresses.
            addresses: strings(&["taro.yamada@example.co.jp", "t-yamada@example.co.jp"]),
            department: Some("本社/営業部/第一課".into()),
            manager: Some(SATO_ID.into()),
            status: EmploymentStatus::Active,
            hire_date: d(2015, 4, 1),
            groups: strings(&["営業部全員", "情報システム"]),
            ..Person::default()
        },
        Person {
            id: SATO_ID.into(),
            name: Some("佐藤 花子".into()),
            kana: Some("サトウ ハナコ".into()),
            addresses: strings(&["hanako.sato@example.co.jp", "h-sato@example.co.jp"]),
            // The attribute wins over the DN.
            department: Some("営業本部".into()),
            // Outside base_dn: looked up by DN.
            manager: Some(PRESIDENT_ID.into()),
            // 66048 = NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD: enabled.
            status: EmploymentStatus::Active,
            hire_date: d(2012, 4, 1),
            groups: strings(&["営業部全員"]),
            ..Person::default()
        },
        Person {
            id: SUZUKI_ID.into(),
            name: Some("鈴木 一郎".into()),
            addresses: strings(&["ichiro.suzuki@example.co.jp"]),
            department: Some("本社/総務部".into()),
            manager: Some(SATO_ID.into()),
            // 514 = NORMAL_ACCOUNT | ACCOUNTDISABLE.
            status: EmploymentStatus::Disabled,
            leave_date: d(2026, 4, 1),
            ..Person::default()
        },
        Person {
            id: TANAKA_ID.into(),
            // No displayName: cn.
            name: Some("Tanaka, Jiro".into()),
            addresses: strings(&["jiro.tanaka@example.co.jp"]),
            department: Some("本社/営業部/第一課".into()),
            manager: Some(YAMADA_ID.into()),
            ..Person::default()
        },
    ];
    for n in 1..=GENERATED {
        people.push(Person {
            id: format!("00000000-0000-4000-8000-0000000000{n:02}"),
            name: Some(format!("社員 {n:02}")),
            addresses: vec![format!("e{n:02}@example.co.jp")],
            department: Some(
                if n % 2 == 0 {
                    "本社/営業部/第二課"
                } else {
                    "本社/総務部"
                }
                .into(),
            ),
            groups: if n <= 3 {
                strings(&["情報システム"])
            } else {
                Vec::new()
            },
            ..Person::default()
        });
    }
    people.sort_by(|a, b| a.id.cmp(&b.id));
    DirectorySnapshot {
        people,
        devices: Vec::new(),
    }
}

fn ldap_config(url: &str, password_file: &Path) -> LdapDirectoryConfig {
    LdapDirectoryConfig {
        url: url.to_string(),
        bind_dn: READER.into(),
        bind_password_file: Some(password_file.to_path_buf()),
        base_dn: PEOPLE_BASE.into(),
        page_size: 5,
        timeout_secs: 10,
        attributes: LdapAttributes {
            romaji: strings(&["displayName;lang-en"]),
            hire_date: strings(&["extensionAttribute1"]),
            leave_date: strings(&["accountExpires"]),
            ..LdapAttributes::default()
        },
        ..LdapDirectoryConfig::default()
    }
}

fn options(logs: &Logs, progress: &Arc<Mutex<Vec<SyncProgress>>>) -> SyncOptions {
    let sink = logs.clone();
    let seen = progress.clone();
    SyncOptions {
        log: Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string())),
        progress: Some(Arc::new(move |p| seen.lock().unwrap().push(p))),
        retry: fast_retries(),
        stop: Arc::new(AtomicBool::new(false)),
    }
}

#[test]
fn ldap_sync_reads_a_real_slapd_in_pages() {
    let Some(server) = Slapd::start(&ldif(), 5) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("ldap-password");
    std::fs::write(&pw, format!("{READER_PW}\n")).unwrap();
    let logs = Logs::default();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let config = ldap_config(&server.url, &pw);

    // The size limit is real: without paging the bind account gets 5.
    {
        let mut conn = ldap3::LdapConn::new(&server.url).unwrap();
        conn.simple_bind(READER, READER_PW)
            .unwrap()
            .success()
            .unwrap();
        let result = conn
            .search(
                PEOPLE_BASE,
                ldap3::Scope::Subtree,
                "(&(objectClass=person)(mail=*))",
                vec!["cn"],
            )
            .unwrap();
        assert_eq!(result.1.rc, 4, "sizeLimitExceeded expected");
        assert_eq!(result.0.len(), 5);
    }

    let snapshot = directory::sync_ldap_with(&config, &options(&logs, &progress)).unwrap();
    let expected = expected_ldap();
    assert_eq!(snapshot.people.len(), 23);
    for (got, want) in snapshot.people.iter().zip(&expected.people) {
        assert_eq!(got, want);
    }
    assert_eq!(snapshot, expected);
    let progress = progress.lock().unwrap().clone();
    assert_eq!(
        progress.iter().map(|p| p.people).collect::<Vec<_>>(),
        vec![5, 10, 15, 20, 23]
    );
    assert!(progress.iter().all(|p| p.source == "ldap"));

    // Groups from the groups' member lists give the same snapshot.
    let by_search = LdapDirectoryConfig {
        groups: GroupSource::Search,
        group_base_dn: Some(GROUPS_BASE.into()),
        ..config.clone()
    };
    assert_eq!(
        directory::sync_ldap_with(&by_search, &options(&logs, &Arc::default())).unwrap(),
        expected
    );
    // No groups at all.
    let none = LdapDirectoryConfig {
        groups: GroupSource::None,
        ..config.clone()
    };
    let plain = directory::sync_ldap_with(&none, &options(&logs, &Arc::default())).unwrap();
    assert!(plain.people.iter().all(|p| p.groups.is_empty()));
    assert_eq!(plain.people.len(), 23);

    // Keyed by employee number where there is one.
    let by_number = LdapDirectoryConfig {
        attributes: LdapAttributes {
            id: strings(&["employeeNumber", "objectGUID", "entryUUID"]),
            ..config.attributes.clone()
        },
        ..config.clone()
    };
    let numbered = directory::sync_ldap_with(&by_number, &options(&logs, &Arc::default())).unwrap();
    let yamada = numbered.people.iter().find(|p| p.id == "1001").unwrap();
    assert_eq!(yamada.name.as_deref(), Some("山田 太郎"));
    let tanaka = numbered.people.iter().find(|p| p.id == TANAKA_ID).unwrap();
    assert_eq!(tanaka.manager.as_deref(), Some("1001"));

    let logs = logs.lock().unwrap().join("\n");
    assert!(!logs.contains(READER_PW), "{logs}");
}

#[test]
fn ldap_errors_say_what_failed_and_where() {
    let Some(server) = Slapd::start(&ldif(), 5) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("ldap-password");
    std::fs::write(&pw, "wrong-password-DO-NOT-LOG\n").unwrap();
    let config = ldap_config(&server.url, &pw);
    let logs = Logs::default();

    let e = directory::sync_ldap_with(&config, &options(&logs, &Arc::default())).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, DirectorySyncError::Bind { .. }), "{e:?}");
    assert!(text.contains("invalidCredentials (49)"), "{text}");
    assert!(
        text.contains(READER) && text.contains(&server.url),
        "{text}"
    );
    assert!(text.contains("check bind_dn and the password"), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");

    // A base that does not exist.
    std::fs::write(&pw, READER_PW).unwrap();
    let missing = LdapDirectoryConfig {
        base_dn: "ou=nowhere,dc=example,dc=co,dc=jp".into(),
        ..config.clone()
    };
    let text = directory::sync_ldap_with(&missing, &options(&logs, &Arc::default()))
        .unwrap_err()
        .to_string();
    assert!(text.contains("noSuchObject (32)"), "{text}");
    assert!(
        text.contains("ou=nowhere") && text.contains("check base_dn"),
        "{text}"
    );

    // Nobody listens: a closed port.
    let port = free_port();
    let closed = LdapDirectoryConfig {
        url: format!("ldap://127.0.0.1:{port}"),
        ..config.clone()
    };
    let e = directory::sync_ldap_with(&closed, &options(&logs, &Arc::default())).unwrap_err();
    assert!(matches!(e, DirectorySyncError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot connect to the LDAP server ldap://127.0.0.1:{port}: "
        )),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains(READER_PW), "{text}");

    // Settings are checked before anything is sent.
    let cleartext = LdapDirectoryConfig {
        url: "ldap://dc01.example.co.jp".into(),
        ..config.clone()
    };
    let text = directory::sync_ldap(&cleartext).unwrap_err().to_string();
    assert!(
        text.starts_with("[directory.ldap] ") && text.contains("in clear"),
        "{text}"
    );
    let unreadable = LdapDirectoryConfig {
        bind_password_file: Some(dir.path().join("missing")),
        ..config.clone()
    };
    let text = directory::sync_ldap(&unreadable).unwrap_err().to_string();
    assert!(text.contains("cannot read bind_password_file"), "{text}");
}

#[test]
fn ldap_sync_over_tls_and_starttls_trusts_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::make_certificate(dir.path())
        .expect("the openssl command (apt-get install openssl) makes the test certificate");
    let Some(server) = Slapd::start_with(&ldif(), 5, Some((&cert, &key))) else {
        return;
    };
    let pw = dir.path().join("ldap-password");
    std::fs::write(&pw, READER_PW).unwrap();
    let logs = Logs::default();
    let ldaps_url = server.ldaps_url.clone().unwrap();
    let ldaps = LdapDirectoryConfig {
        ca_file: Some(ca.clone()),
        ..ldap_config(&ldaps_url, &pw)
    };
    let snapshot = directory::sync_ldap_with(&ldaps, &options(&logs, &Arc::default())).unwrap();
    assert_eq!(snapshot, expected_ldap());
    let starttls = LdapDirectoryConfig {
        starttls: true,
        ca_file: Some(ca.clone()),
        ..ldap_config(&server.url, &pw)
    };
    let snapshot = directory::sync_ldap_with(&starttls, &options(&logs, &Arc::default())).unwrap();
    assert_eq!(snapshot, expected_ldap());

    // Without the CA the server is not trusted, over ldaps:// or after
    // StartTLS (so StartTLS did happen).
    let untrusted = LdapDirectoryConfig {
        ca_file: None,
        ..starttls.clone()
    };
    let text = directory::sync_ldap_with(&untrusted, &options(&logs, &Arc::default()))
        .unwrap_err()
        .to_string();
    assert!(text.contains("UnknownIssuer"), "{text}");
    let untrusted = LdapDirectoryConfig {
        ca_file: None,
        ..ldaps.clone()
    };
    let e = directory::sync_ldap_with(&untrusted, &options(&logs, &Arc::default())).unwrap_err();
    assert!(matches!(e, DirectorySyncError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(&ldaps_url) && text.contains("UnknownIssuer"),
        "{text}"
    );
}

#[test]
fn directory_config_reads_from_toml() {
    let text = r#"
        [ldap]
        url = "ldaps://dc01.example.co.jp"
        bind_dn = "CN=mailtrail,OU=Service,DC=example,DC=co,DC=jp"
        bind_password_file = "ldap-password"
        base_dn = "DC=example,DC=co,DC=jp"
        groups = "search"
        [ldap.attributes]
        kana = ["msDS-PhoneticDisplayName"]
        hire_date = ["extensionAttribute1"]

        [entra]
        tenant_id = "0e1dddce-0000-4000-8000-000000000001"
        client_id = "5f0c9a4e-0000-4000-8000-000000000002"
        client_secret_file = "/etc/mailtrail/entra"
        id = "employee_id"
        groups = true

        [google]
        service_account_key_file = "sa.json"
        delegated_admin = "admin@example.co.jp"
        department = "org_unit"
    "#;
    let mut config: directory::DirectorySyncConfig = toml::from_str(text).unwrap();
    config.resolve_paths(Path::new("/etc/mailtrail"));
    let ldap = config.ldap.unwrap();
    assert_eq!(ldap.page_size, 500);
    assert_eq!(ldap.filter, "(&(objectClass=person)(mail=*))");
    assert_eq!(ldap.groups, GroupSource::Search);
    assert_eq!(
        ldap.bind_password_file.as_deref(),
        Some(Path::new("/etc/mailtrail/ldap-password"))
    );
    assert_eq!(
        ldap.attributes.id,
        strings(&["objectGUID", "entryUUID", "uid"])
    );
    assert_eq!(ldap.attributes.hire_date, strings(&["extensionAttribute1"]));
    let entra = config.entra.unwrap();
    assert_eq!(entra.id, directory::EntraIdSource::EmployeeId);
    assert_eq!(entra.page_size, 999);
    assert!(
        entra.groups && !entra.manager,
        "managers are read only when asked"
    );
    let google = config.google.unwrap();
    assert_eq!(
        google.service_account_key_file,
        PathBuf::from("/etc/mailtrail/sa.json")
    );
    assert_eq!(google.department, directory::GoogleDepartment::OrgUnit);
    assert_eq!(google.customer, "my_customer");
    // Unknown keys are refused.
    let e = toml::from_str::<directory::DirectorySyncConfig>("[ldap]\nurl = \"x\"\nbase = \"y\"\n")
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `base`"), "{e}");
}

// ---------------------------------------------------------------------------
// A stand-in for Entra ID, Microsoft Graph, Google's token endpoint and the
// Directory API.

use axum::http::Method;
use serde_json::{json, Value};

const TENANT: &str = "0e1dddce-0000-4000-8000-000000000001";
const CLIENT_ID: &str = "5f0c9a4e-0000-4000-8000-000000000002";
const SECRET: &str = "Xy7~directory-secret-DO-NOT-LOG";
const ADMIN: &str = "admin@example.co.jp";
const SA_EMAIL: &str = "mailtrail-directory@test-project.iam.gserviceaccount.com";
const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
/// API requests a token is good for before the stand-in calls it expired
/// (it tells the client an hour, as the real services do, so the client
/// only learns of the expiry from the 401).
const TOKEN_USES: u32 = 2;
/// Items per page the stand-in serves, whatever the client asks.
const PAGE: usize = 2;

#[derive(Default)]
struct Stand {
    tokens: HashMap<String, (u32, String)>,
    issued: Vec<String>,
    assertions: Vec<String>,
    token_requests: u32,
    expired_401s: u32,
    problems: Vec<String>,
    /// Answers given instead of the real ones (429s, see [`Fault::throttle`]).
    faults: Vec<Fault>,
    /// (path?query, status, when).
    log: Vec<(String, u16, Instant)>,
    users: Vec<Value>,
    groups: Vec<(Value, Vec<Value>)>,
    google_public_key: Vec<u8>,
    google_token_uri: String,
    /// Items per page; 0 for [`PAGE`].
    page: usize,
}

struct Mock {
    state: Arc<Mutex<Stand>>,
    base: String,
    _runtime: tokio::runtime::Runtime,
}

impl Mock {
    fn start() -> Mock {
        let state = Arc::new(Mutex::new(Stand::default()));
        let (runtime, base) = common::serve(state.clone(), answer);
        Mock {
            state,
            base,
            _runtime: runtime,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Stand) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

/// The stand-in's answer to a request, recorded.
fn answer(st: &mut Stand, base: &str, r: &Request) -> Reply {
    let reply = route(st, base, r);
    st.log
        .push((format!("{}?{}", r.path, r.query), reply.0, Instant::now()));
    reply
}

fn issue(st: &mut Stand, audience: &str) -> Reply {
    st.token_requests += 1;
    let token = format!(
        "tok{}-{}",
        st.issued.len() + 1,
        audience.len() * 7919 + st.issued.len()
    );
    let token = format!(
        "{token}-{:x}",
        Instant::now().elapsed().as_nanos() ^ 0x5eed_cafe
    );
    st.tokens.insert(token.clone(), (0, audience.to_string()));
    st.issued.push(token.clone());
    token_reply(&token, 3600)
}

fn route(st: &mut Stand, base: &str, r: &Request) -> Reply {
    let (method, path, query) = (&r.method, r.path.as_str(), r.query.as_str());
    let (headers, body) = (&r.headers, &r.body[..]);
    if let Some(answer) = fault(&mut st.faults, &format!("{path}?{query}")) {
        return answer;
    }
    let graph_scope = format!("{base}/.default");
    if method == Method::POST && path == format!("/entra/{TENANT}/oauth2/v2.0/token") {
        let form = params(&String::from_utf8_lossy(body));
        let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
            && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(SECRET)
            && form.get("scope") == Some(&graph_scope);
        if !ok {
            st.problems
                .push(format!("bad client-credentials request {form:?}"));
            return reply(401, json!({"error": "invalid_client"}));
        }
        return issue(st, "graph");
    }
    if method == Method::POST && path == "/google/token" {
        let form = params(&String::from_utf8_lossy(body));
        let assertion = form.get("assertion").cloned().unwrap_or_default();
        st.assertions.push(assertion.clone());
        if form.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            st.problems
                .push("google token request without the jwt-bearer grant".into());
        }
        if let Err(why) = verify_jwt(st, &assertion) {
            st.problems.push(format!("JWT assertion: {why}"));
            return reply(400, json!({"error": "invalid_grant"}));
        }
        return issue(st, "google");
    }
    let audience = if path.starts_with("/graph/") {
        "graph"
    } else if path.starts_with("/google/") {
        "google"
    } else {
        st.problems
            .push(format!("request to an unknown path {path}"));
        return reply(404, json!({"error": "not found"}));
    };
    if method != Method::GET {
        st.problems.push(format!("{method} {path}"));
    }
    match st.tokens.get_mut(&bearer(headers)) {
        None => {
            st.problems
                .push(format!("request to {path} without a token we issued"));
            return invalid_token("Access token is empty.");
        }
        Some((_, aud)) if aud != audience => {
            st.problems.push(format!("{aud} token used on {path}"));
            return invalid_token("Wrong audience.");
        }
        Some((uses, _)) if *uses >= TOKEN_USES => {
            st.expired_401s += 1;
            return invalid_token("Lifetime validation failed, the token is expired.");
        }
        Some((uses, _)) => *uses += 1,
    }
    let q = params(query);
    if path == "/graph/v1.0/users" {
        let select = q.get("$select").cloned().unwrap_or_default();
        for field in [
            "id",
            "displayName",
            "mail",
            "otherMails",
            "proxyAddresses",
            "userPrincipalName",
            "department",
            "accountEnabled",
            "employeeId",
            "employeeHireDate",
            "employeeLeaveDateTime",
            "onPremisesExtensionAttributes",
        ] {
            if !select.split(',').any(|s| s == field) {
                st.problems
                    .push(format!("$select without {field}: {select}"));
            }
        }
        if q.get("$top").map(String::as_str) != Some("999") {
            st.problems.push(format!("users $top {:?}", q.get("$top")));
        }
        if q.get("$expand").map(String::as_str) != Some("manager($select=id)") {
            st.problems
                .push(format!("users $expand {:?}", q.get("$expand")));
        }
        let mut page = if st.page == 0 { PAGE } else { st.page };
        // Graph's documented limit: with $expand a directory list returns
        // at most 100 objects per page.
        if q.contains_key("$expand") {
            page = page.min(100);
        }
        return graph_page(base, path, query, &q, &st.users, page);
    }
    if path == "/graph/v1.0/groups" {
        if q.get("$select").map(String::as_str) != Some("id,displayName") {
            st.problems
                .push(format!("groups $select {:?}", q.get("$select")));
        }
        let groups: Vec<Value> = st.groups.iter().map(|(g, _)| g.clone()).collect();
        return graph_page(base, path, query, &q, &groups, PAGE);
    }
    if let Some(rest) = path.strip_prefix("/graph/v1.0/groups/") {
        let id = rest.strip_suffix("/members").unwrap_or("");
        let Some((_, members)) = st.groups.iter().find(|(g, _)| g["id"] == id) else {
            st.problems
                .push(format!("members of an unknown group {path}"));
            return reply(404, json!({"error": {"code": "Request_ResourceNotFound"}}));
        };
        if q.get("$select").map(String::as_str) != Some("id") {
            st.problems
                .push(format!("members $select {:?}", q.get("$select")));
        }
        let members = members.clone();
        return graph_page(base, path, query, &q, &members, PAGE);
    }
    if path == "/google/admin/directory/v1/users" {
        for (k, v) in [
            ("customer", "my_customer"),
            ("maxResults", "500"),
            ("projection", "full"),
        ] {
            if q.get(k).map(String::as_str) != Some(v) {
                st.problems.push(format!("users {k} = {:?}", q.get(k)));
            }
        }
        let start: usize = match q.get("pageToken") {
            None => 0,
            Some(t) => match t.strip_prefix("next-").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => {
                    st.problems.push(format!("unknown pageToken {t}"));
                    return reply(
                        400,
                        json!({"error": {"code": 400, "message": "Invalid pageToken"}}),
                    );
                }
            },
        };
        let users = st.users.clone();
        let page: Vec<Value> = users.iter().skip(start).take(PAGE).cloned().collect();
        let mut body = json!({"kind": "admin#directory#users", "etag": "\"e\"", "users": page});
        if start + PAGE < users.len() {
            body["nextPageToken"] = json!(format!("next-{}", start + PAGE));
        }
        return reply(200, body);
    }
    st.problems.push(format!("unexpected {method} {path}"));
    reply(404, json!({"error": "not found"}))
}

/// A Graph page of `items` from `$skiptoken`, with an `@odata.nextLink`
/// that repeats the query.
fn graph_page(
    base: &str,
    path: &str,
    query: &str,
    q: &HashMap<String, String>,
    items: &[Value],
    size: usize,
) -> Reply {
    let start: usize = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = items.iter().skip(start).take(size).cloned().collect();
    let mut body =
        json!({"@odata.context": format!("{base}/graph/v1.0/$metadata#users"), "value": page});
    if start + size < items.len() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("$skiptoken="))
            .collect();
        body["@odata.nextLink"] = json!(format!(
            "{base}{path}?{}&$skiptoken={}",
            kept.join("&"),
            start + size
        ));
    }
    reply(200, body)
}

fn verify_jwt(st: &Stand, assertion: &str) -> Result<(), String> {
    let (_, claims) = common::verified_jwt(assertion, &st.google_public_key)?;
    if claims["iss"] != SA_EMAIL
        || claims["sub"] != ADMIN
        || claims["scope"] != GOOGLE_SCOPE
        || claims["aud"] != st.google_token_uri.as_str()
    {
        return Err(format!("claims {claims}"));
    }
    Ok(())
}

/// Every issued token, assertion and the secret: none may be shown.
fn assert_no_secret(mock: &Mock, text: &str) {
    let (issued, assertions) = mock.with(|s| (s.issued.clone(), s.assertions.clone()));
    let secrets = issued.iter().chain(&assertions).map(String::as_str);
    common::assert_not_shown(text, secrets.chain([SECRET]));
}

/// The 429 was honoured: the request after it came a second later.
fn assert_throttled_and_waited(mock: &Mock, marker: &str) {
    let log = mock.with(|s| {
        s.log
            .iter()
            .map(|(p, st, at)| (p.clone(), *st, *at))
            .collect::<Vec<_>>()
    });
    let i = log
        .iter()
        .position(|(p, st, _)| *st == 429 && p.contains(marker))
        .unwrap_or_else(|| panic!("no 429 for {marker}"));
    let (path, _, at) = &log[i];
    let next = log[i + 1..]
        .iter()
        .find(|(p, _, _)| p == path)
        .expect("retried");
    assert_eq!(next.1, 200);
    assert!(
        next.2 - *at >= Duration::from_millis(950),
        "Retry-After not honoured"
    );
}

fn graph_users() -> Vec<Value> {
    let oid = |n: u32| format!("00000000-1111-4000-8000-{n:012}");
    vec![
        json!({
            "id": oid(1), "displayName": "山田 太郎", "mail": "Taro.Yamada@example.co.jp",
            "otherMails": ["taro.private@mail.example"],
            "proxyAddresses": ["smtp:t-yamada@example.co.jp", "SMTP:Taro.Yamada@example.co.jp", "SIP:taro.yamada@example.co.jp"],
            "userPrincipalName": "taro.yamada@example.co.jp", "department": "営業部",
            "accountEnabled": true, "employeeId": "1001",
            "employeeHireDate": "2015-04-01T00:00:00Z", "employeeLeaveDateTime": null,
            "onPremisesExtensionAttributes": {"extensionAttribute1": "ヤマダ タロウ", "extensionAttribute2": null},
            "manager": {"@odata.type": "#microsoft.graph.user", "id": oid(2)}
        }),
        json!({
            "id": oid(2), "displayName": "佐藤 花子", "mail": "hanako.sato@example.co.jp",
            "otherMails": [], "proxyAddresses": ["SMTP:hanako.sato@example.co.jp", "smtp:h-sato@example.co.jp"],
            "userPrincipalName": "hanako.sato@example.co.jp", "department": "営業部",
            "accountEnabled": true, "employeeId": "1002",
            "employeeHireDate": "2012-04-01T00:00:00Z", "employeeLeaveDateTime": null,
            "onPremisesExtensionAttributes": {"extensionAttribute1": "サトウ ハナコ"}
        }),
        json!({
            "id": oid(3), "displayName": "鈴木 一郎", "mail": "ichiro.suzuki@example.co.jp",
            "otherMails": [], "proxyAddresses": [],
            "userPrincipalName": "ichiro.suzuki@example.co.jp", "department": "総務部",
            "accountEnabled": false, "employeeId": null,
            "employeeHireDate": null, "employeeLeaveDateTime": "2026-03-31T00:00:00Z",
            "onPremisesExtensionAttributes": null,
            "manager": {"@odata.type": "#microsoft.graph.user", "id": oid(2)}
        }),
        json!({
            "id": oid(4), "displayName": "会議室 101", "mail": null, "otherMails": [],
            "proxyAddresses": [], "userPrincipalName": "room101@example.co.jp",
            "department": null, "accountEnabled": true
        }),
        json!({
            "id": oid(5), "displayName": "Partner Guest", "mail": null, "otherMails": [],
            "proxyAddresses": [], "userPrincipalName": "guest_partner.example#EXT#@example.onmicrosoft.com",
            "department": null, "accountEnabled": true
        }),
    ]
}

fn expected_entra() -> DirectorySnapshot {
    let oid = |n: u32| format!("00000000-1111-4000-8000-{n:012}");
    DirectorySnapshot {
        people: vec![
            Person {
                id: oid(1),
                name: Some("山田 太郎".into()),
                kana: Some("ヤマダ タロウ".into()),
                addresses: strings(&["taro.yamada@example.co.jp", "t-yamada@example.co.jp"]),
                department: Some("営業部".into()),
                manager: Some(oid(2)),
                hire_date: d(2015, 4, 1),
                private_addresses: strings(&["taro.private@mail.example"]),
                groups: strings(&["全社員", "営業部全員"]),
                ..Person::default()
            },
            Person {
                id: oid(2),
                name: Some("佐藤 花子".into()),
                kana: Some("サトウ ハナコ".into()),
                addresses: strings(&["hanako.sato@example.co.jp", "h-sato@example.co.jp"]),
                department: Some("営業部".into()),
                hire_date: d(2012, 4, 1),
                groups: strings(&["全社員", "営業部全員"]),
                ..Person::default()
            },
            Person {
                id: oid(3),
                name: Some("鈴木 一郎".into()),
                addresses: strings(&["ichiro.suzuki@example.co.jp"]),
                department: Some("総務部".into()),
                manager: Some(oid(2)),
                status: EmploymentStatus::Disabled,
                leave_date: d(2026, 3, 31),
                groups: strings(&["全社員"]),
                ..Person::default()
            },
            Person {
                id: oid(4),
                name: Some("会議室 101".into()),
                addresses: strings(&["room101@example.co.jp"]),
                ..Person::default()
            },
            Person {
                id: oid(5),
                name: Some("Partner Guest".into()),
                ..Person::default()
            },
        ],
        devices: Vec::new(),
    }
}

/// The stand-in's tenant, the secret in a file in `dir`, kana from
/// `extensionAttribute1`.
fn entra_config(mock: &Mock, dir: &Path) -> directory::EntraDirectoryConfig {
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    directory::EntraDirectoryConfig {
        tenant_id: TENANT.into(),
        client_id: CLIENT_ID.into(),
        client_secret_file: Some(secret_file),
        graph_url: format!("{}/graph/v1.0", mock.base),
        login_url: format!("{}/entra", mock.base),
        kana: Some("onPremisesExtensionAttributes.extensionAttribute1".into()),
        // The slow shape (100 users a page): what these tests exercise.
        manager: true,
        ..directory::EntraDirectoryConfig::default()
    }
}

#[test]
fn entra_sync_pages_throttling_token_expiry_and_groups() {
    let mock = Mock::start();
    let oid = |n: u32| format!("00000000-1111-4000-8000-{n:012}");
    let user = |n: u32| json!({"@odata.type": "#microsoft.graph.user", "id": oid(n)});
    mock.with(|s| {
        s.users = graph_users();
        s.groups = vec![
            (
                json!({"id": "g-1", "displayName": "営業部全員"}),
                vec![user(1), user(2)],
            ),
            (
                json!({"id": "g-2", "displayName": "全社員"}),
                vec![
                    user(1),
                    json!({"@odata.type": "#microsoft.graph.device", "id": "d-1"}),
                    user(2),
                    user(3),
                    json!({"@odata.type": "#microsoft.graph.group", "id": "g-1"}),
                ],
            ),
            (json!({"id": "g-3", "displayName": "空のグループ"}), vec![]),
        ];
        s.faults = vec![
            Fault::throttle("/graph/v1.0/users?", 0),
            Fault::throttle("$skiptoken=2", 1),
        ];
    });
    let dir = tempfile::tempdir().unwrap();
    let config = directory::EntraDirectoryConfig {
        groups: true,
        ..entra_config(&mock, dir.path())
    };
    let logs = Logs::default();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let snapshot = directory::sync_entra_with(&config, &options(&logs, &progress)).unwrap();
    assert_eq!(mock.with(|s| s.problems.clone()), Vec::<String>::new());
    assert_eq!(snapshot, expected_entra());
    assert_eq!(
        progress
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.people)
            .collect::<Vec<_>>(),
        vec![2, 4, 5]
    );
    // 3 user pages + 2 group pages + 1 + 3 + 1 member pages = 10 API
    // requests with 2 uses per token: expired again and again, renewed.
    let (expired, tokens) = mock.with(|s| (s.expired_401s, s.token_requests));
    assert!(expired >= 2, "{expired}");
    assert_eq!(tokens, expired + 1);
    assert_throttled_and_waited(&mock, "$skiptoken=2");
    let shown = logs.lock().unwrap().join("\n");
    assert!(shown.contains("HTTP 429"), "{shown}");
    assert_no_secret(&mock, &shown);

    // Keyed by employee number: managers follow.
    let by_number = directory::EntraDirectoryConfig {
        id: directory::EntraIdSource::EmployeeId,
        groups: false,
        ..config.clone()
    };
    let numbered =
        directory::sync_entra_with(&by_number, &options(&logs, &Arc::default())).unwrap();
    let ids: Vec<&str> = numbered.people.iter().map(|p| p.id.as_str()).collect();
    // 鈴木 has no employee id: the object id.
    assert_eq!(
        ids,
        vec![
            oid(3).as_str(),
            oid(4).as_str(),
            oid(5).as_str(),
            "1001",
            "1002"
        ]
    );
    assert_eq!(numbered.people[3].manager.as_deref(), Some("1002"));
    assert_eq!(numbered.people[0].manager.as_deref(), Some("1002"));

    // A refused secret: the error names the endpoint, never the secret.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "not-the-secret-value").unwrap();
    let refused = directory::EntraDirectoryConfig {
        client_secret_file: Some(bad),
        ..config.clone()
    };
    let e = directory::sync_entra_with(&refused, &options(&logs, &Arc::default())).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "entra directory sync: POST {}/entra/{TENANT}/oauth2/v2.0/token answered HTTP 401",
            mock.base
        )),
        "{text}"
    );
    assert!(!text.contains("not-the-secret-value"), "{text}");
    mock.with(|s| s.problems.clear());
}

fn google_users() -> Vec<Value> {
    vec![
        json!({
            "kind": "admin#directory#user", "id": "100000000000000000001",
            "primaryEmail": "taro.yamada@example.co.jp",
            "name": {"givenName": "太郎", "familyName": "山田", "fullName": "山田 太郎"},
            "aliases": ["t-yamada@example.co.jp"],
            "nonEditableAliases": ["taro.yamada@example.co.jp.test-google-a.com"],
            "emails": [
                {"address": "taro.yamada@example.co.jp", "primary": true},
                {"address": "taro@home.example", "type": "home"}
            ],
            "suspended": false, "archived": false, "orgUnitPath": "/本社/営業部",
            "organizations": [
                {"name": "Example", "department": "旧部署"},
                {"name": "Example", "department": "営業部第一課", "primary": true}
            ],
            "relations": [{"value": "hanako.sato@example.co.jp", "type": "manager"}],
            "externalIds": [{"value": "1001", "type": "organization"}],
            "customSchemas": {"社員情報": {"kana": "ヤマダ タロウ", "入社日": "2015-04-01"}}
        }),
        json!({
            "kind": "admin#directory#user", "id": "100000000000000000002",
            "primaryEmail": "hanako.sato@example.co.jp",
            "name": {"givenName": "花子", "familyName": "佐藤", "fullName": "佐藤 花子"},
            "aliases": ["h-sato@example.co.jp"],
            "suspended": false, "orgUnitPath": "/本社/営業部",
            "externalIds": [{"value": "1002", "type": "organization"}]
        }),
        json!({
            "kind": "admin#directory#user", "id": "100000000000000000003",
            "primaryEmail": "ichiro.suzuki@example.co.jp",
            "name": {"givenName": "一郎", "familyName": "鈴木", "fullName": "鈴木 一郎"},
            "suspended": true, "suspensionReason": "ADMIN", "orgUnitPath": "/",
            "relations": [{"value": "H-Sato@example.co.jp", "type": "manager"}],
            "customSchemas": {"社員情報": {"退職日": "2026/3/31"}}
        }),
        json!({
            "kind": "admin#directory#user", "id": "100000000000000000004",
            "primaryEmail": "jiro.tanaka@example.co.jp",
            "name": {"givenName": "次郎", "familyName": "田中"},
            "archived": true, "orgUnitPath": "/本社"
        }),
        json!({
            "kind": "admin#directory#user", "id": "100000000000000000005",
            "primaryEmail": "e05@example.co.jp",
            "name": {"fullName": "社員 05"},
            "orgUnitPath": "/本社/総務部",
            "relations": [{"value": "nobody@example.co.jp", "type": "manager"}]
        }),
    ]
}

fn expected_google() -> DirectorySnapshot {
    let gid = |n: u32| format!("1000000000000000000{n:02}");
    DirectorySnapshot {
        people: vec![
            Person {
                id: gid(1),
                name: Some("山田 太郎".into()),
                kana: Some("ヤマダ タロウ".into()),
                addresses: strings(&[
                    "taro.yamada@example.co.jp",
                    "t-yamada@example.co.jp",
                    "taro.yamada@example.co.jp.test-google-a.com",
                ]),
                department: Some("営業部第一課".into()),
                manager: Some(gid(2)),
                hire_date: d(2015, 4, 1),
                private_addresses: strings(&["taro@home.example"]),
                ..Person::default()
            },
            Person {
                id: gid(2),
                name: Some("佐藤 花子".into()),
                addresses: strings(&["hanako.sato@example.co.jp", "h-sato@example.co.jp"]),
                department: Some("本社/営業部".into()),
                ..Person::default()
            },
            Person {
                id: gid(3),
                name: Some("鈴木 一郎".into()),
                addresses: strings(&["ichiro.suzuki@example.co.jp"]),
                manager: Some(gid(2)),
                status: EmploymentStatus::Disabled,
                leave_date: d(2026, 3, 31),
                ..Person::default()
            },
            Person {
                id: gid(4),
                name: Some("田中 次郎".into()),
                addresses: strings(&["jiro.tanaka@example.co.jp"]),
                department: Some("本社".into()),
                status: EmploymentStatus::Disabled,
                ..Person::default()
            },
            Person {
                id: gid(5),
                name: Some("社員 05".into()),
                addresses: strings(&["e05@example.co.jp"]),
                department: Some("本社/総務部".into()),
                ..Person::default()
            },
        ],
        devices: Vec::new(),
    }
}

#[test]
fn google_sync_pages_throttling_token_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (private_pem, public_der) =
        common::test_key(dir.path()).expect("the openssl command (apt-get install openssl)");
    let mock = Mock::start();
    let token_uri = format!("{}/google/token", mock.base);
    let key_file = common::service_account_key(dir.path(), SA_EMAIL, &private_pem, &token_uri);
    mock.with(|s| {
        s.users = google_users();
        s.google_public_key = public_der;
        s.google_token_uri = token_uri.clone();
        s.faults = vec![Fault::throttle("pageToken=next-2", 1)];
    });
    let config = directory::GoogleDirectoryConfig {
        service_account_key_file: key_file,
        delegated_admin: ADMIN.into(),
        directory_url: format!("{}/google", mock.base),
        kana: Some("customSchemas.社員情報.kana".into()),
        hire_date: Some("customSchemas.社員情報.入社日".into()),
        leave_date: Some("customSchemas.社員情報.退職日".into()),
        ..directory::GoogleDirectoryConfig::default()
    };
    let logs = Logs::default();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let snapshot = directory::sync_google_with(&config, &options(&logs, &progress)).unwrap();
    assert_eq!(mock.with(|s| s.problems.clone()), Vec::<String>::new());
    assert_eq!(snapshot, expected_google());
    assert_eq!(
        progress
            .lock()
            .unwrap()
            .iter()
            .map(|p| (p.source, p.people))
            .collect::<Vec<_>>(),
        vec![("google", 2), ("google", 4), ("google", 5)]
    );
    assert_throttled_and_waited(&mock, "pageToken=next-2");
    // Pages 1 and 2 on the first token (the 429 before it is looked at);
    // the third page finds it expired, a new one is fetched and the page
    // asked again.
    let (expired, tokens) = mock.with(|s| (s.expired_401s, s.token_requests));
    assert_eq!((expired, tokens), (1, 2));
    let shown = logs.lock().unwrap().join("\n");
    assert_no_secret(&mock, &shown);

    // Keyed by employee number, the department from the unit.
    let by_number = directory::GoogleDirectoryConfig {
        id: directory::GoogleIdSource::EmployeeId,
        department: directory::GoogleDepartment::OrgUnit,
        ..config.clone()
    };
    let numbered =
        directory::sync_google_with(&by_number, &options(&logs, &Arc::default())).unwrap();
    let yamada = numbered.people.iter().find(|p| p.id == "1001").unwrap();
    assert_eq!(yamada.manager.as_deref(), Some("1002"));
    assert_eq!(yamada.department.as_deref(), Some("本社/営業部"));
    assert_eq!(mock.with(|s| s.problems.clone()), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// Size: a company of 50,000 (MAILTRAIL_DIRECTORY_PEOPLE to change it).
// Ignored by default for their size; bench/directory_sync.sh runs them in
// a release build and reports the times they print.

fn large_count() -> u32 {
    std::env::var("MAILTRAIL_DIRECTORY_PEOPLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000)
}

/// `n` people in 10 divisions of 10 sections each, every one with a GUID,
/// Japanese names, three addresses, a manager and two groups.
fn large_ldif(n: u32) -> String {
    let mut out = String::with_capacity(n as usize * 900);
    out.push_str(&format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
    ));
    out.push_str(&format!(
        "dn: ou=service,{SUFFIX}\nobjectClass: organizationalUnit\nou: service\n\n\
         dn: {READER}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: mailtrail\nuserPassword: {READER_PW}\n\n"
    ));
    out.push_str(&format!(
        "dn:: {}\nobjectClass: organizationalUnit\nou:: {}\n\n",
        b64(PEOPLE_BASE.as_bytes()),
        b64("本社".as_bytes())
    ));
    for div in 0..10 {
        let div_dn = format!("ou=事業部{div},{PEOPLE_BASE}");
        out.push_str(&format!(
            "dn:: {}\nobjectClass: organizationalUnit\n{}\n",
            b64(div_dn.as_bytes()),
            line("ou", &format!("事業部{div}"))
        ));
        for sec in 0..10 {
            let dn = format!("ou=課{sec},{div_dn}");
            out.push_str(&format!(
                "dn:: {}\nobjectClass: organizationalUnit\n{}\n",
                b64(dn.as_bytes()),
                line("ou", &format!("課{sec}"))
            ));
        }
    }
    let dn_of = |i: u32| {
        format!(
            "cn=社員 {i:06},ou=課{},ou=事業部{},{PEOPLE_BASE}",
            (i / 10) % 10,
            i % 10
        )
    };
    for i in 0..n {
        let mut guid = [0u8; 16];
        guid[..4].copy_from_slice(&i.to_le_bytes());
        guid[15] = 0x5a;
        let manager = if i == 0 {
            String::new()
        } else {
            line("manager", &dn_of(i / 10))
        };
        out.push_str(&format!(
            "dn:: {}\nobjectClass: inetOrgPerson\nobjectClass: adLikeAccount\n{}{}{}{}displayName;lang-en: Employee {i:06}\nobjectGUID:: {}\nmail: e{i:06}@example.co.jp\nproxyAddresses: SMTP:e{i:06}@example.co.jp\nproxyAddresses: smtp:alias{i:06}@example.co.jp\nproxyAddresses: smtp:e{i:06}@old.example.co.jp\n{manager}memberOf: cn=g{},ou=groups,{SUFFIX}\nmemberOf: cn=all,ou=groups,{SUFFIX}\nuserAccountControl: {}\nextensionAttribute1: 2020-04-01\n\n",
            b64(dn_of(i).as_bytes()),
            line("cn", &format!("社員 {i:06}")),
            line("sn", "社員"),
            line("displayName", &format!("社員 {i:06}")),
            line("msDS-PhoneticDisplayName", &format!("シャイン {i:06}")),
            b64(&guid),
            i % 100,
            if i % 50 == 49 { 514 } else { 512 },
        ));
    }
    out
}

#[test]
#[ignore = "50,000 people: run by bench/directory_sync.sh and CI's large-input step"]
fn large_ldap_sync_of_50000_people() {
    let n = large_count();
    let ldif = large_ldif(n);
    let started = Instant::now();
    let Some(server) = Slapd::start(&ldif, 1000) else {
        return;
    };
    let load = started.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("ldap-password");
    std::fs::write(&pw, READER_PW).unwrap();
    let config = LdapDirectoryConfig {
        page_size: 1000,
        timeout_secs: 60,
        ..ldap_config(&server.url, &pw)
    };
    let logs = Logs::default();
    let progress = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let snapshot = directory::sync_ldap_with(&config, &options(&logs, &progress)).unwrap();
    let fetch = started.elapsed();
    assert_eq!(snapshot.people.len(), n as usize);
    let first = snapshot
        .people
        .iter()
        .find(|p| p.name.as_deref() == Some("社員 000012"))
        .unwrap();
    assert_eq!(first.id, "0000000c-0000-0000-0000-00000000005a");
    assert_eq!(first.department.as_deref(), Some("本社/事業部2/課1"));
    assert_eq!(
        first.manager.as_deref(),
        Some("00000001-0000-0000-0000-00000000005a")
    );
    assert_eq!(first.addresses.len(), 3);
    assert_eq!(first.groups, strings(&["all", "g12"]));
    let disabled = snapshot
        .people
        .iter()
        .filter(|p| p.status == EmploymentStatus::Disabled)
        .count();
    assert_eq!(disabled, (n / 50) as usize);
    assert!(snapshot.people.iter().skip(1).all(|p| p.manager.is_some()));
    assert_eq!(
        progress.lock().unwrap().last().map(|p| p.people),
        Some(n as usize)
    );
    println!(
        "bench: ldap people={n} page_size=1000 slapadd+start={:.2}s sync={:.2}s",
        load.as_secs_f64(),
        fetch.as_secs_f64()
    );
}

#[test]
#[ignore = "50,000 users: run by bench/directory_sync.sh and CI's large-input step"]
fn large_entra_sync_of_50000_users() {
    let n = large_count();
    let mock = Mock::start();
    let oid = |i: u32| format!("00000000-2222-4000-8000-{i:012}");
    let users: Vec<Value> = (0..n)
        .map(|i| {
            let mut u = json!({
                "id": oid(i), "displayName": format!("社員 {i:06}"), "mail": format!("e{i:06}@example.co.jp"),
                "otherMails": [], "proxyAddresses": [format!("SMTP:e{i:06}@example.co.jp"), format!("smtp:alias{i:06}@example.co.jp")],
                "userPrincipalName": format!("e{i:06}@example.co.jp"), "department": format!("事業部{}", i % 10),
                "accountEnabled": i % 50 != 49, "employeeId": format!("{i:06}"),
                "employeeHireDate": "2020-04-01T00:00:00Z", "employeeLeaveDateTime": null,
                "onPremisesExtensionAttributes": {"extensionAttribute1": format!("シャイン {i:06}")}
            });
            if i > 0 {
                u["manager"] = json!({"@odata.type": "#microsoft.graph.user", "id": oid(i / 10)});
            }
            u
        })
        .collect();
    mock.with(|s| {
        s.users = users;
        s.page = 999;
    });
    let dir = tempfile::tempdir().unwrap();
    let config = entra_config(&mock, dir.path());
    let logs = Logs::default();
    let started = Instant::now();
    let snapshot = directory::sync_entra_with(&config, &options(&logs, &Arc::default())).unwrap();
    let fetch = started.elapsed();
    assert_eq!(mock.with(|s| s.problems.clone()), Vec::<String>::new());
    assert_eq!(snapshot.people.len(), n as usize);
    assert!(snapshot
        .people
        .iter()
        .filter(|p| p.id != oid(0))
        .all(|p| p.manager.is_some()));
    let pages = mock.with(|s| {
        s.log
            .iter()
            .filter(|(p, st, _)| p.starts_with("/graph/v1.0/users?") && *st == 200)
            .count()
    });
    println!(
        "bench: entra users={n} pages={pages} sync={:.2}s (local stand-in)",
        fetch.as_secs_f64()
    );
}
