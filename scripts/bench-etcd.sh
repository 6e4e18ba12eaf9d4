#!/usr/bin/env bash
# Compares one cave node with one etcd member on this machine: the same
# gRPC load (scripts/benchcmp: 128-byte puts, then gets of those keys, from
# concurrent clients) against each, back to back, two rounds. etcd is built
# from the Go module proxy (scripts/etcd); nothing else is downloaded.
#
#   scripts/bench-etcd.sh [seconds per phase, default 8] [clients, default 16]
set -euo pipefail
secs=${1:-8}
conc=${2:-16}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
make -C "$root" build >/dev/null
(cd "$root/scripts/etcd" && go build -o "$work/etcd" .)
(cd "$root/scripts/benchcmp" && go build -o "$work/benchcmp" .)

wait_for() { # URL
  for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  echo "bench-etcd: $1 did not answer" >&2
  return 1
}

for round in 1 2; do
  rm -rf "$work/etcd-data" "$work/cave-data"
  "$work/etcd" --data-dir "$work/etcd-data" --log-level error \
    --listen-client-urls http://127.0.0.1:19379 --advertise-client-urls http://127.0.0.1:19379 \
    --listen-peer-urls http://127.0.0.1:19380 --initial-advertise-peer-urls http://127.0.0.1:19380 \
    --initial-cluster default=http://127.0.0.1:19380 >"$work/etcd.log" 2>&1 &
  etcd_pid=$!
  wait_for http://127.0.0.1:19379/health
  "$work/benchcmp" -target etcd -addr 127.0.0.1:19379 -c "$conc" -d "${secs}s"
  kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true

  "$root/bin/cave" --mode=dev --data-dir "$work/cave-data" --log-level warn \
    --http-addr 127.0.0.1:19740 --grpc-addr 127.0.0.1:19741 --raft-addr 127.0.0.1:19742 \
    --gossip-addr 127.0.0.1:19743 >"$work/cave.log" 2>&1 &
  cave_pid=$!
  wait_for http://127.0.0.1:19740/api/v1/ready
  "$work/benchcmp" -target cave -addr 127.0.0.1:19741 -c "$conc" -d "${secs}s"
  kill "$cave_pid"; wait "$cave_pid" 2>/dev/null || true
done
