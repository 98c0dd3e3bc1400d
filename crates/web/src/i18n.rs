//! Japanese and English: the console's words live in Fluent catalogues
//! (`i18n/ja.ftl`, `i18n/en.ftl`), not in code or templates.
//!
//! The catalogues are compiled into the binary (nothing to install) and
//! parsed once at start-up; a missing or broken message is a test failure
//! ([`Catalog::missing`]), never a blank on a page. The language is the
//! browser's (`Accept-Language`) unless the user chose one with the switch
//! (a `lang` cookie). Dates and numbers are formatted per language here too.

use chrono::{DateTime, Utc};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

const EN: &str = include_str!("../i18n/en.ftl");
const JA: &str = include_str!("../i18n/ja.ftl");

/// A console language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The other language (for the switch).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ja,
            Lang::Ja => Lang::En,
        }
    }
}

/// The user's choice (cookie) first, else the browser's most preferred
/// language we have (`Accept-Language` with q-values), else English.
pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
    if let Some(lang) = cookie.and_then(Lang::parse) {
        return lang;
    }
    let mut best: Option<(f32, Lang)> = None;
    for item in accept_language.unwrap_or("").split(',') {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(Lang::parse) else {
            continue;
        };
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, lang)| lang)
}

#[derive(Debug, thiserror::Error)]
#[error("the {lang} message catalogue is invalid: {reason}")]
pub struct CatalogError {
    lang: &'static str,
    reason: String,
}

/// Both catalogues, parsed.
pub struct Catalog {
    en: FluentBundle<FluentResource>,
    ja: FluentBundle<FluentResource>,
}

fn bundle(lang: &'static str, text: &str) -> Result<FluentBundle<FluentResource>, CatalogError> {
    let resource =
        FluentResource::try_new(text.to_string()).map_err(|(_, errors)| CatalogError {
            lang,
            reason: format!("{errors:?}"),
        })?;
    let id: LanguageIdentifier = lang.parse().map_err(|_| CatalogError {
        lang,
        reason: "bad language id".into(),
    })?;
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // No Unicode isolation marks: the pages are HTML, escaped by the templates.
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .map_err(|errors| CatalogError {
            lang,
            reason: format!("{errors:?}"),
        })?;
    Ok(bundle)
}

impl Catalog {
    pub fn new() -> Result<Catalog, CatalogError> {
        Ok(Catalog {
            en: bundle("en", EN)?,
            ja: bundle("ja", JA)?,
        })
    }

    fn bundle(&self, lang: Lang) -> &FluentBundle<FluentResource> {
        match lang {
            Lang::En => &self.en,
            Lang::Ja => &self.ja,
        }
    }

    /// The message `key` in `lang`, with arguments; the key itself if missing.
    pub fn text(&self, lang: Lang, key: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let bundle = self.bundle(lang);
        let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
            return key.to_string();
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        let mut errors = Vec::new();
        bundle
            .format_pattern(pattern, Some(&fluent_args), &mut errors)
            .into_owned()
    }

    /// Keys present in one catalogue but not the other (must be empty).
    pub fn missing(&self) -> Vec<String> {
        let keys = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.starts_with(['#', ' ', '\t', '*', '[']) && l.contains(" ="))
                .filter_map(|l| l.split(" =").next().map(str::to_string))
                .collect()
        };
        let (en, ja) = (keys(EN), keys(JA));
        en.iter()
            .filter(|k| !ja.contains(k))
            .map(|k| format!("ja lacks {k}"))
            .chain(
                ja.iter()
                    .filter(|k| !en.contains(k))
                    .map(|k| format!("en lacks {k}")),
            )
            .collect()
    }
}

/// A date and time in the configured zone, as each language writes it:
/// `2026/11/27 14:05` (ja), `2026-11-27 14:05` (en).
pub fn datetime(lang: Lang, t: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    let local = t.with_timezone(&tz);
    match lang {
        Lang::Ja => local.format("%Y/%m/%d %H:%M").to_string(),
        Lang::En => local.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// A day as each language writes it: `2026/11/27` (ja), `2026-11-27` (en).
pub fn date(lang: Lang, day: chrono::NaiveDate) -> String {
    match lang {
        Lang::Ja => day.format("%Y/%m/%d").to_string(),
        Lang::En => day.format("%Y-%m-%d").to_string(),
    }
}

/// Digits grouped by thousands (both languages use `,`).
pub fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in B, KB or MB (1 KB = 1,024 bytes, as mail clients show it).
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_parse_and_have_the_same_keys() {
        let c = Catalog::new().unwrap();
        assert_eq!(c.missing(), Vec::<String>::new());
        assert_eq!(c.text(Lang::Ja, "nav-search", &[]), "検索");
        assert_eq!(
            c.text(Lang::En, "search-count", &[("count", 1.into())]),
            "1 message"
        );
        assert_eq!(
            c.text(Lang::Ja, "search-count", &[("count", 1234.into())]),
            "1234 件"
        );
    }

    #[test]
    fn the_language_is_the_choice_then_the_browser_then_english() {
        assert_eq!(negotiate(Some("en"), Some("ja,en;q=0.5")), Lang::En);
        assert_eq!(negotiate(None, Some("ja-JP,ja;q=0.9,en;q=0.8")), Lang::Ja);
        assert_eq!(negotiate(None, Some("fr-FR,en;q=0.7,ja;q=0.3")), Lang::En);
        assert_eq!(negotiate(None, Some("en;q=0.2, ja;q=0.9")), Lang::Ja);
        assert_eq!(negotiate(None, None), Lang::En);
        assert_eq!(negotiate(Some("xx"), Some("ja")), Lang::Ja);
    }

    #[test]
    fn numbers_dates_and_sizes() {
        assert_eq!(number(0), "0");
        assert_eq!(number(1234567), "1,234,567");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(20_480), "20 KB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MB");
        let t: DateTime<Utc> = "2026-11-27T05:05:00Z".parse().unwrap();
        assert_eq!(
            datetime(Lang::Ja, t, chrono_tz::Asia::Tokyo),
            "2026/11/27 14:05"
        );
        assert_eq!(datetime(Lang::En, t, chrono_tz::UTC), "2026-11-27 05:05");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        assert_eq!(date(Lang::Ja, day), "2026/11/27");
        assert_eq!(date(Lang::En, day), "2026-11-27");
    }
}
