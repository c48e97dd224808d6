#!/usr/bin/env bash
# Installs and starts the independent peers on loopback, runs the peer tests against them,
# and stops them. Called by .ci/run; safe to run by hand (needs root for apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/peers-up.sh
cargo test -p burrow-examples --test peers_nginx --test peers_curl --test peers_curl_cli --test peers_caddy --test peers_proxy --test peers_proxies --test peers_udp --test peers_matrix --test peers_intercept --test peers_haproxy -- --ignored --nocapture --test-threads=1
