//! Client TLS for the remote commands: one rustls configuration, used by
//! the HTTP client (https://) and the tail websocket (wss://) alike, so
//! both trust the same CA and present the same client certificate.
//!
//! Without any TLS option, https:// uses the system's trust store (the
//! platform verifier). `--ca-cert` trusts that CA instead; `--cert` and
//! `--key` present a client certificate (mutual TLS);
//! `--insecure-skip-verify` accepts any server certificate, for tests and
//! first setups only (the handshake's signatures are still checked, the
//! certificate's issuer and name are not).
//!
//! Unreadable or malformed files are a bad command line (exit code 2),
//! reported before any request.

use super::Failure;
use clap::Args;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS options of the commands that talk to a server.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// CA certificate(s) (PEM) to trust for https:// and wss:// instead of
    /// the system's.
    #[arg(long, env = "SKALD_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key.
    #[arg(long, env = "SKALD_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate; needs --cert.
    #[arg(long, env = "SKALD_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Accept any server certificate (no issuer or name check). For tests
    /// only.
    #[arg(long, env = "SKALD_INSECURE_SKIP_VERIFY")]
    pub insecure_skip_verify: bool,
}

impl TlsArgs {
    fn is_set(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some() || self.insecure_skip_verify
    }
}

const EXIT_BAD_ARGS: u8 = 2;

fn bad(message: String) -> Failure {
    Failure {
        code: EXIT_BAD_ARGS,
        message,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The configuration the options ask for; `None` when there are none (the
/// HTTP client then keeps its own defaults).
pub fn client_config(args: &TlsArgs) -> Result<Option<rustls::ClientConfig>, Failure> {
    if !args.is_set() {
        return Ok(None);
    }
    build(args).map(Some)
}

/// The configuration for a wss:// connection: the options' or, without
/// any, the system's trust store.
pub fn websocket_config(args: &TlsArgs) -> Result<rustls::ClientConfig, Failure> {
    build(args)
}

fn build(args: &TlsArgs) -> Result<rustls::ClientConfig, Failure> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup: {e}")))?;
    let builder = if args.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider.clone())))
    } else if let Some(path) = &args.ca_cert {
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs("--ca-cert", path)? {
            roots
                .add(cert)
                .map_err(|e| bad(format!("--ca-cert {}: {e}", path.display())))?;
        }
        builder.with_root_certificates(roots)
    } else {
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| bad(format!("the system's trust store: {e}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
    };
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("--cert", cert)?;
            let key_der = read_key(key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                bad(format!(
                    "--cert {} and --key {} cannot be used together: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    // HTTP/1.1 for both: the HTTP client is built without HTTP/2, and a
    // websocket upgrade is an HTTP/1.1 request.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let pem = std::fs::read(path)
        .map_err(|e| bad(format!("cannot read {flag} file {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("{flag} file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(format!(
            "{flag} file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Failure> {
    let pem = std::fs::read(path)
        .map_err(|e| bad(format!("cannot read --key file {}: {e}", path.display())))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => bad(format!(
            "--key file {} holds no PEM private key",
            path.display()
        )),
        other => bad(format!("--key file {}: {other}", path.display())),
    })
}

/// `--insecure-skip-verify`: any certificate, any name; the handshake's
/// signatures are still verified, so the connection is at least to the
/// holder of the certificate's key.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_options_leave_the_client_alone() {
        assert!(client_config(&TlsArgs::default()).unwrap().is_none());
    }

    #[test]
    fn unreadable_or_empty_files_are_a_bad_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsArgs {
            ca_cert: Some(dir.path().join("absent.pem")),
            ..Default::default()
        };
        let err = client_config(&missing).unwrap_err();
        assert_eq!(err.code, EXIT_BAD_ARGS);
        assert!(err.message.contains("--ca-cert"), "{}", err.message);
        assert!(err.message.contains("absent.pem"), "{}", err.message);

        let text = dir.path().join("text.pem");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let empty = TlsArgs {
            ca_cert: Some(text),
            ..Default::default()
        };
        let err = client_config(&empty).unwrap_err();
        assert!(
            err.message.contains("no PEM certificate"),
            "{}",
            err.message
        );
    }

    #[test]
    fn skipping_verification_needs_no_files() {
        let args = TlsArgs {
            insecure_skip_verify: true,
            ..Default::default()
        };
        let config = client_config(&args).unwrap().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
