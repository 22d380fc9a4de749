//! `raft-node dev` (the README's first command): it starts a local cluster, prints each
//! node's client address and a redis-cli line, serves writes and reads through any node, and
//! stops every node on SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{BIN, CONVERGE, Client, bulk, ok};

/// Stops `dev` (and so its nodes) if the test fails midway: SIGTERM, then SIGKILL.
struct Dev(std::process::Child);

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
        }
    }
}

#[test]
fn dev_starts_a_cluster_and_stops_it_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("raft-dev");
    let mut dev = Dev(Command::new(BIN)
        .args(["dev", "--nodes", "3", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let mut lines = BufReader::new(dev.0.stdout.take().unwrap()).lines();
    let mut ports = Vec::new();
    let mut try_line = None;
    while let Some(Ok(line)) = lines.next() {
        println!("{line}");
        if let Some(rest) = line.split("client 127.0.0.1:").nth(1) {
            let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
            ports.push(port);
        }
        if line.starts_with("try:") {
            try_line = Some(line);
            break;
        }
    }
    assert_eq!(ports.len(), 3, "three client addresses printed");
    let try_line = try_line.expect("a redis-cli line to try");
    assert!(
        try_line.contains(&format!("redis-cli -p {}", ports[0])),
        "{try_line}"
    );

    // Any node takes writes and serves reads.
    for (i, &port) in ports.iter().enumerate() {
        let key = format!("k{i}");
        let mut c = Client::connect(port);
        assert_eq!(c.cmd_retry(&["SET", &key, "v"], CONVERGE), ok());
    }
    for &port in &ports {
        let mut c = Client::connect(port);
        for i in 0..3 {
            assert_eq!(c.cmd_retry(&["GET", &format!("k{i}")], CONVERGE), bulk("v"));
        }
    }

    // SIGTERM stops every node and then `dev` itself, cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &dev.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = dev.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dev did not exit within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "dev exited with {exit}");
    for &port in &ports {
        assert!(
            Client::try_connect(port).is_err(),
            "a node still listens on {port} after dev stopped"
        );
    }
    // Its logs and data stay for a look afterwards.
    assert!(dir.join("node-1.log").exists() && dir.join("node-1").is_dir());
}
