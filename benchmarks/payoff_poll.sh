#!/usr/bin/env bash
# benchmarks/payoff_poll.sh S SCALE (on the GPU machine): wait (<= S s) while the payoff orchestrator lives, then bring back logs and a report under $OUT.
# The lease recipe (docs/benchmarks.md, Session 10): the orchestrator runs detached (pid in /tmp/payoff.pid,
# work in /tmp/p) and every device call runs this back to back, so whatever finished comes back under $OUT.
S=${1:-480}
SCALE=${2:-gpu}
PID=$(cat /tmp/payoff.pid 2>/dev/null)
t0=$(date +%s)
alive() { [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; }
while alive && [ $(( $(date +%s) - t0 )) -lt "$S" ]; do sleep 5; done
echo "== waited $(( $(date +%s) - t0 )) s"
mkdir -p "$OUT"
cp /tmp/payoff.log "$OUT/" 2>/dev/null
if [ -d /tmp/p ]; then
  files=$(cd /tmp/p && ls -d logs done payoff.json payoff.md eval/*/eval.json rollouts/*/summary.json \
    data/*/meta/curation/summary.json data/*/meta/dataengine.json data/*/meta/info.json \
    classifier/*.json classifier/*summary*.json train/*/dataengine_train.json 2>/dev/null | sort -u)
  tar czf "$OUT/logs.tgz" -C /tmp/p $files 2>&1 | tail -3
fi
ls -la "$OUT/logs.tgz" 2>/dev/null
timeout 60 python3 -m benchmarks.payoff --work /tmp/p --scale "$SCALE" --report-only --out "$OUT" 2>&1 | tail -15 || echo "report-only failed"
echo "== tail payoff.log"; tail -20 /tmp/payoff.log 2>/dev/null
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
df -h /tmp | tail -1
free -g | sed -n 2p
if alive; then echo "ORCHESTRATOR ALIVE (pid $PID)"; else echo "ORCHESTRATOR GONE"; fi
