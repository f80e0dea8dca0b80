//! The configuration file: one typed tree, unknown keys refused.
//!
//! ```toml
//! [store]
//! fsync = "always"              # or "interval"
//! fsync_interval_ms = 1000
//! out_of_order_window_secs = 3600
//! flush_bytes = 50331648
//! max_head_bytes = 83886080
//! max_chunk_age_secs = 600
//! block_bytes = 1048576
//! zstd_level = 3
//! settled_zstd_level = 7         # compaction outputs of tier 2 and up
//! compact_fan_in = 4            # segments merged at once; 0 turns compaction off
//! compact_base_bytes = 8388608
//! compact_max_segment_bytes = 2147483648
//!
//! [limits]                      # every tenant; Loki's names and notation
//! ingestion_rate_mb = 4           # see docs/limits.md for every key
//! max_line_size = "256KB"
//! retention_period = "720h"
//! retention_stream = [{ selector = '{env="dev"}', priority = 1, period = "24h" }]
//! [tenants.team-a]              # overrides for one tenant (re-read on SIGHUP
//! ingestion_rate_mb = 16          # and every 10 s, with [limits] and [scrub])
//!
//! [scrub]
//! defaults = true               # passwords, tokens, keys, cards, e-mails
//! [[scrub.rule]]
//! regex = '\b\d{3}-\d{2}-\d{4}\b'
//! replacement = "<ssn>"
//! tenant = "hr"                 # optional
//! selector = '{app="payroll"}'  # optional
//!
//! [http]
//! max_push_body_bytes = 67108864
//! max_query_limit = 5000
//! max_query_series = 500
//! max_query_bytes_read = 0      # bytes a query may read (index estimate); 0: no limit
//! max_response_bytes = 33554432 # entries a log query holds, as formatted
//! max_inflight_response_bytes = 134217728  # ... all log queries together
//! max_query_memory = 268435456  # series and entries one query holds; default
//!                               # 1/16 of the machine's memory, 64..256 MiB
//! query_timeout_secs = 120      # limits of docs/reliability.md, with their defaults
//! max_concurrent_queries = 4
//! max_queued_queries = 64
//! query_queue_wait_ms = 10000
//! cheap_query_bytes = 16777216
//! query_nice = 0                # queries run this much nicer than ingest (e.g. 10); 0: off
//! tail_queue_bytes = 4194304
//! tail_max_stall_secs = 30
//! max_inflight_decompressed_bytes = 268435456
//! push_budget_wait_ms = 2000
//!
//! [listen]                    # both listeners (docs/reliability.md)
//! header_timeout_secs = 30      # a request head (HTTP/1: also idle keep-alive)
//! body_timeout_secs = 60        # a whole HTTP body; a pause inside a gRPC message
//! idle_timeout_secs = 120       # no request and no traffic: closed
//! max_connections = 1024        # per listener; more wait to be accepted
//! max_streams_per_connection = 128  # HTTP/2
//!
//! [auth]
//! enabled = true                # requests need a token (`skald token create`)
//! open_metrics = true           # /metrics without a token (default)
//! [audit]                       # docs/security.md
//! file = "/var/log/skald/audit.log"   # or --audit-log; rotated past max_file_bytes
//! tenant = "audit"              # also stored in this tenant, queryable with LogQL
//! [ruler]                       # alerting and recording rules (docs/ruler.md)
//! rules_dir = "rules"           # default: <data-dir>/rules
//! evaluation_interval = "1m"
//! alertmanager_url = ["http://127.0.0.1:9093"]
//! remote_write_url = "http://127.0.0.1:9090/api/v1/write"
//! resend_delay = "1m"
//! for_grace_period = "10m"
//!
//! [tls]                         # all unset: plain TCP
//! cert_file = "server.pem"      # certificate chain, both listeners
//! key_file = "server.key"
//! client_ca_file = "ca.pem"     # set: clients need a certificate it signed
//!
//! [storage]                     # where segments live; unset: the data directory
//! url = "s3://bucket/prefix"    # or --storage / SKALD_STORAGE; WAL stays local
//! s3_endpoint = "http://127.0.0.1:9000"  # S3-compatible servers; or --s3-endpoint
//! region = "eu-west-1"          # default AWS_REGION, else us-east-1
//! cache_bytes = 268435456       # remote ranges kept in memory
//!
//! [catalog]                     # which segments exist; unset: the segment store's key tree
//! url = "postgres://skald@db:5432/skald"  # or --catalog / SKALD_CATALOG; password: PGPASSWORD
//!                               # credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
//!
//! [ingest]                      # Loki's discovery and otlp_config (docs/otlp.md)
//! discover_service_name = ["service", "app", "job"]   # default [] (off)
//! discover_log_levels = true    # default false
//! [ingest.otlp_config.resource_attributes]
//! attributes_config = [{ action = "index_label", attributes = ["service.group"] }]
//! [ingest.tenants.team-a]       # per-tenant overrides
//! discover_log_levels = false
//! ```

use anyhow::Context;
use serde::Deserialize;
use skald_model::{Limits, Matcher, TenantId};
use skald_server::ServerConfig;
use skald_server::tls::TlsConfig;
use skald_store::StoreConfig;
use skald_store::TenantLimits;
use skald_store::scrub::{ScrubRule, Scrubber};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub store: StoreConfig,
    pub http: ServerConfig,
    /// Timeouts and caps of both listeners (docs/reliability.md).
    pub listen: skald_server::listen::ListenConfig,
    pub auth: skald_server::service::auth::AuthConfig,
    pub tls: TlsConfig,
    /// Limits of every tenant (Loki's `limits_config`), checked by
    /// [`FileConfig::tenant_limits`].
    pub limits: toml::Table,
    /// Per-tenant overrides, each merged over `[limits]` (Loki's runtime
    /// overrides file).
    pub tenants: BTreeMap<String, toml::Table>,
    pub scrub: ScrubConfig,
    /// Discovery of service names and levels, and the OTLP mapping, with
    /// per-tenant overrides (docs/otlp.md).
    pub ingest: skald_server::IngestConfig,
    pub ruler: skald_ruler::RulerConfig,
    pub audit: skald_server::service::audit::AuditConfig,
    /// Where segments live (the data directory, or S3).
    pub storage: crate::storage::StorageConfig,
    /// Where the list of segments and delete requests are kept (the
    /// segment store itself, or PostgreSQL shared by several nodes).
    pub catalog: crate::catalog::CatalogConfig,
}

/// `[scrub]`: masking secrets at ingest.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrubConfig {
    /// The shipped rules (see `skald_store::scrub`).
    pub defaults: bool,
    pub rule: Vec<ScrubRuleConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubRuleConfig {
    pub regex: String,
    pub replacement: String,
    pub tenant: Option<String>,
    pub selector: Option<String>,
}

/// What a reload of the file may change on a running server.
#[derive(Debug, Clone, PartialEq)]
pub struct Reloadable {
    pub limits: TenantLimits,
    pub scrub: ScrubConfig,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let mut cfg: FileConfig =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        cfg.validate()
            .with_context(|| format!("config file {}", path.display()))?;
        cfg.store.limits = cfg.tenant_limits()?;
        cfg.store.scrub = cfg.scrubber()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let s = &self.store;
        anyhow::ensure!(
            (1..=22).contains(&s.zstd_level),
            "store.zstd_level must be between 1 and 22"
        );
        anyhow::ensure!(
            (1..=22).contains(&s.settled_zstd_level),
            "store.settled_zstd_level must be between 1 and 22"
        );
        anyhow::ensure!(
            s.compact_fan_in == 0 || s.compact_fan_in >= 2,
            "store.compact_fan_in must be 0 (off) or at least 2"
        );
        anyhow::ensure!(
            s.flush_bytes >= 1024 * 1024,
            "store.flush_bytes must be at least 1 MiB"
        );
        anyhow::ensure!(
            s.max_head_bytes >= s.flush_bytes,
            "store.max_head_bytes must be at least store.flush_bytes"
        );
        anyhow::ensure!(
            s.block_bytes >= 4096,
            "store.block_bytes must be at least 4096"
        );
        anyhow::ensure!(
            self.http.max_query_limit > 0,
            "http.max_query_limit must be positive"
        );
        anyhow::ensure!(
            (0..=19).contains(&self.http.query_nice),
            "http.query_nice must be between 0 (off) and 19"
        );
        self.listen.validate().map_err(anyhow::Error::msg)?;
        self.tenant_limits()?;
        self.scrubber()?;
        self.ingest.validate().map_err(anyhow::Error::msg)?;
        self.ruler.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// `[limits]` and `[tenants.*]`, each tenant's table merged over the
    /// defaults, every selector parsed.
    pub fn tenant_limits(&self) -> anyhow::Result<TenantLimits> {
        let defaults = limits_from(self.limits.clone()).context("[limits]")?;
        let mut out = TenantLimits::new(defaults);
        for (name, table) in &self.tenants {
            let tenant =
                TenantId::new(name).map_err(|e| anyhow::anyhow!("[tenants.{name}]: {e}"))?;
            let mut merged = self.limits.clone();
            for (k, v) in table {
                merged.insert(k.clone(), v.clone());
            }
            let limits = limits_from(merged).with_context(|| format!("[tenants.{name}]"))?;
            out = out.with_tenant(tenant, limits);
        }
        Ok(out)
    }

    pub fn scrubber(&self) -> anyhow::Result<Scrubber> {
        build_scrubber(&self.scrub)
    }

    pub fn reloadable(&self) -> anyhow::Result<Reloadable> {
        Ok(Reloadable {
            limits: self.tenant_limits()?,
            scrub: self.scrub.clone(),
        })
    }
}

fn limits_from(table: toml::Table) -> anyhow::Result<Limits> {
    let mut limits: Limits = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
    for rule in &mut limits.retention_stream {
        rule.matchers = selector(&rule.selector)
            .with_context(|| format!("retention_stream selector {}", rule.selector))?;
    }
    limits.check().map_err(|e| anyhow::anyhow!(e))?;
    Ok(limits)
}

/// A stream selector such as `{env="dev"}`.
pub fn selector(text: &str) -> anyhow::Result<Vec<Matcher>> {
    match skald_logql::parse_expr(text)? {
        skald_logql::Expr::Log(l) if l.pipeline.is_empty() => Ok(l.selector),
        _ => anyhow::bail!("{text:?} is not a stream selector such as {{env=\"dev\"}}"),
    }
}

pub fn build_scrubber(cfg: &ScrubConfig) -> anyhow::Result<Scrubber> {
    let mut rules = if cfg.defaults {
        Scrubber::default_rules()
    } else {
        Vec::new()
    };
    for (i, r) in cfg.rule.iter().enumerate() {
        let what = || format!("[[scrub.rule]] #{}", i + 1);
        let tenant = match &r.tenant {
            Some(t) => Some(TenantId::new(t).map_err(|e| anyhow::anyhow!("{}: {e}", what()))?),
            None => None,
        };
        let matchers = match &r.selector {
            Some(s) => selector(s).with_context(what)?,
            None => Vec::new(),
        };
        let rule = ScrubRule::new(format!("rule {}", i + 1), &r.regex, &r.replacement)
            .map_err(|e| anyhow::anyhow!("{}: {e}", what()))?
            .for_tenant(tenant)
            .for_streams(matchers);
        rules.push(rule);
    }
    Scrubber::new(rules).map_err(|e| anyhow::anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_and_partial_files_use_defaults() {
        let cfg: FileConfig = toml::from_str("[store]\nzstd_level = 5\n").unwrap();
        assert_eq!(cfg.store.zstd_level, 5);
        assert_eq!(
            cfg.http.max_query_limit,
            ServerConfig::default().max_query_limit
        );
        assert!(toml::from_str::<FileConfig>("[store]\nzstd_lvl = 5\n").is_err());
        assert!(toml::from_str::<FileConfig>("[nope]\n").is_err());
        let tls: FileConfig =
            toml::from_str("[tls]\ncert_file = \"a.pem\"\nkey_file = \"a.key\"\n").unwrap();
        assert_eq!(tls.tls.cert_file.as_deref(), Some(Path::new("a.pem")));
        assert!(toml::from_str::<FileConfig>("[tls]\ncert = \"a.pem\"\n").is_err());
        let ruler: FileConfig = toml::from_str(
            "[ruler]\nevaluation_interval = \"15s\"\nalertmanager_url = [\"http://a:9093\"]\n",
        )
        .unwrap();
        assert_eq!(ruler.ruler.evaluation_interval.as_secs(), 15);
        assert!(ruler.validate().is_ok());
        assert!(toml::from_str::<FileConfig>("[ruler]\nevaluation_interval = \"15\"\n").is_err());
        assert!(toml::from_str::<FileConfig>("[ruler]\nalertmanager = []\n").is_err());
        let bad: FileConfig =
            toml::from_str("[ruler]\nalertmanager_url = [\"ftp://a\"]\n").unwrap();
        assert!(bad.validate().is_err());
    }

    fn limits_of(text: &str) -> anyhow::Result<TenantLimits> {
        let cfg: FileConfig = toml::from_str(text)?;
        cfg.tenant_limits()
    }

    #[test]
    fn limits_read_in_lokis_notation_with_tenant_overrides_merged() {
        let l = limits_of(
            r#"
[limits]
ingestion_rate_mb = 2.5
max_line_size = "4MB"
reject_old_samples_max_age = "720h"
retention_stream = [{ selector = '{env="dev"}', priority = 1, period = "24h" }]
[tenants.team-a]
ingestion_rate_mb = 16
max_line_size_truncate = true
"#,
        )
        .unwrap();
        let d = &l.defaults;
        assert_eq!(d.ingestion_rate_mb, 2.5);
        assert_eq!(d.max_line_size, 4_000_000);
        assert_eq!(d.reject_old_samples_max_age.as_secs(), 720 * 3600);
        assert_eq!(d.retention_stream[0].matchers.len(), 1);
        let a = l.get(&TenantId::new("team-a").unwrap());
        assert_eq!(a.ingestion_rate_mb, 16.0);
        assert!(a.max_line_size_truncate);
        // Merged over [limits], not over the built-in defaults.
        assert_eq!(a.max_line_size, 4_000_000);
        assert_eq!(a.retention_stream.len(), 1);
        let other = l.get(&TenantId::new("other").unwrap());
        assert_eq!(other.ingestion_rate_mb, 2.5);
    }

    #[test]
    fn bad_limits_are_refused_with_the_key_named() {
        for (text, want) in [
            ("[limits]\nmax_line_size = \"4XB\"\n", "invalid size"),
            ("[limits]\nretention_period = 3600\n", "needs a unit"),
            ("[limits]\nmax_lines = 3\n", "unknown field"),
            ("[tenants.a]\nretention_period = \"1q\"\n", "tenants.a"),
            (
                "[limits]\nretention_stream = [{ selector = 'nope', period = \"1h\" }]\n",
                "selector",
            ),
            ("[limits]\ningestion_rate_mb = -1\n", "ingestion_rate_mb"),
            ("[tenants.\"a|b\"]\nmax_line_size = 1\n", "a|b"),
        ] {
            let err = format!("{:#}", limits_of(text).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn scrub_rules_compile_or_name_the_bad_one() {
        let cfg: FileConfig = toml::from_str(
            "[scrub]\ndefaults = true\n[[scrub.rule]]\nregex = 'x+'\nreplacement = 'y'\ntenant = 'a'\nselector = '{app=\"p\"}'\n",
        )
        .unwrap();
        assert!(cfg.scrubber().unwrap().rules().len() > 5);
        let bad: FileConfig =
            toml::from_str("[[scrub.rule]]\nregex = '('\nreplacement = 'y'\n").unwrap();
        let err = format!("{:#}", bad.scrubber().unwrap_err());
        assert!(err.contains("#1") && err.contains("regex"), "{err}");
    }

    #[test]
    fn ingest_settings_parse_per_tenant_and_bad_otlp_rules_are_refused() {
        let cfg: FileConfig = toml::from_str(
            "[ingest]\ndiscover_log_levels = true\n[ingest.tenants.a.otlp_config]\nseverity_text_as_label = true\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert!(cfg.ingest.discover_log_levels);
        assert!(
            cfg.ingest.tenants["a"]
                .otlp_config
                .as_ref()
                .unwrap()
                .severity_text_as_label
        );
        let bad: FileConfig = toml::from_str(
            "[[ingest.otlp_config.log_attributes]]\naction = \"drop\"\nregex = \"(\"\n",
        )
        .unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("ingest.otlp_config: log_attributes[0].regex"),
            "{err}"
        );
        assert!(toml::from_str::<FileConfig>("[ingest]\ndiscover_levels = true\n").is_err());
    }
}
