//! Editing monitoring rules in the console: a rule's TOML on its own page
//! (`/rules/{id}/edit`), a new rule from a template (`/rules/new`), and the
//! on/off switch of the rules page (`/rules/{id}/state`).
//!
//! Why it is shaped this way:
//! - **The same model as the files.** The editor shows the rule as the
//!   rule model serialised to TOML ([`mailtrail_policy::edit`]) and reads
//!   it back with the loader's own parser, so what the console writes is
//!   what `mailtrail serve` reads. Comments and key order of a
//!   hand-written file do not survive a save; the page says so.
//! - **Checked before written.** A save compiles the whole policy with the
//!   edited rule in place ([`Policy::compile`] over every rule file, the
//!   submitted text as its own file so an error points at a line the
//!   administrator can see), then compiles the file as it will be
//!   written. A rule that does not compile is shown with the reason and
//!   the form keeps the text; nothing is written.
//! - **Written atomically, the previous version kept.** The new text goes
//!   to a temporary file in the same folder, is synced, and replaces the
//!   file by a rename; the file it replaces is kept as `FILE.bak`. A
//!   reader (the running service checks the files every `reload_secs`)
//!   sees the old file or the new one, never half of one.
//! - **New rules go to one known file**: `console.toml` in the first
//!   folder of `[policy] rules`. When the configuration names only files,
//!   the console does not guess where to write and says so.
//! - **Administrators only**, each change audited before it is written
//!   (`rule-edit`, `rule-create`, `rule-enable`, `rule-disable`, with the
//!   rule id as target and the file as detail); opening the editor is a
//!   look at the rules (`rules`, with the rule id). A viewer's attempt is
//!   refused and recorded (`denied`). Saves are one at a time.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};

use askama::Template;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_policy::edit::{parse_one_rule, rule_file_to_toml, rule_to_toml};
use mailtrail_policy::rules::Rule;
use mailtrail_policy::{parse_rule_file, rule_files, LoadError, Policy, PolicyError, RuleFile};
use serde::Deserialize;

use crate::alerts::check_csrf;
use crate::rules::{error_view, LoadErrorView};
use crate::{blocking, chrome, html_page, record, require_admin, respond, App, Chrome, WebError};

/// The file new rules are added to, in the first folder of `[policy] rules`.
pub(crate) const NEW_RULES_FILE: &str = "console.toml";
/// How the submitted text is named in errors (shown as "the edited rule").
const SUBMITTED: &str = "\u{0}submitted";

/// A new rule's starting point: off until someone has dry-run it.
const TEMPLATE: &str = r#"[[rule]]
id = "new-rule"
name = "new rule"
enabled = false

[rule.scope]
directions = ["outbound"]

[[rule.condition]]
type = "keywords"
words = ["社外秘"]
fields = ["subject", "body", "attachment_names", "inner_names"]
min_count = 1

[[rule.action]]
type = "alert"
severity = "medium"
"#;

#[derive(Template)]
#[template(path = "rule_edit.html")]
struct EditPage<'a> {
    chrome: Chrome<'a>,
    /// A new rule (else an existing one).
    new: bool,
    /// The rule's id as it is in force (empty for a new rule).
    id: String,
    id_url: String,
    /// The file the rule is saved to.
    file: String,
    text: String,
    error: Option<LoadErrorView>,
    /// Why nothing can be saved here (no folder for new rules).
    refusal: Option<String>,
    reload_text: String,
}

/// The rule files as they are on disk: path, text and parsed model.
struct Files {
    files: Vec<(PathBuf, String, RuleFile)>,
}

/// Why a change was not made.
enum Refused {
    /// The rule (or the files around it) do not compile, or cannot be read.
    Invalid(LoadError),
    /// No rule with that id.
    NotFound,
    /// New rules need a folder in `[policy] rules`.
    NoFolder,
}

/// What a change will write, checked.
struct Plan {
    id: String,
    path: PathBuf,
    text: String,
}

/// What is changed.
enum Change {
    /// The rule's new text (one `[[rule]]`).
    Text(String),
    /// Switch the rule on or off.
    Enabled(bool),
}

fn read_files(paths: &[PathBuf]) -> Result<Files, LoadError> {
    let mut files = Vec::new();
    for path in rule_files(paths)? {
        let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        })?;
        let parsed = parse_rule_file(&path.display().to_string(), &text)?;
        files.push((path, text, parsed));
    }
    Ok(Files { files })
}

impl Files {
    /// The file and index of the rule with this id.
    fn find(&self, id: &str) -> Option<(usize, usize)> {
        self.files
            .iter()
            .enumerate()
            .find_map(|(fi, (_, _, f))| f.rules.iter().position(|r| r.id == id).map(|ri| (fi, ri)))
    }
}

/// Where new rules go: `console.toml` in the first configured folder.
fn new_rules_file(paths: &[PathBuf]) -> Option<PathBuf> {
    paths
        .iter()
        .find(|p| p.is_dir())
        .map(|p| p.join(NEW_RULES_FILE))
}

fn serialise(file: &RuleFile) -> Result<String, WebError> {
    rule_file_to_toml(file).map_err(|e| WebError::Internal(format!("cannot write rules: {e}")))
}

/// Check a change against every rule file and work out what to write.
/// `id` is the rule changed (`None`: a new rule).
fn plan(
    paths: &[PathBuf],
    id: Option<&str>,
    change: Change,
) -> Result<Result<Plan, Refused>, WebError> {
    let files = match read_files(paths) {
        Ok(f) => f,
        Err(e) => return Ok(Err(Refused::Invalid(e))),
    };
    // The file the rule is in (or goes to), and its place there.
    let (target, index, mut file) = match id {
        Some(id) => {
            let Some((fi, ri)) = files.find(id) else {
                return Ok(Err(Refused::NotFound));
            };
            (
                files.files[fi].0.clone(),
                Some(ri),
                files.files[fi].2.clone(),
            )
        }
        None => {
            let Some(path) = new_rules_file(paths) else {
                return Ok(Err(Refused::NoFolder));
            };
            let existing = files
                .files
                .iter()
                .find(|(p, _, _)| *p == path)
                .map(|(_, _, f)| f.clone())
                .unwrap_or_default();
            (path, None, existing)
        }
    };
    let (rule, submitted): (Rule, String) = match change {
        Change::Text(text) => match parse_one_rule(SUBMITTED, &text) {
            Ok(rule) => (rule, text),
            Err(e) => return Ok(Err(Refused::Invalid(e.into()))),
        },
        Change::Enabled(on) => {
            let Some(mut rule) = index.and_then(|i| file.rules.get(i).cloned()) else {
                return Ok(Err(Refused::NotFound));
            };
            rule.enabled = on;
            let text = rule_to_toml(&rule)
                .map_err(|e| WebError::Internal(format!("cannot write rules: {e}")))?;
            (rule, text)
        }
    };
    // First the policy with the rule as its own file, so that an error in
    // it names a line of the submitted text.
    let mut without = file.clone();
    if let Some(i) = index {
        without.rules.remove(i);
    }
    let without_text = serialise(&without)?;
    let mut texts: Vec<(String, String)> = files
        .files
        .iter()
        .filter(|(p, _, _)| *p != target)
        .map(|(p, t, _)| (p.display().to_string(), t.clone()))
        .collect();
    texts.push((target.display().to_string(), without_text));
    texts.push((SUBMITTED.to_string(), submitted));
    if let Err(e) = compile(&texts) {
        return Ok(Err(Refused::Invalid(e.into())));
    }
    // Then exactly what will be on disk.
    let id = rule.id.clone();
    match index {
        Some(i) => file.rules[i] = rule,
        None => file.rules.push(rule),
    }
    let text = serialise(&file)?;
    texts.pop();
    if let Some(last) = texts.last_mut() {
        last.1 = text.clone();
    }
    if let Err(e) = compile(&texts) {
        return Ok(Err(Refused::Invalid(e.into())));
    }
    Ok(Ok(Plan {
        id,
        path: target,
        text,
    }))
}

fn compile(texts: &[(String, String)]) -> Result<Policy, PolicyError> {
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Policy::compile(&refs)
}

/// Replace `path` by `text` atomically (a synced temporary file in the
/// same folder, renamed over it), keeping the previous file as `FILE.bak`.
pub(crate) fn write_atomically(path: &FsPath, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| std::io::Error::other("the rule file has no name"))?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Not `*.toml`: the loader never reads a half-written file.
    let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let written = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        out.write_all(text.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(path) {
            out.set_permissions(meta.permissions())?;
        }
        out.sync_all()?;
        if path.exists() {
            std::fs::copy(path, folder.join(format!("{name}.bak")))?;
        }
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    // The rename itself is durable once the folder is synced.
    if let Ok(dir) = std::fs::File::open(&folder) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn reload_text(shared: &crate::Shared, lang: crate::i18n::Lang) -> String {
    shared.catalog.text(
        lang,
        "rule-edit-reload",
        &[("seconds", shared.options.rules_reload_secs.max(1).into())],
    )
}

/// The error as the page shows it; the submitted text is named in words.
fn refusal_view(
    shared: &crate::Shared,
    lang: crate::i18n::Lang,
    error: &LoadError,
) -> LoadErrorView {
    let mut view = error_view(error);
    if view.file == SUBMITTED {
        view.file = shared.catalog.text(lang, "rule-edit-submitted", &[]);
    }
    view
}

pub(crate) async fn edit_form(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        require_admin(shared, visitor, "rules", Some(id.clone())).await?;
        if shared.options.rules.is_empty() {
            return Err(WebError::NotFound);
        }
        let paths = shared.options.rules.clone();
        let found = blocking(move || Ok(read_files(&paths))).await?;
        // Files that do not load: the rules page says which and why.
        let Ok(files) = found else {
            return Ok(Redirect::to("/rules").into_response());
        };
        let Some((fi, ri)) = files.find(&id) else {
            return Err(WebError::NotFound);
        };
        let (path, _, file) = &files.files[fi];
        let text = rule_to_toml(&file.rules[ri])
            .map_err(|e| WebError::Internal(format!("cannot show the rule: {e}")))?;
        record(shared, visitor, "rules", Some(id.clone()), None).await?;
        let page = EditPage {
            chrome: chrome(shared, visitor),
            new: false,
            id_url: crate::url_encode(&id),
            id,
            file: path.display().to_string(),
            text,
            error: None,
            refusal: None,
            reload_text: reload_text(shared, visitor.lang),
        };
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}

pub(crate) async fn new_form(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        require_admin(shared, visitor, "rules", None).await?;
        record(shared, visitor, "rules", None, Some("new".into())).await?;
        let lang = visitor.lang;
        let target = new_rules_file(&shared.options.rules);
        let mut template = parse_one_rule("template", TEMPLATE)
            .map_err(|e| WebError::Internal(format!("the rule template: {e}")))?;
        template.name = Some(shared.catalog.text(lang, "rule-new-name", &[]));
        let text = rule_to_toml(&template)
            .map_err(|e| WebError::Internal(format!("the rule template: {e}")))?;
        let page = EditPage {
            chrome: chrome(shared, visitor),
            new: true,
            id: String::new(),
            id_url: String::new(),
            file: target
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            text,
            error: None,
            refusal: target
                .is_none()
                .then(|| shared.catalog.text(lang, "rule-new-no-folder", &[])),
            reload_text: reload_text(shared, lang),
        };
        Ok(html_page(StatusCode::OK, page))
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct TextForm {
    /// Missing is refused like a wrong one (403).
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
pub(crate) struct StateForm {
    #[serde(default)]
    csrf: String,
    /// `on` or `off`.
    #[serde(default)]
    state: String,
}

/// Check, record, write: the one path every change takes. `Ok(Err(…))`
/// is a refusal to show on the form.
async fn apply(
    shared: &App,
    visitor: &crate::Visitor,
    id: Option<String>,
    change: Change,
    action: impl Fn(&Plan) -> &'static str,
) -> Result<Result<Plan, Refused>, WebError> {
    let _one_at_a_time = shared.rules_write.lock().await;
    let paths = shared.options.rules.clone();
    let planned = blocking(move || plan(&paths, id.as_deref(), change)).await?;
    let plan = match planned {
        Ok(p) => p,
        Err(refused) => return Ok(Err(refused)),
    };
    record(
        shared,
        visitor,
        action(&plan),
        Some(plan.id.clone()),
        Some(plan.path.display().to_string()),
    )
    .await?;
    let path = plan.path.clone();
    let text = plan.text.clone();
    blocking(move || {
        write_atomically(&path, &text)
            .map_err(|e| WebError::Internal(format!("cannot write {}: {e}", path.display())))
    })
    .await?;
    Ok(Ok(plan))
}

fn saved(plan: &Plan) -> Response {
    Redirect::to(&format!("/rules?saved={}", crate::url_encode(&plan.id))).into_response()
}

pub(crate) async fn save(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TextForm>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        require_admin(shared, visitor, "rule-edit", Some(id.clone())).await?;
        check_csrf(visitor, &form.csrf)?;
        if shared.options.rules.is_empty() {
            return Err(WebError::NotFound);
        }
        let outcome = apply(
            shared,
            visitor,
            Some(id.clone()),
            Change::Text(form.text.clone()),
            |_| "rule-edit",
        )
        .await?;
        let lang = visitor.lang;
        match outcome {
            Ok(plan) => Ok(saved(&plan)),
            Err(Refused::NotFound) => Err(WebError::NotFound),
            Err(refused) => {
                let error = match &refused {
                    Refused::Invalid(e) => Some(refusal_view(shared, lang, e)),
                    _ => None,
                };
                // The file the rule is in, for the form (when they load).
                let paths = shared.options.rules.clone();
                let wanted = id.clone();
                let file = blocking(move || {
                    Ok(read_files(&paths).ok().and_then(|files| {
                        files
                            .find(&wanted)
                            .map(|(fi, _)| files.files[fi].0.display().to_string())
                    }))
                })
                .await?
                .unwrap_or_default();
                let page = EditPage {
                    chrome: chrome(shared, visitor),
                    new: false,
                    id_url: crate::url_encode(&id),
                    id,
                    file,
                    text: form.text.clone(),
                    error,
                    refusal: None,
                    reload_text: reload_text(shared, lang),
                };
                Ok(html_page(StatusCode::UNPROCESSABLE_ENTITY, page))
            }
        }
    })
    .await
}

pub(crate) async fn create(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<TextForm>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        require_admin(shared, visitor, "rule-create", None).await?;
        check_csrf(visitor, &form.csrf)?;
        let outcome = apply(
            shared,
            visitor,
            None,
            Change::Text(form.text.clone()),
            |_| "rule-create",
        )
        .await?;
        let lang = visitor.lang;
        match outcome {
            Ok(plan) => Ok(saved(&plan)),
            Err(refused) => {
                let (status, error, refusal) = match &refused {
                    Refused::Invalid(e) => (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Some(refusal_view(shared, lang, e)),
                        None,
                    ),
                    Refused::NoFolder | Refused::NotFound => (
                        StatusCode::CONFLICT,
                        None,
                        Some(shared.catalog.text(lang, "rule-new-no-folder", &[])),
                    ),
                };
                let page = EditPage {
                    chrome: chrome(shared, visitor),
                    new: true,
                    id: String::new(),
                    id_url: String::new(),
                    file: new_rules_file(&shared.options.rules)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    text: form.text.clone(),
                    error,
                    refusal,
                    reload_text: reload_text(shared, lang),
                };
                Ok(html_page(status, page))
            }
        }
    })
    .await
}

pub(crate) async fn switch(
    State(shared): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<StateForm>,
) -> Response {
    respond(shared, headers, peer, async move |shared, visitor| {
        visitor.user()?;
        let on = match form.state.as_str() {
            "on" => true,
            "off" => false,
            other => return Err(WebError::BadRequest(format!("not a rule state: {other}"))),
        };
        let action = if on { "rule-enable" } else { "rule-disable" };
        require_admin(shared, visitor, action, Some(id.clone())).await?;
        check_csrf(visitor, &form.csrf)?;
        if shared.options.rules.is_empty() {
            return Err(WebError::NotFound);
        }
        match apply(shared, visitor, Some(id), Change::Enabled(on), |_| action).await? {
            Ok(plan) => Ok(saved(&plan)),
            Err(Refused::Invalid(_)) => Ok(Redirect::to("/rules").into_response()),
            Err(_) => Err(WebError::NotFound),
        }
    })
    .await
}
