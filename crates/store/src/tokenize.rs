//! The one tokenizer every search backend uses (DESIGN.md §4).
//!
//! # Why it is shaped like this
//!
//! Japanese has no spaces between words and we ship no dictionary, so text is
//! indexed in a form that answers *substring* questions exactly: every run of
//! CJK characters (Han, kana, Hangul) becomes overlapping bigrams, and the last
//! character of the run is also emitted alone. Latin (and every other
//! alphanumeric script) is indexed as whole words. The output is plain text:
//! tokens separated by single spaces, where each token consists only of ASCII
//! alphanumerics and non-ASCII characters. That is exactly what SQLite FTS5's
//! `tokenize='ascii'` splits back into the same tokens (it treats every ASCII
//! non-alphanumeric as a separator and folds only ASCII case, which we have
//! already folded); the PostgreSQL backend builds its `tsvector` from the
//! same tokens.
//! One Rust function therefore decides tokenization for every backend, and the
//! backends only ever store and compare opaque tokens.
//!
//! Before segmentation, text is normalised by [`normalize`]: NFKC (全角/半角,
//! ｶﾀｶﾅ → カタカナ, ｼﾞ → ジ, ① → 1) then lower-case (per character, so `Σ` is
//! always `σ`), and invisible characters that must not split a run are removed
//! (variation selectors such as the ideographic ones after 葛, zero-width
//! space / joiners, word joiner, BOM, soft hyphen).
//!
//! Segmentation of the normalised text: each character is
//! - **CJK**: Han (URO, extensions A–H, compatibility ideographs, radicals),
//!   Hiragana, Katakana (incl. ー U+30FC, ヶ, phonetic extensions, kana
//!   supplements), Hangul, Bopomofo and 々 〆 〇; but not the punctuation ・
//!   U+30FB and ゠ U+30A0;
//! - **word**: any other Unicode alphanumeric; a combining mark directly after
//!   a word character continues the word;
//! - **separator**: everything else (spaces, punctuation 、。・!?, symbols,
//!   emoji).
//!
//! A maximal run of word characters is one token, truncated to
//! [`MAX_WORD_CHARS`] characters (long base64 or hex blobs must not bloat the
//! index; the query side truncates identically, so a search for such a word
//! still finds it). A maximal CJK run `c0..cn-1` becomes `c0c1 c1c2 …
//! c(n-2)c(n-1) c(n-1)`: every position of the run starts exactly one token.
//!
//! # What a query matches ([`match_expression`])
//!
//! The query text is normalised and segmented the same way and turned into one
//! FTS5 phrase (in order, adjacent positions; separators between runs are not
//! part of the phrase):
//!
//! - **CJK runs are exact-substring matches.** `社外秘` becomes the phrase
//!   `社外 外秘`, which matches wherever the characters 社外秘 occur
//!   contiguously in the normalised text — inside a longer run (極秘社外秘文書)
//!   too — and never `社外…外秘`, because the bigrams must sit at adjacent
//!   positions and a run boundary always emits the single final character in
//!   between. A one-character query `秘` becomes the prefix query `"秘" *`,
//!   matching every bigram that starts with 秘 and the run-final single 秘,
//!   i.e. every occurrence. This equals `LIKE '%…%'` over the normalised text
//!   (the property test below checks it against SQLite FTS5).
//! - **Word runs are whole-word matches.** `mail` matches the word `mail`
//!   (and `MAIL`, `ｍａｉｌ`) but not `mailbox`: words are indexed as words,
//!   so prefix or infix matches would need another index shape. Several words
//!   must appear as consecutive words (`foo-bar` matches `foo bar`, `foo.bar`,
//!   since punctuation is a separator).
//! - **Mixed queries**: a CJK run that is followed by another run in the query
//!   ends there in the text as well (a word or a separator ends a CJK run), so it
//!   contributes its bigrams *and* its final single character, exactly as
//!   indexed; the last run of the query, if CJK, contributes only its bigrams
//!   (the text may continue the run) or, if it is a single character, a prefix
//!   token. Hence `2026年度` matches `2026年度計画` but `社外秘 資料` (with a
//!   space) does not match `社外秘資料`: a separator between two CJK runs of the
//!   query asks for a run boundary in the text.
//!
//! # Limits
//!
//! One call emits at most [`MAX_TOKENS`] tokens; text beyond that is not
//! indexed (a guard against pathological multi-megabyte bodies: that is about
//! a million CJK characters, 3 MB of UTF-8, and far more of Latin text).

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// Maximal number of tokens emitted by one call of [`index_text`] /
/// [`index_text_into`]; the rest of the text is not indexed.
pub const MAX_TOKENS: usize = 1 << 20;

/// Word tokens are truncated to this many characters (index and query alike).
pub const MAX_WORD_CHARS: usize = 128;

/// NFKC, then lower-case, with invisible run-splitting characters removed.
///
/// This is the text against which search semantics are defined: a CJK query
/// `q` matches a text `t` exactly when `normalize(t)` contains `normalize(q)`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for_each_normalized(text, |c| {
        out.push(c);
        true
    });
    out
}

/// Normalise and tokenise `text`: tokens separated by single spaces.
pub fn index_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    index_text_into(text, &mut out);
    out
}

/// Like [`index_text`], appending to `out` (which is not cleared). When `out`
/// is not empty and does not end with a space, a space is inserted before the
/// first token, so several fields can be concatenated into one document.
pub fn index_text_into(text: &str, out: &mut String) {
    let mut tokenizer = Tokenizer::new(StringSink { out });
    for_each_normalized(text, |c| tokenizer.feed(c));
    tokenizer.finish();
}

/// The FTS5 MATCH expression (one phrase) that finds `query_text`, or `None`
/// when the query contains nothing searchable (only separators).
///
/// See the module documentation for the exact semantics. Examples:
/// `社外秘` → `"社外 外秘"`, `秘` → `"秘" *`,
/// `abc社外秘def` → `"abc 社外 外秘 秘 def"`.
pub fn match_expression(query_text: &str) -> Option<String> {
    let tokens = query_tokens(query_text)?;
    let mut expr = String::with_capacity(query_text.len() * 3 + 8);
    expr.push('"');
    for (i, token) in tokens.tokens.iter().enumerate() {
        if i > 0 {
            expr.push(' ');
        }
        // Our tokens never contain `"` (an ASCII non-alphanumeric), but stay
        // correct should that ever change: FTS5 escapes `"` by doubling it.
        for c in token.chars() {
            if c == '"' {
                expr.push('"');
            }
            expr.push(c);
        }
    }
    expr.push('"');
    if tokens.prefix {
        expr.push_str(" *");
    }
    Some(expr)
}

/// The tokens of a query phrase, after the last-run rule has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTokens {
    /// Tokens of the phrase, in order.
    pub tokens: Vec<String>,
    /// The last token is a prefix (a single CJK character ending the query).
    pub prefix: bool,
}

/// The phrase tokens for `query_text` (what [`match_expression`] quotes), for
/// backends that build their own query syntax (PostgreSQL `<->`, `:*`).
pub fn query_tokens(query_text: &str) -> Option<QueryTokens> {
    let mut tokens: Vec<(TokenKind, String)> = Vec::new();
    let mut tokenizer = Tokenizer::new(VecSink {
        tokens: &mut tokens,
    });
    for_each_normalized(query_text, |c| tokenizer.feed(c));
    tokenizer.finish();

    let mut prefix = false;
    if let Some((TokenKind::Single, _)) = tokens.last() {
        // A Bigram right before the final Single belongs to the same run (a
        // run's bigrams are always followed by its Single).
        let run_has_bigrams = tokens.len() >= 2
            && matches!(tokens.get(tokens.len() - 2), Some((TokenKind::Bigram, _)));
        if run_has_bigrams {
            tokens.pop();
        } else {
            prefix = true;
        }
    }
    if tokens.is_empty() {
        return None;
    }
    Some(QueryTokens {
        tokens: tokens.into_iter().map(|(_, t)| t).collect(),
        prefix,
    })
}

/// Characters that are removed before segmentation: they are invisible and
/// must not split a CJK run or a word.
fn is_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{180B}'..='\u{180D}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// CJK characters: indexed as bigrams. Applied to normalised text (half-width
/// kana have already become full-width).
fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x1100..=0x11FF // Hangul Jamo
            | 0x2E80..=0x2FDF // CJK radicals supplement, Kangxi radicals
            | 0x3005..=0x3007 // 々 〆 〇
            | 0x3021..=0x3029 // Hangzhou numerals
            | 0x3031..=0x3035 // vertical kana repeat marks
            | 0x303B..=0x303C // 〻 〼
            | 0x3041..=0x309F // Hiragana (incl. combining voiced marks, ゝ ゞ ゟ)
            | 0x30A1..=0x30FA // Katakana (incl. ヶ), not ゠ U+30A0
            | 0x30FC..=0x30FF // ー ヽ ヾ ヿ, not ・ U+30FB
            | 0x3105..=0x312F // Bopomofo
            | 0x3131..=0x318E // Hangul compatibility Jamo
            | 0x31A0..=0x31BF // Bopomofo extended
            | 0x31F0..=0x31FF // Katakana phonetic extensions
            | 0x3400..=0x4DBF // Han extension A
            | 0x4E00..=0x9FFF // Han unified ideographs
            | 0xA960..=0xA97F // Hangul Jamo extended A
            | 0xAC00..=0xD7FF // Hangul syllables, Jamo extended B
            | 0xF900..=0xFAFF // CJK compatibility ideographs
            | 0x1AFF0..=0x1B16F // Kana extended B, supplement, extended A, small kana
            | 0x20000..=0x3FFFF // Han extensions B–H, compatibility supplement
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Cjk,
    Word,
    Mark,
    Separator,
}

#[inline]
fn classify(c: char) -> Class {
    if c.is_ascii() {
        if c.is_ascii_alphanumeric() {
            Class::Word
        } else {
            Class::Separator
        }
    } else if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else if is_combining_mark(c) {
        Class::Mark
    } else {
        Class::Separator
    }
}

/// Feed the normalised characters of `text` to `f` until it returns false.
///
/// Fast paths: pure ASCII text needs only ASCII lower-casing, and text that
/// the NFKC quick check accepts needs no normalisation pass.
#[inline]
fn for_each_normalized(text: &str, mut f: impl FnMut(char) -> bool) {
    if text.is_ascii() {
        for b in text.bytes() {
            if !f(b.to_ascii_lowercase() as char) {
                return;
            }
        }
    } else if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        feed_lowercased(text.chars(), f);
    } else {
        feed_lowercased(text.nfkc(), f);
    }
}

#[inline]
fn feed_lowercased(chars: impl Iterator<Item = char>, mut f: impl FnMut(char) -> bool) {
    for c in chars {
        let go_on = if c.is_ascii() {
            f(c.to_ascii_lowercase())
        } else if is_ignorable(c) {
            true
        } else if is_cjk(c) {
            f(c)
        } else {
            let mut go_on = true;
            for l in c.to_lowercase() {
                if !f(l) {
                    go_on = false;
                    break;
                }
            }
            go_on
        };
        if !go_on {
            return;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Word,
    Bigram,
    /// The final character of a CJK run.
    Single,
}

/// Where tokens go: a space-separated string (indexing) or a list (queries).
trait Sink {
    fn begin(&mut self, kind: TokenKind);
    fn push(&mut self, c: char);
}

struct StringSink<'a> {
    out: &'a mut String,
}

impl Sink for StringSink<'_> {
    #[inline]
    fn begin(&mut self, _kind: TokenKind) {
        if !self.out.is_empty() && !self.out.ends_with(' ') {
            self.out.push(' ');
        }
    }

    #[inline]
    fn push(&mut self, c: char) {
        self.out.push(c);
    }
}

struct VecSink<'a> {
    tokens: &'a mut Vec<(TokenKind, String)>,
}

impl Sink for VecSink<'_> {
    fn begin(&mut self, kind: TokenKind) {
        self.tokens.push((kind, String::new()));
    }

    fn push(&mut self, c: char) {
        if let Some((_, token)) = self.tokens.last_mut() {
            token.push(c);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Separator,
    /// Inside a word of this many characters so far.
    Word(usize),
    /// Inside a CJK run; the previous character.
    Cjk(char),
}

/// The segmentation state machine, fed one normalised character at a time.
struct Tokenizer<S> {
    sink: S,
    tokens: usize,
    state: State,
}

impl<S: Sink> Tokenizer<S> {
    fn new(sink: S) -> Self {
        Tokenizer {
            sink,
            tokens: 0,
            state: State::Separator,
        }
    }

    /// Start a token; false once the token cap is reached.
    #[inline]
    fn begin(&mut self, kind: TokenKind) -> bool {
        if self.tokens >= MAX_TOKENS {
            return false;
        }
        self.tokens += 1;
        self.sink.begin(kind);
        true
    }

    /// Process one character; false when no more input is wanted.
    #[inline]
    fn feed(&mut self, c: char) -> bool {
        match (classify(c), self.state) {
            (Class::Cjk, State::Cjk(prev)) => {
                if !self.begin(TokenKind::Bigram) {
                    return false;
                }
                self.sink.push(prev);
                self.sink.push(c);
                self.state = State::Cjk(c);
            }
            (Class::Cjk, _) => {
                // A word (already emitted) or a separator ends here.
                self.state = State::Cjk(c);
            }
            (Class::Word | Class::Mark, State::Word(n)) => {
                if n < MAX_WORD_CHARS {
                    self.sink.push(c);
                }
                self.state = State::Word(n + 1);
            }
            (Class::Word, _) => {
                if !self.finish() || !self.begin(TokenKind::Word) {
                    return false;
                }
                self.sink.push(c);
                self.state = State::Word(1);
            }
            (Class::Mark | Class::Separator, _) => return self.finish(),
        }
        true
    }

    /// End the current run: a CJK run emits its final character alone.
    #[inline]
    fn finish(&mut self) -> bool {
        let state = std::mem::replace(&mut self.state, State::Separator);
        if let State::Cjk(prev) = state {
            if !self.begin(TokenKind::Single) {
                return false;
            }
            self.sink.push(prev);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use rusqlite::Connection;
    use std::collections::BTreeSet;

    #[test]
    fn normalize_folds_width_kana_and_case() {
        assert_eq!(normalize("ｼｬｶﾞｲﾋ"), "シャガイヒ");
        assert_eq!(normalize("ｼｬｶﾞｲﾋ"), normalize("シャガイヒ"));
        assert_eq!(normalize("ＣＯＮＦＩＤＥＮＴＩＡＬ"), "confidential");
        assert_eq!(normalize("Confidential"), "confidential");
        assert_eq!(normalize("ﾃﾞｰﾀ"), "データ");
        assert_eq!(normalize("２０２６年①"), "2026年1");
        assert_eq!(normalize("ΣΑΣ"), "σασ");
        assert_eq!(normalize("葛\u{E0100}飾\u{200B}区"), "葛飾区");
    }

    #[test]
    fn index_text_equivalences() {
        assert_eq!(index_text("ｼｬｶﾞｲﾋ"), index_text("シャガイヒ"));
        assert_eq!(
            index_text("ＣＯＮＦＩＤＥＮＴＩＡＬ"),
            index_text("confidential")
        );
        assert_eq!(index_text("ＣＯＮＦＩＤＥＮＴＩＡＬ"), "confidential");
        assert_eq!(index_text("Ｍａｉｌ　ｼｽﾃﾑ"), index_text("mail システム"));
    }

    #[test]
    fn bigram_layout() {
        assert_eq!(index_text("社外秘"), "社外 外秘 秘");
        assert_eq!(index_text("機密"), "機密 密");
        assert_eq!(index_text("秘"), "秘");
        assert_eq!(index_text("データー"), "デー ータ ター ー");
        assert_eq!(index_text("顧客・リスト"), "顧客 客 リス スト ト");
        assert_eq!(index_text("人々〆切"), "人々 々〆 〆切 切");
        assert_eq!(
            index_text("Meeting: 2026年の会議資料（社外秘）!"),
            "meeting 2026 年の の会 会議 議資 資料 料 社外 外秘 秘"
        );
        assert_eq!(index_text("abc社外def"), "abc 社外 外 def");
        assert_eq!(index_text("alice@Example.COM"), "alice example com");
        assert_eq!(index_text("한국어"), "한국 국어 어");
        assert_eq!(index_text("Éclair café"), "éclair café");
        assert_eq!(index_text("!!! 、。"), "");
        assert_eq!(index_text(""), "");
    }

    #[test]
    fn index_text_into_appends_with_one_space() {
        let mut out = String::new();
        index_text_into("件名 Subject", &mut out);
        index_text_into("本文", &mut out);
        index_text_into("", &mut out);
        index_text_into("!!", &mut out);
        assert_eq!(out, "件名 名 subject 本文 文");
        let mut out = String::from("x ");
        index_text_into("y", &mut out);
        assert_eq!(out, "x y");
    }

    #[test]
    fn long_words_are_truncated_the_same_way_in_queries() {
        let long = "a".repeat(MAX_WORD_CHARS + 50);
        let indexed = index_text(&format!("{long} b"));
        assert_eq!(indexed, format!("{} b", "a".repeat(MAX_WORD_CHARS)));
        assert_eq!(
            match_expression(&long),
            Some(format!("\"{}\"", "a".repeat(MAX_WORD_CHARS)))
        );
    }

    #[test]
    fn token_cap_is_applied() {
        let text = "ab ".repeat(MAX_TOKENS + 10);
        let indexed = index_text(&text);
        assert_eq!(indexed.split(' ').count(), MAX_TOKENS);
    }

    #[test]
    fn match_expressions() {
        assert_eq!(match_expression("社外秘").as_deref(), Some("\"社外 外秘\""));
        assert_eq!(match_expression("機密").as_deref(), Some("\"機密\""));
        assert_eq!(match_expression("秘").as_deref(), Some("\"秘\" *"));
        assert_eq!(
            match_expression("abc社外秘def").as_deref(),
            Some("\"abc 社外 外秘 秘 def\"")
        );
        assert_eq!(match_expression("abc 秘").as_deref(), Some("\"abc 秘\" *"));
        assert_eq!(
            match_expression("社外秘 資料").as_deref(),
            Some("\"社外 外秘 秘 資料\"")
        );
        assert_eq!(
            match_expression("ＣＯＮＦＩＤＥＮＴＩＡＬ").as_deref(),
            Some("\"confidential\"")
        );
        assert_eq!(
            match_expression("foo-bar.baz").as_deref(),
            Some("\"foo bar baz\"")
        );
        assert_eq!(
            match_expression("ｼｬｶﾞｲﾋ").as_deref(),
            Some("\"シャ ャガ ガイ イヒ\"")
        );
        assert_eq!(match_expression(""), None);
        assert_eq!(match_expression(" 、。!\"? "), None);
        assert_eq!(
            query_tokens("2026年"),
            Some(QueryTokens {
                tokens: vec!["2026".into(), "年".into()],
                prefix: true
            })
        );
    }

    fn fts_db(rows: &[&str]) -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='ascii')")
            .unwrap();
        for (i, row) in rows.iter().enumerate() {
            db.execute(
                "INSERT INTO t(rowid, body) VALUES (?1, ?2)",
                rusqlite::params![i as i64, index_text(row)],
            )
            .unwrap();
        }
        db
    }

    fn fts_match(db: &Connection, query: &str) -> BTreeSet<i64> {
        let Some(expr) = match_expression(query) else {
            return BTreeSet::new();
        };
        let mut stmt = db.prepare("SELECT rowid FROM t WHERE t MATCH ?1").unwrap();
        let rows = stmt
            .query_map([&expr], |r| r.get::<_, i64>(0))
            .unwrap()
            .collect::<Result<BTreeSet<_>, _>>()
            .unwrap();
        rows
    }

    #[test]
    fn fts5_examples() {
        let db = fts_db(&[
            "本資料は社外秘です",       // 0
            "社外の方へ。外秘ではない", // 1
            "機密情報",                 // 2
            "ｼｬｶﾞｲﾋ ﾘｽﾄ",                // 3
            "CONFIDENTIAL report",      // 4
            "confidentiality",          // 5
            "顧客リスト.xlsx",          // 6
        ]);
        let set = |v: &[i64]| v.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(fts_match(&db, "社外秘"), set(&[0]));
        assert_eq!(fts_match(&db, "社外"), set(&[0, 1]));
        assert_eq!(fts_match(&db, "外秘"), set(&[0, 1]));
        assert_eq!(fts_match(&db, "秘"), set(&[0, 1]));
        assert_eq!(fts_match(&db, "機密"), set(&[2]));
        assert_eq!(fts_match(&db, "密"), set(&[2]));
        assert_eq!(fts_match(&db, "シャガイヒ"), set(&[3]));
        assert_eq!(fts_match(&db, "ｼｬｶﾞｲﾋ　リスト"), set(&[3]));
        assert_eq!(fts_match(&db, "ＣＯＮＦＩＤＥＮＴＩＡＬ"), set(&[4]));
        assert_eq!(fts_match(&db, "confidential report"), set(&[4]));
        assert_eq!(fts_match(&db, "顧客リスト"), set(&[6]));
        assert_eq!(fts_match(&db, "リスト xlsx"), set(&[6]));
        assert_eq!(fts_match(&db, "リス"), set(&[3, 6]));
    }

    // ---- property test against SQLite FTS5 ----

    const CJK_PIECES: &[&str] = &[
        "社", "外", "秘", "資", "料", "顧", "客", "機", "密", "会", "議", "々", "の", "は", "が",
        "か", "し", "リ", "ス", "ト", "ー", "シ", "ャ", "ガ", "イ", "ヒ", "ｼ", "ｬ", "ｶ", "ﾞ", "ｲ",
        "ﾋ", "ｰ", "ｽ", "ﾄ", "ﾘ",
    ];
    const OTHER_PIECES: &[&str] = &[
        "abc",
        "Abc",
        "ABC",
        "def",
        "ab",
        "x",
        "Mail",
        "ＡＢＣ",
        "ｍａｉｌ",
        "1",
        "20",
        "２０",
        " ",
        " ",
        " ",
        "　",
        "、",
        "。",
        "・",
        "･",
        "!",
        "?",
        "-",
        "@",
        ".",
    ];

    fn piece() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            3 => prop::sample::select(CJK_PIECES),
            2 => prop::sample::select(OTHER_PIECES),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(piece(), 0..30).prop_map(|v| v.concat())
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Run {
        Word(String),
        Cjk(String),
    }

    /// Reference segmentation, written independently of the state machine.
    fn reference_runs(normalized: &str) -> Vec<Run> {
        let mut runs = Vec::new();
        let mut current: Option<(Class, String)> = None;
        for c in normalized.chars() {
            let class = classify(c);
            let class = if class == Class::Mark {
                Class::Separator
            } else {
                class
            };
            match &mut current {
                Some((k, s)) if *k == class => s.push(c),
                _ => {
                    if let Some(run) = current.take() {
                        runs.push(run);
                    }
                    if class != Class::Separator {
                        current = Some((class, c.to_string()));
                    }
                }
            }
        }
        runs.extend(current);
        runs.into_iter()
            .map(|(k, s)| match k {
                Class::Cjk => Run::Cjk(s),
                _ => Run::Word(s),
            })
            .collect()
    }

    #[derive(Debug, Clone)]
    enum QuerySpec {
        Substring(Index, Index, Index, Index),
        Random(Vec<&'static str>),
        Words(Index, Index, Index, &'static str),
        Recall(Index, Index, Index),
    }

    fn query_spec() -> impl Strategy<Value = QuerySpec> {
        prop_oneof![
            (
                any::<Index>(),
                any::<Index>(),
                any::<Index>(),
                any::<Index>()
            )
                .prop_map(|(a, b, c, d)| QuerySpec::Substring(a, b, c, d)),
            prop::collection::vec(prop::sample::select(CJK_PIECES), 1..4)
                .prop_map(QuerySpec::Random),
            (
                any::<Index>(),
                any::<Index>(),
                any::<Index>(),
                prop::sample::select(&[" ", "-", "・", "  ", "."][..])
            )
                .prop_map(|(a, b, c, s)| QuerySpec::Words(a, b, c, s)),
            (any::<Index>(), any::<Index>(), any::<Index>())
                .prop_map(|(a, b, c)| QuerySpec::Recall(a, b, c)),
        ]
    }

    fn contains_seq(haystack: &[Run], needle: &[Run]) -> bool {
        !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn fts5_phrases_equal_substring_semantics(
            rows in prop::collection::vec(text(), 1..10),
            specs in prop::collection::vec(query_spec(), 1..10),
        ) {
            let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
            let db = fts_db(&refs);
            let normalized: Vec<String> = rows.iter().map(|r| normalize(r)).collect();
            let runs: Vec<Vec<Run>> = normalized.iter().map(|n| reference_runs(n)).collect();

            for spec in specs {
                match spec {
                    QuerySpec::Substring(row, run, start, len) => {
                        // (a) a CJK-only substring of a row's normalised text.
                        let row = row.index(rows.len());
                        let cjk: Vec<&String> = runs[row].iter().filter_map(|r| match r {
                            Run::Cjk(s) => Some(s),
                            Run::Word(_) => None,
                        }).collect();
                        if cjk.is_empty() { continue; }
                        let chars: Vec<char> = cjk[run.index(cjk.len())].chars().collect();
                        let start = start.index(chars.len());
                        let len = 1 + len.index(chars.len() - start);
                        let q: String = chars[start..start + len].iter().collect();
                        let expected: BTreeSet<i64> = normalized.iter().enumerate()
                            .filter(|(_, n)| n.contains(&q)).map(|(i, _)| i as i64).collect();
                        prop_assert!(expected.contains(&(row as i64)));
                        prop_assert_eq!(fts_match(&db, &q), expected, "query {:?}", q);
                    }
                    QuerySpec::Random(pieces) => {
                        // (b) a random CJK string, often absent.
                        let q = normalize(&pieces.concat());
                        if q.is_empty() || !q.chars().all(is_cjk) { continue; }
                        let expected: BTreeSet<i64> = normalized.iter().enumerate()
                            .filter(|(_, n)| n.contains(&q)).map(|(i, _)| i as i64).collect();
                        prop_assert_eq!(fts_match(&db, &pieces.concat()), expected, "query {:?}", q);
                    }
                    QuerySpec::Words(row, start, len, sep) => {
                        // (c) a sequence of whole words, joined by separators.
                        let row = row.index(rows.len());
                        let r = &runs[row];
                        if r.is_empty() { continue; }
                        let start = start.index(r.len());
                        let words: Vec<Run> = r[start..].iter()
                            .take_while(|run| matches!(run, Run::Word(_)))
                            .take(1 + len.index(3))
                            .cloned()
                            .collect();
                        if words.is_empty() { continue; }
                        let q = words.iter().map(|w| match w {
                            Run::Word(s) | Run::Cjk(s) => s.as_str(),
                        }).collect::<Vec<_>>().join(sep);
                        let expected: BTreeSet<i64> = runs.iter().enumerate()
                            .filter(|(_, rr)| contains_seq(rr, &words))
                            .map(|(i, _)| i as i64).collect();
                        prop_assert!(expected.contains(&(row as i64)));
                        prop_assert_eq!(fts_match(&db, &q), expected, "query {:?}", q);
                    }
                    QuerySpec::Recall(row, a, b) => {
                        // (d) any substring not cutting a word finds its row.
                        let row = row.index(rows.len());
                        let chars: Vec<char> = normalized[row].chars().collect();
                        if chars.is_empty() { continue; }
                        let cuts_word = |i: usize| {
                            i > 0 && i < chars.len()
                                && classify(chars[i - 1]) == Class::Word
                                && classify(chars[i]) == Class::Word
                        };
                        let (mut s, mut e) = (a.index(chars.len() + 1), b.index(chars.len() + 1));
                        if s > e { std::mem::swap(&mut s, &mut e); }
                        if cuts_word(s) || cuts_word(e) { continue; }
                        let q: String = chars[s..e].iter().collect();
                        if match_expression(&q).is_none() { continue; }
                        prop_assert!(fts_match(&db, &q).contains(&(row as i64)), "query {:?}", q);
                    }
                }
            }
        }

        #[test]
        fn normalize_is_idempotent_and_tokens_are_clean(t in text()) {
            let n = normalize(&t);
            prop_assert_eq!(normalize(&n), n.clone());
            prop_assert_eq!(index_text(&n), index_text(&t));
            let indexed = index_text(&t);
            prop_assert!(!indexed.starts_with(' ') && !indexed.ends_with(' ') && !indexed.contains("  "));
            for token in indexed.split(' ').filter(|s| !s.is_empty()) {
                prop_assert!(token.chars().all(|c| !c.is_ascii() || c.is_ascii_alphanumeric()), "{:?}", token);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(t in ".{0,200}") {
            let _ = index_text(&t);
            let _ = match_expression(&t);
        }
    }

    /// Rough throughput: `cargo test -p mailtrail-store --release -- --ignored --nocapture throughput`.
    #[test]
    #[ignore]
    fn throughput() {
        let sample =
            "Subject: 【社外秘】2026年度 顧客リスト送付の件 / Re: Meeting notes for Q3 review \
                      お世話になっております。ｶﾌﾞｼｷｶﾞｲｼｬ の山田です。Please find the attached file, \
                      password will follow in a separate mail. 本メールは機密情報を含みます。 ";
        let text = sample.repeat(20_000);
        // Per-field calls of ~100 bytes, as ingest makes them.
        let mut fields = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut cut = rest.len().min(100);
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            let (field, tail) = rest.split_at(cut);
            fields.push(field);
            rest = tail;
        }
        let mut out = String::new();
        let start = std::time::Instant::now();
        let mut total = 0usize;
        for _ in 0..5 {
            for field in &fields {
                out.clear();
                index_text_into(field, &mut out);
                total += field.len();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "mixed: {:.1} MB/s ({} bytes in {:.3}s)",
            total as f64 / secs / 1e6,
            total,
            secs
        );
        let ascii =
            "Delivered to alice@example.com via mx1.example.net status=sent (250 2.0.0 OK) "
                .repeat(50_000);
        let start = std::time::Instant::now();
        out.clear();
        index_text_into(&ascii, &mut out);
        let secs = start.elapsed().as_secs_f64();
        eprintln!("ascii: {:.1} MB/s", ascii.len() as f64 / secs / 1e6);
    }
}
