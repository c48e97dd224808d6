#!/usr/bin/env bash
# The A/B benchmarks (issue 9, BENCHMARKS.md): starts the peers (nginx, Caddy, squid,
# nghttpx, dante) on loopback, installs h2load and wrk, builds burrow's binaries and the
# reference clients (reqwest, hyper) in release mode, and runs `burrow-bench run` with the arguments given, e.g.
#   scripts/bench.sh                          # everything, 1 GiB downloads, 5 rounds
#   scripts/bench.sh --size-mib 256 --rounds 3 --only throughput --only h3
# Needs root for apt-get. Takes about 20 minutes with the defaults on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/peers-up.sh
extra=()
need h2load || extra+=(nghttp2-client)
need wrk || extra+=(wrk)
[ -x /usr/bin/time ] || extra+=(time)
if [ ${#extra[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${extra[@]}" >/dev/null
fi
# mitmproxy for the interception comparison (from PyPI).
command -v mitmdump >/dev/null || pip install -q mitmproxy || echo "mitmproxy not installed; its rows are skipped" >&2
cargo build -q --release -p burrow-examples --bin burrow --bin burrow-proxy
(cd bench && cargo build -q --release)
export BURROW_BIN_DIR="$PWD/target/release"
bench/target/release/burrow-bench run "$@"
