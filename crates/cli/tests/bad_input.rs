//! Bad input through `mailtrail import`: whatever can be imported is, the
//! rest is reported and quarantined, nothing crashes, memory stays bounded,
//! and a second run of the same import finds nothing new.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn import(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .env("MAILTRAIL_TIMEZONE", "UTC")
        .arg("--data-dir")
        .arg(data)
        .args(["--org-domain", "example.co.jp", "import", "--quiet"])
        .args(args)
        .output()
        .expect("run mailtrail")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn header(subject: &str, n: usize) -> String {
    format!(
        "From: a@example.co.jp\r\nTo: b@partner.example\r\nDate: Tue, 10 Nov 2026 10:00:00 +0900\r\n\
         Message-ID: <bad-{n}@example.co.jp>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
    )
}

/// Peak resident memory of finished child processes, in KiB.
fn children_max_rss_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call above.
    unsafe { usage.assume_init() }.ru_maxrss
}

#[test]
fn bad_inputs_are_reported_and_kept_and_the_rest_is_imported() {
    let input = tempfile::tempdir().unwrap();
    let dir = input.path();

    // A truncated mbox: two whole messages and one cut off in its body.
    let mut mbox = String::new();
    for n in 0..3 {
        mbox.push_str("From a@example.co.jp Tue Nov 10 10:00:00 2026\n");
        mbox.push_str(&header(&format!("mbox {n}"), n).replace("\r\n", "\n"));
        mbox.push_str("\nbody line one\nbody line two\n\n");
    }
    let cut = mbox.len() - 12;
    std::fs::write(dir.join("truncated.mbox"), &mbox.as_bytes()[..cut]).unwrap();

    // A 50 MB file with no newline, named as a syslog file.
    let mut big = std::fs::File::create(dir.join("one-line.log")).unwrap();
    big.write_all(b"Nov 10 10:00:00 mx1 postfix/smtpd[1]: ")
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..50 {
        big.write_all(&chunk).unwrap();
    }
    drop(big);

    // Binary garbage.
    let garbage: Vec<u8> = (0u32..200_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("garbage.bin"), &garbage).unwrap();

    // Invalid UTF-8 in headers.
    let mut bad_utf8 = header("x", 10).into_bytes();
    bad_utf8.extend_from_slice(b"X-Note: \xff\xfe\xc3(\r\n\r\nbody \xe3\x81\r\n");
    let subject_at = bad_utf8.windows(9).position(|w| w == b"Subject: ").unwrap() + 9;
    bad_utf8.splice(
        subject_at..subject_at + 1,
        b"\xff\xfe caf\xe9".iter().copied(),
    );
    std::fs::write(dir.join("bad-utf8.eml"), &bad_utf8).unwrap();

    // 10,000 MIME parts.
    let mut many = header("many parts", 11);
    many.push_str("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
    for i in 0..10_000 {
        many.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    many.push_str("--b--\r\n");
    std::fs::write(dir.join("many-parts.eml"), many).unwrap();

    // message/rfc822 nested 300 deep.
    let mut nested = String::from("Subject: innermost\r\n\r\ncore\r\n");
    for _ in 0..300 {
        nested = format!("Content-Type: message/rfc822\r\n\r\n{nested}");
    }
    std::fs::write(
        dir.join("nested.eml"),
        format!("{}{nested}", header("nested", 12)),
    )
    .unwrap();

    let data = tempfile::tempdir().unwrap();
    let first = import(data.path(), &[dir.to_str().unwrap()]);
    let report = text(&first);
    assert!(first.status.success(), "{report}");
    assert!(children_max_rss_kib() < 400 * 1024, "peak RSS too high");
    // Two whole mbox messages at least, the 3 single-message files at least.
    let new: u64 = report
        .split(" new message(s)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in {report}"));
    assert!(new >= 5, "{report}");
    assert!(report.contains("rejected input:"), "{report}");
    assert!(
        report.contains("one-line.log"),
        "the over-long line is reported: {report}"
    );
    assert!(
        report.contains("garbage.bin"),
        "the garbage file is reported: {report}"
    );

    let quarantine = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("quarantine")
        .output()
        .unwrap();
    let listed = text(&quarantine);
    assert!(listed.contains("garbage.bin"), "{listed}");
    assert!(listed.contains("one-line.log"), "{listed}");

    let second = import(data.path(), &[dir.to_str().unwrap()]);
    let again = text(&second);
    assert!(second.status.success(), "{again}");
    assert!(again.contains(" 0 new message(s), 0 updated"), "{again}");
    assert!(again.contains("(0 newly quarantined"), "{again}");
}
