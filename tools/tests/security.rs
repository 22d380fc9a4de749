//! raftctl and raft-bench against secured nodes: a password on the `default` user and a
//! data-role user (NOAUTH, WRONGPASS and NOPERM said clearly), and a TLS client port
//! (verified against the right CA, refused with the wrong one or none).

mod support;

use std::path::Path;

use support::{
    RAFT_BENCH, RAFTCTL, Setup, TestCluster, certs, hash_password, run, run_until_ok, stderr,
    stdout,
};
use tools::resp::Credentials;

const ADMIN_PW: &str = "admin-secret";
const APP_PW: &str = "app-secret";

/// The node that answers as a follower in a status table.
fn a_follower(table: &str) -> String {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|r| r.get(2) == Some(&"follower"))
        .map(|r| r[0].to_owned())
        .unwrap_or_else(|| panic!("no follower in\n{table}"))
}

#[test]
fn raftctl_needs_the_password_and_a_data_user_may_not_administer() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("users.toml");
    std::fs::write(
        &config,
        format!(
            "[[users]]\nname = \"app\"\nrole = \"data\"\npassword_hash = \"{}\"\n",
            hash_password(APP_PW)
        ),
    )
    .unwrap();
    let c = TestCluster::start_with(Setup {
        args: vec!["--config".into(), config.display().to_string()],
        env: vec![("RAFT_REQUIREPASS".into(), ADMIN_PW.into())],
        credentials: Some(Credentials {
            user: None,
            password: ADMIN_PW.into(),
        }),
        ..Setup::default()
    });
    let addrs = c.addrs();
    let first = addrs.split(',').next().unwrap().to_owned();

    // No password: every node says NOAUTH, raftctl says what to do.
    let out = run(RAFTCTL, &["--nodes", &addrs, "status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "node at {first} requires a password: pass --password or set RAFT_PASSWORD"
        )),
        "{}",
        stderr(&out)
    );
    let out = run(RAFTCTL, &["--nodes", &addrs, "snapshot", "1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("requires a password: pass --password or set RAFT_PASSWORD"));

    // The default user's password, as a flag and from the environment.
    let out = run_until_ok(
        RAFTCTL,
        &["--nodes", &addrs, "--password", ADMIN_PW, "status"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let table = stdout(&out);
    assert!(table.starts_with("ID  ADDRESS"), "{table}");
    assert!(table.contains("; 3 of 3 nodes answered; ok"), "{table}");
    let out = run(
        RAFTCTL,
        &["status", "--nodes", &addrs],
        &[("RAFT_PASSWORD", ADMIN_PW)],
    );
    assert_eq!(out.status.code(), Some(0));

    // A wrong password: refused by name, and never echoed.
    let out = run(
        RAFTCTL,
        &["--nodes", &addrs, "--password", "not-it", "status"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("authentication failed: WRONGPASS"), "{err}");
    assert!(!err.contains("not-it") && !stdout(&out).contains("not-it"));

    // The data user sees the status but may not move leadership.
    let out = run_until_ok(
        RAFTCTL,
        &["--nodes", &addrs, "--user", "app", "status"],
        &[("RAFT_PASSWORD", APP_PW)],
    );
    assert_eq!(out.status.code(), Some(0));
    let follower = a_follower(&stdout(&out));
    let out = run(
        RAFTCTL,
        &[
            "--nodes",
            &addrs,
            "--user",
            "app",
            "--password",
            APP_PW,
            "transfer-leader",
            &follower,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refused: NOPERM User app"), "{err}");
    assert!(!err.contains(APP_PW));

    // raft-bench logs every connection in, and says when it was not told how.
    let load = [
        "--nodes",
        &addrs,
        "--duration",
        "1",
        "--warmup",
        "0",
        "--clients",
        "2",
    ];
    let out = run(RAFT_BENCH, &load, &[("RAFT_PASSWORD", ADMIN_PW)]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let all = text.lines().find(|l| l.starts_with("ALL ")).unwrap();
    assert_eq!(all.split_whitespace().nth(3), Some("0"), "errors:\n{text}");
    let out = run(RAFT_BENCH, &load, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains(&format!(
        "node at {first}: requires a password: pass --password or set RAFT_PASSWORD"
    )));
}

/// `raft-node run` flags of a TLS client port on 127.0.0.1:`port` with the certificate in
/// `certs`.
fn tls_port_args(certs: &Path, port: u16) -> Vec<String> {
    vec![
        "--client-tls-addr".into(),
        format!("127.0.0.1:{port}"),
        "--client-tls-cert".into(),
        certs.join("client-port.crt").display().to_string(),
        "--client-tls-key".into(),
        certs.join("client-port.key").display().to_string(),
    ]
}

#[test]
fn raftctl_and_raft_bench_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    certs(
        &tls,
        &[
            "--client-port-names",
            "127.0.0.1,localhost",
            "--clients",
            "app",
        ],
    );
    let other = dir.path().join("other");
    certs(&other, &[]);
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            let a = support::dead_addr();
            a.rsplit(':').next().unwrap().parse().unwrap()
        })
        .collect();
    let c = TestCluster::start_with(Setup {
        node_args: (1..=3)
            .map(|id| (id, tls_port_args(&tls, ports[id as usize - 1])))
            .collect(),
        ..Setup::default()
    });
    let tls_addrs = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let ca = tls.join("ca.crt").display().to_string();

    let out = run_until_ok(
        RAFTCTL,
        &["--nodes", &tls_addrs, "--tls", "--cacert", &ca, "status"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let table = stdout(&out);
    assert!(
        table.contains(&format!(" 127.0.0.1:{} ", ports[0])),
        "{table}"
    );
    assert!(table.contains("; 3 of 3 nodes answered; ok"), "{table}");
    // By name, with a client certificate the port does not ask for.
    let out = run(
        RAFTCTL,
        &[
            "--nodes",
            &tls_addrs,
            "status",
            "--tls",
            "--cacert",
            &ca,
            "--sni",
            "localhost",
            "--cert",
            &tls.join("client-app.crt").display().to_string(),
            "--key",
            &tls.join("client-app.key").display().to_string(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // No CA, another CA, a certificate without its key, TLS to a plain port.
    let out = run(RAFTCTL, &["--nodes", &tls_addrs, "--tls", "status"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tls needs --cacert FILE"));
    let wrong = other.join("ca.crt").display().to_string();
    let out = run(
        RAFTCTL,
        &["--nodes", &tls_addrs, "--tls", "--cacert", &wrong, "status"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "TLS handshake with 127.0.0.1:{} failed: invalid peer certificate",
            ports[0]
        )),
        "{err}"
    );
    let out = run(
        RAFTCTL,
        &[
            "--nodes", &tls_addrs, "--tls", "--cacert", &ca, "--cert", &ca, "status",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--cert needs --key"));
    let out = run(
        RAFTCTL,
        &[
            "--nodes",
            &c.addrs(),
            "--tls",
            "--cacert",
            &ca,
            "snapshot",
            "1",
        ],
        &[],
    );
    // The plain port may refuse the handshake or wait for more: either way, no answer.
    assert_eq!(out.status.code(), Some(1));

    // Load over TLS: no errors.
    let out = run(
        RAFT_BENCH,
        &[
            "--nodes",
            &tls_addrs,
            "--tls",
            "--cacert",
            &ca,
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--clients",
            "4",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let all: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("ALL "))
        .unwrap_or_else(|| panic!("no ALL row:\n{text}"))
        .split_whitespace()
        .collect();
    assert!(all[1].parse::<u64>().unwrap() > 0, "ops:\n{text}");
    assert_eq!(all[3], "0", "errors:\n{text}");
    let out = run(
        RAFT_BENCH,
        &[
            "--nodes",
            &tls_addrs,
            "--tls",
            "--cacert",
            &wrong,
            "--duration",
            "1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("invalid peer certificate"));
    // The local cluster is plain: refused before anything starts.
    let out = run(RAFT_BENCH, &["--tls", "--cacert", &ca], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tls needs --nodes"));
}

#[test]
fn a_port_that_verifies_clients_needs_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    certs(
        &tls,
        &["--client-port-names", "127.0.0.1", "--clients", "app"],
    );
    let port = |_| -> u16 {
        let a = support::dead_addr();
        a.rsplit(':').next().unwrap().parse().unwrap()
    };
    let ports: Vec<u16> = (0..3).map(port).collect();
    let ca = tls.join("ca.crt").display().to_string();
    let _c = TestCluster::start_with(Setup {
        node_args: (1..=3)
            .map(|id| {
                let mut a = tls_port_args(&tls, ports[id as usize - 1]);
                a.extend(["--client-tls-ca".into(), ca.clone()]);
                (id, a)
            })
            .collect(),
        ..Setup::default()
    });
    let tls_addrs = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");

    let out = run(
        RAFTCTL,
        &[
            "--nodes", &tls_addrs, "--tls", "--cacert", &ca, "snapshot", "1",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("TLS error from 127.0.0.1:{}", ports[0])),
        "{err}"
    );
    let cert = tls.join("client-app.crt").display().to_string();
    let key = tls.join("client-app.key").display().to_string();
    let out = run_until_ok(
        RAFTCTL,
        &[
            "--nodes", &tls_addrs, "--tls", "--cacert", &ca, "--cert", &cert, "--key", &key,
            "status",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
}
