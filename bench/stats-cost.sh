#!/usr/bin/env bash
# stats-cost.sh [ROUNDS] [DURATION]: what the stats counters cost.
# Builds wsechod twice (counting on, and STATS=0 with it compiled out) and
# alternates them ROUNDS times under the same wsbench load (64-byte text,
# 100 connections, pipeline 1 and 16), server pinned to CPU 0 and wsbench
# to CPU 1, one worker.  Reports server CPU seconds per million echoed
# messages (utime + stime of the worker from /proc), the steadiest figure
# on a noisy machine, as the median of the rounds and its ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
duration=${2:-5s}
make -s build/wsechod build/wsbench
make -s build/nostats/wsechod STATS=0

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() {     # binary pipeline -> prints "cpu_s_per_million msgs_per_s"
    local bin=$1 pipeline=$2 port=$((20000 + RANDOM % 20000))
    while ! port_free $port; do port=$((port + 1)); done
    taskset -c 0 "$bin" -w 1 -l 127.0.0.1:$port --log-level warn --stats-name "stats-cost-$port" &
    local master=$!
    local worker=""
    for _ in $(seq 100); do
        worker=$(pgrep -P $master || true)
        [ -n "$worker" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    local t0; t0=$(cpu_ticks "$worker")
    local json; json=$(taskset -c 1 build/wsbench -t 1 -c 100 -d "$duration" -s 64 -p "$pipeline" --json \
        "ws://127.0.0.1:$port/websocket")
    local t1; t1=$(cpu_ticks "$worker")
    kill -TERM $master; wait $master || true
    python3 - "$json" "$t0" "$t1" <<'PY'
import json, os, sys
r = json.loads(sys.argv[1]); hz = os.sysconf("SC_CLK_TCK")
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / hz
errs = sum(r["errors"].values())
if errs: sys.exit(f"wsbench reported {errs} errors: {r['errors']}")
print(f"{cpu / r['messages'] * 1e6:.3f} {r['msgs_per_sec']:.0f}")
PY
}

for p in 1 16; do
    on=(); off=()
    for i in $(seq "$rounds"); do
        on+=("$(run_one build/wsechod $p)")
        off+=("$(run_one build/nostats/wsechod $p)")
    done
    python3 - "$p" "${on[@]}" -- "${off[@]}" <<'PY'
import statistics, sys
p = sys.argv[1]; rest = sys.argv[2:]; k = rest.index("--")
on = [tuple(map(float, x.split())) for x in rest[:k]]
off = [tuple(map(float, x.split())) for x in rest[k + 1:]]
con = statistics.median(c for c, _ in on); coff = statistics.median(c for c, _ in off)
print(f"pipeline {p:>2}: CPU s per million messages: counting {con:.3f} "
      f"(rounds {', '.join(f'{c:.3f}' for c, _ in on)}), compiled out {coff:.3f} "
      f"(rounds {', '.join(f'{c:.3f}' for c, _ in off)}): counting costs {100 * (con / coff - 1):+.1f}%")
print(f"             msgs/s: counting {statistics.median(m for _, m in on):.0f}, "
      f"compiled out {statistics.median(m for _, m in off):.0f}")
PY
done
