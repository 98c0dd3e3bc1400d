//! `mailtrail directory sync` through the binary, against a real OpenLDAP
//! slapd (the private instance of the server's sync tests, included by
//! path): the `[directory.ldap]` section of mailtrail.toml is read (its
//! password file relative to the file), the people are applied as the
//! source `ldap` with the same change report as an import, a second sync
//! changes nothing, and mail is then attributed to them.

#[path = "../../server/tests/slapd/mod.rs"]
mod slapd;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

/// One LDIF line; values that are not plain ASCII are base64 (`name:: …`).
fn attr(name: &str, value: &str) -> String {
    if value.is_ascii() && !value.starts_with([' ', ':', '<']) {
        format!("{name}: {value}\n")
    } else {
        format!(
            "{name}:: {}\n",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

fn ldif(people: &[(&str, &str, &str)]) -> String {
    let suffix = slapd::SUFFIX;
    let mut out = String::new();
    out += &format!(
        "{}{}{}{}{}\n",
        attr("dn", suffix),
        attr("objectClass", "dcObject"),
        attr("objectClass", "organization"),
        attr("dc", "example"),
        attr("o", "Example")
    );
    for (dn, ou) in [
        (format!("ou=service,{suffix}"), "service"),
        (format!("ou=本社,{suffix}"), "本社"),
        (format!("ou=営業部,ou=本社,{suffix}"), "営業部"),
    ] {
        out += &format!(
            "{}{}{}\n",
            attr("dn", &dn),
            attr("objectClass", "organizationalUnit"),
            attr("ou", ou)
        );
    }
    out += &format!(
        "{}{}{}{}{}\n",
        attr("dn", slapd::READER),
        attr("objectClass", "organizationalRole"),
        attr("objectClass", "simpleSecurityObject"),
        attr("cn", "mailtrail"),
        attr("userPassword", slapd::READER_PW)
    );
    for (uid, name, mail) in people {
        out += &format!(
            "{}{}{}{}{}{}{}\n",
            attr("dn", &format!("uid={uid},ou=営業部,ou=本社,{suffix}")),
            attr("objectClass", "inetOrgPerson"),
            attr("uid", uid),
            attr("cn", name),
            attr("sn", name),
            attr("displayName", name),
            attr("mail", mail)
        );
    }
    out
}

fn mailtrail(config: &Path, data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn directory_sync_reads_ldap_as_configured_and_applies_it_idempotently() {
    let people = [
        ("taro", "山田 太郎", "taro.yamada@example.co.jp"),
        ("hanako", "佐藤 花子", "hanako.sato@example.co.jp"),
    ];
    let Some(server) = slapd::Slapd::start(&ldif(&people), 1000) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("ldap-password"), slapd::READER_PW).unwrap();
    let config = root.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "org_domains = [\"example.co.jp\"]\n\
             [directory.ldap]\nurl = \"{}\"\nbind_dn = \"{}\"\n\
             bind_password_file = \"ldap-password\"\nbase_dn = \"{}\"\n\
             [directory.ldap.attributes]\nid = [\"uid\"]\n",
            server.url,
            slapd::READER,
            slapd::SUFFIX
        ),
    )
    .unwrap();
    let data = root.path().join("data");

    let (ok, out, err) = mailtrail(&config, &data, &["directory", "sync"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("people in \"ldap\": 2 added, 0 changed, 0 unchanged, 0 no longer listed"),
        "{out}"
    );
    assert!(err.contains("ldap: 2 people fetched"), "{err}");
    let (ok, out, err) = mailtrail(&config, &data, &["directory", "sync"]);
    assert!(ok, "{err}");
    assert!(out.contains("0 added, 0 changed, 2 unchanged"), "{out}");

    let (ok, listed, _) = mailtrail(&config, &data, &["directory", "list", "--format", "json"]);
    assert!(ok);
    let listed: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    let taro = listed.iter().find(|p| p["id"] == "taro").unwrap();
    assert_eq!(taro["source"], "ldap");
    assert_eq!(taro["name"], "山田 太郎");
    // The department comes from the entry's place in the tree.
    assert_eq!(taro["department"], "本社/営業部");
    assert_eq!(taro["addresses"][0], "taro.yamada@example.co.jp");

    // Only a configured source may be asked for.
    let (ok, _, err) = mailtrail(&config, &data, &["directory", "sync", "--source", "entra"]);
    assert!(!ok);
    assert!(err.contains("not configured; configured: ldap"), "{err}");
}

#[test]
fn directory_sync_without_a_source_says_what_to_configure() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("mailtrail.toml");
    std::fs::write(&config, "").unwrap();
    let (ok, _, err) = mailtrail(&config, &root.path().join("data"), &["directory", "sync"]);
    assert!(!ok);
    assert!(err.contains("[directory.ldap]"), "{err}");
}
