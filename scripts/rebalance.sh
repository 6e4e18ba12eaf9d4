#!/usr/bin/env bash
# Measures online rebalancing: starts three insecure nodes on 127.0.0.1
# with SHARDS data shards, writes KEYS keys of VALUE bytes, then adds two
# nodes while a bounded kvctl bench load runs, and prints how long it took
# until replicas and leaders per node were within one of even, the data
# moved, and the load's p99 before and during the moves.
#
#   scripts/rebalance.sh            # SHARDS=12 KEYS=10000 VALUE=1024
#   KEYS=100000 VALUE=4096 scripts/rebalance.sh
#
# Everything runs under a temporary directory and is stopped on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shards=${SHARDS:-12}
keys=${KEYS:-10000}
value=${VALUE:-1024}
timeout_s=${BALANCE_TIMEOUT:-180}
load_s=${LOAD_SECS:-60}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; for p in "$work"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
make -C "$root" build >/dev/null
cave=$root/bin/cave
kvctl=$root/bin/kvctl

start_node() { # i join-args...
  local i=$1
  shift
  "$cave" --mode=prod --insecure "$@" --node-name "n$i" --data-dir "$work/n$i" --shards "$shards" \
    --http-addr "127.0.0.1:${i}8740" --grpc-addr "127.0.0.1:${i}8741" \
    --raft-addr "127.0.0.1:${i}8742" --gossip-addr "127.0.0.1:${i}8743" \
    --log-level warn >"$work/n$i.log" 2>&1 &
  echo $! >"$work/n$i.pid"
  for _ in $(seq 200); do
    curl -sf "127.0.0.1:${i}8740/api/v1/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "rebalance: n$i not ready; its log:" >&2
  tail -20 "$work/n$i.log" >&2
  return 1
}

# spread prints the spread (max - min) of voters and of leaders per node
# over every shard, the meta shard included as the planner counts it, then
# each node's voters/leaders, from n1's cluster view; nothing when it
# cannot be read.
spread() {
  curl -sf 127.0.0.1:18740/api/v1/cluster/shards | python3 -c '
import json, sys
nodes = sys.argv[1].split(",")
ss = json.load(sys.stdin)["shards"]
reps = {n: 0 for n in nodes}; leads = {n: 0 for n in nodes}
for s in ss:
    for r in s["replicas"]:
        if r["role"] == "voter":
            reps[r["node"]] = reps.get(r["node"], 0) + 1
    if s["leader"]:
        leads[s["leader"]] = leads.get(s["leader"], 0) + 1
print(max(reps.values()) - min(reps.values()), max(leads.values()) - min(leads.values()),
      " ".join(f"{n}:{reps[n]}/{leads[n]}" for n in nodes))' "$1"
}

start_node 1 --bootstrap
start_node 2 --join 127.0.0.1:18743
start_node 3 --join 127.0.0.1:18743
eps=127.0.0.1:18741,127.0.0.1:28741,127.0.0.1:38741
for _ in $(seq 300); do
  read -r dr dl _ < <(spread n1,n2,n3 || echo "9 9") || true
  [ "${dr:-9}" -le 1 ] && [ "${dl:-9}" -le 1 ] && break
  sleep 0.2
done
echo "three nodes up, $shards data shards: $(spread n1,n2,n3)"

# Write the data set once (the get benchmark pre-populates every key).
"$kvctl" --endpoints "$eps" bench get --keys "$keys" --value-size "$value" --clients 32 \
  --duration 5s --warmup 0s --json >"$work/before.json"
bytes=$(curl -sf 127.0.0.1:18740/api/v1/cluster/shards | python3 -c 'import json,sys; print(sum(int(s["bytes"]) for s in json.load(sys.stdin)["shards"] if s["id"] != "0"))')
echo "data: $keys keys of $value bytes, $((bytes / 1048576)) MiB in the data shards"

# The load during the moves: a mixed load of LOAD_SECS, begun 2 s before
# the new nodes start.
"$kvctl" --endpoints "$eps" bench mixed --keys "$keys" --value-size "$value" --clients 16 \
  --read-ratio 0.8 --duration "${load_s}s" --warmup 0s --json >"$work/during.json" 2>/dev/null &
load=$!
sleep 2
began=$(date +%s.%N)
start_node 4 --join 127.0.0.1:18743
start_node 5 --join 127.0.0.1:18743
balanced=""
while :; do
  now=$(date +%s.%N)
  elapsed=$(python3 -c "print(round($now - $began, 1))")
  read -r dr dl detail < <(spread n1,n2,n3,n4,n5 || echo "9 9 unknown") || true
  if [ "${dr:-9}" -le 1 ] && [ "${dl:-9}" -le 1 ]; then
    balanced=$elapsed
    break
  fi
  if python3 -c "import sys; sys.exit(0 if $elapsed > $timeout_s else 1)"; then
    break
  fi
  sleep 0.5
done
wait "$load" 2>/dev/null || true
final=$(spread n1,n2,n3,n4,n5 || true)
p99() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["latency_us"]["p99"] / 1000)' "$1" 2>/dev/null || echo n/a; }
echo "| measure | value |"
echo "|---|---|"
echo "| time to balance 3 -> 5 nodes | ${balanced:-not within ${timeout_s}s} s |"
echo "| final replicas/leaders per node | ${final#* * } |"
echo "| data moved to the new nodes | about $((bytes * 2 / 5 / 1048576)) MiB |"
echo "| get p99 before (ms) | $(p99 "$work/before.json") |"
echo "| mixed p99 over the ${load_s} s that began with the moves (ms) | $(p99 "$work/during.json") |"
