mod support;
use support::Net;

#[test]
fn three_nodes_elect_and_commit() {
    let mut net = Net::new(&[1, 2, 3]);
    let l = net.elect();
    let (idx, _) = net.propose(l, b"x").unwrap();
    net.stabilize();
    net.tick_all(2);
    net.stabilize();
    for id in 1..=3 {
        let n = net.node(id);
        assert!(
            n.applied
                .iter()
                .any(|e| e.index == idx && &e.data[..] == b"x"),
            "node {id}"
        );
    }
    net.assert_safe();
    println!("messages delivered: {}", net.delivered);
}

/// A transport that cannot deliver to a follower makes the leader stop pipelining to it; the
/// next round trip brings it back to replicating.
#[test]
fn report_unreachable_falls_back_to_probe() {
    use raft_core::{NodeId, ProgressState};
    let mut net = Net::new(&[1, 2, 3]);
    let l = net.elect();
    net.propose(l, b"x").unwrap();
    net.stabilize();
    let state_of = |net: &mut Net, peer: u64| {
        let raw = net.node(l).raw.as_ref().unwrap();
        raw.status()
            .peers
            .iter()
            .find(|p| p.id == NodeId(peer))
            .unwrap()
            .state
    };
    let f = if l == 1 { 2 } else { 1 };
    assert_eq!(state_of(&mut net, f), ProgressState::Replicate);
    net.node(l)
        .raw
        .as_mut()
        .unwrap()
        .report_unreachable(NodeId(f));
    assert_eq!(state_of(&mut net, f), ProgressState::Probe);
    net.propose(l, b"y").unwrap();
    net.stabilize();
    net.tick_all(2);
    net.stabilize();
    assert_eq!(state_of(&mut net, f), ProgressState::Replicate);
    net.assert_safe();
}
