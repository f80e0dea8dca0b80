//! TLS for the listeners: the HTTP API and the gRPC endpoint share one
//! rustls configuration, built once from PEM files at startup.
//!
//! [`TlsConfig`] names the files (the `[tls]` table of the configuration
//! file, or `skald serve` flags); [`TlsConfig::server_config`] reads and
//! checks them, so that a missing file, a file without a certificate or a
//! key that does not belong to the certificate is one clear error before
//! anything listens. With a client CA, the listeners require a client
//! certificate signed by it (mutual TLS): a client without one fails the
//! handshake and never reaches a handler.
//!
//! [`TlsListener`] accepts TCP connections and runs the handshakes in
//! tasks of their own, so a client that stalls mid-handshake delays nobody
//! else; at most [`MAX_HANDSHAKES`] run at once, each for at most
//! [`HANDSHAKE_TIMEOUT`]. Finished connections wait in a bounded channel
//! for the server to take them, as an axum [`Listener`] or as the stream
//! tonic serves ([`TlsListener::into_stream`]).
//!
//! Not here: certificate reloading, SNI with several certificates, client
//! identities as tenants (authentication is a separate concern).

use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// Handshakes in progress at once, per listener.
pub const MAX_HANDSHAKES: usize = 256;
/// Longest a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished connections waiting for the server to take them.
const READY_CONNECTIONS: usize = 64;

/// Where the listeners' certificate, key and (optional) client CA are.
/// All unset: plain TCP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM), leaf first.
    pub cert_file: Option<PathBuf>,
    /// The private key of that certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// CA certificates (PEM) that sign client certificates; set, every
    /// client must present one (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the TLS {what} file {path} holds no PEM {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("the TLS {what} file {path} is not valid PEM: {message}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("TLS needs both a certificate and a key file (only the {given} is set)")]
    Incomplete { given: &'static str },
    #[error("a TLS client CA needs a server certificate and key as well")]
    ClientCaWithoutCert,
    #[error("the TLS certificate {cert} and key {key} cannot be used together: {message}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("the TLS client CA file {path} cannot be used: {message}")]
    ClientCa { path: PathBuf, message: String },
}

impl TlsConfig {
    /// Whether any TLS file is set.
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some() || self.client_ca_file.is_some()
    }

    /// Reads and checks the files; `None` when TLS is off.
    pub fn server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        let (cert_path, key_path) = match (&self.cert_file, &self.key_file) {
            (None, None) if self.client_ca_file.is_some() => {
                return Err(TlsError::ClientCaWithoutCert);
            }
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(TlsError::Incomplete {
                    given: "certificate",
                });
            }
            (None, Some(_)) => return Err(TlsError::Incomplete { given: "key" }),
            (Some(c), Some(k)) => (c, k),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = read_certs("certificate", cert_path)?;
        let key = read_key(key_path)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Unusable {
                cert: cert_path.clone(),
                key: key_path.clone(),
                message: e.to_string(),
            })?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(ca_path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs("client CA", ca_path)? {
                    roots.add(cert).map_err(|e| TlsError::ClientCa {
                        path: ca_path.clone(),
                        message: e.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::ClientCa {
                            path: ca_path.clone(),
                            message: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Unusable {
                cert: cert_path.clone(),
                key: key_path.clone(),
                message: e.to_string(),
            })?;
        // gRPC clients insist on HTTP/2; the HTTP API speaks both.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file("key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what: "key",
            path: path.to_path_buf(),
            expected: "private key",
        },
        other => TlsError::Pem {
            what: "key",
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
}

/// A TLS connection accepted by a [`TlsListener`].
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

/// Accepts TCP connections and hands out the ones whose TLS handshake
/// succeeded. Dropping it stops accepting.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsConn, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: AbortOnDrop,
}

impl TlsListener {
    /// Starts accepting on `listener` (inside a tokio runtime).
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_CONNECTIONS);
        let acceptor = AbortOnDrop(tokio::spawn(accept_loop(
            listener,
            tokio_rustls::TlsAcceptor::from(config),
            tx,
        )));
        Ok(TlsListener {
            ready,
            local_addr,
            acceptor,
        })
    }

    /// The connections as the stream tonic's `serve_with_incoming` takes.
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = io::Result<TlsConn>> {
        let acceptor = self.acceptor;
        let ready = tokio_stream::wrappers::ReceiverStream::new(self.ready);
        tokio_stream::StreamExt::map(ready, move |(conn, _)| {
            // The stream owns the acceptor: dropping it stops accepting.
            let _owner = &acceptor;
            Ok(conn)
        })
    }
}

/// Aborts the accepting task when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsConn, SocketAddr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The acceptor ended (only when aborted): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ready: mpsc::Sender<(TlsConn, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small replies (tail entries, acks) go out at once.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            drop(permit);
            match handshake {
                Ok(Ok(tls)) => {
                    let _ = ready.send((TlsConn(tls), peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn off_without_files_and_incomplete_settings_are_refused() {
        assert!(TlsConfig::default().server_config().unwrap().is_none());
        let only_cert = TlsConfig {
            cert_file: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            only_cert.server_config(),
            Err(TlsError::Incomplete {
                given: "certificate"
            })
        ));
        let only_ca = TlsConfig {
            client_ca_file: Some("ca.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            only_ca.server_config(),
            Err(TlsError::ClientCaWithoutCert)
        ));
    }

    #[test]
    fn unreadable_and_empty_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsConfig {
            cert_file: Some(dir.path().join("nope.pem")),
            key_file: Some(dir.path().join("nope.key")),
            client_ca_file: None,
        };
        let err = missing.server_config().unwrap_err();
        assert!(matches!(
            err,
            TlsError::Read {
                what: "certificate",
                ..
            }
        ));
        assert!(err.to_string().contains("nope.pem"), "{err}");

        let not_pem = TlsConfig {
            cert_file: Some(write(dir.path(), "c.pem", "hello\n")),
            key_file: Some(write(dir.path(), "k.pem", "hello\n")),
            client_ca_file: None,
        };
        let err = not_pem.server_config().unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Empty {
                    what: "certificate",
                    ..
                }
            ),
            "{err}"
        );
    }
}
