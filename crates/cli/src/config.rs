//! The configuration file: one typed tree, unknown keys refused.
//!
//! ```toml
//! [store]
//! fsync = "always"              # or "interval"
//! fsync_interval_ms = 1000
//! out_of_order_window_secs = 3600
//! flush_bytes = 67108864
//! max_head_bytes = 167772160
//! max_chunk_age_secs = 600
//! block_bytes = 1048576
//! zstd_level = 3
//! settled_zstd_level = 7         # compaction outputs of tier 2 and up
//! compact_fan_in = 4            # segments merged at once; 0 turns compaction off
//! compact_base_bytes = 8388608
//! compact_max_segment_bytes = 2147483648
//! [store.limits]
//! max_line_size = 262144
//! max_label_names_per_series = 15
//! reject_old_samples_max_age_secs = 604800
//! creation_grace_period_secs = 600
//!
//! [http]
//! max_push_body_bytes = 67108864
//! max_query_limit = 5000
//! max_query_series = 500
//! max_query_bytes_read = 0      # bytes a query may read (index estimate); 0: no limit
//!
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
//! ```

use anyhow::Context;
use serde::Deserialize;
use skald_server::ServerConfig;
use skald_server::tls::TlsConfig;
use skald_store::StoreConfig;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub store: StoreConfig,
    pub http: ServerConfig,
    pub tls: TlsConfig,
    pub ruler: skald_ruler::RulerConfig,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let cfg: FileConfig =
            toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        cfg.validate()?;
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
        self.ruler.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }
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
}
