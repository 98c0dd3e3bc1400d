//! Rules written back as TOML: what the console's rule editor shows and
//! saves. The text is the rule model ([`RuleFile`], [`Rule`]) serialised
//! by serde, so what the editor writes is read back by the same loader
//! `mailtrail serve` uses, and nothing but the model survives a round
//! trip (comments and key order of a hand-written file do not).

use crate::rules::{Rule, RuleFile};
use crate::{parse_rule_file, PolicyError};

/// A whole rule file as TOML.
pub fn rule_file_to_toml(file: &RuleFile) -> Result<String, toml::ser::Error> {
    toml::to_string(file)
}

/// One rule as TOML, written as it is in a rule file (`[[rule]]`,
/// `[[rule.condition]]`, `[[rule.action]]`).
pub fn rule_to_toml(rule: &Rule) -> Result<String, toml::ser::Error> {
    rule_file_to_toml(&RuleFile {
        rules: vec![rule.clone()],
        ..RuleFile::default()
    })
}

/// Read the text of one rule as [`rule_to_toml`] writes it: exactly one
/// `[[rule]]` and nothing else (lists, watch-lists, the calendar and
/// `[leavers]` belong in a file of their own). Errors name `source_name`
/// and the line inside `text`.
pub fn parse_one_rule(source_name: &str, text: &str) -> Result<Rule, PolicyError> {
    let mut file = parse_rule_file(source_name, text)?;
    let only_a_rule = file.calendar.is_none()
        && file.lists.is_empty()
        && file.watch_lists.is_empty()
        && file.leavers.is_none();
    if !only_a_rule || file.rules.len() != 1 {
        return Err(PolicyError::Invalid {
            source_name: source_name.to_string(),
            line: 1,
            rule: file.rules.first().map(|r| r.id.clone()),
            field: "rule".into(),
            message: format!(
                "give exactly one [[rule]] and nothing else (found {} rule(s){})",
                file.rules.len(),
                if only_a_rule {
                    ""
                } else {
                    " and other sections: lists, watch-lists, [calendar] and [leavers] stay in their files"
                }
            ),
        });
    }
    Ok(file.rules.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    #[test]
    fn a_rule_round_trips_through_its_text_and_compiles() {
        let policy = Policy::examples().unwrap();
        for compiled in &policy.rules {
            let text = rule_to_toml(&compiled.rule).unwrap();
            assert!(text.starts_with("[[rule]]"), "{text}");
            let back = parse_one_rule("edited", &text).unwrap();
            assert_eq!(back, compiled.rule, "{text}");
        }
        for (name, text) in crate::EXAMPLE_RULES {
            let file = parse_rule_file(name, text).unwrap();
            let written = rule_file_to_toml(&file).unwrap();
            assert_eq!(parse_rule_file(name, &written).unwrap(), file, "{written}");
        }
    }

    #[test]
    fn only_one_rule_and_nothing_else_is_accepted() {
        let rule = "[[rule]]\nid = \"a\"\n[[rule.condition]]\ntype = \"bcc\"\n";
        assert!(parse_one_rule("edited", rule).is_ok());
        let two = format!("{rule}{}", rule.replace("\"a\"", "\"b\""));
        assert!(matches!(
            parse_one_rule("edited", &two),
            Err(PolicyError::Invalid { .. })
        ));
        let list = format!("[lists]\nx = [\"y\"]\n{rule}");
        assert!(parse_one_rule("edited", &list).is_err());
        match parse_one_rule("edited", "[[rule]]\nid = \"a\"\nseverty = 1\n") {
            Err(PolicyError::Syntax { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }
}
