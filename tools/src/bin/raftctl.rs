//! `raftctl`: administration of a raft-node cluster (status, leadership transfer,
//! snapshots, membership). See `tools::ctl`.

use clap::Parser;

fn main() {
    let cli = tools::ctl::Cli::parse();
    std::process::exit(tools::ctl::main(cli));
}
