//! `skald token`: create, list and revoke the API tokens of a data
//! directory (`tokens.json`), or of a cluster's shared catalog with
//! `--catalog postgres://...` (see `skald_server::service::auth`). A
//! running server picks the changes up within a second, without a
//! restart; over a catalog, every node does.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use skald_server::service::auth::{Role, Tokens};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print it (the only time it is shown).
    Create(CreateArgs),
    /// List the tokens (names, tenants, roles, expiry; never the tokens).
    List(DirArgs),
    /// Revoke a token by name or id.
    Revoke {
        #[command(flatten)]
        dir: DirArgs,
        /// The token's name or id.
        name_or_id: String,
    },
}

#[derive(Args, Debug)]
pub struct DirArgs {
    /// The server's data directory.
    #[arg(long, env = "SKALD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The cluster's shared catalog (`postgres://user@host:port/db`, as
    /// given to `skald serve --catalog`): its tokens are valid on every
    /// node. Instead of the data directory.
    #[arg(long, env = "SKALD_CATALOG")]
    pub catalog: Option<String>,
}

impl DirArgs {
    fn tokens(&self) -> anyhow::Result<Tokens> {
        match self.catalog.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => Ok(Tokens::in_catalog(Arc::new(
                crate::catalog::connect_postgres(url)?,
            ))),
            None => Ok(Tokens::new(&self.data_dir)),
        }
    }
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// The tenant the token is bound to. An admin token may name several
    /// (comma-separated) or `*` for every tenant.
    #[arg(long)]
    pub tenant: String,
    /// push (push only), read (queries, tail, labels, streams, export to
    /// the caller) or admin (also delete, server-side exports, statistics
    /// of every tenant).
    #[arg(long)]
    pub role: String,
    /// A name to list and revoke it by (default: tenant and id).
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime, such as `30d`, `12h` or `90m` (default: no expiry).
    #[arg(long)]
    pub expires: Option<String>,
}

/// `30d`, `2w`, or anything Loki's durations accept (`12h`, `90m`).
fn lifetime(text: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("--expires {text:?}: expected a duration such as 30d, 12h or 90m");
    for (suffix, secs) in [("d", 86_400u64), ("w", 7 * 86_400)] {
        if let Some(n) = text.strip_suffix(suffix) {
            let n: u64 = n.parse().map_err(|_| bad())?;
            return Ok(Duration::from_secs(n.checked_mul(secs).ok_or_else(bad)?));
        }
    }
    let d = skald_wire::parse_duration(text).map_err(|_| bad())?;
    anyhow::ensure!(!d.is_zero(), bad());
    Ok(d)
}

pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(a) => {
            let role = Role::parse(&a.role).ok_or_else(|| {
                anyhow::anyhow!("--role {:?}: expected push, read or admin", a.role)
            })?;
            let expires = a.expires.as_deref().map(lifetime).transpose()?;
            let tenants: Vec<String> = a.tenant.split(',').map(|t| t.trim().to_string()).collect();
            let (_, token) = a
                .dir
                .tokens()?
                .create(a.name.as_deref(), &tenants, role, expires)
                .map_err(anyhow::Error::msg)
                .context("creating the token")?;
            println!("{token}");
        }
        TokenCommand::List(d) => {
            let records = d.tokens()?.list().map_err(anyhow::Error::msg)?;
            let now = skald_model::Timestamp::now();
            println!(
                "{:<18} {:<24} {:<6} {:<24} EXPIRES",
                "ID", "NAME", "ROLE", "TENANTS"
            );
            for r in records {
                let expires = match r.expires_ns {
                    0 => "never".to_string(),
                    _ if r.expired(now) => "expired".to_string(),
                    ns => format!("in {}h", (ns - now.0) / 3_600_000_000_000),
                };
                println!(
                    "{:<18} {:<24} {:<6} {:<24} {expires}",
                    r.id,
                    r.name,
                    r.role.as_str(),
                    r.tenants.join(",")
                );
            }
        }
        TokenCommand::Revoke { dir, name_or_id } => {
            let r = dir
                .tokens()?
                .revoke(&name_or_id)
                .map_err(anyhow::Error::msg)?;
            eprintln!("revoked token {} ({})", r.name, r.id);
        }
    }
    Ok(())
}
