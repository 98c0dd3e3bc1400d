//! Normalised text with a way back to the original, for matching and highlighting.
//!
//! Keyword and pattern conditions must find what the console's search finds
//! (`社外秘` in `ＣＯＮＦＩＤＥＮＴＩＡＬ／社外秘`, `confidential` in
//! `ＣＯＮＦＩＤＥＮＴＩＡＬ`), so they run on the text as the store's
//! tokenizer normalises it ([`mailtrail_store::tokenize::normalize`]: NFKC,
//! lower case, invisible characters removed). But an alert must highlight
//! the *original* text, and NFKC changes lengths (`ｶﾞ` → `ガ`, `①` → `1`,
//! `㈱` → `(株)`). So the original is cut into chunks (a base character and
//! the marks that attach to it — combining marks, half-width voiced marks,
//! joiners), each chunk is normalised on its own, and the start of every
//! chunk in both texts is remembered. A match in the normalised text maps back
//! to the smallest run of whole chunks that produced it.
//!
//! Normalising chunk by chunk gives the same text as normalising the whole
//! string, except across chunk boundaries that NFKC would compose (which the
//! chunking is designed to avoid); the unit tests compare the two.

use mailtrail_store::tokenize::normalize;
use unicode_normalization::char::is_combining_mark;

/// At most this many bytes of one text (a body, a subject) are examined; a
/// pathological multi-megabyte body must not stall evaluation. The store's
/// index has a similar limit.
pub const MAX_SCAN_BYTES: usize = 4 << 20;

/// A text in normalised form, with the map back to the original.
#[derive(Debug, Clone)]
pub struct NormText<'a> {
    original: &'a str,
    normalized: String,
    /// (start in normalised, start in original) of each chunk, ascending, and
    /// a final sentinel (normalised length, original length).
    chunks: Vec<(usize, usize)>,
}

/// A highlighted range of an original text: bytes for slicing, characters
/// for JavaScript (`String.prototype.slice` counts UTF-16 units, so the
/// console should convert; characters are what people count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Span {
    pub byte_start: usize,
    pub byte_end: usize,
    pub char_start: usize,
    pub char_end: usize,
}

fn continues_chunk(c: char) -> bool {
    is_combining_mark(c)
        || matches!(
            c,
            '\u{FF9E}' | '\u{FF9F}' // half-width voiced sound marks
            | '\u{3099}'..='\u{309C}'
            | '\u{200C}' | '\u{200D}' // joiners
            | '\u{1160}'..='\u{11FF}' // Hangul medial and final jamo
        )
}

impl<'a> NormText<'a> {
    pub fn new(original: &'a str) -> NormText<'a> {
        let mut end = original.len().min(MAX_SCAN_BYTES);
        while !original.is_char_boundary(end) {
            end -= 1;
        }
        let original = &original[..end];
        if original.is_ascii() {
            let chunks = (0..=original.len()).map(|i| (i, i)).collect();
            return NormText {
                original,
                normalized: original.to_ascii_lowercase(),
                chunks,
            };
        }
        let mut normalized = String::with_capacity(original.len());
        let mut chunks = Vec::with_capacity(original.len() / 2 + 1);
        let mut chunk_start = 0;
        let mut iter = original.char_indices().peekable();
        while let Some((i, _)) = iter.next() {
            if i != chunk_start {
                continue;
            }
            let mut chunk_end = original.len();
            while let Some(&(j, c)) = iter.peek() {
                if continues_chunk(c) {
                    iter.next();
                } else {
                    chunk_end = j;
                    break;
                }
            }
            chunks.push((normalized.len(), chunk_start));
            normalized.push_str(&normalize(&original[chunk_start..chunk_end]));
            chunk_start = chunk_end;
        }
        chunks.push((normalized.len(), original.len()));
        NormText {
            original,
            normalized,
            chunks,
        }
    }

    /// The normalised text (what patterns and keywords are matched against).
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The original text (possibly cut at [`MAX_SCAN_BYTES`]).
    pub fn original(&self) -> &'a str {
        self.original
    }

    /// The original range that produced the normalised range `start..end`.
    pub fn original_span(&self, start: usize, end: usize) -> Span {
        let last = self.chunks.len().saturating_sub(1);
        // The chunk whose normalised range contains `start` (empty chunks
        // share their start with the next one, and the later one wins).
        let first_chunk = self
            .chunks
            .partition_point(|&(n, _)| n <= start)
            .saturating_sub(1)
            .min(last);
        let byte_start = self.chunks.get(first_chunk).map_or(0, |c| c.1);
        let byte_end = if end <= start {
            byte_start
        } else {
            let end_chunk = self
                .chunks
                .partition_point(|&(n, _)| n < end)
                .min(self.chunks.len());
            // `end_chunk` is the first chunk starting at or after `end`:
            // the match ends where it begins in the original.
            self.chunks
                .get(end_chunk)
                .map_or(self.original.len(), |c| c.1)
        };
        let byte_end = byte_end.max(byte_start).min(self.original.len());
        let char_start = self.original[..byte_start].chars().count();
        let char_end = char_start + self.original[byte_start..byte_end].chars().count();
        Span {
            byte_start,
            byte_end,
            char_start,
            char_end,
        }
    }

    /// The original text of a normalised range.
    pub fn original_text(&self, span: &Span) -> &'a str {
        self.original
            .get(span.byte_start..span.byte_end)
            .unwrap_or_default()
    }
}

/// CJK characters (Han, kana, Hangul): matched as exact substrings, like the
/// search. Applied to normalised text.
pub(crate) fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x1100..=0x11FF
            | 0x2E80..=0x2FDF
            | 0x3005..=0x3007
            | 0x3041..=0x309F
            | 0x30A1..=0x30FA
            | 0x30FC..=0x30FF
            | 0x3131..=0x318E
            | 0x31F0..=0x31FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xAC00..=0xD7FF
            | 0xF900..=0xFAFF
            | 0x20000..=0x3FFFF
    )
}

/// A character of a Latin-like word (the search indexes these as whole words).
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// A keyword, normalised once, matched like the console's search matches:
/// CJK runs as substrings anywhere, Latin words only as whole words
/// (`confidential` does not fire on `confidentiality`, `pw` not on `pwd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    /// As the rule author wrote it (shown in alerts).
    pub written: String,
    normalized: String,
    word_start: bool,
    word_end: bool,
    /// Its pattern in the policy's [`KeywordIndex`], once indexed.
    pub(crate) id: Option<usize>,
}

impl Keyword {
    /// `None` when nothing is left after normalisation.
    pub fn new(written: &str) -> Option<Keyword> {
        let normalized = normalize(written.trim());
        let first = normalized.chars().next()?;
        let last = normalized.chars().next_back()?;
        Some(Keyword {
            written: written.trim().to_string(),
            word_start: is_word_char(first),
            word_end: is_word_char(last),
            normalized,
            id: None,
        })
    }

    /// Whether a match at `start..end` of `text` stands where the keyword
    /// may match: a Latin word only as a whole word.
    fn at_boundaries(&self, text: &str, start: usize, end: usize) -> bool {
        let joined_before =
            self.word_start && text[..start].chars().next_back().is_some_and(is_word_char);
        let joined_after = self.word_end && text[end..].chars().next().is_some_and(is_word_char);
        !joined_before && !joined_after
    }

    /// The matches of [`Keyword::find_in`], from a [`KeywordIndex`] scan of
    /// `text` when the keyword is indexed (one pass over the text for every
    /// keyword of the policy), else by searching for it.
    pub(crate) fn find_with(&self, text: &str, scan: &KeywordScan) -> Vec<(usize, usize)> {
        let Some(id) = self.id else {
            return self.find_in(text);
        };
        let mut out: Vec<(usize, usize)> = Vec::new();
        // Like `match_indices`: the occurrences that do not overlap an
        // earlier one (kept or not), then the word boundaries.
        let mut next_from = 0;
        for &(start, end) in scan.get(&id).into_iter().flatten() {
            if start < next_from {
                continue;
            }
            next_from = end;
            if self.at_boundaries(text, start, end) {
                out.push((start, end));
            }
        }
        out
    }

    /// Normalised byte ranges of every match in `text`.
    pub fn find_in(&self, text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (i, m) in text.match_indices(self.normalized.as_str()) {
            let end = i + m.len();
            if self.at_boundaries(text, i, end) {
                out.push((i, end));
            }
        }
        out
    }
}

/// Raw occurrences of every indexed keyword in one text, by pattern id, in
/// text order (word boundaries not yet applied).
pub(crate) type KeywordScan = std::collections::HashMap<usize, Vec<(usize, usize)>>;

/// Every keyword of a policy in one Aho-Corasick automaton, so that a text
/// is scanned once however many keyword rules there are (a thousand rules
/// with three words each would otherwise scan each body thousands of times).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeywordIndex {
    automaton: Option<aho_corasick::AhoCorasick>,
}

impl KeywordIndex {
    /// Index `keywords`, giving each its pattern id (equal keywords share one).
    pub(crate) fn build<'k>(keywords: impl Iterator<Item = &'k mut Keyword>) -> KeywordIndex {
        let mut patterns: Vec<String> = Vec::new();
        let mut ids: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for k in keywords {
            let id = *ids.entry(k.normalized.clone()).or_insert_with(|| {
                patterns.push(k.normalized.clone());
                patterns.len() - 1
            });
            k.id = Some(id);
        }
        // Building cannot fail for plain patterns of this size; were it to,
        // every keyword falls back to searching on its own.
        let automaton = if patterns.is_empty() {
            None
        } else {
            aho_corasick::AhoCorasick::new(&patterns).ok()
        };
        KeywordIndex { automaton }
    }

    /// Whether keywords carry ids this index answers for.
    pub(crate) fn is_built(&self) -> bool {
        self.automaton.is_some()
    }

    /// All occurrences of every keyword in `text`, overlapping ones too.
    pub(crate) fn scan(&self, text: &str) -> KeywordScan {
        let mut out = KeywordScan::new();
        if let Some(ac) = &self.automaton {
            for m in ac.find_overlapping_iter(text) {
                out.entry(m.pattern().as_usize())
                    .or_default()
                    .push((m.start(), m.end()));
            }
        }
        for list in out.values_mut() {
            list.sort_unstable();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The automaton finds exactly what searching for each keyword finds:
    /// same ranges, overlapping keywords (`社外`, `社外秘`), repeated ones
    /// (`aa` in `aaaa`) and whole-word rules included.
    #[test]
    fn indexed_matching_equals_searching_each_keyword() {
        use proptest::prelude::*;
        let words = [
            "社外",
            "社外秘",
            "秘",
            "aa",
            "a",
            "conf",
            "confidential",
            "a b",
            "外秘資",
            "a.a",
        ];
        proptest!(|(parts in proptest::collection::vec(
            prop_oneof![
                Just("社外秘"), Just("社"), Just("外"), Just("秘資料"), Just("a"),
                Just("aa"), Just(" "), Just("confidential"), Just("conf."), Just("b"),
                Just("x"), Just("."),
            ],
            0..40,
        ))| {
            let text: String = parts.concat();
            let mut keywords: Vec<Keyword> =
                words.iter().filter_map(|w| Keyword::new(w)).collect();
            let plain = keywords.clone();
            let index = KeywordIndex::build(keywords.iter_mut());
            let scan = index.scan(&text);
            for (indexed, searched) in keywords.iter().zip(&plain) {
                prop_assert!(indexed.id.is_some());
                prop_assert_eq!(
                    indexed.find_with(&text, &scan),
                    searched.find_in(&text),
                    "{} in {}", &searched.written, &text
                );
            }
        });
    }

    #[test]
    fn chunkwise_normalisation_equals_whole_normalisation() {
        for s in [
            "ＣＯＮＦＩＤＥＮＴＩＡＬ",
            "ｼｬｶﾞｲﾋ ﾃﾞｰﾀ",
            "か\u{3099}ぎ",
            "社外秘①㈱",
            "e\u{301}té",
            "葛\u{E0100}飾",
            "ÅΣ ß",
            "한국어",
            "abc",
        ] {
            assert_eq!(NormText::new(s).normalized(), normalize(s), "{s}");
        }
    }

    #[test]
    fn full_width_latin_maps_back_to_the_original() {
        let t = NormText::new("件名：ＣＯＮＦＩＤＥＮＴＩＡＬ資料");
        let (s, e) = Keyword::new("confidential")
            .map(|k| k.find_in(t.normalized())[0])
            .unwrap();
        let span = t.original_span(s, e);
        assert_eq!(t.original_text(&span), "ＣＯＮＦＩＤＥＮＴＩＡＬ");
        assert_eq!((span.char_start, span.char_end), (3, 15));
    }

    #[test]
    fn half_width_kana_with_voiced_marks_maps_to_whole_characters() {
        let t = NormText::new("ﾃﾞｰﾀはｼｬｶﾞｲﾋです");
        assert_eq!(t.normalized(), "データはシャガイヒです");
        let kw = Keyword::new("シャガイヒ").unwrap();
        let (s, e) = kw.find_in(t.normalized())[0];
        let span = t.original_span(s, e);
        assert_eq!(t.original_text(&span), "ｼｬｶﾞｲﾋ");
    }

    #[test]
    fn latin_keywords_match_whole_words_cjk_keywords_substrings() {
        let kw = Keyword::new("Confidential").unwrap();
        assert_eq!(kw.find_in("strictly confidential.").len(), 1);
        assert!(kw.find_in("confidentiality").is_empty());
        assert_eq!(kw.find_in("社外秘confidential資料").len(), 1);
        let ja = Keyword::new("社外秘").unwrap();
        assert_eq!(ja.find_in("極秘社外秘文書").len(), 1);
        assert!(Keyword::new(" 　").is_none());
    }

    #[test]
    fn ignorable_characters_do_not_break_a_match_and_spans_stay_inside_the_text() {
        let t = NormText::new("社\u{200B}外秘");
        let kw = Keyword::new("社外秘").unwrap();
        let (s, e) = kw.find_in(t.normalized())[0];
        let span = t.original_span(s, e);
        assert_eq!(t.original_text(&span), "社\u{200B}外秘");
        let empty = t.original_span(0, 0);
        assert_eq!(empty.byte_start, empty.byte_end);
    }
}
