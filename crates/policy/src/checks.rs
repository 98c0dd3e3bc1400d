//! Small, exact checks behind conditions: check digits, edit distance and
//! confusable skeletons. Kept apart from evaluation so each is tested alone.
//!
//! Check digits keep the number finders quiet: a random 16-digit order
//! number passes Luhn one time in ten, a 12-digit one passes the My Number
//! check one time in eleven, and requiring separators to be consistent and
//! digits not to continue cuts the rest.

/// Luhn (mod 10) check of a digit string (credit-card numbers).
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// A plausible card number: 13–19 digits, a major issuer's leading digit
/// (2 and 5 Mastercard, 3 Amex/JCB/Diners, 4 Visa, 6 Discover/UnionPay) and
/// a valid Luhn digit.
pub fn credit_card_valid(digits: &str) -> bool {
    (13..=19).contains(&digits.len())
        && matches!(digits.as_bytes().first(), Some(b'2'..=b'6'))
        && luhn_valid(digits)
}

/// The check digit of the Japanese individual number (マイナンバー, 12 digits),
/// as defined by the ministerial ordinance: with the first eleven digits
/// read from the right as P1..P11 and weights Qn = n+1 (n ≤ 6), n−5 (n ≥ 7),
/// the remainder r = Σ Pn·Qn mod 11 gives the check digit 0 when r ≤ 1,
/// else 11 − r.
pub fn my_number_valid(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    if bytes.len() != 12 || !bytes.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for n in 1..=11usize {
        let p = u32::from(bytes[11 - n] - b'0');
        let q = if n <= 6 { n as u32 + 1 } else { n as u32 - 5 };
        sum += p * q;
    }
    let r = sum % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    u32::from(bytes[11] - b'0') == check
}

/// Whether `domain` is `parent` or one of its subdomains (both lower case).
pub fn domain_within(domain: &str, parent: &str) -> bool {
    domain == parent
        || domain
            .strip_suffix(parent)
            .is_some_and(|head| !parent.is_empty() && head.ends_with('.'))
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// A character's look-alike in ASCII, for the characters attackers use in
/// domains (a hand-picked subset of Unicode's confusables: Cyrillic and
/// Greek letters that render like Latin ones, digits that pass for letters).
fn confusable(c: char) -> Option<&'static str> {
    Some(match c {
        'а' | 'ɑ' | 'α' => "a",
        'Ь' | 'ь' | 'Ꮟ' => "b",
        'с' | 'ϲ' => "c",
        'ԁ' => "d",
        'е' | 'ё' | 'ε' => "e",
        'ɡ' => "g",
        'һ' => "h",
        'і' | 'ı' | 'ι' | 'ї' => "i",
        'ј' => "j",
        'κ' | 'к' => "k",
        '1' | 'ӏ' | 'I' | '|' | 'ǀ' => "l",
        'м' => "m",
        'п' | 'η' => "n",
        'о' | 'ο' | '0' | 'ө' => "o",
        'р' | 'ρ' => "p",
        'ԛ' => "q",
        'ѕ' | '5' => "s",
        'т' | 'τ' => "t",
        'υ' | 'ս' => "u",
        'ν' | 'ѵ' => "v",
        'ѡ' | 'ω' => "w",
        'х' | 'χ' => "x",
        'у' | 'γ' => "y",
        'ᴢ' => "z",
        _ => return None,
    })
}

/// The confusable skeleton of a domain: NFKC and lower case (full-width
/// `ｅｘａｍｐｌｅ` is `example`), each look-alike character replaced by its
/// ASCII twin, then the multi-letter tricks `rn` → `m` and `vv` → `w`.
/// Two domains with the same skeleton look the same to a reader.
pub fn skeleton(domain: &str) -> String {
    let normalized = mailtrail_store::tokenize::normalize(domain);
    let mut out = String::with_capacity(normalized.len());
    for c in normalized.chars() {
        match confusable(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    out.replace("rn", "m").replace("vv", "w")
}

/// Why a domain looks like one of ours, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookAlike {
    pub ours: String,
    /// Edit distance between the two (0 when only the skeletons agree).
    pub distance: usize,
    pub confusable: bool,
}

/// Whether `domain` imitates one of `ours`: not equal to (nor a subdomain
/// of) any of them, and either its confusable skeleton equals ours or it is
/// within `max_distance` edits. Very short domains are compared by skeleton
/// only (one edit turns `ab.jp` into many real domains).
pub fn look_alike(domain: &str, ours: &[String], max_distance: usize) -> Option<LookAlike> {
    let domain = domain.trim_end_matches('.').to_lowercase();
    let is_ours = |d: &str| ours.iter().any(|o| domain_within(d, o));
    if domain.is_empty() || is_ours(&domain) {
        return None;
    }
    let skel = skeleton(&domain);
    for o in ours {
        let confusable = skel == skeleton(o);
        let distance = edit_distance(&domain, o);
        let near = o.chars().count() >= 6 && distance <= max_distance;
        if confusable || near {
            return Some(LookAlike {
                ours: o.clone(),
                distance,
                confusable,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_card_numbers_and_rejects_a_changed_digit() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("5555555555554444"));
        assert!(luhn_valid("378282246310005"));
        assert!(luhn_valid("3530111333300000")); // JCB
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("41111x1111111111"));
        assert!(credit_card_valid("4111111111111111"));
        // Luhn-valid but no card issuer starts with 0 or 9.
        assert!(luhn_valid("0000000000000000"));
        assert!(!credit_card_valid("0000000000000000"));
        assert!(!credit_card_valid("4111111111")); // too short
    }

    #[test]
    fn my_number_check_digit() {
        // 12345678901 → weights 2..7,2..6 from the right: Σ = 212, 212 mod 11 = 3, check 8.
        assert!(my_number_valid("123456789018"));
        for wrong in 0..=9 {
            if wrong != 8 {
                assert!(!my_number_valid(&format!("12345678901{wrong}")));
            }
        }
        // Remainder 0 or 1 gives check digit 0: all zeros has Σ = 0.
        assert!(my_number_valid("000000000000"));
        assert!(!my_number_valid("12345678901"));
        assert!(!my_number_valid("1234567890188"));
        assert!(!my_number_valid("1234-5678-9018"));
    }

    #[test]
    fn edit_distance_counts_characters_not_bytes() {
        assert_eq!(edit_distance("example.co.jp", "examp1e.co.jp"), 1);
        assert_eq!(edit_distance("example.co.jp", "exаmple.co.jp"), 1); // Cyrillic а
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("社外秘", "社内秘"), 1);
    }

    #[test]
    fn look_alikes_of_our_domain() {
        let ours = vec!["example.co.jp".to_string()];
        let digit = look_alike("examp1e.co.jp", &ours, 1).unwrap();
        assert!(digit.confusable);
        assert_eq!(digit.distance, 1);
        let cyrillic = look_alike("exаmple.co.jp", &ours, 0).unwrap();
        assert!(cyrillic.confusable, "Cyrillic а has the skeleton of a");
        let typo = look_alike("exampel.co.jp", &ours, 2).unwrap();
        assert!(!typo.confusable);
        assert_eq!(typo.distance, 2);
        assert!(
            look_alike("exarnple.co.jp", &ours, 0).is_some(),
            "rn reads as m"
        );
        // Full-width letters are not our domain byte for byte, but read as it.
        assert!(
            look_alike("ｅｘａｍｐｌｅ.co.jp", &ours, 0)
                .unwrap()
                .confusable
        );
        // Ours and our subdomains are not look-alikes; unrelated domains neither.
        assert!(look_alike("example.co.jp", &ours, 2).is_none());
        assert!(look_alike("mail.example.co.jp", &ours, 2).is_none());
        assert!(look_alike("partner.co.jp", &ours, 2).is_none());
        assert!(look_alike("exampel.co.jp", &ours, 1).is_none());
    }
}
