//! The rustls client configuration for vendor endpoints.
//!
//! The crypto provider is always `ring`, passed explicitly, so the result
//! does not depend on which rustls provider features other crates in the
//! build enable.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::TlsConfig;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot parse {what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} {} has no PEM certificates", path.display()));
    }
    Ok(certs)
}

/// Builds the client configuration (without ALPN, which the connector sets).
pub(crate) fn client_config(tls: Option<&TlsConfig>) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);

    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(ca) = &tls.ca_file {
            for c in read_certs(ca, "tls.ca_file")? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls.ca_file {}: {e}", ca.display()))?;
            }
        } else {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                // Skip the odd unparsable system certificate, as browsers do.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(
                    "no system root certificates found (is ca-certificates installed?); set tls.ca_file"
                        .into(),
                );
            }
        }
        builder.with_root_certificates(roots)
    };

    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "tls.cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read tls.key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.cert_file/key_file: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// `insecure_skip_verify`: accepts any server certificate, but still checks
/// the handshake signatures (so the session keys belong to whoever holds
/// the certificate's key, unverified as that is).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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
