#!/usr/bin/env bash
# The ACT recipe on the GPU machine: expert demos -> dataengine train (its defaults) -> 200 seeded rollout episodes.
# Stages, so that training can run on between device calls (it is started detached):
#   benchmarks/act_recipe_gpu.sh demos      $DEMOS (400) expert demos, 224 px, H.264, recorded by 14 dask workers
#   benchmarks/act_recipe_gpu.sh probe      lerobot-train speed (steps/s) at batch sizes $BATCHES, 400 steps each
#   benchmarks/act_recipe_gpu.sh train [dataengine train flags...]   start training in the background
#                                           ($W/runs/$RUN.log, checkpoints in $W/runs/$RUN; RUN defaults to "act")
#   benchmarks/act_recipe_gpu.sh wait [S]   until run $RUN has ended (or S seconds, default 560)
#   benchmarks/act_recipe_gpu.sh status     tail of run $RUN's log and the checkpoints saved so far
#   benchmarks/act_recipe_gpu.sh stop       end run $RUN (its saved checkpoints stay; ACT's learning rate is constant,
#                                           so a checkpoint of a stopped run is the same as that of a shorter run)
#   benchmarks/act_recipe_gpu.sh eval TAG CKPT [rollout flags...]   200 episodes on the batched engine, summary to $OUT
# Two runs can share the GPU (RUN=a ... train --num-workers 7; RUN=b ... train --num-workers 7); they read one frame
# cache (the second waits for the first's build). Whether they slow each other down is not measured yet.
set -euo pipefail
W=${W:-/tmp/act_recipe}
DEMOS=${DEMOS:-400}
STEPS=${STEPS:-8000}
RUN=${RUN:-act}
R="$W/runs/$RUN"
mkdir -p "$W/runs"
steps_per_s() { tr '\r' '\n' < "$1" | grep -oE "[0-9]+step/s|[0-9.]+it/s|updt_s:[0-9.]+|data_s:[0-9.]+" | tail -4 | tr '\n' ' '; echo; }
case "${1:-}" in
  demos)
    /usr/bin/time -f "demos: %e s" python3 -m so101_dataengine.cli demos --n "$DEMOS" --workers 14 --vcodec h264 \
      --out "$W/demos" 2>&1 | grep -v '^Svt' | tail -8 ;;
  probe)
    for batch in ${BATCHES:-128 256}; do
      python3 -m so101_dataengine.cli --workspace "$W/probe" train --dataset "$W/demos" --steps 400 --save-freq 400 \
        --batch-size "$batch" --out "$W/probe-$batch" -- --log_freq=100 > "$W/probe-$batch.log" 2>&1
      echo "batch $batch: $(steps_per_s "$W/probe-$batch.log")"
    done ;;
  train)
    setsid nohup python3 -m so101_dataengine.cli --workspace "$W/ws" train --dataset "$W/demos" --steps "$STEPS" \
      --out "$R" "${@:2}" -- --log_freq=500 > "$R.log" 2>&1 &
    echo $! > "$R.pid"; sleep 45; tail -c 1000 "$R.log" ;;
  wait)
    for _ in $(seq $(( ${2:-560} / 5 ))); do kill -0 "$(cat "$R.pid")" 2>/dev/null || break; sleep 5; done
    "$0" status ;;
  status)
    { tr '\r' '\n' < "$R.log" | grep -E "step:|End of training|Error|error" || true; } | tail -3
    ls "$R/checkpoints" 2>/dev/null | tr '\n' ' '; echo ;;
  stop)
    kill -- -"$(cat "$R.pid")" 2>/dev/null || true; sleep 3; "$0" status ;;
  eval)
    tag=$2; ckpt=$3; shift 3
    python3 -m so101_dataengine.cli rollout --policy "$ckpt" --n 200 --out "$W/eval-$tag" "$@" 2>&1 | grep -v '^Svt' | tail -18
    cp "$W/eval-$tag/summary.json" "${OUT:-/tmp}/eval-$tag.json" ;;
  *)
    echo "usage: $0 demos | probe | train [flags] | wait [S] | status | stop | eval TAG CKPT [flags]" >&2; exit 2 ;;
esac
