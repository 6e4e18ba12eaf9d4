#!/usr/bin/env bash
# Measures put throughput of cave clusters of 3, 6 and 9 nodes on this
# machine with every node under the same CPU quota (its own cgroup: cpu.max
# with cgroup v2, cpu.cfs_quota_us with v1), so that more nodes means more
# CPU, as on more machines. Each size is a fresh cluster on 127.0.0.1 with
# --shards data shards at bootstrap; before the load the script waits (at
# most SCALE_WAIT seconds) until every node has the same number of voters
# and of leaders, give or take one, and reports what it saw. Then it runs
# `kvctl bench put` with clients spread over every node and prints a
# markdown table. Needs root (cgroups).
#
#   scripts/scaleout.sh
#   SCALE_NODES="3 6" SCALE_CPU=0.25 BENCH_SECS=5 scripts/scaleout.sh
#
# Environment: SCALE_NODES ("3 6 9"), SCALE_CPU (CPUs per node, 0.2),
# SCALE_SHARDS (data shards, 18), SCALE_CLIENTS (bench clients per node,
# 16), SCALE_WAIT (seconds, 120), BENCH_SECS (measured seconds, 15),
# BENCH_WARMUP (seconds, 2), BENCH_VALUE_SIZE (256).
set -euo pipefail
export LC_ALL=C
sizes=${SCALE_NODES:-"3 6 9"}
cpu=${SCALE_CPU:-0.2}
shards=${SCALE_SHARDS:-18}
per_node_clients=${SCALE_CLIENTS:-16}
wait_secs=${SCALE_WAIT:-120}
secs=${BENCH_SECS:-15}
warm=${BENCH_WARMUP:-2}
vsize=${BENCH_VALUE_SIZE:-256}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
log() { echo "scaleout: $*" >&2; }

# --- cgroups ------------------------------------------------------------
period=100000
quota=$(awk -v c="$cpu" -v p="$period" 'BEGIN { printf "%d", c * p }')
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  cgroot=/sys/fs/cgroup/cave-scaleout-$$
  grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
  mkdir "$cgroot"
  echo +cpu >"$cgroot/cgroup.subtree_control"
  set_quota() { echo "$quota $period" >"$1/cpu.max"; }
elif [ -d /sys/fs/cgroup/cpu ]; then
  cgroot=/sys/fs/cgroup/cpu/cave-scaleout-$$
  mkdir "$cgroot"
  set_quota() { echo "$period" >"$1/cpu.cfs_period_us" && echo "$quota" >"$1/cpu.cfs_quota_us"; }
else
  log "no cgroup cpu controller under /sys/fs/cgroup"
  exit 1
fi

pids=()
stop_nodes() {
  [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  for p in "${pids[@]}"; do
    for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  stop_nodes
  rmdir "$cgroot"/n* "$cgroot" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

make -C "$root" build >/dev/null

# start_node I: node nI of the cluster in its own cgroup; n1
# bootstraps, the others join through n1's gossip address.
start_node() {
  local i=$1 cg=$cgroot/n$1 base=$((20000 + $1 * 10)) mode
  mkdir -p "$cg"
  set_quota "$cg"
  mode=(--join 127.0.0.1:20013)
  [ "$i" = 1 ] && mode=(--bootstrap --shards "$shards")
  # The shell moves itself into the cgroup, then becomes the node.
  sh -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh "$cg" \
    "$root/bin/cave" --mode=prod --insecure "${mode[@]}" --node-name "n$i" --data-dir "$work/n$i" \
    --http-addr "127.0.0.1:$base" --grpc-addr "127.0.0.1:$((base + 1))" \
    --raft-addr "127.0.0.1:$((base + 2))" --gossip-addr "127.0.0.1:$((base + 3))" \
    --log-level warn >"$work/n$i.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    curl -sf "127.0.0.1:$base/api/v1/ready" >/dev/null && return 0
    sleep 0.1
  done
  log "n$i did not become ready; its log:"
  tail -5 "$work/n$i.log" >&2
  return 1
}

# spread N: "VMIN VMAX LMIN LMAX LEADERLESS VOTERS" over the data shards
# (shard 0 is the meta shard): voters and leaders per node.
spread() {
  curl -sf 127.0.0.1:20010/api/v1/cluster/shards | jq -r --argjson n "$1" '
    [.shards[] | select(.id != "0")] as $s
    | [range(1; $n + 1) | "n\(.)"] as $nodes
    | ($nodes | map(. as $x | [$s[].replicas[] | select(.node == $x and .role == "voter")] | length)) as $v
    | ($nodes | map(. as $x | [$s[] | select(.leader == $x)] | length)) as $l
    | "\($v | min) \($v | max) \($l | min) \($l | max) \([$s[] | select((.leader // "") == "")] | length) \($v | add)"'
}

rows=()
for n in $sizes; do
  log "$n nodes, $cpu CPU each, $shards shards"
  rm -rf "${work:?}"/n*
  for i in $(seq "$n"); do start_node "$i"; done
  # Wait for an even spread: every shard with three voters (or n), a
  # leader each, voters and leaders per node within one of each other.
  want=$((shards * (n < 3 ? n : 3)))
  even=no
  seen="-"
  deadline=$((SECONDS + wait_secs))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if seen=$(spread "$n" 2>/dev/null) && [ -n "$seen" ]; then
      read -r vmin vmax lmin lmax leaderless voters <<<"$seen"
      if [ "$voters" = "$want" ] && [ "$leaderless" = 0 ] && [ $((vmax - vmin)) -le 1 ] && [ $((lmax - lmin)) -le 1 ]; then
        even=yes
        break
      fi
    fi
    sleep 1
  done
  read -r vmin vmax lmin lmax leaderless voters <<<"$seen"
  saw="voters/node $vmin-$vmax, leaders/node $lmin-$lmax, $voters voters, $leaderless leaderless"
  [ "$even" = yes ] && log "even after $((SECONDS - deadline + wait_secs))s: $saw" ||
    log "not even after ${wait_secs}s, measuring anyway: $saw"

  eps=$(for i in $(seq "$n"); do printf '127.0.0.1:%d,' $((20000 + i * 10 + 1)); done)
  clients=$((per_node_clients * n))
  out=$work/put-$n.json
  if "$root/bin/kvctl" --endpoints "${eps%,}" bench put --clients "$clients" --duration "${secs}s" \
    --warmup "${warm}s" --value-size "$vsize" --json >"$out" 2>"$work/put-$n.log"; then
    ops=$(jq -r '.ops_per_sec | floor' "$out")
    p99=$(jq -r '.latency_us.p99 / 1000' "$out")
    errs=$(jq -r .errors "$out")
    per=$(awk -v o="$ops" -v n="$n" 'BEGIN { printf "%.0f", o / n }')
  else
    log "bench at $n nodes failed:"
    tail -3 "$work/put-$n.log" >&2
    ops=- p99=- errs=- per=-
  fi
  rows+=("| $n | $cpu | $shards | $clients | $ops | $per | $p99 | $errs | $even ($saw) |")
  stop_nodes
done

echo
echo "| nodes | CPU/node | shards | clients | put ops/s | ops/s per node | p99 ms | errors | even spread |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
