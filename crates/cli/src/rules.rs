//! `skald rules`: check rule files offline, list a server's rules, upload
//! a directory of rule files — what `lokitool rules` does for Loki. Also
//! starts the ruler for `skald serve`.
//!
//! Exit codes: 6 when a rule file is invalid (every error printed, one
//! line each, naming the file, group and rule); the client codes of
//! [`crate::remote`] otherwise.

use crate::config::FileConfig;
use crate::remote::{Failure, Remote, ServerArgs};
use crate::serve::ServeArgs;
use anyhow::Context;
use clap::Subcommand;
use skald_ruler::{RuleFile, RuleGroup};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A rule file that does not check.
pub const EXIT_BAD_RULES: u8 = 6;

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Print the server's rule groups (YAML, by namespace).
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Check rule files offline: YAML, LogQL (metric queries only), names,
    /// templates. Exit 0 when all are valid, 6 otherwise.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Upload every rule file (*.yaml, *.yml) of a directory. A file's
    /// namespace is its `namespace:` key or its file name; groups of that
    /// namespace missing from the file are deleted from the server. Other
    /// namespaces are left alone. Nothing is sent unless every file checks.
    Sync {
        dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
        /// Show what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(cmd: RulesCommand) -> anyhow::Result<()> {
    match cmd {
        RulesCommand::Check { files } => {
            let mut failed = false;
            for f in &files {
                match check(f) {
                    Ok((_, groups, rules)) => {
                        println!("{}: {groups} groups, {rules} rules: valid", f.display())
                    }
                    Err(errors) => {
                        failed = true;
                        for e in errors {
                            eprintln!("{}: {e}", f.display());
                        }
                    }
                }
            }
            if failed {
                return Err(Failure {
                    code: EXIT_BAD_RULES,
                    message: "invalid rule files".into(),
                }
                .into());
            }
            Ok(())
        }
        RulesCommand::List { server, namespace } => {
            let remote = Remote::new(&server)?;
            let path = match &namespace {
                Some(ns) => format!("/loki/api/v1/rules/{}", segment(ns)),
                None => "/loki/api/v1/rules".to_string(),
            };
            match remote.request_text(reqwest::Method::GET, &path, None)? {
                (404, _) => println!("no rule groups found"),
                (_, body) => print!("{body}"),
            }
            Ok(())
        }
        RulesCommand::Sync {
            dir,
            server,
            dry_run,
        } => sync(&dir, &server, dry_run),
    }
}

/// A file's groups, or every error in it.
fn check(path: &Path) -> Result<(RuleFile, usize, usize), Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read: {e}")])?;
    let file = skald_ruler::check_file(&text)
        .map_err(|errs| errs.into_iter().map(|e| e.message).collect::<Vec<_>>())?;
    let rules = file.groups.iter().map(|g| g.rules.len()).sum();
    Ok((file.clone(), file.groups.len(), rules))
}

/// Percent-encodes one URL path segment.
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sync(dir: &Path, server: &ServerArgs, dry_run: bool) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    entries.sort();
    let mut local: BTreeMap<String, Vec<RuleGroup>> = BTreeMap::new();
    let mut failed = false;
    for path in &entries {
        match check(path) {
            Ok((file, _, _)) => {
                let ns = file.namespace.clone().unwrap_or_else(|| {
                    path.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                if local.contains_key(&ns) {
                    eprintln!(
                        "{}: namespace {ns:?} is in another file too",
                        path.display()
                    );
                    failed = true;
                }
                local.insert(ns, file.groups);
            }
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("{}: {e}", path.display());
                }
            }
        }
    }
    if failed {
        return Err(Failure {
            code: EXIT_BAD_RULES,
            message: "invalid rule files; nothing was uploaded".into(),
        }
        .into());
    }
    let remote = Remote::new(server)?;
    for (ns, groups) in &local {
        let path = format!("/loki/api/v1/rules/{}", segment(ns));
        let existing: Vec<RuleGroup> =
            match remote.request_text(reqwest::Method::GET, &path, None)? {
                (404, _) => Vec::new(),
                (_, body) => {
                    let mut map: BTreeMap<String, Vec<RuleGroup>> = serde_saphyr::from_str(&body)
                        .map_err(|e| Failure {
                        code: 1,
                        message: format!("the server's rules for {ns:?} are not readable: {e}"),
                    })?;
                    map.remove(ns).unwrap_or_default()
                }
            };
        for g in groups {
            let verb = match existing.iter().find(|e| e.name == g.name) {
                Some(e) if e == g => {
                    println!("{ns}/{}: unchanged", g.name);
                    continue;
                }
                Some(_) => "updated",
                None => "created",
            };
            if !dry_run {
                remote.request_text(
                    reqwest::Method::POST,
                    &path,
                    Some(("application/yaml", g.to_yaml().into_bytes())),
                )?;
            }
            println!("{ns}/{}: {verb}", g.name);
        }
        for e in &existing {
            if groups.iter().any(|g| g.name == e.name) {
                continue;
            }
            if !dry_run {
                let p = format!("{path}/{}", segment(&e.name));
                remote.request_text(reqwest::Method::DELETE, &p, None)?;
            }
            println!("{ns}/{}: deleted", e.name);
        }
    }
    Ok(())
}

/// Starts the ruler for `skald serve`: rules and state under the data
/// directory unless the file says otherwise; alerts' links point at this
/// server unless `external_url` is set.
pub fn start_ruler(
    runtime: &tokio::runtime::Runtime,
    cfg: &FileConfig,
    args: &ServeArgs,
    store: Arc<skald_store::Store>,
    analysis: Option<Arc<skald_analysis::index::PatternIndex>>,
) -> anyhow::Result<skald_ruler::Ruler> {
    let mut rc = cfg.ruler.clone();
    if rc.rules_dir.is_none() {
        rc.rules_dir = Some(args.data_dir.join("rules"));
    }
    if rc.state_dir.is_none() {
        rc.state_dir = Some(args.data_dir.join("ruler"));
    }
    if rc.external_url.is_none() {
        let scheme = if cfg.tls.cert_file.is_some() {
            "https"
        } else {
            "http"
        };
        rc.external_url = Some(format!("{scheme}://{}", args.http_addr));
    }
    let evaluator = Arc::new(
        skald_server::ruler::StoreEvaluator::new(store, cfg.http.clone()).with_analysis(analysis),
    );
    let _entered = runtime.enter();
    let ruler = skald_ruler::Ruler::start(rc.clone(), evaluator).context("starting the ruler")?;
    tracing::info!(
        rules_dir = %rc.rules_dir.as_deref().unwrap_or(Path::new("")).display(),
        alertmanagers = rc.alertmanager_url.len(),
        remote_write = rc.remote_write_url.is_some(),
        analysis_alert_tenants = rc.analysis_alerts.tenants.len(),
        "ruler started"
    );
    Ok(ruler)
}
