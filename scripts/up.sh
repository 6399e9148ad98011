#!/usr/bin/env bash
# Starts the mstperf suite on loopback in the background: the simulator, two loadgen replicas,
# the evaluator and the controller, on the default ports of docs/conventions.md. Logs and pid
# files go to .run/ (gitignored). Waits until every service is listening, then prints one line
# per service. Idempotent: a service already running (its pid file names a live process) is
# left alone. scripts/down.sh stops them.
#
# Environment (for tests and side-by-side suites; the defaults are the documented ports):
#   MSTPERF_RUN_DIR        where logs, pid and ready files go            (.run)
#   MSTPERF_RESULTS_DIR    the controller's results directory            (the repository root:
#                          results land in requests/ as with the original tool)
#   MSTPERF_BIN_DIR        the built binaries                            (build/bin)
#   MSTPERF_UP_SIMULATOR_PORT                                            (8000)
#   MSTPERF_UP_CONTROLLER_PORT / MSTPERF_UP_CONTROLLER_METRICS_PORT      (50051 / 9091)
#   MSTPERF_UP_LOADGEN_PORTS / MSTPERF_UP_LOADGEN_METRICS_PORTS          ("50052 50062" / "9092 9102")
#   MSTPERF_UP_EVALUATOR_PORT / MSTPERF_UP_EVALUATOR_METRICS_PORT        (50053 / 9093)
#   MSTPERF_UP_TIMEOUT_S   how long to wait for a service to listen      (30)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="${MSTPERF_RUN_DIR:-$ROOT/.run}"
RESULTS_DIR="${MSTPERF_RESULTS_DIR:-$ROOT}"
BIN_DIR="${MSTPERF_BIN_DIR:-$ROOT/build/bin}"
SIM_PORT="${MSTPERF_UP_SIMULATOR_PORT:-8000}"
CTL_PORT="${MSTPERF_UP_CONTROLLER_PORT:-50051}"
CTL_METRICS="${MSTPERF_UP_CONTROLLER_METRICS_PORT:-9091}"
read -r -a LG_PORTS <<< "${MSTPERF_UP_LOADGEN_PORTS:-50052 50062}"
read -r -a LG_METRICS <<< "${MSTPERF_UP_LOADGEN_METRICS_PORTS:-9092 9102}"
EV_PORT="${MSTPERF_UP_EVALUATOR_PORT:-50053}"
EV_METRICS="${MSTPERF_UP_EVALUATOR_METRICS_PORT:-9093}"
TIMEOUT_S="${MSTPERF_UP_TIMEOUT_S:-30}"
HOST=127.0.0.1

if [ "${#LG_PORTS[@]}" -ne "${#LG_METRICS[@]}" ]; then
  echo "up: MSTPERF_UP_LOADGEN_PORTS and MSTPERF_UP_LOADGEN_METRICS_PORTS differ in length" >&2
  exit 2
fi
for b in mstperf-simulator mstperf-loadgen mstperf-evaluator mstperf-controller; do
  if [ ! -x "$BIN_DIR/$b" ]; then
    echo "up: $BIN_DIR/$b is not built (run: make build)" >&2
    exit 1
  fi
done
mkdir -p "$RUN_DIR/logs" "$RESULTS_DIR"

# Our own services' variables (MSTPERF_<FLAG>) would override flags of every service; the
# command lines below say everything explicitly, so keep the environment from adding to them.
for name in $(compgen -v MSTPERF_ || true); do
  case "$name" in
    MSTPERF_RUN_DIR|MSTPERF_RESULTS_DIR|MSTPERF_BIN_DIR|MSTPERF_UP_*) ;;
    *) unset "$name" ;;
  esac
done

running() {  # running NAME: its pid file names a live process of ours (not a reused pid)
  local pidfile="$RUN_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'mstperf-'
}

start() {  # start NAME BINARY ARGS...: in the background, ready file and log in RUN_DIR
  local name="$1" binary="$2"
  shift 2
  if running "$name"; then
    echo "up: $name already running (pid $(cat "$RUN_DIR/$name.pid"))" >&2
    return
  fi
  rm -f "$RUN_DIR/$name.ready"
  nohup "$BIN_DIR/$binary" --host="$HOST" --ready_file="$RUN_DIR/$name.ready" "$@" \
    >"$RUN_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

wait_ready() {  # wait_ready NAME: until its ready file exists (or it is up from an earlier run)
  local name="$1" deadline=$((SECONDS + TIMEOUT_S))
  while [ ! -f "$RUN_DIR/$name.ready" ]; do
    if ! running "$name"; then
      echo "up: $name exited; the end of $RUN_DIR/logs/$name.log:" >&2
      tail -n 20 "$RUN_DIR/logs/$name.log" >&2 || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "up: $name not listening after ${TIMEOUT_S}s; see $RUN_DIR/logs/$name.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

start simulator mstperf-simulator --port="$SIM_PORT"
loadgen_addresses=()
for i in "${!LG_PORTS[@]}"; do
  # Real-time event loop (SCHED_FIFO) where the process may; it warns in its log otherwise.
  start "loadgen-$i" mstperf-loadgen --port="${LG_PORTS[$i]}" --metrics_port="${LG_METRICS[$i]}" \
    --realtime_event_loop
  loadgen_addresses+=("$HOST:${LG_PORTS[$i]}")
done
start evaluator mstperf-evaluator --port="$EV_PORT" --metrics_port="$EV_METRICS"
LOADGENS="$(IFS=,; echo "${loadgen_addresses[*]}")"
start controller mstperf-controller --port="$CTL_PORT" --metrics_port="$CTL_METRICS" \
  --results_dir="$RESULTS_DIR" --loadgen="$LOADGENS" --evaluator="$HOST:$EV_PORT"

wait_ready simulator
for i in "${!LG_PORTS[@]}"; do wait_ready "loadgen-$i"; done
wait_ready evaluator
wait_ready controller

pid() { cat "$RUN_DIR/$1.pid"; }
printf '%-10s %-22s %-36s %s\n' service address metrics pid
printf '%-10s %-22s %-36s %s\n' simulator "http://$HOST:$SIM_PORT" "http://$HOST:$SIM_PORT/metrics" "$(pid simulator)"
for i in "${!LG_PORTS[@]}"; do
  printf '%-10s %-22s %-36s %s\n' "loadgen-$i" "$HOST:${LG_PORTS[$i]}" \
    "http://$HOST:${LG_METRICS[$i]}/metrics" "$(pid "loadgen-$i")"
done
printf '%-10s %-22s %-36s %s\n' evaluator "$HOST:$EV_PORT" "http://$HOST:$EV_METRICS/metrics" "$(pid evaluator)"
printf '%-10s %-22s %-36s %s\n' controller "$HOST:$CTL_PORT" "http://$HOST:$CTL_METRICS/metrics" "$(pid controller)"
echo "logs: $RUN_DIR/logs   results: $RESULTS_DIR/requests   stop: make down"
