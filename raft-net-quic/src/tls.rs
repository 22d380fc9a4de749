//! Mutual TLS for peer connections: both sides present a certificate from the cluster CA,
//! and the certificate must name the node it speaks for (`node-<id>`).
//!
//! The dialer checks the acceptor through the TLS server name (`node-<id>` of the peer it
//! meant to reach). The acceptor checks the dialer's certificate chain during the handshake
//! and, once the dialer says which node it is, that the certificate names that node
//! ([`cert_names_node`]). Every refusal is logged and counted (`raft_net_tls_refused_total`).

use crate::certs::node_name;
use raft_core::NodeId;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The ALPN protocol of the peer transport.
pub(crate) const ALPN: &[u8] = b"raft-peer/1";

/// Why TLS material could not be loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// PEM data holds no usable certificate or key.
    #[error("{what}: {detail}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Config(String),
}

/// What a node needs to authenticate itself and its peers: the cluster CA certificate, its
/// own certificate and its private key.
#[derive(Debug)]
pub struct TlsIdentity {
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// From PEM text.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<TlsIdentity, TlsError> {
        let pem = |what: &'static str| {
            move |e: rustls::pki_types::pem::Error| TlsError::Pem {
                what,
                detail: e.to_string(),
            }
        };
        let ca =
            CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(pem("CA certificate"))?;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem("node certificate"))?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                what: "node certificate",
                detail: "no certificate found".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem("node key"))?;
        Ok(TlsIdentity { ca, chain, key })
    }

    /// From the files [`crate::certs::write_cluster_certs`] writes: `dir/ca.crt`,
    /// `dir/node-<id>.crt` and `dir/node-<id>.key`.
    pub fn load(dir: &Path, id: NodeId) -> Result<TlsIdentity, TlsError> {
        let read = |name: String| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| TlsError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let base = node_name(id);
        TlsIdentity::from_pem(
            &read("ca.crt".into())?,
            &read(format!("{base}.crt"))?,
            &read(format!("{base}.key"))?,
        )
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
        Ok(Arc::new(roots))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn refused(side: &'static str, err: &rustls::Error) {
    tracing::warn!(side, error = %err, "refused a peer certificate");
    metrics::counter!("raft_net_tls_refused_total", "side" => side).increment(1);
}

/// The acceptor's view of dialers: WebPKI against the cluster CA, with refusals counted.
#[derive(Debug)]
struct CountingClientVerifier(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for CountingClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| refused("accept", e))
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The dialer's view of acceptors: WebPKI against the cluster CA and the expected
/// `node-<id>` name, with refusals counted.
#[derive(Debug)]
struct CountingServerVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for CountingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| refused("dial", e))
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

pub(crate) fn server_crypto(id: &TlsIdentity) -> Result<rustls::ServerConfig, TlsError> {
    let cfg = |e: rustls::Error| TlsError::Config(e.to_string());
    let verifier = WebPkiClientVerifier::builder_with_provider(id.roots()?, provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(cfg)?
        .with_client_cert_verifier(Arc::new(CountingClientVerifier(verifier)))
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(cfg)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

pub(crate) fn client_crypto(id: &TlsIdentity) -> Result<rustls::ClientConfig, TlsError> {
    let cfg = |e: rustls::Error| TlsError::Config(e.to_string());
    let verifier = WebPkiServerVerifier::builder_with_provider(id.roots()?, provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(cfg)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CountingServerVerifier(verifier)))
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
        .map_err(cfg)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Does the (already chain-verified) certificate name node `id`?
pub(crate) fn cert_names_node(cert: &CertificateDer<'_>, id: NodeId) -> Result<(), String> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(node_name(id)).map_err(|e| e.to_string())?;
    rustls::client::verify_server_name(&parsed, &name).map_err(|e| e.to_string())
}
