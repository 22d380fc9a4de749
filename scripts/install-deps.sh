#!/usr/bin/env bash
# Installs what building and testing the workspace needs on a fresh Debian machine.
# Idempotent: does nothing when everything is present.
set -euo pipefail

need_apt=()
# RocksDB's build (raft-log) needs libclang for bindgen and a C++ compiler.
# (libclang-cpp is a different library and does not count.)
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang-[0-9]*.so* >/dev/null 2>&1; then
    need_apt+=(libclang-dev clang)
fi
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
# The client tests talk to the cluster with redis-cli (Debian's redis-tools).
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
if ((${#need_apt[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (rustup) first" >&2
    exit 1
fi
