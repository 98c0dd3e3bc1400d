//! A mail's body for the console: its text, and its HTML made harmless.
//!
//! Mail HTML is written by whoever sent the mail — the most hostile input
//! the console shows. It goes through ammonia (an allow-list sanitiser on
//! html5ever): no scripts, no event handlers, no styles that load anything,
//! no forms, no images (a remote image is a read receipt for the sender, and
//! an investigator's look must not be one). Links are shown, not followed:
//! each becomes its text followed by its address in brackets, with no
//! `href` left to click.

use ammonia::Builder;
use mail_parser::MessageParser;

/// The first text and the first HTML body of a raw message.
pub fn bodies(raw: &[u8]) -> (Option<String>, Option<String>) {
    // Attached messages are not descended into (a crafted nesting thousands
    // deep must not exhaust the stack), and a parser bug costs this page's
    // body, never the server.
    let neutral = mailtrail_ingest::mime::neutralise_nesting(raw);
    let raw = neutral.as_deref().unwrap_or(raw);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_bodies(raw)))
        .unwrap_or((None, None))
}

fn parse_bodies(raw: &[u8]) -> (Option<String>, Option<String>) {
    let Some(message) = MessageParser::default().parse(raw) else {
        return (None, None);
    };
    let text = message
        .body_text(0)
        .map(|t| t.into_owned())
        .filter(|t| !t.trim().is_empty());
    let html = (!message.html_body.is_empty())
        .then(|| message.body_html(0).map(|h| h.into_owned()))
        .flatten();
    (text, html)
}

/// Sanitise mail HTML for display inside a console page.
pub fn sanitise(html: &str) -> String {
    let cleaned = Builder::default()
        .rm_tags(["img", "picture", "source", "video", "audio"])
        .link_rel(None)
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .url_relative(ammonia::UrlRelative::Deny)
        .clean(html)
        .to_string();
    unlink(&cleaned)
}

/// `<a href="URL" …>text</a>` → `<span class="link">text</span> <span class="url">[URL]</span>`.
/// The input is ammonia's output: well-formed, attribute values quoted and
/// escaped, no nested anchors.
fn unlink(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<a") {
        // `<a` must be the tag `a`, not `<abbr`.
        let after = &rest[start + 2..];
        if !after.starts_with([' ', '>']) {
            out.push_str(&rest[..start + 2]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..start]);
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let tag = &after[..tag_end];
        let href = tag
            .find("href=\"")
            .map(|i| &tag[i + 6..])
            .and_then(|v| v.find('"').map(|j| &v[..j]));
        let body = &after[tag_end + 1..];
        let (text, remainder) = match body.find("</a>") {
            Some(close) => (&body[..close], &body[close + 4..]),
            None => (body, ""),
        };
        out.push_str("<span class=\"link\">");
        out.push_str(text);
        out.push_str("</span>");
        if let Some(href) = href {
            out.push_str(" <span class=\"url\">[");
            out.push_str(href);
            out.push_str("]</span>");
        }
        rest = remainder;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_images_and_links_are_defused() {
        let hostile = r#"<p onclick="steal()">請求書 <b>確認</b></p>
<script>alert(1)</script><img src="https://tracker.example/p.gif?u=1">
<a href="https://evil.example/login?x=1&amp;y=2" onmouseover="x()">ここをクリック</a>
<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input></form>
<div style="background:url(https://tracker.example/bg.png)">x</div><abbr>ok</abbr>"#;
        let safe = sanitise(hostile);
        for bad in [
            "<script",
            "onclick",
            "onmouseover",
            "<img",
            "tracker.example",
            "<iframe",
            "<form",
            "<input",
            "href=",
            "style=",
        ] {
            assert!(!safe.contains(bad), "{bad} left in {safe}");
        }
        assert!(safe.contains("請求書"), "{safe}");
        assert!(safe.contains("<b>確認</b>"), "{safe}");
        assert!(
            safe.contains(r#"<span class="link">ここをクリック</span> <span class="url">[https://evil.example/login?x=1&amp;y=2]</span>"#),
            "{safe}"
        );
        assert!(safe.contains("<abbr>ok</abbr>"), "{safe}");
    }

    #[test]
    fn javascript_urls_do_not_survive() {
        let safe = sanitise(r#"<a href="javascript:alert(1)">x</a><a href="/relative">y</a>"#);
        assert!(!safe.contains("javascript"), "{safe}");
        assert!(!safe.contains("/relative"), "{safe}");
        assert!(
            safe.contains(">x</span>") && safe.contains(">y</span>"),
            "{safe}"
        );
    }

    #[test]
    fn a_deeply_nested_message_shows_its_own_body_without_recursing() {
        let mut raw =
            String::from("Subject: outer\r\nContent-Type: text/plain\r\n\r\nouter body\r\n");
        for _ in 0..5000 {
            raw = format!("Subject: x\r\nContent-Type: message/rfc822\r\n\r\n{raw}");
        }
        let top = format!("Subject: top\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nthe top text\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n{raw}\r\n--b--\r\n");
        let (text, _) = bodies(top.as_bytes());
        assert_eq!(text.as_deref().map(str::trim), Some("the top text"));
    }

    #[test]
    fn text_and_html_bodies_are_found() {
        let raw = b"From: a@example.co.jp\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n\xe6\x9c\xac\xe6\x96\x87\r\n--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n<p>html \xe6\x9c\xac\xe6\x96\x87</p>\r\n--b--\r\n";
        let (text, html) = bodies(raw);
        assert_eq!(text.as_deref().map(str::trim), Some("本文"));
        assert!(html.unwrap().contains("<p>html 本文</p>"));
    }
}
