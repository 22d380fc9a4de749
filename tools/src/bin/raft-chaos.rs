//! `raft-chaos`: the fault-injection run with a linearizability check. See
//! `tools::chaos` for what it does and what it leaves in its run directory.

use clap::Parser;

fn main() {
    let options = tools::chaos::Options::parse();
    std::process::exit(tools::chaos::main(options));
}
