//! The webhook's TLS: a certificate read from a folder (`tls.crt`, `tls.key`, as cert-manager and
//! Kubernetes TLS Secrets lay them out), or one this process makes at start (a throwaway CA and a
//! serving certificate for `127.0.0.1`, `localhost` and the given DNS names), and a listener that
//! hands axum TLS streams.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A serving certificate and key (PEM), with the CA bundle clients must trust.
#[derive(Clone)]
pub struct Certificate {
    pub cert_pem: String,
    pub key_pem: String,
    /// The CA to put in the webhook configuration's `caBundle` (PEM).
    pub ca_pem: String,
}

/// Why the webhook's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("generating the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the webhook certificate or key is not usable: {0}")]
    Invalid(String),
}

impl Certificate {
    /// Reads `tls.crt` and `tls.key` from `dir` (`ca.crt` too when present; else the certificate
    /// is its own CA bundle).
    pub fn from_dir(dir: &Path) -> Result<Certificate, TlsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| TlsError::Read {
                path: format!("reading {}", path.display()),
                source,
            })
        };
        let cert_pem = read("tls.crt")?;
        let key_pem = read("tls.key")?;
        let ca_pem = read("ca.crt").unwrap_or_else(|_| cert_pem.clone());
        Ok(Certificate {
            cert_pem,
            key_pem,
            ca_pem,
        })
    }

    /// A new CA and a certificate it signs for 127.0.0.1, localhost and `dns_names`.
    pub fn generate(dns_names: &[String]) -> Result<Certificate, TlsError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ballast vertical webhook CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let mut names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        names.extend(dns_names.iter().cloned());
        let params = CertificateParams::new(names)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok(Certificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: ca.pem(),
        })
    }

    fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let invalid = |e: &dyn std::fmt::Display| TlsError::Invalid(e.to_string());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(&e))?;
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| invalid(&e))?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| invalid(&e))?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| invalid(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A TCP listener whose connections are TLS streams (the handshake is done in `accept`, with a
/// timeout; a failed one is logged and skipped). Handshakes one at a time hold back the API
/// server's new connections while one is under way, which keeps it reusing the ones it has:
/// handshakes in tasks of their own were measured worse (docs/vertical.md, "Through the API
/// server").
pub struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: Arc<AtomicU64>,
}

impl TlsListener {
    /// Binds `addr` with `certificate`.
    pub async fn bind(
        addr: SocketAddr,
        certificate: &Certificate,
    ) -> Result<TlsListener, TlsError> {
        let config = certificate.server_config()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| TlsError::Read {
                path: format!("binding {addr}"),
                source,
            })?;
        Ok(TlsListener {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshakes: Arc::default(),
        })
    }

    /// The number of TLS handshakes completed so far (connections served), read at any time
    /// through the returned handle: whether clients reuse their connections.
    pub fn handshakes(&self) -> Arc<AtomicU64> {
        self.handshakes.clone()
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Without TCP_NODELAY the response's TLS records wait on the peer's delayed ACK:
            // a third of admissions took over 5 ms through the API server even at 10 pods/s.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "webhook TCP_NODELAY not set");
            }
            let handshake = self.acceptor.accept(tcp);
            match tokio::time::timeout(Duration::from_secs(5), handshake).await {
                Ok(Ok(tls)) => {
                    self.handshakes.fetch_add(1, Ordering::Relaxed);
                    return (tls, peer);
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "webhook TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "webhook TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use rustls::pki_types::ServerName;

    /// A served connection has Nagle's algorithm off, so a response's TLS records leave at once.
    #[tokio::test]
    async fn served_connections_send_without_delay() {
        let certificate = Certificate::generate(&[]).expect("certificate");
        let mut listener = TlsListener::bind("127.0.0.1:0".parse().expect("addr"), &certificate)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(certificate.ca_pem.as_bytes()) {
            roots.add(ca.expect("ca")).expect("root");
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let connect = async {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let name = ServerName::try_from("127.0.0.1").expect("name");
            connector.connect(name, tcp).await.expect("handshake")
        };
        let (_client, (served, _)) = tokio::join!(connect, listener.accept());
        assert!(served.get_ref().0.nodelay().expect("nodelay"));
    }
}
