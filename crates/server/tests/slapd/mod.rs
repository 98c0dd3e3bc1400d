//! A private OpenLDAP `slapd` for tests: its own `slapd.conf`, mdb database
//! and port in a temporary folder, loaded with `slapadd`, run as the current
//! user in the foreground and killed when dropped. Shared by the directory
//! sync tests of `mailtrail-server` and the `mailtrail directory sync` test
//! of the binary (which includes this file by path).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=co,dc=jp";
pub const READER: &str = "cn=mailtrail,ou=service,dc=example,dc=co,dc=jp";
pub const READER_PW: &str = "reader-Pa55w0rd-DO-NOT-LOG";

/// `slapd` and `slapadd`, or `None` when the test is to be skipped.
pub fn slapd_tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        ["/usr/sbin", "/usr/local/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .chain(
                std::env::var_os("PATH")
                    .map(|p| {
                        std::env::split_paths(&p)
                            .map(|d| d.join(name))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            )
            .find(|p| p.is_file())
    };
    match (find("slapd"), find("slapadd")) {
        (Some(d), Some(a)) => Some((d, a)),
        _ if std::env::var_os("MAILTRAIL_SKIP_SLAPD").is_some() => {
            println!("skipped: slapd is not installed and MAILTRAIL_SKIP_SLAPD is set");
            None
        }
        _ => panic!(
            "slapd is not installed: apt-get install slapd ldap-utils \
             (see .ci/run; or set MAILTRAIL_SKIP_SLAPD=1 to skip the LDAP tests)"
        ),
    }
}

/// Active Directory's attributes for OpenLDAP (OIDs under the
/// documentation arc 1.3.6.1.4.1.32473).
pub const AD_SCHEMA: &str = r#"
attributetype ( 1.3.6.1.4.1.32473.1.1.1 NAME 'objectGUID'
    EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.2 NAME 'userAccountControl'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.3 NAME 'proxyAddresses'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.4.1.32473.1.1.4 NAME 'msDS-PhoneticDisplayName'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.5 NAME 'department'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.6 NAME 'memberOf'
    EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
attributetype ( 1.3.6.1.4.1.32473.1.1.7 NAME 'extensionAttribute1'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.8 NAME 'accountExpires'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.1.2.1 NAME 'adLikeAccount' SUP top AUXILIARY
    MAY ( objectGUID $ userAccountControl $ proxyAddresses $ msDS-PhoneticDisplayName $
          department $ memberOf $ extensionAttribute1 $ accountExpires ) )
"#;

pub struct Slapd {
    child: Child,
    pub url: String,
    /// `ldaps://127.0.0.1:port` when started with a certificate.
    pub ldaps_url: Option<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Slapd {
    /// A slapd serving `ldif`, whose bind account may read `limit` entries
    /// per search and per page (any number in all with paging).
    pub fn start(ldif: &str, limit: u32) -> Option<Slapd> {
        Slapd::start_with(ldif, limit, None)
    }

    /// As [`Slapd::start`], also with TLS (StartTLS and `ldaps://`) with
    /// the certificate and key `tls`.
    pub fn start_with(ldif: &str, limit: u32, tls: Option<(&Path, &Path)>) -> Option<Slapd> {
        let (slapd, slapadd) = slapd_tools()?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        std::fs::write(d.join("ad-like.schema"), AD_SCHEMA).unwrap();
        let conf = format!(
            r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {dir}/ad-like.schema
pidfile {dir}/slapd.pid
{tls}modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 1073741824
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
directory {dir}/db
index objectClass eq
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{READER}" read by * none
limits dn.exact="{READER}" size.soft={limit} size.hard={limit} size.pr={limit} size.prtotal=unlimited
"#,
            dir = d.display(),
            tls = match tls {
                Some((cert, key)) => format!(
                    "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                    cert.display(),
                    key.display()
                ),
                None => String::new(),
            }
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        std::fs::write(d.join("data.ldif"), ldif).unwrap();
        let out = Command::new(&slapadd)
            .arg("-q")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let tls_port = tls.map(|_| free_port());
        let ldaps_url = tls_port.map(|p| format!("ldaps://127.0.0.1:{p}"));
        let listen = match &ldaps_url {
            Some(s) => format!("{url}/ {s}/"),
            None => format!("{url}/"),
        };
        // -d 0: stay in the foreground (so the child is slapd itself and
        // dies with the test); what it says goes to slapd.log.
        let log = std::fs::File::create(d.join("slapd.log")).unwrap();
        let child = Command::new(&slapd)
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(listen)
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Slapd {
            child,
            url,
            ldaps_url,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for p in std::iter::once(port).chain(tls_port) {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                if let Ok(Some(status)) = server.child.try_wait() {
                    panic!(
                        "slapd exited ({status}): {}",
                        std::fs::read_to_string(server._dir.path().join("slapd.log"))
                            .unwrap_or_default()
                    );
                }
                assert!(Instant::now() < deadline, "slapd did not start listening");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(server)
    }
}
