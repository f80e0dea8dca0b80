//! Authentication and authorisation: API tokens, roles, and the
//! [`Context`] every operation receives.
//!
//! A token is `skald_<id>_<secret>`: a 64-bit id (16 hex digits) to find
//! its record, and a 256-bit secret (64 hex digits) from the system's
//! random source. The data directory's `tokens.json` holds, per token, its
//! id, name, tenant(s), role, expiry, a 128-bit random salt and
//! `SHA-256(salt ‖ token)` — never the token. A salted SHA-256 rather than
//! argon2id: a password-hashing function exists to slow down guessing of
//! low-entropy secrets, and a 256-bit random secret cannot be guessed at
//! any speed, while every request pays for the hash (argon2id's tens of
//! milliseconds would be per push). Hashes are compared in constant time.
//!
//! `tokens.json` is written by `skald token` (temporary file, fsync,
//! rename) and re-read by a running server when it changes (checked at
//! most once a second), so tokens take effect without a restart. Over a
//! shared catalog (`--catalog postgres://...`) the records are rows of
//! the catalog instead (`skald token ... --catalog`), re-read by every
//! node each second ([`Auth::refresh_tokens`]), so a token made once is
//! valid on every node of the cluster and a revoked one on none.
//!
//! Credentials: `Authorization: Bearer <token>` or HTTP basic auth with
//! the tenant as user name and the token as password (Grafana, logcli,
//! Promtail and the Loki clients send it so); the same values in gRPC's
//! `authorization` metadata. A multi-tenant read (`X-Scope-OrgID: a|b`)
//! sends one token per tenant, comma-separated (`Bearer t1,t2`), or an
//! admin token valid for both.

use super::{Context, ErrorCode, ServiceError};
use crate::AppState;
use serde::{Deserialize, Serialize};
use skald_model::{TenantId, Timestamp};
use skald_store::CatalogStore;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The file of a data directory holding the token records.
pub const TOKENS_FILE: &str = "tokens.json";
/// How often a running server looks for a changed tokens file.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// What a token may do. `push` only pushes; `read` queries, tails, lists
/// labels, series and streams, exports to the caller and sees its own
/// statistics and quota; `admin` does everything `push` and `read` do and
/// also deletes, writes export files on the server, manages tokens and
/// sees every tenant's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Push,
    Read,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "push" => Some(Role::Push),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Push => "push",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// Whether a token of this role may do what `needed` requires.
    fn grants(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

/// One token as stored (no secret: its salted hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// The tenants it is valid for; `*` (admin only): every tenant.
    pub tenants: Vec<String>,
    pub role: Role,
    pub created_ns: i64,
    /// 0: never expires.
    pub expires_ns: i64,
    salt: String,
    hash: String,
}

impl TokenRecord {
    fn covers(&self, tenant: &TenantId) -> bool {
        self.tenants
            .iter()
            .any(|t| t == tenant.as_str() || (t == "*" && self.role == Role::Admin))
    }

    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_ns != 0 && now.0 >= self.expires_ns
    }
}

/// Who a request is from.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Authentication is off: everything is allowed.
    Anonymous,
    /// The request's valid tokens (one per tenant of a multi-tenant read).
    Tokens(Vec<Arc<TokenRecord>>),
}

impl Principal {
    /// Names for the log and the audit (never the token itself).
    pub fn subject(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::Tokens(t) => t
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    pub fn authorize(&self, tenant: &TenantId, role: Role) -> Result<(), ServiceError> {
        let Principal::Tokens(tokens) = self else {
            return Ok(());
        };
        if tokens
            .iter()
            .any(|t| t.covers(tenant) && t.role.grants(role))
        {
            return Ok(());
        }
        let why = if tokens.iter().any(|t| t.covers(tenant)) {
            format!(
                "permission denied: the token's role does not allow this ({} required)",
                role.as_str()
            )
        } else {
            format!("permission denied: no token for tenant {tenant}")
        };
        Err(ServiceError::new(ErrorCode::PermissionDenied, why))
    }

    /// Whether the principal is an admin of every tenant (sees all
    /// tenants' statistics).
    pub fn is_global_admin(&self) -> bool {
        match self {
            Principal::Anonymous => true,
            Principal::Tokens(t) => t
                .iter()
                .any(|r| r.role == Role::Admin && r.tenants.iter().any(|x| x == "*")),
        }
    }
}

/// The raw credentials of a request, as the adapters find them.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    /// The `Authorization` header or metadata value.
    pub authorization: Option<String>,
    /// `X-Scope-OrgID`.
    pub org_id: Option<String>,
}

/// How the server authenticates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Requests need a token (see `skald token create`).
    pub enabled: bool,
    /// `/metrics` answers without a token (Prometheus scrapes it).
    pub open_metrics: Option<bool>,
}

impl AuthConfig {
    pub fn metrics_open(&self) -> bool {
        self.open_metrics.unwrap_or(true)
    }
}

/// The server's authentication state.
pub struct Auth {
    pub config: AuthConfig,
    tokens: Tokens,
    /// Refused authentications (for `/metrics`).
    pub failures: AtomicU64,
}

impl Auth {
    /// Tokens from the catalog when it keeps them (a shared catalog),
    /// else from the data directory's `tokens.json`.
    pub fn new(
        data_dir: &Path,
        catalog: &Arc<dyn CatalogStore>,
        config: AuthConfig,
    ) -> Result<Auth, String> {
        let tokens = match catalog.tokens().map_err(|e| e.to_string())? {
            Some(_) => {
                let file = data_dir.join(TOKENS_FILE);
                if file.exists() {
                    tracing::warn!(
                        file = %file.display(),
                        catalog = %catalog.describe(),
                        "tokens are read from the catalog; this file is not used (create them again with skald token create --catalog)"
                    );
                }
                Tokens::in_catalog(catalog.clone())
            }
            None => Tokens::new(data_dir),
        };
        tokens.reload_if_changed(true)?;
        Ok(Auth {
            config,
            tokens,
            failures: AtomicU64::new(0),
        })
    }

    /// Re-reads the tokens of a shared catalog (each node does so every
    /// second); a data directory's file is re-read by requests when it
    /// changes.
    pub fn refresh_tokens(&self) -> Result<(), String> {
        match self.tokens.source {
            Source::Catalog(_) => self.tokens.reload_if_changed(true),
            Source::File(_) => Ok(()),
        }
    }

    fn refuse(&self, message: impl Into<String>) -> ServiceError {
        self.failures.fetch_add(1, Ordering::Relaxed);
        ServiceError::new(ErrorCode::Unauthenticated, message)
    }
}

/// The `WWW-Authenticate` value sent with a 401.
pub const CHALLENGE: &str = "Basic realm=\"skald\", Bearer realm=\"skald\"";

fn parse_tenants(text: &str, what: &str) -> Result<Vec<TenantId>, ServiceError> {
    text.split('|')
        .map(|t| {
            TenantId::new(t.trim()).map_err(|e| ServiceError::bad_request(format!("{what}: {e}")))
        })
        .collect()
}

/// Authenticates a request and names its tenants.
pub(crate) fn context(
    app: &AppState,
    creds: Credentials,
    org_header: &str,
    request: Arc<super::RequestMeta>,
) -> Result<Context, ServiceError> {
    let result = authenticate(app, &creds, org_header, request.clone());
    if let Err(e) = &result
        && e.code == ErrorCode::Unauthenticated
    {
        super::audit::refused_authentication(&request, creds.org_id.as_deref(), e);
    }
    let changes = app.auth.tokens.take_changes();
    for (action, record) in changes {
        let params = serde_json::json!({
            "id": record.id,
            "name": record.name,
            "tenants": record.tenants,
            "role": record.role.as_str(),
            "expires_ns": record.expires_ns,
        });
        super::audit::system(
            &request.audit,
            TOKENS_FILE,
            action,
            record.name.clone(),
            params,
        );
    }
    result
}

fn authenticate(
    app: &AppState,
    creds: &Credentials,
    org_header: &str,
    request: Arc<super::RequestMeta>,
) -> Result<Context, ServiceError> {
    let auth = &app.auth;
    if !auth.config.enabled {
        let tenants = match &creds.org_id {
            None => vec![TenantId::default_tenant()],
            Some(s) => parse_tenants(s, org_header)?,
        };
        return Ok(Context {
            principal: Principal::Anonymous,
            tenants,
            request,
        });
    }
    let Some(header) = creds.authorization.as_deref() else {
        return Err(auth.refuse(
            "authentication required: send a token as 'Authorization: Bearer <token>' or as the password of basic auth with the tenant as user name",
        ));
    };
    let (user, secrets) = split_authorization(header).map_err(|e| auth.refuse(e))?;
    auth.tokens.reload_if_changed(false).map_err(|e| {
        tracing::error!(error = %e, "reading the tokens file");
        ServiceError::internal("the server could not read its tokens; see its log")
    })?;
    let now = Timestamp::now();
    let mut tokens = Vec::new();
    for secret in secrets.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match auth.tokens.verify(secret, now) {
            Some(t) => tokens.push(t),
            None => return Err(auth.refuse("invalid or expired token")),
        }
    }
    if tokens.is_empty() {
        return Err(auth.refuse("invalid or expired token"));
    }
    let named = creds.org_id.clone().or(user.filter(|u| !u.is_empty()));
    let tenants = match named {
        Some(text) => parse_tenants(&text, org_header)?,
        None => {
            let mut all: Vec<&String> = tokens.iter().flat_map(|t| &t.tenants).collect();
            all.sort();
            all.dedup();
            match all.as_slice() {
                [one] if one.as_str() != "*" => {
                    vec![TenantId::new(one).map_err(|e| ServiceError::internal(e.to_string()))?]
                }
                _ => {
                    return Err(ServiceError::bad_request(format!(
                        "{org_header} is required: the token is valid for several tenants"
                    )));
                }
            }
        }
    };
    Ok(Context {
        principal: Principal::Tokens(tokens),
        tenants,
        request,
    })
}

/// `Bearer <tokens>` or `Basic base64(user:tokens)`: the basic user name
/// (the tenant) and the token(s).
fn split_authorization(header: &str) -> Result<(Option<String>, String), String> {
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok((None, rest.to_string()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| "basic auth: not base64".to_string())?;
        let text = String::from_utf8(raw).map_err(|_| "basic auth: not UTF-8".to_string())?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| "basic auth: no ':' between user and password".to_string())?;
        return Ok((Some(user.to_string()), password.to_string()));
    }
    Err("unsupported authorization scheme; use Bearer or Basic".into())
}

/// The token records, cached: the data directory's `tokens.json`
/// (re-read when it changes) or a shared catalog's (re-read by
/// [`Auth::refresh_tokens`]).
pub struct Tokens {
    source: Source,
    state: Mutex<Loaded>,
}

enum Source {
    File(PathBuf),
    Catalog(Arc<dyn CatalogStore>),
}

#[derive(Default)]
struct Loaded {
    records: Vec<Arc<TokenRecord>>,
    /// Tokens created or revoked since the last look, for the audit log
    /// (not at the first load).
    changes: Vec<(&'static str, Arc<TokenRecord>)>,
    /// Modification time and length when read.
    seen: Option<(SystemTime, u64)>,
    checked: Option<Instant>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(n: usize) -> Result<String, String> {
    use aws_lc_rs::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| "the system's random source failed".to_string())?;
    Ok(hex(&buf))
}

fn hash(salt: &str, token: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(salt.as_bytes());
    ctx.update(token.as_bytes());
    hex(ctx.finish().as_ref())
}

impl Tokens {
    /// The tokens of a data directory (`tokens.json`).
    pub fn new(data_dir: &Path) -> Tokens {
        Tokens {
            source: Source::File(data_dir.join(TOKENS_FILE)),
            state: Mutex::new(Loaded::default()),
        }
    }

    /// The tokens a shared catalog keeps (see [`CatalogStore::tokens`]).
    pub fn in_catalog(catalog: Arc<dyn CatalogStore>) -> Tokens {
        Tokens {
            source: Source::Catalog(catalog),
            state: Mutex::new(Loaded::default()),
        }
    }

    fn read(&self) -> Result<Vec<TokenRecord>, String> {
        let path = match &self.source {
            Source::File(path) => path,
            Source::Catalog(catalog) => {
                let rows = catalog
                    .tokens()
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default();
                return rows
                    .iter()
                    .map(|row| {
                        serde_json::from_str(row)
                            .map_err(|e| format!("a token record in {}: {e}", catalog.describe()))
                    })
                    .collect();
            }
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Re-reads the file if it changed since last read (looked at most
    /// once per [`RELOAD_CHECK`] unless `force`); a catalog's records only
    /// when `force`d (by [`Auth::refresh_tokens`], off the request path).
    /// Records that fail to parse keep the tokens read before and are
    /// reported.
    pub fn reload_if_changed(&self, force: bool) -> Result<(), String> {
        let mut st = self.state.lock().unwrap();
        if !force && st.checked.is_some_and(|c| c.elapsed() < RELOAD_CHECK) {
            return Ok(());
        }
        let first_load = st.checked.is_none();
        st.checked = Some(Instant::now());
        let seen = match &self.source {
            Source::File(path) => std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())),
            Source::Catalog(_) if !force => return Ok(()),
            Source::Catalog(_) => None,
        };
        if !force && seen == st.seen {
            return Ok(());
        }
        let records: Vec<Arc<TokenRecord>> = self.read()?.into_iter().map(Arc::new).collect();
        let same = records.len() == st.records.len()
            && records.iter().zip(&st.records).all(|(a, b)| a.id == b.id);
        if first_load || !same {
            tracing::info!(tokens = records.len(), "tokens loaded");
        }
        if !first_load {
            let had =
                |list: &[Arc<TokenRecord>], r: &TokenRecord| list.iter().any(|o| o.id == r.id);
            let created: Vec<_> = records
                .iter()
                .filter(|r| !had(&st.records, r))
                .map(|r| ("token.create", r.clone()))
                .collect();
            let revoked: Vec<_> = st
                .records
                .iter()
                .filter(|r| !had(&records, r))
                .map(|r| ("token.revoke", r.clone()))
                .collect();
            st.changes.extend(created);
            st.changes.extend(revoked);
        }
        st.records = records;
        st.seen = seen;
        Ok(())
    }

    /// Tokens created or revoked since the last call.
    fn take_changes(&self) -> Vec<(&'static str, Arc<TokenRecord>)> {
        std::mem::take(&mut self.state.lock().unwrap().changes)
    }

    fn verify(&self, token: &str, now: Timestamp) -> Option<Arc<TokenRecord>> {
        let id = token.strip_prefix("skald_")?.split('_').next()?;
        let st = self.state.lock().unwrap();
        let record = st.records.iter().find(|r| r.id == id)?;
        let computed = hash(&record.salt, token);
        aws_lc_rs::constant_time::verify_slices_are_equal(
            computed.as_bytes(),
            record.hash.as_bytes(),
        )
        .ok()?;
        if record.expired(now) {
            return None;
        }
        Some(record.clone())
    }

    /// Every token record (for `skald token list`).
    pub fn list(&self) -> Result<Vec<TokenRecord>, String> {
        self.read()
    }

    /// Writes the whole file (a data directory's tokens only).
    fn write(path: &Path, records: &[TokenRecord]) -> Result<(), String> {
        let io = |e: std::io::Error| format!("{}: {e}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let body = serde_json::to_vec_pretty(records).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    /// Creates a token and answers it (shown once, never stored).
    pub fn create(
        &self,
        name: Option<&str>,
        tenants: &[String],
        role: Role,
        expires_in: Option<Duration>,
    ) -> Result<(TokenRecord, String), String> {
        if tenants.is_empty() {
            return Err("--tenant is required".into());
        }
        for t in tenants {
            if t == "*" {
                if role != Role::Admin {
                    return Err("only an admin token may be valid for every tenant (*)".into());
                }
                continue;
            }
            TenantId::new(t).map_err(|e| format!("--tenant: {e}"))?;
        }
        if tenants.len() > 1 && role != Role::Admin {
            return Err(
                "a push or read token is bound to one tenant; create one per tenant".into(),
            );
        }
        let id = random_hex(8)?;
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}-{}", tenants.join("+"), &id[..8]));
        if name.is_empty() || name.chars().any(char::is_control) || name.len() > 100 {
            return Err("--name: 1 to 100 characters, no control characters".into());
        }
        let token = format!("skald_{id}_{}", random_hex(32)?);
        let salt = random_hex(16)?;
        let now = Timestamp::now();
        let record = TokenRecord {
            id,
            name,
            tenants: tenants.to_vec(),
            role,
            created_ns: now.0,
            expires_ns: expires_in
                .map(|d| {
                    now.0
                        .saturating_add(d.as_nanos().min(i64::MAX as u128) as i64)
                })
                .unwrap_or(0),
            hash: hash(&salt, &token),
            salt,
        };
        match &self.source {
            Source::File(path) => {
                let mut records = self.read()?;
                if records.iter().any(|r| r.name == record.name) {
                    return Err(format!(
                        "a token named {:?} exists; revoke it or pick another --name",
                        record.name
                    ));
                }
                records.push(record.clone());
                Self::write(path, &records)?;
            }
            Source::Catalog(catalog) => {
                let row = serde_json::to_string(&record).map_err(|e| e.to_string())?;
                catalog
                    .add_token(&record.id, &record.name, &row)
                    .map_err(|e| match e {
                        skald_store::CatalogError::Conflict(why) => why,
                        other => other.to_string(),
                    })?;
            }
        }
        Ok((record, token))
    }

    /// Removes the token of that name or id; answers it.
    pub fn revoke(&self, name_or_id: &str) -> Result<TokenRecord, String> {
        let missing = || format!("no token named {name_or_id:?}");
        match &self.source {
            Source::File(path) => {
                let mut records = self.read()?;
                let pos = records
                    .iter()
                    .position(|r| r.name == name_or_id || r.id == name_or_id)
                    .ok_or_else(missing)?;
                let removed = records.remove(pos);
                Self::write(path, &records)?;
                Ok(removed)
            }
            Source::Catalog(catalog) => {
                let row = catalog
                    .remove_token(name_or_id)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(missing)?;
                serde_json::from_str(&row).map_err(|e| format!("the revoked token's record: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    #[test]
    fn tokens_verify_until_revoked_or_expired_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let file = Tokens::new(dir.path());
        let (rec, token) = file
            .create(Some("ci"), &["team-a".into()], Role::Push, None)
            .unwrap();
        let stored = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!stored.contains(&token));
        file.reload_if_changed(true).unwrap();
        let now = Timestamp::now();
        assert_eq!(file.verify(&token, now).unwrap().id, rec.id);
        // One changed character, another id, no prefix: refused.
        let mut wrong = token.clone();
        wrong.pop();
        wrong.push(if token.ends_with('0') { '1' } else { '0' });
        assert!(file.verify(&wrong, now).is_none());
        assert!(file.verify("skald_0123456789abcdef_00", now).is_none());
        assert!(file.verify(&token["skald_".len()..], now).is_none());
        // Names are unique; push and read tokens have one tenant.
        assert!(
            file.create(Some("ci"), &["team-a".into()], Role::Read, None)
                .is_err()
        );
        assert!(
            file.create(None, &["a".into(), "b".into()], Role::Read, None)
                .is_err()
        );
        assert!(file.create(None, &["*".into()], Role::Read, None).is_err());
        assert!(
            file.create(None, &["a/b".into()], Role::Read, None)
                .is_err()
        );
        // Expired tokens are refused.
        let (_, short) = file
            .create(
                Some("short"),
                &["team-a".into()],
                Role::Read,
                Some(Duration::from_secs(60)),
            )
            .unwrap();
        file.reload_if_changed(true).unwrap();
        assert!(file.verify(&short, now).is_some());
        assert!(
            file.verify(&short, Timestamp(now.0 + 61_000_000_000))
                .is_none()
        );
        file.revoke("ci").unwrap();
        file.reload_if_changed(true).unwrap();
        assert!(file.verify(&token, now).is_none());
        assert!(file.revoke("ci").is_err());
    }

    #[test]
    fn roles_grant_what_the_table_says_for_their_tenants_only() {
        let grant = |role: Role, tenants: &[&str]| {
            Principal::Tokens(vec![Arc::new(TokenRecord {
                id: "0".into(),
                name: "t".into(),
                tenants: tenants.iter().map(|s| s.to_string()).collect(),
                role,
                created_ns: 0,
                expires_ns: 0,
                salt: String::new(),
                hash: String::new(),
            })])
        };
        let a = tenant("a");
        let b = tenant("b");
        let push = grant(Role::Push, &["a"]);
        assert!(push.authorize(&a, Role::Push).is_ok());
        assert!(push.authorize(&a, Role::Read).is_err());
        assert!(push.authorize(&b, Role::Push).is_err());
        let read = grant(Role::Read, &["a"]);
        assert!(read.authorize(&a, Role::Read).is_ok());
        assert!(read.authorize(&a, Role::Push).is_err());
        assert!(read.authorize(&a, Role::Admin).is_err());
        let admin = grant(Role::Admin, &["a"]);
        for r in [Role::Push, Role::Read, Role::Admin] {
            assert!(admin.authorize(&a, r).is_ok());
            assert!(admin.authorize(&b, r).is_err());
        }
        assert!(!admin.is_global_admin());
        let all = grant(Role::Admin, &["*"]);
        assert!(all.authorize(&b, Role::Admin).is_ok() && all.is_global_admin());
        let e = read.authorize(&b, Role::Read).unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
    }

    #[test]
    fn credentials_are_read_from_bearer_and_basic() {
        assert_eq!(
            split_authorization("Bearer abc").unwrap(),
            (None, "abc".into())
        );
        assert_eq!(
            split_authorization("bearer  abc ").unwrap(),
            (None, "abc".into())
        );
        // "team-a:skald_x" in base64.
        let (user, pass) = split_authorization("Basic dGVhbS1hOnNrYWxkX3g=").unwrap();
        assert_eq!(
            (user.as_deref(), pass.as_str()),
            (Some("team-a"), "skald_x")
        );
        assert!(split_authorization("Basic !!!").is_err());
        assert!(split_authorization("Digest x").is_err());
    }
}
