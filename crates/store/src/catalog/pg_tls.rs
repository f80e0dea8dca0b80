//! TLS to the PostgreSQL catalog, chosen by the URL as libpq users write
//! it: `?sslmode=require` (or `verify-ca`, `verify-full`) turns it on, and
//! `sslrootcert=/path/ca.pem` names the certificate authorities to trust
//! (the system's trust store otherwise).
//!
//! Skald always verifies the server's certificate and name once TLS is on:
//! libpq's `require` and `verify-ca` check less, which lets anyone on the
//! path pose as the catalog. `disable`, `prefer` and no `sslmode` connect
//! over plain TCP, as before TLS was supported (libpq's `prefer` would try
//! TLS without verifying it, which protects from nothing).

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// What the URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsMode {
    Plain,
    /// Verified TLS, trusting the file's authorities or the system's.
    Verified {
        root_cert: Option<String>,
    },
}

/// Splits the TLS parameters tokio-postgres does not take (`sslrootcert`,
/// and `sslmode` values past `require`) off a `postgres://` URL; returns
/// the URL it does take and the mode.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsMode), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), TlsMode::Plain));
    };
    let mut kept = Vec::new();
    let (mut mode, mut root_cert) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some(value.to_string()),
            "sslrootcert" => root_cert = Some(value.to_string()),
            _ => kept.push(pair),
        }
    }
    let mode = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => {
            if root_cert.is_some() {
                return Err("sslrootcert needs sslmode=require or verify-full".into());
            }
            TlsMode::Plain
        }
        Some("require" | "verify-ca" | "verify-full") => TlsMode::Verified { root_cert },
        Some(other) => {
            return Err(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    if matches!(mode, TlsMode::Verified { .. }) {
        kept.push("sslmode=require");
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, mode))
}

/// The client configuration for a verified connection.
pub(crate) fn client_config(root_cert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match root_cert {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect())
                .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("sslrootcert {path}: no certificate in it"));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("the system's trust store: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_chooses_the_mode_and_keeps_what_tokio_postgres_reads() {
        let plain = "postgres://u:p@h:5432/db";
        assert_eq!(split_url(plain).unwrap(), (plain.into(), TlsMode::Plain));
        assert_eq!(
            split_url("postgres://h/db?sslmode=prefer&connect_timeout=3").unwrap(),
            ("postgres://h/db?connect_timeout=3".into(), TlsMode::Plain)
        );
        assert_eq!(
            split_url("postgres://h/db?sslmode=verify-full&sslrootcert=/ca.pem").unwrap(),
            (
                "postgres://h/db?sslmode=require".into(),
                TlsMode::Verified {
                    root_cert: Some("/ca.pem".into())
                }
            )
        );
        assert_eq!(
            split_url("postgres://h/db?sslmode=require").unwrap().1,
            TlsMode::Verified { root_cert: None }
        );
        assert!(split_url("postgres://h/db?sslmode=sometimes").is_err());
        assert!(split_url("postgres://h/db?sslrootcert=/ca.pem").is_err());
    }

    #[test]
    fn a_missing_or_empty_root_file_is_named() {
        let e = client_config(Some("/no/such/ca.pem")).unwrap_err();
        assert!(e.contains("/no/such/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("skald-empty-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let e = client_config(dir.to_str()).unwrap_err();
        std::fs::remove_file(&dir).unwrap();
        assert!(e.contains("no certificate"), "{e}");
    }
}
