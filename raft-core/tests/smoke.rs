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
