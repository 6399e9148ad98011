#!/usr/bin/env bash
# Stops the suite started by scripts/up.sh: SIGTERM to every process named by a pid file in
# .run/ (they drain and exit), SIGKILL after a grace period, then removes the pid files.
# Idempotent: nothing running is not an error.
#
# Environment: MSTPERF_RUN_DIR (.run), MSTPERF_DOWN_GRACE_S (15).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="${MSTPERF_RUN_DIR:-$ROOT/.run}"
GRACE_S="${MSTPERF_DOWN_GRACE_S:-15}"

shopt -s nullglob
pidfiles=("$RUN_DIR"/*.pid)
if [ ${#pidfiles[@]} -eq 0 ]; then
  echo "down: nothing running (no pid files in $RUN_DIR)"
  exit 0
fi

ours() {  # ours PID: a live process that is one of our binaries (not a reused pid)
  kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'mstperf-'
}

stop() {  # stop PIDFILE...: SIGTERM all, wait, SIGKILL stragglers
  local f name pid deadline
  local -a live=()
  for f in "$@"; do
    pid="$(cat "$f")"
    if ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      live+=("$f")
    else
      rm -f "$f" "${f%.pid}.ready"
    fi
  done
  deadline=$((SECONDS + GRACE_S))
  for f in "${live[@]}"; do
    name="$(basename "$f" .pid)"
    pid="$(cat "$f")"
    while ours "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if ours "$pid"; then
      echo "down: $name (pid $pid) did not stop in ${GRACE_S}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f" "${f%.pid}.ready"
    echo "down: stopped $name (pid $pid)"
  done
}

# The controller first: it stops its running iteration and persists its state while the
# loadgens and the evaluator are still there. Then the rest together.
others=()
for f in "${pidfiles[@]}"; do
  [ "$(basename "$f")" = controller.pid ] || others+=("$f")
done
[ -f "$RUN_DIR/controller.pid" ] && stop "$RUN_DIR/controller.pid"
[ ${#others[@]} -gt 0 ] && stop "${others[@]}"
exit 0
