//! The `raft-node` binary. Its subcommands (`certs`, `run`, `dev`) arrive with the node issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    eprintln!(
        "raft-node {}: `{}` is not implemented yet — the server (certs, run, dev) lands with \
         the raft-node issue. What works today is the protocol engine: run scripts/test.sh.",
        env!("CARGO_PKG_VERSION"),
        args.join(" ")
    );
    ExitCode::from(2)
}
