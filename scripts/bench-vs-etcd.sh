#!/usr/bin/env bash
# Compares a three-node cave cluster with a three-member etcd cluster on
# this machine, on 127.0.0.1, data on disk under a temporary directory and
# fsync on (both systems' defaults). The same `kvctl bench` load runs
# against each, one system at a time: puts at 1, 16, 64 and 256 clients,
# linearizable gets at 64, stale (cave) / serializable (etcd) gets at 64,
# clients spread over all members, 256-byte values. It prints a markdown
# table: ops/s of each, the ratio, p99 of each and the servers' CPU per op
# (utime+stime of the three server processes over the measured run, from
# /proc/PID/stat, divided by the operations) next to kvctl's own CPU per
# op, which shows whether the client could keep up.
#
#   scripts/bench-vs-etcd.sh
#   BENCH_SECS=3 BENCH_WARMUP=1 scripts/bench-vs-etcd.sh
#
# Environment: BENCH_SECS (measured seconds per phase, 15), BENCH_WARMUP
# (seconds, 2), BENCH_PUT_CLIENTS ("1 16 64 256"), BENCH_GET_CLIENTS (64),
# BENCH_VALUE_SIZE (256), BENCH_KEYS (10000), ETCD_BIN (an etcd binary; by
# default `etcd` on PATH, else Debian's etcd-server is installed, else
# etcd is built from the Go module proxy with scripts/etcd),
# BENCH_KEEP=1 keeps the work directory (etcd logs, JSON and stderr of
# every phase; cluster3.sh stop removes the cave nodes' data and logs).
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a decimal point
secs=${BENCH_SECS:-15}
warm=${BENCH_WARMUP:-2}
put_clients=${BENCH_PUT_CLIENTS:-"1 16 64 256"}
get_clients=${BENCH_GET_CLIENTS:-64}
vsize=${BENCH_VALUE_SIZE:-256}
keys=${BENCH_KEYS:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
tck=$(getconf CLK_TCK)

server_pids=()
cleanup() {
  [ "${#server_pids[@]}" -gt 0 ] && kill "${server_pids[@]}" 2>/dev/null || true
  CAVE_CLUSTER_DIR="$work/cave" "$root/scripts/cluster3.sh" stop >/dev/null 2>&1 || true
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "${BENCH_KEEP:-}" = 1 ]; then echo "bench-vs-etcd: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { echo "bench-vs-etcd: $*" >&2; }

# --- etcd binary --------------------------------------------------------
etcd=${ETCD_BIN:-$(command -v etcd || true)}
if [ -z "$etcd" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-cache policy etcd-server 2>/dev/null | grep -q 'Candidate: [0-9]' || apt-get update -qq
  if apt-cache policy etcd-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    log "installing Debian's etcd-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
    etcd=$(command -v etcd || true)
  fi
fi
if [ -z "$etcd" ]; then
  log "building etcd from the Go module proxy (scripts/etcd)"
  (cd "$root/scripts/etcd" && go build -o "$work/etcd" .)
  etcd=$work/etcd
fi
log "$("$etcd" --version | head -1); building bin/cave and bin/kvctl"
make -C "$root" build >/dev/null
kvctl=$root/bin/kvctl

# --- CPU sampling -------------------------------------------------------
# sample PID... writes "EPOCH_SECONDS TICKS" every 0.1 s: the summed
# utime+stime of the processes, read with bash builtins only.
sample() {
  while :; do
    local t=0 f p
    for p in "$@"; do
      read -ra f 2>/dev/null <"/proc/$p/stat" || continue
      t=$((t + f[13] + f[14]))
    done
    echo "$EPOCHREALTIME $t"
    sleep 0.1
  done
}

# cpu_per_op SAMPLES JSON: the servers' CPU µs per operation over the
# measured run of JSON, from the last sample before it to the first after.
cpu_per_op() {
  local from to ops
  from=$(jq -r '.measured_from_unix_ms / 1000' "$2")
  to=$(jq -r '.measured_to_unix_ms / 1000' "$2")
  ops=$(jq -r .ops "$2")
  awk -v from="$from" -v to="$to" -v ops="$ops" -v tck="$tck" '
    $1 <= from { a = $2 }
    $1 >= to && b == "" { b = $2 }
    END { if (a == "" || b == "" || ops == 0) print "-"; else printf "%.0f", (b - a) / tck * 1e6 / ops }' "$1"
}

# run_phases SYSTEM ENDPOINTS PID...: every phase against one system.
run_phases() {
  local sys=$1 eps=$2
  shift 2
  sample "$@" >"$work/$sys.cpu" &
  local sampler=$!
  local phase op n cons
  for phase in $(for n in $put_clients; do echo "put:$n:linearizable"; done) \
    "get:$get_clients:linearizable" "get:$get_clients:stale"; do
    IFS=: read -r op n cons <<<"$phase"
    log "$sys $op, $n clients, $cons: ${warm}s warmup + ${secs}s"
    "$kvctl" --endpoints "$eps" bench "$op" --target "$sys" --clients "$n" --consistency "$cons" \
      --duration "${secs}s" --warmup "${warm}s" --value-size "$vsize" --keys "$keys" --json \
      >"$work/$sys-$phase.json" 2>"$work/$sys-$phase.log" || {
      log "$sys $phase failed:"
      tail -5 "$work/$sys-$phase.log" >&2
    }
    sleep 0.3 # one more CPU sample after the run
    cpu_per_op "$work/$sys.cpu" "$work/$sys-$phase.json" >"$work/$sys-$phase.cpu" 2>/dev/null || echo - >"$work/$sys-$phase.cpu"
  done
  kill "$sampler"
  wait "$sampler" 2>/dev/null || true
}

# --- etcd: three members ------------------------------------------------
initial=e1=http://127.0.0.1:21380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:23380
for i in 1 2 3; do
  "$etcd" --name "e$i" --data-dir "$work/etcd/e$i" --logger zap --log-level error \
    --listen-client-urls "http://127.0.0.1:2${i}379" --advertise-client-urls "http://127.0.0.1:2${i}379" \
    --listen-peer-urls "http://127.0.0.1:2${i}380" --initial-advertise-peer-urls "http://127.0.0.1:2${i}380" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token bench-vs-etcd \
    >"$work/etcd-e$i.log" 2>&1 &
  server_pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:2${i}379/health" | grep -q '"health":"true"' && break
    sleep 0.1
  done
done
run_phases etcd 127.0.0.1:21379,127.0.0.1:22379,127.0.0.1:23379 "${server_pids[@]}"
kill "${server_pids[@]}"
wait "${server_pids[@]}" 2>/dev/null || true
server_pids=()

# --- cave: three nodes (scripts/cluster3.sh) ----------------------------
(cd "$root" && CAVE_CLUSTER_DIR="$work/cave" CAVE_BIN="$root/bin/cave" scripts/cluster3.sh start >/dev/null)
cave_pids=($(cat "$work/cave"/n?.pid))
run_phases cave 127.0.0.1:18741,127.0.0.1:28741,127.0.0.1:38741 "${cave_pids[@]}"
CAVE_CLUSTER_DIR="$work/cave" "$root/scripts/cluster3.sh" stop >/dev/null 2>&1 || true

# --- the table ----------------------------------------------------------
num() { jq -r "$1 // \"-\"" "$2" 2>/dev/null || echo -; }
echo
echo "| op | clients | etcd ops/s | cave ops/s | cave/etcd | etcd p99 ms | cave p99 ms | etcd CPU µs/op | cave CPU µs/op | kvctl CPU µs/op etcd/cave | errors etcd/cave |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for phase in $(for n in $put_clients; do echo "put:$n:linearizable"; done) \
  "get:$get_clients:linearizable" "get:$get_clients:stale"; do
  IFS=: read -r op n cons <<<"$phase"
  name=$op
  [ "$op" = get ] && { [ "$cons" = stale ] && name="get stale/serializable" || name="get linearizable"; }
  e=$work/etcd-$phase.json c=$work/cave-$phase.json
  eo=$(num '.ops_per_sec | floor' "$e") co=$(num '.ops_per_sec | floor' "$c")
  ratio=$(awk -v a="$co" -v b="$eo" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }')
  ep=$(num '.latency_us.p99 / 1000' "$e") cp=$(num '.latency_us.p99 / 1000' "$c")
  echo "| $name | $n | $eo | $co | $ratio | $ep | $cp | $(cat "$work/etcd-$phase.cpu") | $(cat "$work/cave-$phase.cpu") | $(num '.client_cpu_us_per_op | floor' "$e")/$(num '.client_cpu_us_per_op | floor' "$c") | $(num .errors "$e")/$(num .errors "$c") |"
done
