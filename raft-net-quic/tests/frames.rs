//! A peer with a valid certificate that sends bad frames: each bad stream is stopped with an
//! error code, the connection and the node carry on.

mod support;

use quinn::crypto::rustls::QuicClientConfig;
use raft_core::{NodeId, wire};
use raft_net_quic::certs::ClusterCa;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use support::{config, heartbeat, identity, start};

/// A bare QUIC client with node `id`'s certificate, to send whatever we like.
fn raw_client(ca: &ClusterCa, id: u64) -> quinn::Endpoint {
    let cert = ca.issue(NodeId(id)).unwrap();
    let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![b"raft-peer/1".to_vec()];
    let qc = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(qc);
    ep
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Opens a unidirectional stream, writes `bytes`, and returns the code the node stopped it
/// with (None if it did not within two seconds).
async fn stop_code(conn: &quinn::Connection, bytes: &[u8], finish: bool) -> Option<u64> {
    let mut s = conn.open_uni().await.unwrap();
    let _ = s.write_all(bytes).await;
    if finish {
        let _ = s.finish();
    }
    match tokio::time::timeout(Duration::from_secs(2), s.stopped()).await {
        Ok(Ok(Some(code))) => Some(code.into_inner()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_their_stream_only() {
    let ca = ClusterCa::generate().unwrap();
    let mut a = start(config(1, identity(&ca, 1)));
    // Node 2 is known to `a` (its address is irrelevant: we dial from a bare client).
    a.t.set_peer(NodeId(2), "127.0.0.1:9".parse().unwrap());
    let ep = raw_client(&ca, 2);
    let conn = ep.connect(a.addr, "node-1").unwrap().await.unwrap();
    // The hello: class 0, then a frame with magic, version and id.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut hello = vec![0u8];
    let mut payload = b"RAFT".to_vec();
    payload.extend_from_slice(&1u16.to_be_bytes());
    payload.extend_from_slice(&2u64.to_be_bytes());
    hello.extend(frame(&payload));
    send.write_all(&hello).await.unwrap();
    send.finish().unwrap();
    let ack = recv.read_to_end(64).await.unwrap();
    assert_eq!(ack, frame(b"OK"));

    // A length far above the maximum: refused before allocating.
    let mut huge = vec![1u8];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        stop_code(&conn, &huge, false).await,
        Some(10),
        "oversized frame"
    );
    // A frame that is not a message.
    let mut garbage = vec![1u8];
    garbage.extend(frame(b"\xff\xff\xff\xff not protobuf"));
    assert_eq!(
        stop_code(&conn, &garbage, false).await,
        Some(10),
        "undecodable frame"
    );
    // An unknown traffic class.
    assert_eq!(
        stop_code(&conn, &[42u8, 0, 0], false).await,
        Some(11),
        "unknown class"
    );
    // A stream that ends inside a frame.
    let mut cut = vec![2u8];
    cut.extend_from_slice(&100u32.to_be_bytes());
    cut.extend_from_slice(&[0u8; 10]);
    let _ = stop_code(&conn, &cut, true).await;

    // The connection and the node still work: a good heartbeat arrives.
    let mut good = vec![1u8];
    good.extend(frame(&wire::encode(&heartbeat(2, 1, 5))));
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&good).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), a.inbound.messages.recv())
        .await
        .expect("good message after bad frames")
        .unwrap();
    assert_eq!(got, heartbeat(2, 1, 5));
    // A message that claims to be from another node is dropped, not delivered.
    let mut forged = vec![1u8];
    forged.extend(frame(&wire::encode(&heartbeat(3, 1, 6))));
    forged.extend(frame(&wire::encode(&heartbeat(2, 1, 7))));
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&forged).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), a.inbound.messages.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, heartbeat(2, 1, 7), "the forged message got through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused() {
    let ca = ClusterCa::generate().unwrap();
    let (a, mut b) = support::pair(&ca);
    support::connected(&a, 2).await;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"raft-peer/1".to_vec()];
    let qc = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(qc);
    let refused = async {
        let conn = ep.connect(a.addr, "node-1").unwrap().await?;
        // TLS 1.3 clients learn of a refused certificate only when they use the connection.
        let (mut s, mut r) = conn.open_bi().await?;
        s.write_all(b"\x00").await?;
        r.read_to_end(64).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    assert!(
        refused.await.is_err(),
        "a client without a certificate got in"
    );
    // The node is unaffected.
    let m = heartbeat(1, 2, 3);
    assert_eq!(support::deliver(&a, &mut b, m.clone()).await, m);
}
