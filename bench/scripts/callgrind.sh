#!/usr/bin/env bash
# Count the instructions a fawkes server spends on one fawkes-bench scenario,
# under valgrind's callgrind: deterministic enough to compare two builds on
# a machine whose CPU time is shared (wall-clock and CPU-second numbers are
# not, there).
#
#   bench/scripts/callgrind.sh NAME SERVER_BINARY CONFIG SCENARIO [ARGS...]
#   e.g. bench/scripts/callgrind.sh new target/release/fawkes \
#          bench/fawkes-bench.toml joins --conns 2000 --topic bench:join
#
# Writes $OUT/NAME.out (callgrind_annotate reads it) and prints the total.
# Run a scenario at two sizes (2,000 and 4,000 connections) and subtract to
# get the cost per connection without start-up and shutdown.
set -u
ulimit -n 20000
NAME=$1; BIN=$2; CFG=$3; shift 3
OUT=${OUT:-/tmp/fawkes-callgrind}
PORT=${PORT:-4011}
BENCH=${BENCH:-target/release/fawkes-bench}
mkdir -p "$OUT"
FAWKES_API_SECRET=${FAWKES_API_SECRET:-callgrind} valgrind --tool=callgrind \
  --callgrind-out-file="$OUT/$NAME.out" "$BIN" serve --config "$CFG" --port "$PORT" \
  --log-level warn >"$OUT/$NAME.server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 60); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 1; done
"$BENCH" --url "http://127.0.0.1:$PORT" "$@" >"$OUT/$NAME.bench.log" 2>&1
# Let the server finish closing what the bench left before it stops, so
# shutdown does not close live sessions in one run and not in the other.
sleep "${SETTLE:-12}"
kill -TERM "$SERVER"; wait "$SERVER"
callgrind_annotate "$OUT/$NAME.out" 2>/dev/null | grep "PROGRAM TOTALS"
