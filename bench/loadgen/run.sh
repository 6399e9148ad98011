#!/usr/bin/env bash
# Load generator benchmarks on this machine's two cores: the loadgen (or the in-process runner)
# pinned to CPU 0, the target (nginx serving a static SSE body of 128 token events, never the
# bottleneck) and the gRPC client pinned to CPU 1. Prints the tables that BENCHMARKS.md quotes.
#
#   bench/loadgen/run.sh                    # all
#   RATES=2000,5000,8000 DURATION=5 bench/loadgen/run.sh open
#   ROUNDS=5 bench/loadgen/run.sh closed
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD_DIR:-build}
RATES=${RATES:-2000,4000,6000,8000,10000,12000,15000}
DURATION=${DURATION:-5}
WHAT=${1:-all}
# The machine is shared with compilers: with PRIO=1 (the default when running as root) each
# measured process runs in a session of its own (an autogroup, with the kernel's
# sched_autogroup) at nice -20, so that it gets most of its core when it needs it; it blocks in
# epoll otherwise, so it does not starve anything. (Plain nice does not work across sessions
# when autogroups are on; SCHED_FIFO would let the event loop starve the gRPC thread that
# shares its core.)
PRIO=${PRIO:-$([ "$(id -u)" = 0 ] && echo 1 || echo 0)}
PRIO_SH='echo -20 > /proc/self/autogroup 2>/dev/null; cpu=$1; shift; exec nice -n -20 taskset -c "$cpu" "$@"'
pin() { if [ "$PRIO" = 1 ]; then setsid sh -c "$PRIO_SH" sh "$@"; else local cpu=$1; shift; taskset -c "$cpu" "$@"; fi; }
# For background servers: exec, so that $! is the server's own pid (to kill it and read its CPU).
pin_exec() { if [ "$PRIO" = 1 ]; then exec setsid sh -c "$PRIO_SH" sh "$@"; else local cpu=$1; shift; exec taskset -c "$cpu" "$@"; fi; }
command -v nginx >/dev/null || { echo "nginx missing: scripts/deps.sh installs nginx-light" >&2; exit 1; }
cmake --build "$BUILD" --target mstperf-loadgen mstperf-loadgen-bench >/dev/null

DIR=$(mktemp -d /tmp/mstperf-bench-loadgen.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The static SSE body: what vLLM streams with continuous usage stats, 128 tokens (texts of
# different lengths, with escapes, as real text is).
python3 - "$DIR/body.sse" <<'PY'
import json, sys
words = [" the", " quick", " brown", " fox", "\n", " jumps", " over", " \"lazy\"", " dog", "."]
events = []
for k in range(1, 129):
    events.append({"id": "cmpl-bench", "object": "text_completion", "created": 0, "model": "static",
                   "choices": [{"index": 0, "text": words[k % len(words)], "logprobs": None,
                                "finish_reason": None}],
                   "usage": {"prompt_tokens": 64, "total_tokens": 64 + k, "completion_tokens": k}})
events.append({"id": "cmpl-bench", "object": "text_completion", "created": 0, "model": "static",
               "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}],
               "usage": {"prompt_tokens": 64, "total_tokens": 192, "completion_tokens": 128}})
events.append({"id": "cmpl-bench", "object": "text_completion", "created": 0, "model": "static",
               "choices": [], "usage": {"prompt_tokens": 64, "total_tokens": 192, "completion_tokens": 128}})
with open(sys.argv[1], "w") as f:
    for e in events:
        f.write("data: " + json.dumps(e, separators=(",", ":")) + "\n\n")
    f.write("data: [DONE]\n\n")
PY
chmod -R a+rX "$DIR"
PORT=$(free_port)
mkdir -p "$DIR/tmp" "$DIR/www/v1" "$DIR/www/slow/v1"
cp "$DIR/body.sse" "$DIR/www/v1/completions"
cp "$DIR/body.sse" "$DIR/www/slow/v1/completions"
echo '{"object":"list","data":[{"id":"static"}]}' > "$DIR/www/v1/models"
cp "$DIR/www/v1/models" "$DIR/www/slow/v1/models"
cat > "$DIR/nginx.conf" <<CONF
daemon off;
worker_processes 1;
worker_rlimit_nofile 65536;
error_log $DIR/error.log warn;
pid $DIR/nginx.pid;
events { worker_connections 32768; }
http {
  access_log off;
  client_body_temp_path $DIR/tmp/body;
  proxy_temp_path $DIR/tmp/proxy;
  fastcgi_temp_path $DIR/tmp/fastcgi;
  uwsgi_temp_path $DIR/tmp/uwsgi;
  scgi_temp_path $DIR/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  client_body_buffer_size 64k;
  server {
    listen 127.0.0.1:$PORT backlog=8192;
    root $DIR/www;
    # Static files answer GET only: a POST's 405 is turned into the file itself.
    error_page 405 =200 \$uri;
    location /v1/ { default_type text/event-stream; }
    # The same body sent slowly, so that requests stay in flight (memory per request).
    location /slow/ { default_type text/event-stream; limit_rate 8k; }
  }
}
CONF
(pin_exec 1 nginx -c "$DIR/nginx.conf" -p "$DIR") &
PIDS+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"
BENCH="$BUILD/bench/mstperf-loadgen-bench"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "measured processes in their own autogroup at nice -20: $PRIO"
echo "event loop SCHED_FIFO (--realtime_event_loop): ${RT_LOOP:-$PRIO}"
echo "target: nginx $(nginx -v 2>&1 | cut -d/ -f2) on CPU 1, static SSE body of 128 token events ($(wc -c < "$DIR/body.sse") bytes)"

if [[ $WHAT == all || $WHAT == open ]]; then
  RTFLAG=""
  [ "${RT_LOOP:-$PRIO}" = 1 ] && RTFLAG="--realtime_event_loop"
  (pin_exec 0 "$BUILD/bin/mstperf-loadgen" --port=0 --metrics_port=-1 --host=127.0.0.1 $RTFLAG \
    --ready_file="$DIR/lg.json" 2>"$DIR/loadgen.log") &
  LG=$!
  PIDS+=($LG)
  for _ in $(seq 100); do [ -s "$DIR/lg.json" ] && break; sleep 0.1; done
  LGPORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc_port"])' "$DIR/lg.json")
  echo
  echo "== open loop through the mstperf-loadgen service pinned to CPU 0 (constant arrivals, ${DURATION} s per rate; client on CPU 1)"
  pin 1 "$BENCH" open --loadgen="127.0.0.1:$LGPORT" --loadgen_pid=$LG --url="$URL" \
    --rates="$RATES" --duration="$DURATION"
  echo
  echo "== the same with Poisson arrivals"
  pin 1 "$BENCH" open --loadgen="127.0.0.1:$LGPORT" --loadgen_pid=$LG --url="$URL" \
    --rates="${POISSON_RATES:-2000,5000}" --duration="$DURATION" --arrival=poisson
fi
if [[ $WHAT == all || $WHAT == closed ]]; then
  echo
  echo "== closed loop, 64 in flight, on CPU 0: bare libcurl-multi loop vs the runner, alternated"
  pin 0 "$BENCH" closed --url="$URL" --concurrency=64 --duration="$DURATION" --rounds="${ROUNDS:-3}"
fi
if [[ $WHAT == all || $WHAT == parse ]]; then
  echo
  echo "== parsing one core: SSE framing + chunk scan vs + full JSON parse"
  pin 0 "$BENCH" parse --body_file="$DIR/body.sse"
fi
if [[ $WHAT == all || $WHAT == memory ]]; then
  echo
  echo "== memory: 2,000 requests in flight (target sends at 8 KiB/s), then their records"
  pin 0 "$BENCH" memory --url="$URL/slow"
fi
