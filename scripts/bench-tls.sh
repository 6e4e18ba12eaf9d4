#!/usr/bin/env bash
# Measures the cost of TLS: one prod node with mutual TLS (and the access
# policy it turns on) against one with --insecure, back to back on the same
# machine, REST put and get with scripts/loadgen. Prints one line per run.
#
#   make build && scripts/bench-tls.sh [seconds per run, default 8] [clients, default 16]
set -euo pipefail
secs=${1:-8}
conc=${2:-16}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin/cave
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/loadgen" "$root/scripts/loadgen"

"$bin" certs init --dir "$work/certs" >/dev/null
"$bin" certs node --dir "$work/certs" --name n1 --hosts 127.0.0.1 >/dev/null
"$bin" certs client --dir "$work/certs" --name root >/dev/null
"$bin" certs kek --dir "$work/certs" >/dev/null
ports=(--http-addr 127.0.0.1:19740 --grpc-addr 127.0.0.1:19741 --raft-addr 127.0.0.1:19742 --gossip-addr 127.0.0.1:19743)
c=$work/certs

# run LABEL SCHEME CURL_ARGS... -- LOADGEN_ARGS... -- CAVE_ARGS...
run() {
  local label=$1 scheme=$2; shift 2
  local curl_args=() lg_args=() cave_args=()
  while [ "$1" != -- ]; do curl_args+=("$1"); shift; done; shift
  while [ "$1" != -- ]; do lg_args+=("$1"); shift; done; shift
  cave_args=("$@")
  rm -rf "$work/data"
  "$bin" --mode=prod --bootstrap --node-name n1 --data-dir "$work/data" "${ports[@]}" --log-level warn "${cave_args[@]}" \
    >"$work/$label.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    curl -sf "${curl_args[@]}" "$scheme://127.0.0.1:19740/api/v1/ready" >/dev/null && break
    sleep 0.1
  done
  for op in put get; do
    echo "$label $("$work/loadgen" -endpoints "$scheme://127.0.0.1:19740" -op "$op" -n 10000000 -c "$conc" \
      -keys 5000 -max-duration "${secs}s" "${lg_args[@]}" | tail -1)"
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

for round in 1 2; do
  run insecure http -- -- --insecure
  run tls https --cacert "$c/ca.crt" --cert "$c/root.crt" --key "$c/root.key" -- \
    -cacert "$c/ca.crt" -cert "$c/root.crt" -key "$c/root.key" -- \
    --tls-ca "$c/ca.crt" --tls-cert "$c/n1.crt" --tls-key "$c/n1.key" --kek-file "$c/kek.hex"
done
