//! TLS for `https` checks. A check asks whether the backend serves, not who it is: the
//! certificate chain is not verified (HAProxy's `check-ssl verify none`, what backends with
//! self-signed certificates need), but the handshake's signatures are, so the check does
//! speak TLS with the key the backend presented.

use std::sync::{Arc, OnceLock};

use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{WebPkiSupportedAlgorithms, ring, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::ProbeError;

/// Opens TLS on `stream`, naming `host` (a DNS name is sent as SNI; an address is not).
pub async fn connect(stream: TcpStream, host: &str) -> Result<TlsStream<TcpStream>, ProbeError> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| ProbeError::Tls(e.to_string()))?;
    let config = config().as_ref().map_err(|e| ProbeError::Tls(e.clone()))?;
    TlsConnector::from(config.clone()).connect(name, stream).await.map_err(|e| ProbeError::Tls(e.to_string()))
}

/// The one client config every check shares, built on first use (or why it cannot be).
fn config() -> &'static Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let provider = Arc::new(ring::default_provider());
        let verifier = Arc::new(AnyCertificate(provider.signature_verification_algorithms));
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Arc::new(config))
    })
}

/// Accepts any certificate; checks handshake signatures against it.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
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
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
