//! `raft-bench`: a load generator for a raft-node cluster. See `tools::bench`.

use clap::Parser;

fn main() {
    let options = tools::bench::Options::parse();
    std::process::exit(tools::bench::main(options));
}
