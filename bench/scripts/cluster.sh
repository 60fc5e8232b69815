#!/usr/bin/env bash
# Cluster benchmarks of BENCHMARKS.md, on one machine (loopback only):
#   1. fan-out, 5,000 subscribers (max rate, 4/s, 20/s): one node alone, then three nodes over
#      Redis with the subscribers spread over them (publisher on node 1);
#   2. presence storm: 2,000 clients over three nodes, then `kill -9` of
#      one node and the time until every other client saw its users leave;
#   3. 100,000 joined connections over six nodes (one process may hold only
#      20,000 files here), one `POST /api/broadcast` reaching all of them.
# Usage: bench/scripts/cluster.sh [fanout|storm|wide|all]   (from the repo root,
# after `cargo build --release -p fawkes -p fawkes-bench`; needs redis-server)
# PIN=1 gives the servers (every node and Redis) CPU 0 and the load
# generator CPU 1, so one node and three nodes get the same CPU budget and
# do not compete with the generator; unpinned, the processes share both.
set -u
what="${1:-all}"
ulimit -n 20000
R=target/release
B=$R/fawkes-bench
SECRET=bench-secret
REDIS_PORT=${REDIS_PORT:-6391}
pids=()
PIN=${PIN:-0}
if [ "$PIN" = 1 ]; then B="taskset -c 1 $B"; fi
# pin PID: with PIN=1, move every thread of PID to CPU 0.
pin() { if [ "$PIN" = 1 ]; then taskset -apc 0 "$1" >/dev/null; fi; }

cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
  redis_pid=$!
  pids+=($redis_pid)
  pin $redis_pid
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server did not start" >&2; exit 1
}

# start_node PORT [NAME]: a fawkes node (clustered when NAME is given); sets $node_pid
start_node() {
  local port=$1 name=${2:-}
  local args=(serve --config bench/fawkes-bench.toml --port "$port" --log-level warn)
  if [ -n "$name" ]; then args+=(--redis-url "redis://127.0.0.1:$REDIS_PORT" --node-name "$name"); fi
  FAWKES_API_SECRET=$SECRET FAWKES_SECRET_KEY_BASE=bench-secret-key-base-bench-secret-key-base-0123456789 \
    $R/fawkes "${args[@]}" >"/tmp/fawkes-bench-node-$port.log" 2>&1 &
  node_pid=$!
  pids+=($node_pid)
  pin $node_pid
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && return; sleep 0.1; done
  echo "node on $port did not start (see /tmp/fawkes-bench-node-$port.log)" >&2; exit 1
}

stop_all_nodes() { cleanup; pids=(); }

fanout() {
  echo "== fan-out, one node alone"
  start_node 4031
  $B --url http://127.0.0.1:4031 --server-pid "$node_pid" fanout --subs 5000 --rate max --duration 15 --topic bench:fanout 2>&1 | tail -n 1
  $B --url http://127.0.0.1:4031 --server-pid "$node_pid" fanout --subs 5000 --rate 4 --duration 20 --topic bench:fanout 2>&1 | tail -n 1
  $B --url http://127.0.0.1:4031 --server-pid "$node_pid" fanout --subs 5000 --rate 20 --duration 15 --topic bench:fanout 2>&1 | tail -n 1
  stop_all_nodes
  echo "== fan-out, three nodes over Redis (subscribers spread, publisher on node 1)"
  start_redis
  start_node 4031 n1; p1=$node_pid
  start_node 4032 n2; p2=$node_pid
  start_node 4033 n3; p3=$node_pid
  # Redis's CPU time is counted with the nodes': it is part of the cluster.
  local urls=(--url http://127.0.0.1:4031 --also-url http://127.0.0.1:4032 --also-url http://127.0.0.1:4033 --server-pid "$p1" --server-pid "$p2" --server-pid "$p3" --server-pid "$redis_pid")
  $B "${urls[@]}" fanout --subs 5000 --rate max --duration 15 --topic bench:fanout 2>&1 | tail -n 1
  $B "${urls[@]}" fanout --subs 5000 --rate 4 --duration 20 --topic bench:fanout 2>&1 | tail -n 1
  $B "${urls[@]}" fanout --subs 5000 --rate 20 --duration 15 --topic bench:fanout 2>&1 | tail -n 1
  stop_all_nodes
}

storm() {
  echo "== presence storm, 2,000 clients on one node alone"
  start_node 4031
  $B ${STORM_ARGS:-} --url http://127.0.0.1:4031 --server-pid "$node_pid" presence --clients 2000 --topic room:storm --user-param join --timeout 60 2>&1 | tail -n 1
  stop_all_nodes
  echo "== presence storm, 2,000 clients over three nodes, then kill -9 of node 3"
  start_redis
  start_node 4031 n1; p1=$node_pid
  start_node 4032 n2; p2=$node_pid
  start_node 4033 n3; p3=$node_pid
  $B ${STORM_ARGS:-} --url http://127.0.0.1:4031 --also-url http://127.0.0.1:4032 --also-url http://127.0.0.1:4033 \
     --server-pid "$p1" --server-pid "$p2" --server-pid "$p3" \
     presence --clients 2000 --topic room:storm --user-param join --timeout 60 --kill-pid "$p3" --kill-node 2 2>&1 | tail -n 1
  stop_all_nodes
}

wide() {
  local nodes=${NODES:-6} per=${PER:-16667}
  echo "== $((nodes * per)) joined connections over $nodes nodes, one broadcast to all"
  start_redis
  local ports=() npids=()
  for i in $(seq 1 $nodes); do start_node $((4040 + i)) "w$i"; ports+=($((4040 + i))); npids+=("$node_pid"); done
  local outs=() bpids=()
  for i in $(seq 0 $((nodes - 1))); do
    out=/tmp/fawkes-bench-wide-$i.txt; outs+=("$out")
    $B --url "http://127.0.0.1:${ports[$i]}" --server-pid "${npids[$i]}" idle --conns $per --topic bench:all --same-topic \
       --hold 120 --heartbeat 30 --await-event broadcast >"$out" 2>&1 &
    bpids+=($!)
  done
  # Wait until every bench process has joined all its connections.
  for _ in $(seq 600); do
    n=$(grep -l "waiting for the broadcast" "${outs[@]}" 2>/dev/null | wc -l)
    [ "$n" -ge "$nodes" ] && break
    sleep 1
  done
  for i in $(seq 0 $((nodes - 1))); do
    echo "node $((i + 1)) rss_kib $(awk '/VmRSS/{print $2}' /proc/${npids[$i]}/status)"
  done
  sleep 2
  curl -fs -H "authorization: Bearer $SECRET" -H 'content-type: application/json' \
    -d "{\"topic\":\"bench:all\",\"event\":\"broadcast\",\"payload\":{\"t\":$(date +%s%N)}}" \
    "http://127.0.0.1:${ports[0]}/api/broadcast"; echo
  wait "${bpids[@]}"
  for out in "${outs[@]}"; do tail -n 1 "$out"; done
  stop_all_nodes
}

case "$what" in
  fanout) fanout ;;
  storm) storm ;;
  wide) wide ;;
  all) fanout; storm; wide ;;
  *) echo "usage: $0 [fanout|storm|wide|all]" >&2; exit 2 ;;
esac
