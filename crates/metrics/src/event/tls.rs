//! TLS client settings of the event sources, on rustls with ring (the provider every TLS client of
//! the workspace uses). Two levels of trust:
//! - [`Verification::None`]: the connection is encrypted but the server's certificate is not
//!   checked (libpq's `require`; it protects against eavesdropping, not an active impostor);
//! - [`Verification::Full`]: the chain must lead to a trusted root and the certificate must name
//!   the host connected to (libpq's `verify-full`).
//!
//! Trusted roots are the system's (read once per process) plus, optionally, the PEM certificates
//! of a CA given in the credentials Secret.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::ReadError;

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verification {
    /// Encrypt only: any certificate is accepted (its handshake signature is still checked).
    None,
    /// Chain to a trusted root and host name.
    Full,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, loaded once (certificates that fail to parse are skipped; an empty
/// store is possible on a minimal image, where a CA from the Secret is then the only trust).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::debug!(error = %e, "skipping a system root certificate");
        }
        loaded.certs
    })
}

/// The PEM certificates of `pem` (an error naming `what` when there are none or one is broken).
pub(crate) fn parse_ca(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, ReadError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ReadError::InvalidSpec(format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ReadError::InvalidSpec(format!(
            "{what}: holds no PEM certificate"
        )));
    }
    Ok(certs)
}

/// A short digest of `certs` (for cache keys: two different CAs never share a connection).
pub(crate) fn fingerprint(certs: &[CertificateDer<'static>]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in certs {
        context.update(cert.as_ref());
    }
    let digest = context.finish();
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A client configuration for `verification`, trusting the system roots plus `extra_ca` (already
/// parsed with [`parse_ca`]).
pub(crate) fn client_config(
    verification: Verification,
    extra_ca: &[CertificateDer<'static>],
) -> Result<ClientConfig, ReadError> {
    client_config_with_identity(verification, extra_ca, None)
}

/// [`client_config`] that also presents `identity` (a certificate chain and its private key) when
/// the server asks for a client certificate.
pub(crate) fn client_config_with_identity(
    verification: Verification,
    extra_ca: &[CertificateDer<'static>],
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, ReadError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ReadError::InvalidSpec(format!("TLS settings: {e}")))?;
    let builder = match verification {
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly::new())),
        Verification::Full => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(system_roots().iter().cloned());
            for cert in extra_ca {
                roots.add(cert.clone()).map_err(|e| {
                    ReadError::InvalidSpec(format!("TLS CA certificate not usable: {e}"))
                })?;
            }
            builder.with_root_certificates(roots)
        }
    };
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ReadError::InvalidSpec(format!("TLS client certificate not usable: {e}"))),
    }
}

/// Accepts any server certificate, checking only that the server holds its key.
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl EncryptOnly {
    fn new() -> EncryptOnly {
        EncryptOnly {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for EncryptOnly {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ca_rejects_text_without_certificates() {
        assert!(matches!(
            parse_ca("not a certificate", "secret x key ca.crt"),
            Err(ReadError::InvalidSpec(m)) if m.contains("holds no PEM certificate")
        ));
    }

    #[test]
    fn both_verifications_build_a_configuration() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = parse_ca(&cert.cert.pem(), "test").unwrap();
        assert_eq!(ca.len(), 1);
        client_config(Verification::Full, &ca).unwrap();
        client_config(Verification::None, &[]).unwrap();
    }
}
