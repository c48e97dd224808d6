#!/usr/bin/env bash
# Runs every fuzz target for a number of executions (default 10 million) and prints, per
# target, libFuzzer's final count. Needs cargo-fuzz (`cargo install cargo-fuzz`); nightly
# features come from RUSTC_BOOTSTRAP, so the machine's one stable toolchain is enough.
# No sanitizer: the crates forbid unsafe code, and AddressSanitizer costs 3-5x the speed.
#   scripts/fuzz.sh [RUNS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10000000}"
shift || true
export RUSTC_BOOTSTRAP=1
all=(
  http1/fuzz:response_parser http1/fuzz:operations
  http3/fuzz:message_reader http3/fuzz:qpack_and_control
  proxy/fuzz:socks_server proxy/fuzz:socks_client proxy/fuzz:proxy_url
  proxy/fuzz:uri_template proxy/fuzz:capsules proxy/fuzz:request_path
  http1/fuzz:client_core http1/fuzz:server_core http3/fuzz:conn_state
  proxy/fuzz:socks_server_core proxy/fuzz:socks_client_core proxy/fuzz:decision
  proxy/fuzz:association proxy/fuzz:capsule_flow proxy/fuzz:pool proxy/fuzz:handshake
  proxy/fuzz:patterns http3/fuzz:quic_lb proxy/fuzz:tcp_capsules proxy/fuzz:ip_capsules proxy/fuzz:ip_session
)
want=("$@")
mkdir -p target/fuzz-logs
for entry in "${all[@]}"; do
  dir="${entry%%:*}"; t="${entry##*:}"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " =~ " $t " ]]; then continue; fi
  log="target/fuzz-logs/$t.log"
  (cd "$dir" && cargo fuzz run --sanitizer none "$t" -- -runs="$runs" -print_final_stats=1) >"$log" 2>&1 || {
    echo "$t: FAILED (see $log)"; tail -30 "$log"; exit 1; }
  done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -1)
  echo "$t: $done_line"
done
