//! TLS on the client port (rustls, so `redis-cli --tls` and Redis client libraries with TLS
//! connect): the server's certificate chain and key from PEM files and, when a CA is given,
//! client certificates required and verified against it. TLS 1.2 and 1.3, as Redis offers.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::error::NodeError;

/// Builds the acceptor of the TLS client port.
pub(crate) fn acceptor(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<TlsAcceptor, NodeError> {
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        NodeError::Config(format!("client TLS: {}: {e}", what.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, &e))?;
    if chain.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| NodeError::Config(format!("client TLS: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| bad(ca, &e))? {
                roots
                    .add(c.map_err(|e| bad(ca, &e))?)
                    .map_err(|e| bad(ca, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad(ca, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| bad(cert, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
