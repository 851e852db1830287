//! TLS client settings of the event sources, on rustls with ring (the provider every TLS client of
//! the workspace uses). Two levels of trust:
//! - [`Verification::None`]: the connection is encrypted but the server's certificate is not
//!   checked (libpq's `require`; it protects against eavesdropping, not an active impostor);
//! - [`Verification::Full`]: the chain must lead to a trusted root and the certificate must name
//!   the host connected to (libpq's `verify-full`).
//!
//! Trusted roots are the system's (read once per process) plus, optionally, the PEM certificates
//! of a CA given in the credentials Secret. The same Secret may hold a client certificate and its
//! key, presented to servers that ask for one (mutual TLS); see [`TlsMaterial`].

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::ReadError;
use crate::secrets::SecretData;

/// Secret keys of a CA to trust: cert-manager's and `kubernetes.io/tls` Secrets' name, then KEDA's.
pub(crate) const CA_KEYS: [&str; 2] = ["ca.crt", "ca"];
/// Secret keys of a client certificate chain (PEM).
pub(crate) const CERT_KEYS: [&str; 2] = ["tls.crt", "cert"];
/// Secret keys of the client certificate's private key (PEM, unencrypted).
pub(crate) const KEY_KEYS: [&str; 2] = ["tls.key", "key"];

/// The TLS material of a credentials Secret: a CA to trust (besides the system roots) and a
/// client certificate with its key. Every part is optional; all given parts are checked to parse.
#[derive(Default)]
pub(crate) struct TlsMaterial {
    /// The CA's certificates, parsed, and its PEM text (for clients that take PEM).
    pub(crate) ca: Vec<CertificateDer<'static>>,
    pub(crate) ca_pem: Option<String>,
    /// Where the CA was read, for messages: `key "ca.crt" of Secret ns/name`.
    ca_origin: Option<String>,
    pub(crate) client: Option<ClientCertificate>,
}

/// A client certificate chain and its private key, parsed and as PEM.
pub(crate) struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// The first of `keys` the Secret holds, with its value.
fn first_key<'a>(
    s: &'a SecretData,
    keys: &[&'static str],
) -> Result<Option<(&'static str, &'a str)>, ReadError> {
    for key in keys {
        if let Some(value) = s.get(key)? {
            return Ok(Some((key, value)));
        }
    }
    Ok(None)
}

impl TlsMaterial {
    /// The CA and client certificate of Secret `s` (keys [`CA_KEYS`], [`CERT_KEYS`],
    /// [`KEY_KEYS`]). A certificate without its key (or the reverse) or text that does not parse
    /// is an error naming the Secret and the key.
    pub(crate) fn from_secret(s: &SecretData) -> Result<TlsMaterial, ReadError> {
        let mut material = TlsMaterial::default();
        if let Some((key, pem)) = first_key(s, &CA_KEYS)? {
            material.ca =
                parse_ca(pem, &format!("key {key:?}")).map_err(|e| s.invalid(e.to_string()))?;
            material.ca_pem = Some(pem.to_owned());
            material.ca_origin = Some(s.describe_key(key));
        }
        match (first_key(s, &CERT_KEYS)?, first_key(s, &KEY_KEYS)?) {
            (None, None) => {}
            (Some((key, _)), None) => {
                return Err(s.invalid(format!(
                    "key {key:?} holds a client certificate but the Secret has no key tls.key (or key) with its private key"
                )));
            }
            (None, Some((key, _))) => {
                return Err(s.invalid(format!(
                    "key {key:?} holds a private key but the Secret has no key tls.crt (or cert) with its client certificate"
                )));
            }
            (Some((cert_key, cert_pem)), Some((key_key, key_pem))) => {
                let chain = parse_ca(cert_pem, &format!("key {cert_key:?}"))
                    .map_err(|e| s.invalid(e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
                    s.invalid(format!(
                        "key {key_key:?}: not an unencrypted PEM private key: {e}"
                    ))
                })?;
                material.client = Some(ClientCertificate {
                    chain,
                    key,
                    cert_pem: cert_pem.to_owned(),
                    key_pem: key_pem.to_owned(),
                });
            }
        }
        Ok(material)
    }

    /// Whether the Secret held no TLS material at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.ca.is_empty() && self.client.is_none()
    }

    /// A short digest of the material (for cache keys: two different CAs, client certificates
    /// or keys never share a connection).
    pub(crate) fn fingerprint(&self) -> String {
        let mut parts = self.ca.clone();
        if let Some(c) = &self.client {
            parts.extend(c.chain.iter().cloned());
            parts.push(CertificateDer::from(c.key.secret_der().to_vec()));
        }
        fingerprint(&parts)
    }

    /// `message` (a failed TLS connection's) with what to check: the CA that did not verify the
    /// server, or the client certificate a server asked for and did not get (some servers, as
    /// RabbitMQ, only reset the connection then: the hint says "may").
    pub(crate) fn explain(&self, message: &str) -> String {
        let text = message.to_ascii_lowercase();
        let hint = if text.contains("unknownissuer") || text.contains("unknown issuer") {
            match &self.ca_origin {
                Some(origin) => format!(
                    "the server's certificate does not chain to the CA in {origin} (nor to a system root)"
                ),
                None => "the server's certificate does not chain to a system root: put its CA in the credentials Secret (key ca.crt)".into(),
            }
        } else if self.client.is_none()
            && (text.contains("certificaterequired")
                || text.contains("certificate required")
                || text.contains("handshakefailure"))
        {
            "the server requires a client certificate: put it in the credentials Secret (keys tls.crt and tls.key)".into()
        } else if self.client.is_none()
            && (text.contains("connection reset")
                || text.contains("broken pipe")
                || text.contains("unexpected eof"))
        {
            "the server closed the TLS connection: it may require a client certificate, which goes in the credentials Secret (keys tls.crt and tls.key)".into()
        } else if self.client.is_some()
            && (text.contains("unknownca")
                || text.contains("badcertificate")
                || text.contains("decrypterror"))
        {
            "the server refused the client certificate of the credentials Secret (keys tls.crt and tls.key)".into()
        } else {
            return message.to_owned();
        };
        format!("{message} ({hint})")
    }
}

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

/// A client configuration for `verification`, trusting the system roots plus the material's CA and
/// presenting its client certificate when it has one.
pub(crate) fn client_config(
    verification: Verification,
    material: &TlsMaterial,
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
            for cert in &material.ca {
                roots.add(cert.clone()).map_err(|e| {
                    ReadError::InvalidSpec(format!("TLS CA certificate not usable: {e}"))
                })?;
            }
            builder.with_root_certificates(roots)
        }
    };
    match &material.client {
        None => Ok(builder.with_no_client_auth()),
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .map_err(|e| {
                ReadError::InvalidSpec(format!(
                    "TLS client certificate and key (tls.crt, tls.key) not usable together: {e}"
                ))
            }),
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

    fn secret(data: &[(&str, &str)]) -> SecretData {
        let data = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        SecretData::new("ns", "creds", data)
    }

    #[test]
    fn both_verifications_build_a_configuration() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let material = TlsMaterial::from_secret(&secret(&[("ca.crt", &cert.cert.pem())])).unwrap();
        assert_eq!(material.ca.len(), 1);
        assert!(material.client.is_none());
        client_config(Verification::Full, &material).unwrap();
        client_config(Verification::None, &TlsMaterial::default()).unwrap();
    }

    #[test]
    fn a_client_certificate_is_presented_and_changes_the_fingerprint() {
        let cert = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
        let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
        let material =
            TlsMaterial::from_secret(&secret(&[("tls.crt", &cert_pem), ("key", &key_pem)]))
                .unwrap();
        assert!(material.client.is_some() && !material.is_empty());
        assert_ne!(material.fingerprint(), TlsMaterial::default().fingerprint());
        let config = client_config(Verification::Full, &material).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn half_a_client_certificate_names_the_missing_key() {
        let cert = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
        let only_cert = TlsMaterial::from_secret(&secret(&[("tls.crt", &cert.cert.pem())]));
        assert!(
            matches!(&only_cert, Err(e) if e.to_string().contains("no key tls.key")),
            "{:?}",
            only_cert.err()
        );
        let bad_key =
            TlsMaterial::from_secret(&secret(&[("cert", &cert.cert.pem()), ("key", "nope")]));
        assert!(matches!(&bad_key, Err(e) if e.to_string().contains("\"key\"")));
    }

    #[test]
    fn explanations_name_the_secret_key() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let material = TlsMaterial::from_secret(&secret(&[("ca", &cert.cert.pem())])).unwrap();
        let text = material.explain("invalid peer certificate: UnknownIssuer");
        assert!(text.contains("key \"ca\" of Secret ns/creds"), "{text}");
        let text = material.explain("received fatal alert: CertificateRequired");
        assert!(text.contains("requires a client certificate"), "{text}");
        let text = material.explain("IO error: Connection reset by peer (os error 104)");
        assert!(text.contains("may require a client certificate"), "{text}");
        assert_eq!(material.explain("connection refused"), "connection refused");
    }
}
