#!/usr/bin/env bash
# Classifier (#5) and curation purity/yield (#6) at a moderate size on the 2-core CPU machine, 96 px frames:
# train on 120 episodes of the default fault mix; held out: 150 episodes of another mix and other seeds.
set -euo pipefail
W=${W:-/tmp/clf_bench}; mkdir -p "$W"
cd $W
export MUJOCO_GL=egl HF_LEROBOT_HOME=$W/lerobot_home
D="dataengine --workspace $W/ws"
/usr/bin/time -f "train rollout: %e s" $D rollout --policy scripted-faulty --n 120 --seed 2000000 --image-size 96 --out $W/train > $W/rollout_train.log 2>&1
/usr/bin/time -f "eval rollout: %e s" $D rollout --policy scripted-faulty:none=1,miss_grasp=0.5,drop=0.5,miss_goal=1,hold=1 --n 150 --seed 3000000 --image-size 96 --out $W/eval > $W/rollout_eval.log 2>&1
/usr/bin/time -f "classifier train: %e s" $D classifier train --runs $W/train --out $W/clf --device cpu > $W/train.log 2>&1
/usr/bin/time -f "classifier eval: %e s" $D classifier eval $W/clf --runs $W/eval --out $W/eval-report --device cpu > $W/eval.log 2>&1
/usr/bin/time -f "curate: %e s" $D curate --runs $W/eval --classifier $W/clf --vcodec h264 --out $W/curated > $W/curate.log 2>&1
python3 -c "import json; d = json.load(open('$W/eval-report/summary.json')); print({k: d[k] for k in ('episodes', 'successes', 'precision', 'recall', 'roc_auc')})"
grep -E "accepted rollouts|purity" $W/curate.log
