#!/usr/bin/env bash
# Starts (start) or stops (stop) a local three-node insecure cluster of
# bin/cave on 127.0.0.1, data under ${CAVE_CLUSTER_DIR:-./data/cluster3}.
# Used by scripts/bench.sh and for trying the cluster by hand:
#
#   scripts/cluster3.sh start && scripts/cluster3.sh stop
set -euo pipefail
dir=${CAVE_CLUSTER_DIR:-./data/cluster3}
bin=${CAVE_BIN:-./bin/cave}
case "${1:-}" in
start)
  mkdir -p "$dir"
  join=""
  for i in 1 2 3; do
    mode=(--join "$join")
    [ "$i" = 1 ] && mode=(--bootstrap)
    "$bin" --mode=prod --insecure "${mode[@]}" --node-name "n$i" --data-dir "$dir/n$i" \
      --http-addr "127.0.0.1:${i}8740" --grpc-addr "127.0.0.1:${i}8741" \
      --raft-addr "127.0.0.1:${i}8742" --gossip-addr "127.0.0.1:${i}8743" \
      --log-level "${CAVE_CLUSTER_LOG_LEVEL:-warn}" >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
    join="127.0.0.1:${i}8743"
    # Wait for readiness before the next node joins through this one.
    for _ in $(seq 100); do
      curl -sf "127.0.0.1:${i}8740/api/v1/ready" >/dev/null && break
      sleep 0.1
    done
  done
  # Every shard has three voters once the reconciler is done.
  for _ in $(seq 300); do
    n=$(curl -sf 127.0.0.1:18740/api/v1/cluster/shards | grep -o '"role":"voter"' | wc -l || true)
    [ "$n" -ge 15 ] && break
    sleep 0.1
  done
  echo "cluster up: http://127.0.0.1:18740 http://127.0.0.1:28740 http://127.0.0.1:38740"
  ;;
stop)
  for i in 1 2 3; do
    [ -f "$dir/n$i.pid" ] && kill "$(cat "$dir/n$i.pid")" 2>/dev/null || true
  done
  # A graceful stop hands leaderships over first; wait (at most 20s) until
  # every node has exited and released its ports.
  for i in 1 2 3; do
    [ -f "$dir/n$i.pid" ] || continue
    for _ in $(seq 200); do
      kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null || break
      sleep 0.1
    done
  done
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
