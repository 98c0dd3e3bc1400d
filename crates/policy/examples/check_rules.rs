//! Check rule files until `mailtrail rules check` exists:
//! `cargo run -p mailtrail-policy --example check_rules -- rules/*.toml`
//! (without arguments, the shipped examples).

use mailtrail_policy::{Policy, EXAMPLE_RULES};

fn main() -> std::process::ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let mut texts = Vec::new();
    for p in &paths {
        match std::fs::read_to_string(p) {
            Ok(t) => texts.push((p.as_str(), t)),
            Err(e) => {
                eprintln!("{p}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let files: Vec<(&str, &str)> = if paths.is_empty() {
        EXAMPLE_RULES.to_vec()
    } else {
        texts.iter().map(|(p, t)| (*p, t.as_str())).collect()
    };
    match Policy::compile(&files) {
        Ok(policy) => {
            for r in &policy.rules {
                let state = if r.rule.enabled { "on " } else { "off" };
                let name = r.rule.name.as_deref().unwrap_or_default();
                println!("{state} {:<32} {:<24} {name}", r.rule.id, r.origin);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
