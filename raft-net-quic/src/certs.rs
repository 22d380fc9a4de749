//! Certificates for a cluster: one CA, and one certificate per node that binds the node id as
//! the DNS name `node-<id>` (see [`node_name`]). Generated with rcgen (ECDSA P-256).

use raft_core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The subject of every cluster CA this crate makes (issuing needs it again later).
const CA_COMMON_NAME: &str = "raft cluster CA";

/// How long generated certificates are valid.
const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why a certificate could not be made, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// rcgen refused (bad key, bad parameters).
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{0}")]
    Pem(String),
    /// A certificate outside the peer transport was asked to carry a node's name: signed by
    /// the cluster CA, it would be taken as that node's identity on the Raft port.
    #[error("{0:?} is a node's name (node-<id>): only that node's certificate may carry it")]
    NodeName(String),
}

/// The DNS name a node's certificate carries: `node-<id>`.
pub fn node_name(id: NodeId) -> String {
    format!("node-{}", id.get())
}

/// Refuses names that [`ClusterCa::issue_named`] would refuse: a node's name.
pub fn check_names(names: &[String]) -> Result<(), CertError> {
    match names.iter().find(|n| is_node_name(n)) {
        Some(name) => Err(CertError::NodeName(name.clone())),
        None => Ok(()),
    }
}

/// Whether `name` has the form of a node's name, `node-<digits>` in any case (DNS names
/// compare without case).
fn is_node_name(name: &str) -> bool {
    name.get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("node-"))
        && name.len() > 5
        && name[5..].bytes().all(|b| b.is_ascii_digit())
}

/// A cluster certificate authority: signs node certificates.
pub struct ClusterCa {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

/// A node's certificate and private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct NodeCert {
    /// The node.
    pub id: NodeId,
    /// Its certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

fn ca_params() -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

impl ClusterCa {
    /// A new CA with a fresh key.
    pub fn generate() -> Result<ClusterCa, CertError> {
        let mut params = ca_params()?;
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + VALIDITY).into();
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(ClusterCa {
            params,
            key,
            cert_pem,
        })
    }

    /// A CA made by [`ClusterCa::generate`], from its PEM files, to issue more certificates.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        // Issuing needs the CA's name and key only; the name is fixed, the key identifier is
        // derived from the key, so certificates issued now chain to the stored CA certificate.
        Ok(ClusterCa {
            params: ca_params()?,
            key,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate (PEM): every node trusts it.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key (PEM): keep it off the nodes if you can.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for node `id`, valid for ten years.
    pub fn issue(&self, id: NodeId) -> Result<NodeCert, CertError> {
        let now = SystemTime::now();
        self.issue_valid(id, now - Duration::from_secs(3600), now + VALIDITY)
    }

    /// A certificate for node `id`, valid from `not_before` to `not_after`.
    pub fn issue_valid(
        &self,
        id: NodeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<NodeCert, CertError> {
        let name = node_name(id);
        let (cert_pem, key_pem) = self.sign(&name, vec![name.clone()], not_before, not_after)?;
        Ok(NodeCert {
            id,
            cert_pem,
            key_pem,
        })
    }

    /// A certificate for TLS outside the peer transport (a client port, a client), valid for
    /// ten years: `names` (DNS names or IP addresses) are its subject alternative names.
    /// Returns the certificate and the private key (PEM).
    ///
    /// A node's name (`node-<id>`) is refused ([`CertError::NodeName`]): the transport takes
    /// any certificate of the cluster CA that names `node-<id>` as node `<id>`, so a client
    /// holding one could join the cluster as that node.
    pub fn issue_named(
        &self,
        common_name: &str,
        names: &[String],
    ) -> Result<(String, String), CertError> {
        check_names(names)?;
        let now = SystemTime::now();
        self.sign(
            common_name,
            names.to_vec(),
            now - Duration::from_secs(3600),
            now + VALIDITY,
        )
    }

    fn sign(
        &self,
        common_name: &str,
        names: Vec<String>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<(String, String), CertError> {
        // rcgen makes an IP address SAN of a name that parses as one.
        let mut params = CertificateParams::new(names)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Both: a node accepts and dials; a client port serves, a client dials.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Writes `ca.crt`, `ca.key` and `node-<id>.crt` / `node-<id>.key` for each id into `dir`
/// (created if missing; keys readable by the owner only).
pub fn write_cluster_certs(dir: &Path, ids: &[NodeId]) -> Result<(), CertError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| CertError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca = ClusterCa::generate()?;
    write_file(&dir.join("ca.crt"), ca.cert_pem(), false)?;
    write_file(&dir.join("ca.key"), &ca.key_pem(), true)?;
    for &id in ids {
        let node = ca.issue(id)?;
        let base = node_name(id);
        write_file(&dir.join(format!("{base}.crt")), &node.cert_pem, false)?;
        write_file(&dir.join(format!("{base}.key")), &node.key_pem, true)?;
    }
    Ok(())
}

/// Writes `<base>.crt` and `<base>.key` into `dir`, signed by the CA there (`ca.crt`,
/// `ca.key`, as [`write_cluster_certs`] writes them); see [`ClusterCa::issue_named`].
pub fn write_named_cert(dir: &Path, base: &str, names: &[String]) -> Result<(), CertError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| CertError::Io {
            path: path.display().to_string(),
            source,
        })
    };
    let ca = ClusterCa::from_pem(&read("ca.crt")?, &read("ca.key")?)?;
    let (cert, key) = ca.issue_named(base, names)?;
    write_file(&dir.join(format!("{base}.crt")), &cert, false)?;
    write_file(&dir.join(format!("{base}.key")), &key, true)
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), CertError> {
    let err = |source| CertError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(err)?;
    std::io::Write::write_all(&mut f, contents.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_recognised_in_any_case() {
        for name in ["node-1", "NODE-2", "Node-0042"] {
            assert!(is_node_name(name), "{name}");
        }
        for name in [
            "node-",
            "node",
            "node-1a",
            "node-1.example",
            "mynode-1",
            "app",
            "n",
        ] {
            assert!(!is_node_name(name), "{name}");
        }
    }

    #[test]
    fn a_named_certificate_cannot_carry_a_node_name() {
        let ca = ClusterCa::generate().unwrap();
        let names = vec!["localhost".to_string(), "Node-3".to_string()];
        match ca.issue_named("client-port", &names) {
            Err(CertError::NodeName(n)) => assert_eq!(n, "Node-3"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(ca.issue_named("app", &["app".to_string()]).is_ok());
    }
}
