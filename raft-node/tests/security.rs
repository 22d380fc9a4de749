//! Client security against real `raft-node` processes: AUTH and the two roles, the
//! slowdown of password guessing, forwarded writes keeping the client's identity, and the
//! TLS client port with `redis-cli --tls`.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use raft_node::auth::{MIN_ITERATIONS, PasswordHash};
use support::{BIN, CONVERGE, Client, Cluster, Options, Reply, bulk, ok};

const ROOT_PW: &str = "root-secret";

/// A config with a data user `app` and an admin user `ops`.
fn users_toml() -> String {
    let hash = |p: &str| {
        PasswordHash::new(p.as_bytes(), MIN_ITERATIONS)
            .unwrap()
            .to_string()
    };
    format!(
        "[[users]]\nname = \"app\"\nrole = \"data\"\npassword_hash = \"{}\"\n\n\
         [[users]]\nname = \"ops\"\nrole = \"admin\"\npassword_hash = \"{}\"\n",
        hash("app-pw"),
        hash("ops-pw")
    )
}

fn with_auth(extra: Options) -> Options {
    Options {
        password: Some(ROOT_PW.into()),
        config_toml: Some(users_toml()),
        ..extra
    }
}

fn error_starting(reply: &Reply, prefix: &str) -> bool {
    matches!(reply, Reply::Error(e) if e.starts_with(prefix))
}

fn anonymous(c: &Cluster, id: u64) -> Client {
    Client::connect(c.node(id).client_port)
}

/// Every data and admin command is refused before AUTH; the data user may not run admin
/// commands; the admin user may; wrong passwords are refused, counted and slowed down.
#[test]
fn auth_gates_every_command_and_roles_gate_admin_commands() {
    let c = Cluster::start_with(3, with_auth(Options::default()));
    let leader = c.leader();
    let admin_cmds: [&[&str]; 4] = [
        &["RAFT.SNAPSHOT"],
        &["RAFT.TRANSFER", "2"],
        &["RAFT.MEMBER", "REMOVE", "9"],
        &["RAFT.FAULT", "STATUS"],
    ];
    // With bad arguments too: Redis asks for a login before it looks at them.
    let data_cmds: [&[&str]; 9] = [
        &["INCRBY", "k", "abc"],
        &["SET", "k", "v", "EX", "1"],
        &["GET", "k"],
        &["SET", "k", "v"],
        &["DEL", "k"],
        &["DBSIZE"],
        &["INFO"],
        &["RAFT.INFO"],
        &["ECHO", "x"],
    ];

    let mut anon = anonymous(&c, leader);
    for cmd in admin_cmds.iter().chain(&data_cmds) {
        assert_eq!(
            anon.cmd(cmd),
            Reply::Error("NOAUTH Authentication required.".into()),
            "{cmd:?}"
        );
    }
    assert_eq!(anon.cmd(&["PING"]), Reply::Simple("PONG".into()));
    assert!(error_starting(&anon.cmd(&["HELLO", "2"]), "NOAUTH"));

    // Wrong passwords, unknown users: refused and counted.
    let before = support::metric_value(
        &c.metrics(leader),
        "raft_client_auth_total{result=\"wrongpass\"}",
    );
    let wrongpass =
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
    assert_eq!(anon.cmd(&["AUTH", "app", "ops-pw"]), wrongpass);
    assert_eq!(anon.cmd(&["AUTH", "nobody", "app-pw"]), wrongpass);
    assert_eq!(anon.cmd(&["AUTH", "app-pw"]), wrongpass);
    assert_eq!(
        anon.cmd(&["GET", "k"]),
        Reply::Error("NOAUTH Authentication required.".into())
    );
    let after = support::metric_value(
        &c.metrics(leader),
        "raft_client_auth_total{result=\"wrongpass\"}",
    );
    assert_eq!(after - before, 3.0);

    // The data user: key-value commands and RAFT.INFO, no administration.
    let mut app = anonymous(&c, leader);
    app.login(&["AUTH", "app", "app-pw"]);
    assert_eq!(app.cmd_retry(&["SET", "k", "v"], CONVERGE), ok());
    assert_eq!(app.cmd(&["GET", "k"]), bulk("v"));
    assert!(matches!(app.cmd(&["RAFT.INFO"]), Reply::Bulk(_)));
    for cmd in admin_cmds {
        let name = cmd[0].to_ascii_lowercase();
        assert_eq!(
            app.cmd(cmd),
            Reply::Error(format!(
                "NOPERM User app has no permissions to run the '{name}' command"
            )),
        );
    }

    // The admin user, logged in with HELLO: administration works.
    let mut ops = anonymous(&c, leader);
    assert!(matches!(
        ops.cmd(&["HELLO", "2", "AUTH", "ops", "ops-pw"]),
        Reply::Array(_)
    ));
    assert!(matches!(ops.cmd(&["RAFT.SNAPSHOT"]), Reply::Integer(i) if i > 0));
    assert!(
        matches!(ops.cmd(&["RAFT.FAULT", "STATUS"]), Reply::Error(e) if e.contains("fault injection"))
    );
    assert!(error_starting(
        &ops.cmd(&["RAFT.MEMBER", "REMOVE", "9"]),
        "ERR node 9 is not a member"
    ));
    // The legacy one-argument AUTH logs in as `default`, an admin.
    let mut root = anonymous(&c, leader);
    root.login(&["AUTH", ROOT_PW]);
    assert!(matches!(root.cmd(&["RAFT.SNAPSHOT"]), Reply::Integer(_)));

    // AUTH inside a pipeline applies to the commands after it.
    let mut piped = anonymous(&c, leader);
    for cmd in [&["GET", "k"][..], &["AUTH", "app", "app-pw"], &["GET", "k"]] {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        piped.send(&args).unwrap();
    }
    assert!(error_starting(&piped.read_reply().unwrap(), "NOAUTH"));
    assert_eq!(piped.read_reply().unwrap(), ok());
    assert_eq!(piped.read_reply().unwrap(), bulk("v"));

    // Before AUTH only small requests are read (a stranger cannot fill the memory); an
    // AUTH pipelined in front of a large write lifts the limit for it.
    let big = "x".repeat(20_000);
    let mut stranger = anonymous(&c, leader);
    assert_eq!(
        stranger.cmd(&["SET", "big", &big]),
        Reply::Error("ERR Protocol error: unauthenticated bulk length".into())
    );
    assert!(stranger.read_to_eof().is_ok_and(|rest| rest.is_empty()));
    let mut piped = anonymous(&c, leader);
    for cmd in [&["AUTH", "app", "app-pw"][..], &["SET", "big", &big]] {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        piped.send(&args).unwrap();
    }
    assert_eq!(piped.read_reply().unwrap(), ok());
    assert_eq!(piped.read_reply().unwrap(), ok());

    // Repeated failures from one address are slowed down: after the three free ones
    // (above), each further attempt waits longer (100 ms, doubling), logins that succeed
    // meanwhile notwithstanding (a valid account must not buy another's guesses).
    let mut guesser = anonymous(&c, leader);
    let mut last = Duration::ZERO;
    for _ in 0..4 {
        let started = Instant::now();
        assert_eq!(guesser.cmd(&["AUTH", "ops", "guess"]), wrongpass);
        last = started.elapsed();
    }
    assert!(
        last >= Duration::from_millis(400),
        "the 7th failure took {last:?}"
    );
    let delayed = support::metric_value(&c.metrics(leader), "raft_client_auth_delayed_total");
    assert!(delayed >= 4.0, "{delayed} delayed attempts");
    // A right password is still accepted, after the wait.
    guesser.login(&["AUTH", "ops", "ops-pw"]);
}

/// A follower forwards the writes of an authenticated client to the leader and refuses
/// those of an unauthenticated one; the leader applies them for the client's user.
#[test]
fn forwarded_writes_keep_the_clients_identity() {
    let c = Cluster::start_with(3, with_auth(Options::default()));
    let leader = c.leader();
    let follower = c.live_ids().into_iter().find(|&i| i != leader).unwrap();

    let mut anon = anonymous(&c, follower);
    assert_eq!(
        anon.cmd(&["SET", "f", "1"]),
        Reply::Error("NOAUTH Authentication required.".into())
    );
    let mut app = anonymous(&c, follower);
    app.login(&["AUTH", "app", "app-pw"]);
    assert_eq!(app.cmd_retry(&["SET", "f", "2"], CONVERGE), ok());
    assert_eq!(app.cmd(&["INCR", "n"]), Reply::Integer(1));
    let mut on_leader = anonymous(&c, leader);
    on_leader.login(&["AUTH", "ops", "ops-pw"]);
    assert_eq!(on_leader.cmd(&["GET", "f"]), bulk("2"));
    assert_eq!(on_leader.cmd(&["GET", "n"]), bulk("1"));
    // The forwarding stream carried a user the leader knows: nothing was refused there.
    let refused = c.log_tail(leader, 200);
    assert!(!refused.contains("refused a forwarded write"), "{refused}");
}

fn redis_cli_tls(port: u16, tls_args: &[&str], args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"])
        .args(tls_args)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-cli ({e}); scripts/install-deps.sh installs redis-tools")
        })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `redis-cli --tls` works against the TLS client port; without the CA it fails the
/// handshake; a TLS client on the plain port fails cleanly and the plain port keeps
/// serving; a plain client on the TLS port gets nothing and harms nothing.
#[test]
fn redis_cli_tls_against_the_tls_client_port() {
    let c = Cluster::start_with(
        3,
        Options {
            client_tls: true,
            ..Options::default()
        },
    );
    let leader = c.leader();
    c.client(leader).cmd_retry(&["SET", "warm", "1"], CONVERGE);
    let ca = c.certs_dir().join("ca.crt").display().to_string();
    let node = c.node(leader);

    let set = redis_cli_tls(node.tls_port, &["--cacert", &ca], &["SET", "t", "over-tls"]);
    assert!(set.status.success(), "{}", text(&set));
    assert_eq!(String::from_utf8_lossy(&set.stdout), "OK\n");
    let get = redis_cli_tls(node.tls_port, &["--cacert", &ca], &["GET", "t"]);
    assert_eq!(
        String::from_utf8_lossy(&get.stdout),
        "over-tls\n",
        "{}",
        text(&get)
    );

    // A client that trusts another CA fails the handshake.
    let other = c.dir().join("other-ca");
    let made = Command::new(BIN)
        .args(["certs", "--ids", "1", "--out"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let other_ca = other.join("ca.crt").display().to_string();
    let no_ca = redis_cli_tls(node.tls_port, &["--cacert", &other_ca], &["GET", "t"]);
    assert!(
        !text(&no_ca).contains("over-tls") && text(&no_ca).contains("certificate verify failed"),
        "{}",
        text(&no_ca)
    );

    // TLS against the plain port: an error, not a hang; the port still serves.
    let wrong_port = redis_cli_tls(node.client_port, &["--cacert", &ca], &["GET", "t"]);
    assert!(
        !text(&wrong_port).contains("over-tls"),
        "{}",
        text(&wrong_port)
    );
    assert_eq!(c.cmd(leader, &["GET", "t"]), bulk("over-tls"));

    // Plain RESP against the TLS port: the connection closes without an answer.
    let mut plain = Client::connect(node.tls_port);
    plain.set_timeout(Duration::from_secs(10));
    assert!(plain.try_cmd(&["PING"]).is_err());
    let again = redis_cli_tls(node.tls_port, &["--cacert", &ca], &["PING"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "PONG\n",
        "{}",
        text(&again)
    );
}

/// With `--client-tls-ca`, a TLS client needs a certificate that CA signed.
#[test]
fn tls_client_certificates_are_verified_when_asked() {
    let c = Cluster::start_with(
        1,
        Options {
            client_tls: true,
            client_tls_verify: true,
            ..Options::default()
        },
    );
    let id = c.leader();
    let port = c.node(id).tls_port;
    let file = |name: &str| c.certs_dir().join(name).display().to_string();
    let (ca, cert, key) = (
        file("ca.crt"),
        file("client-app.crt"),
        file("client-app.key"),
    );

    let without = redis_cli_tls(port, &["--cacert", &ca], &["PING"]);
    assert!(!text(&without).contains("PONG"), "{}", text(&without));
    let with = redis_cli_tls(
        port,
        &["--cacert", &ca, "--cert", &cert, "--key", &key],
        &["PING"],
    );
    assert_eq!(
        String::from_utf8_lossy(&with.stdout),
        "PONG\n",
        "{}",
        text(&with)
    );
    let failures =
        support::metric_value(&c.metrics(id), "raft_client_tls_handshake_failures_total");
    assert!(failures >= 1.0, "{failures}");
}

/// `raft-node hash-password` reads the password on stdin and prints a hash that verifies.
#[test]
fn hash_password_prints_a_salted_hash() {
    let mut child = Command::new(BIN)
        .args(["hash-password", "--iterations", "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = PasswordHash::parse(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert!(hash.verify(b"correct horse"));
    assert!(!hash.verify(b"correct horse\n"));

    let empty = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!empty.status.success());
}

/// `raft-node certs --clients` without `--ids` signs with the CA already there (a new client
/// needs no new cluster certificates), and no certificate may carry a node's name: the peer
/// transport would take it as that node.
#[test]
fn certs_adds_clients_to_an_existing_ca_and_refuses_node_names() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let certs = |args: &[&str]| {
        Command::new(BIN)
            .arg("certs")
            .arg("--out")
            .arg(&out)
            .args(args)
            .output()
            .unwrap()
    };

    let none = certs(&["--clients", "app"]);
    assert!(!none.status.success());
    assert!(
        text(&none).contains("holds no cluster CA"),
        "{}",
        text(&none)
    );

    let made = certs(&["--ids", "1,2"]);
    assert!(made.status.success(), "{}", text(&made));
    let read = |name: &str| std::fs::read(out.join(name)).unwrap();
    let (ca, node) = (read("ca.crt"), read("node-1.crt"));

    for args in [
        &["--clients", "app,node-2"][..],
        &["--client-port-names", "localhost,NODE-1"],
    ] {
        let refused = certs(args);
        assert!(!refused.status.success(), "{args:?}");
        assert!(text(&refused).contains("node's name"), "{}", text(&refused));
    }
    assert!(!out.join("client-app.crt").exists(), "nothing written");
    assert!(!out.join("client-node-2.crt").exists());
    assert!(!out.join("client-port.crt").exists());

    let added = certs(&["--clients", "app"]);
    assert!(added.status.success(), "{}", text(&added));
    let again = certs(&["--clients", "app"]);
    assert!(!again.status.success(), "an existing key is not replaced");
    assert!(text(&again).contains("pass --force"), "{}", text(&again));
    let first = read("client-app.key");
    let forced = certs(&["--clients", "app", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert_ne!(
        read("client-app.key"),
        first,
        "the client's key is replaced"
    );
    assert_eq!(read("ca.crt"), ca, "the CA is kept");
    assert_eq!(read("node-1.crt"), node, "node certificates are kept");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&ca).unwrap())
        .unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let client = CertificateDer::from_pem_slice(&read("client-app.crt")).unwrap();
    verifier
        .verify_client_cert(&client, &[], UnixTime::now())
        .expect("the client certificate is signed by the cluster CA");
}
