#!/usr/bin/env bash
# Issue #17's GPU figures on lerobot 0.6.1, in one lease (the machine prepared by ../shared/device/prepare.sh
# --lerobot6, the package installed from a wheel of HEAD, PYTHONPATH=/tmp/site:/tmp/pkg:$PWD):
#   benchmarks/lerobot6_gpu.sh start     run every stage below, detached (pid in $L/pid, logs in $L)
#   benchmarks/lerobot6_gpu.sh poll S    wait <= S s while it runs, then bring $L back under $OUT (call back to back)
# Stages (each logs to $L/<stage>.log; `== stage epoch-seconds` lines in $L/stages.log time them):
# Optional stages run when named in $STAGES (default "loader eval"; STAGES="" runs neither), for a short lease.
#   demos       $DEMOS (400) expert demos at 224 px (the ACT recipe's data; act_recipe_gpu.sh demos)
#   loader      lerobot 0.6.1's training loader as it is vs the decoded-frame cache (benchmarks/frame_cache.py, 12
#               workers, batch 128), building the cache where the training below reuses it; skipped with STAGES=""
#   train       the ACT recipe (`dataengine train` defaults: batch 128, lr 1e-4, bf16, 8,000 steps, frame cache),
#               stopped after $TRAIN_S s (default 900) if the lease is short: a checkpoint every $SAVE_FREQ steps
#               (2,000), and with ACT's constant learning rate the one a stopped run saved is that of a shorter run;
#               $STEPS sets the steps instead (a short lease measuring steps/s and throughput only)
#   throughput  end-to-end env-steps/s at 16 workers x 256 envs and the naive loop (benchmarks/gpu_throughput.py),
#               with its last saved checkpoint (the recipe's ACT: 224 px, two cameras, chunk 100; the weights do
#               not change the cost of a step), before the evaluation so that a short lease still brings it back
#   eval        200 held-out episodes of that checkpoint (act_recipe_gpu.sh eval)
set -uo pipefail
W=${W:-/tmp/act_recipe}
L=${L:-/tmp/lease17}
export W
B=$(cd "$(dirname "$0")" && pwd)
stage() { echo "== $1 $(date +%s)" >> "$L/stages.log"; }
optional() { [[ " ${STAGES-loader eval} " == *" $1 "* ]]; }  # STAGES lists the optional stages to run
case "${1:-}" in
  start)
    mkdir -p "$L"
    setsid nohup bash "$0" all > "$L/all.log" 2>&1 < /dev/null &
    echo $! > "$L/pid"; echo "started $(cat "$L/pid")" ;;
  all)
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 10 > "$L/gpu.csv" 2>&1 & sampler=$!
    stage demos; DEMOS=${DEMOS:-400} bash "$B/act_recipe_gpu.sh" demos > "$L/demos.log" 2>&1
    if optional loader; then stage loader; python3 -m benchmarks.frame_cache --dataset "$W/demos" --workers 12 --batch-size 128 --batches 20 \
      --cache-root "$W/ws/cache/frames" --out "$L/frame_cache.json" > "$L/loader.log" 2>&1; fi
    stage train
    timeout -s INT "${TRAIN_S:-900}" \
      python3 -m so101_dataengine.cli --workspace "$W/ws" train --dataset "$W/demos" --save-freq "${SAVE_FREQ:-2000}" \
      ${STEPS:+--steps "$STEPS"} --out "$W/runs/act" -- --log_freq=250 > "$L/train.log" 2>&1
    ls "$W/runs/act/checkpoints" > "$L/checkpoints.txt"
    stage throughput
    python3 benchmarks/gpu_throughput.py --policy "$W/runs/act/checkpoints/last/pretrained_model" --configs 16x256x1 \
      --max-steps 200 --naive-steps 300 --out "$L/throughput.json" > "$L/throughput.log" 2>&1
    optional eval && stage eval && OUT="$L" bash "$B/act_recipe_gpu.sh" eval last "$W/runs/act/checkpoints/last/pretrained_model" \
      > "$L/eval.log" 2>&1
    stage done; kill "$sampler" ;;
  poll)
    t0=$(date +%s); pid=$(cat "$L/pid" 2>/dev/null)
    while kill -0 "$pid" 2>/dev/null && [ $(( $(date +%s) - t0 )) -lt "${2:-480}" ]; do sleep 5; done
    cat "$L/stages.log"; for f in "$L"/*.log; do echo "-- $f"; tr '\r' '\n' < "$f" | grep -v '^Svt' | tail -4; done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; df -h /tmp | tail -1
    mkdir -p "$OUT"; tar czf "$OUT/lease17.tgz" -C "$L" . ;;
  *) echo "usage: $0 start | poll S" >&2; exit 2 ;;
esac
