#!/usr/bin/env bash
# The ACT recipe on the GPU machine: expert demos -> dataengine train -> 200 seeded rollout episodes.
# Stages, so that training can run on between device calls (it is started detached):
#   benchmarks/act_recipe_gpu.sh demos      200 expert demos, 224 px, recorded by 12 dask workers
#   benchmarks/act_recipe_gpu.sh train      start dataengine train in the background (log: $W/train.log)
#   benchmarks/act_recipe_gpu.sh status     tail of the training log
#   benchmarks/act_recipe_gpu.sh eval TAG [rollout flags...]   200 episodes on the batched engine, summary to $OUT
set -euo pipefail
W=${W:-/tmp/act_recipe}
DEMOS=${DEMOS:-200}
STEPS=${STEPS:-10000}
BATCH=${BATCH:-32}
LR=${LR:-5e-5}
mkdir -p "$W"
case "$1" in
  demos)
    python3 -m dataengine.cli demos --n "$DEMOS" --workers 14 --out "$W/demos" 2>&1 | grep -v '^Svt' | tail -8 ;;
  train)
    setsid nohup python3 -m dataengine.cli --workspace "$W/ws" train --dataset "$W/demos" --steps "$STEPS" \
      --batch-size "$BATCH" --num-workers 12 --save-freq 2500 --out "$W/act" -- \
      --policy.optimizer_lr="$LR" --policy.optimizer_lr_backbone="$LR" --log_freq=500 > "$W/train.log" 2>&1 &
    sleep 60; tail -c 1500 "$W/train.log" ;;
  status)
    tr '\r' '\n' < "$W/train.log" | grep -E "step:|End of training|Error|error" | tail -5 ;;
  eval)
    tag=$2; shift 2
    python3 -m dataengine.cli rollout --policy "$W/act/checkpoints/last/pretrained_model" --n 200 --workers 8 \
      --num-envs 16 --chunk-size 25 --out "$W/eval-$tag" "$@" 2>&1 | grep -v '^Svt' | tail -16
    cp "$W/eval-$tag/summary.json" "${OUT:-/tmp}/eval-$tag.json" ;;
esac
