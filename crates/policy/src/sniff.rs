//! What an attachment really is, from its first bytes (and its name).
//!
//! A renamed `invoice.pdf.exe` or a `.doc` that is really a macro-enabled
//! workbook is exactly what a rule about executables or macros is for, so
//! content wins over the declared content type. The sniffer reads magic
//! numbers and, for zip containers, only the central directory (names and
//! the encryption flag, as ingest does): no decompression, so a zip bomb
//! costs nothing. OLE files (legacy Office) are checked for the stream names
//! the VBA storage always has. Every read is bounds-checked: the input is
//! whatever an outsider mailed us (the tests feed it arbitrary bytes).

use std::io::Cursor;

/// At most this many archive entries are examined.
const MAX_ENTRIES: usize = 10_000;

/// The kind of content, by magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Windows PE (`MZ`): .exe, .dll, .scr, .cpl.
    WindowsExecutable,
    /// ELF (Linux and other Unix executables).
    Elf,
    /// Mach-O (macOS), thin or fat.
    MachO,
    /// A script starting with `#!`.
    ShebangScript,
    /// A Windows shortcut (.lnk), a common malware launcher.
    Shortcut,
    /// HTML application (`<hta:application`).
    Hta,
    /// Zip container (plain zip, OOXML document, jar, apk).
    Zip,
    /// OLE compound file (legacy Office .doc/.xls/.ppt, .msi).
    Ole,
    Pdf,
    SevenZip,
    Rar,
    Other,
}

/// What the sniffer found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sniffed {
    /// `None` when no content was given.
    pub kind: Option<FileKind>,
    /// Executable or script, by content or by name (also inside an archive).
    pub executable: bool,
    /// Why it counts as executable (shown in the alert).
    pub executable_reason: Option<String>,
    /// Office document with VBA macros (OOXML `vbaProject.bin`, OLE `_VBA_PROJECT`).
    pub macros: bool,
    /// An archive with at least one password-protected entry, or an
    /// encrypted Office document.
    pub encrypted: bool,
    /// Names inside a zip container.
    pub inner_names: Vec<String>,
}

/// File-name extensions of things Windows runs on a double click.
pub const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "com", "scr", "pif", "cpl", "msi", "msp", "dll", "bat", "cmd", "ps1", "psm1", "vbs",
    "vbe", "js", "jse", "wsf", "wsh", "hta", "lnk", "jar", "reg", "scf", "iso", "img", "vhd",
    "vhdx", "appx", "msix", "sh", "app", "command",
];

/// File-name extensions of macro-enabled Office formats.
pub const MACRO_EXTENSIONS: &[&str] = &[
    "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppsm", "ppam",
];

fn extension(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (stem, ext) = base.rsplit_once('.')?;
    if stem.is_empty() && ext.is_empty() {
        return None;
    }
    Some(ext.trim().to_ascii_lowercase())
}

/// Whether a file name has an executable or script extension.
pub fn executable_name(name: &str) -> bool {
    extension(name).is_some_and(|e| EXECUTABLE_EXTENSIONS.contains(&e.as_str()))
}

/// Whether a file name has a macro-enabled Office extension.
pub fn macro_name(name: &str) -> bool {
    extension(name).is_some_and(|e| MACRO_EXTENSIONS.contains(&e.as_str()))
}

fn kind_of(bytes: &[u8]) -> FileKind {
    const LNK: &[u8] = &[0x4C, 0, 0, 0, 0x01, 0x14, 0x02, 0x00];
    const OLE: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    let macho: [&[u8]; 5] = [
        &[0xFE, 0xED, 0xFA, 0xCE],
        &[0xFE, 0xED, 0xFA, 0xCF],
        &[0xCE, 0xFA, 0xED, 0xFE],
        &[0xCF, 0xFA, 0xED, 0xFE],
        &[0xCA, 0xFE, 0xBA, 0xBE],
    ];
    if bytes.starts_with(b"MZ") {
        FileKind::WindowsExecutable
    } else if bytes.starts_with(b"\x7fELF") {
        FileKind::Elf
    } else if macho.iter().any(|m| bytes.starts_with(m)) {
        FileKind::MachO
    } else if bytes.starts_with(b"#!") {
        FileKind::ShebangScript
    } else if bytes.starts_with(LNK) {
        FileKind::Shortcut
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        FileKind::Zip
    } else if bytes.starts_with(OLE) {
        FileKind::Ole
    } else if bytes.starts_with(b"%PDF-") {
        FileKind::Pdf
    } else if bytes.starts_with(&[0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C]) {
        FileKind::SevenZip
    } else if bytes.starts_with(b"Rar!\x1a\x07") {
        FileKind::Rar
    } else if contains_ascii_ci(head(bytes, 4096), b"<hta:application") {
        FileKind::Hta
    } else {
        FileKind::Other
    }
}

fn head(bytes: &[u8], n: usize) -> &[u8] {
    &bytes[..bytes.len().min(n)]
}

fn contains_ascii_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Script text that Windows Script Host runs (.js / .vbs saved as .txt).
fn looks_like_wsh_script(bytes: &[u8]) -> bool {
    let h = head(bytes, 8192);
    [
        "wscript.shell",
        "createobject(",
        "activexobject(",
        "wscript.createobject",
        "powershell -e",
    ]
    .iter()
    .any(|n| contains_ascii_ci(h, n.as_bytes()))
}

/// Sniff an attachment. `content` may be absent (a log named the file): then
/// only the name and the inner names decide.
pub fn sniff(filename: Option<&str>, content: Option<&[u8]>) -> Sniffed {
    let mut out = Sniffed::default();
    let exec = |out: &mut Sniffed, why: String| {
        if !out.executable {
            out.executable = true;
            out.executable_reason = Some(why);
        }
    };
    if let Some(name) = filename {
        if executable_name(name) {
            exec(&mut out, format!("file name {name}"));
        }
        if macro_name(name) {
            out.macros = true;
        }
    }
    let Some(bytes) = content else {
        return out;
    };
    let kind = kind_of(bytes);
    out.kind = Some(kind);
    match kind {
        FileKind::WindowsExecutable => exec(&mut out, "Windows executable (MZ)".into()),
        FileKind::Elf => exec(&mut out, "ELF executable".into()),
        FileKind::MachO => exec(&mut out, "Mach-O executable".into()),
        FileKind::ShebangScript => exec(&mut out, "script (#!)".into()),
        FileKind::Shortcut => exec(&mut out, "Windows shortcut (.lnk)".into()),
        FileKind::Hta => exec(&mut out, "HTML application (HTA)".into()),
        FileKind::Zip => sniff_zip(bytes, &mut out),
        FileKind::Ole => {
            if contains(bytes, &utf16le("_VBA_PROJECT"))
                || contains(bytes, &utf16le("VBA")) && contains(bytes, &utf16le("PROJECT"))
            {
                out.macros = true;
            }
            if contains(bytes, &utf16le("EncryptionInfo"))
                || contains(bytes, &utf16le("EncryptedPackage"))
            {
                out.encrypted = true;
            }
        }
        FileKind::Other => {
            if looks_like_wsh_script(bytes) {
                exec(&mut out, "Windows Script Host script".into());
            }
        }
        FileKind::Pdf | FileKind::SevenZip | FileKind::Rar => {}
    }
    out
}

fn sniff_zip(bytes: &[u8], out: &mut Sniffed) {
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return;
    };
    for i in 0..archive.len().min(MAX_ENTRIES) {
        let Ok(entry) = archive.by_index_raw(i) else {
            continue;
        };
        let name = String::from_utf8(entry.name_raw().to_vec())
            .unwrap_or_else(|_| entry.name().to_string());
        if entry.encrypted() {
            out.encrypted = true;
        }
        let lower = name.to_ascii_lowercase();
        if lower.ends_with("vbaproject.bin") {
            out.macros = true;
        }
        if executable_name(&name) && !out.executable {
            out.executable = true;
            out.executable_reason = Some(format!("archive contains {name}"));
        }
        out.inner_names.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(
                *name,
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored),
            )
            .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn executables_by_magic_whatever_the_name() {
        for (bytes, kind) in [
            (&b"MZ\x90\x00\x03"[..], FileKind::WindowsExecutable),
            (b"\x7fELF\x02\x01", FileKind::Elf),
            (&[0xCF, 0xFA, 0xED, 0xFE, 7, 0, 0, 1], FileKind::MachO),
            (b"#!/bin/sh\ncurl x | sh\n", FileKind::ShebangScript),
            (
                &[0x4C, 0, 0, 0, 0x01, 0x14, 0x02, 0x00, 0, 0],
                FileKind::Shortcut,
            ),
            (b"<html><HTA:APPLICATION id=x>", FileKind::Hta),
        ] {
            let s = sniff(Some("請求書.pdf"), Some(bytes));
            assert_eq!(s.kind, Some(kind));
            assert!(s.executable, "{kind:?}");
        }
        let vbs = sniff(
            Some("readme.txt"),
            Some(b"Set o = CreateObject(\"WScript.Shell\")"),
        );
        assert!(vbs.executable);
        let pdf = sniff(Some("見積書.pdf"), Some(b"%PDF-1.7\n"));
        assert!(!pdf.executable);
        assert_eq!(pdf.kind, Some(FileKind::Pdf));
    }

    #[test]
    fn executables_by_name_without_content() {
        assert!(sniff(Some("invoice.pdf.exe"), None).executable);
        assert!(sniff(Some("run.JS"), None).executable);
        assert!(sniff(Some("ショートカット.lnk"), None).executable);
        assert!(!sniff(Some("report.xlsx"), None).executable);
        assert!(!sniff(Some(".exe"), None).macros);
        assert!(sniff(Some("集計.xlsm"), None).macros);
    }

    #[test]
    fn ooxml_with_vba_project_has_macros() {
        let doc = zip_with(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("xl/workbook.xml", b"<workbook/>"),
            ("xl/vbaProject.bin", b"\xd0\xcf"),
        ]);
        let s = sniff(Some("集計.xlsx"), Some(&doc));
        assert_eq!(s.kind, Some(FileKind::Zip));
        assert!(s.macros);
        assert!(!s.executable);
        let plain = zip_with(&[("xl/workbook.xml", b"<workbook/>")]);
        assert!(!sniff(Some("集計.xlsx"), Some(&plain)).macros);
    }

    #[test]
    fn ole_with_vba_storage_has_macros() {
        let mut ole = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        ole.extend(std::iter::repeat_n(0u8, 100));
        let plain = sniff(Some("a.doc"), Some(&ole));
        assert!(!plain.macros);
        ole.extend(utf16le("_VBA_PROJECT"));
        assert!(sniff(Some("a.doc"), Some(&ole)).macros);
    }

    #[test]
    fn zip_with_an_executable_inside() {
        let z = zip_with(&[("資料/setup.exe", b"MZ")]);
        let s = sniff(Some("資料.zip"), Some(&z));
        assert!(s.executable);
        assert_eq!(s.inner_names, vec!["資料/setup.exe".to_string()]);
        assert!(!s.encrypted);
    }
}
