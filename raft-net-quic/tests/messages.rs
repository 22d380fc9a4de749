//! Raft messages between two endpoints: every kind arrives intact, the replication stream
//! keeps order under load, forwarded requests get their answers.

mod support;

use bytes::Bytes;
use raft_core::{
    AppendEntries, AppendEntriesResponse, ConflictHint, Entry, Heartbeat, HeartbeatResponse,
    LogIndex, Message, MessageBody, NodeId, ReadIndexRequest, ReadIndexResponse, RequestVote,
    RequestVoteResponse, Term, TimeoutNow,
};
use raft_net_quic::SendError;
use raft_net_quic::certs::ClusterCa;
use std::time::Duration;
use support::{connected, deliver, pair};

fn bodies() -> Vec<MessageBody> {
    vec![
        MessageBody::RequestVote(RequestVote {
            pre_vote: true,
            last_log_index: LogIndex(5),
            last_log_term: Term(2),
            transfer: false,
        }),
        MessageBody::RequestVote(RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(5),
            last_log_term: Term(2),
            transfer: false,
        }),
        MessageBody::RequestVote(RequestVote {
            pre_vote: false,
            last_log_index: LogIndex(5),
            last_log_term: Term(2),
            transfer: true,
        }),
        MessageBody::TimeoutNow(TimeoutNow {}),
        MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote: false,
            granted: true,
        }),
        MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(4),
            prev_log_term: Term(3),
            entries: vec![
                Entry::new(Term(3), LogIndex(5), Bytes::from_static(b"hello")),
                Entry::new(Term(3), LogIndex(6), vec![7u8; 100_000]),
            ],
            leader_commit: LogIndex(4),
            commit_only: false,
        }),
        MessageBody::AppendEntriesResponse(AppendEntriesResponse {
            index: LogIndex(9),
            reject: Some(ConflictHint {
                term: Some(Term(2)),
                index: LogIndex(3),
                needs_snapshot: false,
            }),
        }),
        MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(7),
            read_round: 3,
        }),
        MessageBody::HeartbeatResponse(HeartbeatResponse { read_round: 3 }),
        MessageBody::ReadIndex(ReadIndexRequest {
            ctx: Bytes::from_static(b"ctx"),
        }),
        MessageBody::ReadIndexResponse(ReadIndexResponse {
            ctx: Bytes::from_static(b"ctx"),
            index: Some(LogIndex(12)),
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_kind_arrives_intact_both_ways() {
    let ca = ClusterCa::generate().unwrap();
    let (mut a, mut b) = pair(&ca);
    connected(&a, 2).await;
    for body in bodies() {
        let m = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: body.clone(),
        };
        assert_eq!(deliver(&a, &mut b, m.clone()).await, m);
        let back = Message {
            from: NodeId(2),
            to: NodeId(1),
            ..m
        };
        assert_eq!(deliver(&b, &mut a, back.clone()).await, back);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_stream_keeps_order_under_load() {
    let ca = ClusterCa::generate().unwrap();
    let (a, mut b) = pair(&ca);
    connected(&a, 2).await;
    let n = 20_000u64;
    let sender = tokio::spawn(async move {
        let mut i = 1;
        while i <= n {
            let m = Message {
                from: NodeId(1),
                to: NodeId(2),
                term: Term(1),
                body: MessageBody::AppendEntries(AppendEntries {
                    prev_log_index: LogIndex(i - 1),
                    prev_log_term: Term(1),
                    entries: vec![Entry::new(Term(1), LogIndex(i), vec![i as u8; 512])],
                    leader_commit: LogIndex(0),
                    commit_only: false,
                }),
            };
            match a.t.send(m) {
                Ok(()) => i += 1,
                // The queue is bounded: wait for it to drain, as a leader would back off.
                Err(SendError::Full(_)) => tokio::time::sleep(Duration::from_millis(1)).await,
                Err(e) => panic!("send: {e}"),
            }
        }
        a
    });
    let mut next = 1;
    while next <= n {
        let m = tokio::time::timeout(Duration::from_secs(30), b.inbound.messages.recv())
            .await
            .expect("stalled")
            .expect("closed");
        let MessageBody::AppendEntries(ae) = m.body else {
            panic!("unexpected {m:?}")
        };
        assert_eq!(ae.entries[0].index, LogIndex(next), "out of order or lost");
        next += 1;
    }
    drop(sender.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_requests_get_their_answers() {
    let ca = ClusterCa::generate().unwrap();
    let (a, mut b) = pair(&ca);
    connected(&a, 2).await;
    let server = tokio::spawn(async move {
        while let Some(req) = b.inbound.forwards.recv().await {
            assert_eq!(req.from, NodeId(1));
            let mut resp = b"re: ".to_vec();
            resp.extend_from_slice(&req.body);
            req.reply(resp.into());
        }
    });
    let t = std::sync::Arc::new(a.t);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let t = t.clone();
        calls.spawn(async move {
            let body = Bytes::from(format!("SET k{i} v"));
            (i, t.forward(NodeId(2), body).await)
        });
    }
    while let Some(done) = calls.join_next().await {
        let (i, r) = done.unwrap();
        assert_eq!(r.unwrap(), Bytes::from(format!("re: SET k{i} v")));
    }
    assert!(matches!(
        t.forward(NodeId(9), Bytes::new()).await,
        Err(raft_net_quic::StreamError::UnknownPeer(_))
    ));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misaddressed_and_unknown_sends_are_refused() {
    let ca = ClusterCa::generate().unwrap();
    let (a, _b) = pair(&ca);
    let m = support::heartbeat(1, 7, 0);
    assert_eq!(a.t.send(m), Err(SendError::UnknownPeer(NodeId(7))));
    let huge = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(1),
        body: MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![Entry::new(Term(1), LogIndex(1), vec![0u8; 9 << 20])],
            leader_commit: LogIndex(0),
            commit_only: false,
        }),
    };
    assert!(matches!(a.t.send(huge), Err(SendError::TooLarge { .. })));
}
