//! The HTTP clients the ruler talks to Alertmanager, webhooks and
//! Prometheus with: one URL, its credentials (basic auth or a bearer
//! token) and its TLS settings.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Credentials and TLS for one kind of receiver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    pub basic_auth_username: Option<String>,
    pub basic_auth_password: Option<String>,
    /// Read once at start-up; wins over `basic_auth_password`.
    pub basic_auth_password_file: Option<PathBuf>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM), for mutual TLS.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_insecure_skip_verify: bool,
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

/// One receiver: a URL and a client configured for it.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    pub url: String,
    client: reqwest::Client,
    auth: Auth,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

fn read_text(path: &PathBuf, what: &str) -> Result<String, String> {
    let bytes = read(path, what)?;
    Ok(String::from_utf8_lossy(&bytes).trim().to_string())
}

impl HttpTarget {
    /// No credentials, system trust, 10 s timeout.
    pub fn plain(url: &str) -> HttpTarget {
        HttpTarget::new(url, &ClientConfig::default(), Duration::from_secs(10))
            .expect("a default client builds")
    }

    pub fn new(url: &str, cfg: &ClientConfig, timeout: Duration) -> Result<HttpTarget, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "invalid URL {url:?}: the scheme must be http or https"
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        if let Some(ca) = &cfg.tls_ca_file {
            let pem = read(ca, "tls_ca_file")?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_ca_file {}: {e}", ca.display()))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        match (&cfg.tls_cert_file, &cfg.tls_key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert, "tls_cert_file")?;
                pem.push(b'\n');
                pem.extend(read(key, "tls_key_file")?);
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("tls_cert_file/tls_key_file: {e}"))?;
                builder = builder.identity(id);
            }
            (None, None) => {}
            _ => return Err("tls_cert_file and tls_key_file go together".into()),
        }
        if cfg.tls_insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let password = match &cfg.basic_auth_password_file {
            Some(p) => Some(read_text(p, "basic_auth_password_file")?),
            None => cfg.basic_auth_password.clone(),
        };
        let token = match &cfg.bearer_token_file {
            Some(p) => Some(read_text(p, "bearer_token_file")?),
            None => cfg.bearer_token.clone(),
        };
        let auth = match (&cfg.basic_auth_username, token) {
            (Some(_), Some(_)) => {
                return Err("basic auth and a bearer token are exclusive".into());
            }
            (Some(user), None) => Auth::Basic(user.clone(), password.unwrap_or_default()),
            (None, Some(t)) => Auth::Bearer(t),
            (None, None) => Auth::None,
        };
        Ok(HttpTarget {
            url: url.to_string(),
            client,
            auth,
        })
    }

    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, url);
        match &self.auth {
            Auth::None => r,
            Auth::Basic(u, p) => r.basic_auth(u, Some(p)),
            Auth::Bearer(t) => r.bearer_auth(t),
        }
    }
}

/// An error with its causes ("error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
