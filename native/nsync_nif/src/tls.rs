//! TLS settings (pure): the rustls client configuration a link's sessions
//! use, built once from PEM bytes at `open/1`, and what a TLS failure is
//! called (`TlsError`, made a term by `reason.rs`). The TLS session itself
//! lives in the connection (`conn.rs`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;

/// Where trust comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Mozilla's roots, built in (webpki-roots).
    WellKnown,
    /// The CA certificates of this PEM.
    Pem(Vec<u8>),
    /// No verification at all (tests only).
    Nothing,
}

/// What `open/1`'s `tls` map says, decoded (`config.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub trust: Trust,
    /// A client certificate chain and its key, both PEM.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
    /// The name sent (SNI) and verified; `None`: the master's host.
    pub server_name: Option<String>,
}

/// A link's TLS settings, shared by its sessions.
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl Tls {
    pub fn new(options: TlsOptions) -> Result<Tls, TlsSetupError> {
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsSetupError::Rustls(err.to_string()))?;
        let builder = match &options.trust {
            Trust::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
            Trust::WellKnown => builder.with_root_certificates(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            Trust::Pem(pem) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(pem, "cacerts")? {
                    roots
                        .add(cert)
                        .map_err(|err| TlsSetupError::BadCertificate("cacerts", err.to_string()))?;
                }
                builder.with_root_certificates(roots)
            }
        };
        let config = match &options.client_auth {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates(cert, "cert")?;
                let key =
                    PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsSetupError::NoPrivateKey)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| TlsSetupError::BadCertificate("key", err.to_string()))?
            }
        };
        Ok(Tls {
            config: Arc::new(config),
            server_name: options.server_name,
        })
    }

    /// The name a session to `host` sends and verifies: the configured one,
    /// else the host (an IP address is verified as such, with no SNI).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::BadServerName(name.to_owned()))
    }
}

/// The certificates of a PEM; at least one.
fn certificates(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsSetupError::BadPem(what))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificates(what));
    }
    Ok(certs)
}

/// Why the TLS settings cannot be used (`open/1` fails with `{tls, _}`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlsSetupError {
    #[error("{0}: not PEM")]
    BadPem(&'static str),
    #[error("{0}: no certificate in the PEM")]
    NoCertificates(&'static str),
    #[error("key: no private key in the PEM")]
    NoPrivateKey,
    #[error("{0}: {1}")]
    BadCertificate(&'static str, String),
    #[error("{0}")]
    Rustls(String),
}

/// Why a session's TLS failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlsError {
    /// The server's certificate is not signed by a trusted CA.
    #[error("the master's certificate is signed by an unknown CA")]
    UnknownCa,
    #[error("the master's certificate has expired or is not valid yet")]
    CertificateExpired,
    #[error("the master's certificate is not valid for its name")]
    NameMismatch,
    #[error("bad certificate: {0}")]
    BadCertificate(String),
    /// The server sent this alert (snake_case, as TLS names it).
    #[error("the master sent the TLS alert {0}")]
    Alert(String),
    #[error("not a server name: {0}")]
    BadServerName(String),
    /// No TLS handshake within the connect timeout.
    #[error("TLS handshake timed out")]
    Timeout,
    /// The peer closed during the handshake.
    #[error("the master closed the connection during the TLS handshake")]
    Eof,
    #[error("{0}")]
    Other(String),
}

impl From<rustls::Error> for TlsError {
    fn from(err: rustls::Error) -> TlsError {
        use rustls::CertificateError as C;
        match err {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer => TlsError::UnknownCa,
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => TlsError::CertificateExpired,
                C::NotValidForName | C::NotValidForNameContext { .. } => TlsError::NameMismatch,
                other => TlsError::BadCertificate(format!("{other:?}")),
            },
            rustls::Error::AlertReceived(alert) => {
                TlsError::Alert(snake_case(&format!("{alert:?}")))
            }
            other => TlsError::Other(other.to_string()),
        }
    }
}

/// `CertificateRequired` -> `certificate_required`, `UnknownCA` ->
/// `unknown_ca`.
fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    let mut after_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && after_lower {
            out.push('_');
        }
        after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// `{verify, none}`: any certificate is accepted (signatures are still
/// checked, so the session is encrypted, but not authenticated).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        crypto::verify_tls12_signature(
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
        crypto::verify_tls13_signature(
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
    fn pem_errors_name_the_option() {
        let opts = |trust| TlsOptions {
            trust,
            client_auth: None,
            server_name: None,
        };
        assert_eq!(
            Tls::new(opts(Trust::Pem(b"no pem here".to_vec()))).err(),
            Some(TlsSetupError::NoCertificates("cacerts"))
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert_eq!(
            Tls::new(opts(Trust::Pem(broken.to_vec()))).err(),
            Some(TlsSetupError::BadPem("cacerts"))
        );
        assert!(Tls::new(opts(Trust::WellKnown)).is_ok());
        assert!(Tls::new(opts(Trust::Nothing)).is_ok());
    }

    #[test]
    fn server_names() {
        let tls = Tls::new(TlsOptions {
            trust: Trust::WellKnown,
            client_auth: None,
            server_name: None,
        })
        .unwrap();
        assert!(matches!(
            tls.server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            tls.server_name("redis.example"),
            Ok(ServerName::DnsName(_))
        ));
        assert_eq!(
            tls.server_name("bad name!").err(),
            Some(TlsError::BadServerName("bad name!".into()))
        );
    }

    #[test]
    fn alert_names() {
        assert_eq!(snake_case("CertificateRequired"), "certificate_required");
        assert_eq!(snake_case("UnknownCA"), "unknown_ca");
        let err = TlsError::from(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(err, TlsError::Alert("handshake_failure".into()));
        let err = TlsError::from(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(err, TlsError::UnknownCa);
    }
}
