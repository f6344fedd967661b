"""The payoff experiment (benchmarks/payoff.py) in miniature, so its pipeline cannot rot: every job of the GPU
experiment (demos, teacher, rollouts, classifier, the curated arms, ACT and Diffusion students, paired evaluations)
runs for real with tiny counts, 64 px frames and a few training steps."""

from __future__ import annotations

import json
import math
import shutil

import pyarrow.parquet as pq
import pytest

from benchmarks import payoff
from so101_dataengine.base.seeds import EVAL_SEED, ROLLOUT_SEED

pytestmark = pytest.mark.slow


def _training_seeds(dataset) -> set[int]:
    """Every scene seed a dataset's episodes came from: rollout provenance columns, and the demos' own record."""
    seeds = set()
    for file in (dataset / "meta" / "episodes").rglob("*.parquet"):
        table = pq.read_table(file)
        if "dataengine/seed" in table.column_names:
            seeds |= {s for s in table.column("dataengine/seed").to_pylist() if s is not None}
    engine = json.loads((dataset / "meta" / "dataengine.json").read_text())
    seeds |= {e["seed"] for e in engine.get("episodes", []) if "seed" in e}
    assert seeds, f"{dataset} records no seeds"
    return seeds


@pytest.mark.timeout(2400)  # ~9 min alone on 2 cores: 25 real jobs (trainings, rollouts, curations, evaluations)
def test_payoff_experiment_in_miniature(tmp_path):
    work = tmp_path / "payoff"
    assert payoff.main(["--work", str(work), "--scale", "mini", "--out", str(tmp_path / "results")]) == 0
    result = json.loads((work / "payoff.json").read_text())
    scale = payoff.SCALES["mini"]
    assert result["failed_jobs"] == []
    sizes, rollouts = result["datasets"], sum(scale.rollout_runs)
    teacher_successes = sum(run.get("SUCCESS", 0) for run in result["teacher_rollouts"])
    assert sizes["i"] == scale.base and sizes["iii"] == scale.base + rollouts, "(iii) keeps every rollout"
    assert scale.base <= sizes["iv"] <= scale.base + teacher_successes, "(iv) keeps only the simulator's successes"
    assert sizes["i"] <= sizes["c1"] <= sizes["ii"] <= sizes["iii"], "the curve's arms grow with the runs they see"
    assert sizes["ii"] <= sizes["ii2"] <= sizes["ii"] + sum(scale.round2_runs), "round 2 adds to round 1's data"
    assert sizes["v"] == sizes["ii"], "(v) holds as many expert demos as (ii) has episodes"
    expert_seeds = _training_seeds(work / "data" / "v")
    assert min(expert_seeds) >= payoff.EXPERT_SEED and max(expert_seeds) < ROLLOUT_SEED, "(v): new scenes, demo range"
    assert not expert_seeds & _training_seeds(work / "data" / "i"), "(v) shares no scene with the base"
    from so101_dataengine.rollouts.policies import checkpoint_sha256
    round2 = json.loads((work / "rollouts" / "q0" / "manifest.json").read_text())
    assert round2["policy"]["sha256"] == checkpoint_sha256(work / "train" / scale.round2_teacher / "checkpoints" / "last"
                                                           / "pretrained_model"), "round 2 is rolled out by (ii)'s student"
    assert round2["seed"] == ROLLOUT_SEED + sum(scale.rollout_runs), "round 2 runs on new seeds"
    rows = result["students"]
    assert sorted(rows) == sorted(s.name for s in scale.students), "every student was trained and evaluated"
    frames = {arm: json.loads((work / "data" / arm / "meta" / "info.json").read_text())["total_frames"] for arm in sizes}
    for student in scale.students:
        row = rows[student.name]
        assert row["eval_n"] == scale.eval_n and row["episodes_trained_on"] == sizes[student.arm]
        assert ("vs_i" in row) == (student.arm != "i"), "each arm is paired against arm (i) of its own policy type"
        manifest = json.loads(next((work / "eval" / student.name / "runs").glob("*/manifest.json")).read_text())
        assert manifest["seed"] == EVAL_SEED and manifest["policy"]["kind"] == student.policy
        batch = scale.batch_size if student.policy == "act" else scale.diffusion_batch_size
        train_config = work / "train" / student.name / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
        if student.seed is not None:
            assert json.loads(train_config.read_text())["seed"] == student.seed, "a replicate trains with its own seed"
        transforms = json.loads(train_config.read_text())["dataset"]["image_transforms"]
        assert transforms["enable"] == student.augment, "only an augmented student trains on transformed frames"
        assert row["augment"] == student.augment
        if student.group == payoff.TEACHER.group or student.recipe == "steps":
            assert row["steps"] == scale.steps, "a 'steps' student trains exactly as long as the teacher"
        else:  # as many passes over its data as the teacher made over the base, at most max_steps
            passes = scale.steps * scale.batch_size / frames["i"]
            assert row["steps"] == min(scale.max_steps, math.ceil(round(passes * frames[student.arm] / batch, 6)))
    replicated = result["groups"]["act-ii"]
    pooled = [rows[name]["success_rate"] for name in ("act-ii", "act-ii-seed1")]
    assert replicated["replicates"] == 2 and replicated["replicate_rates"] == pooled
    assert replicated["success_rate"] == pytest.approx(sum(pooled) / 2) and "vs_i" in replicated
    assert "Replicate trainings pooled" in (work / "payoff.md").read_text()
    assert "vs_i" in result["groups"]["act-ii-aug"], "the augmented (ii) is its own group, paired against (i)"
    for arm in sizes:
        assert all(seed < EVAL_SEED for seed in _training_seeds(work / "data" / arm)), "no evaluation scene is trained on"
    for name in ("payoff.json", "payoff.md", "payoff.png"):
        assert (tmp_path / "results" / name).stat().st_size > 0
    done = sorted(p.name for p in (work / "done").iterdir())
    assert payoff.main(["--work", str(work), "--scale", "mini"]) == 0, "a finished experiment re-runs as a no-op"
    assert sorted(p.name for p in (work / "done").iterdir()) == done

    # a run killed during a training and a rollout: the training starts over, the rollout resumes its run
    (work / "done" / "train-act-c1").unlink()
    (work / "done" / "rollout-r1").unlink()
    kept = (work / "rollouts" / "r1" / "episodes" / "e000000").stat().st_ino
    shutil.rmtree(work / "rollouts" / "r1" / "episodes" / "e000001")
    assert payoff.main(["--work", str(work), "--scale", "mini"]) == 0
    assert (work / "rollouts" / "r1" / "episodes" / "e000000").stat().st_ino == kept, "finished episodes are kept"
    assert (work / "rollouts" / "r1" / "episodes" / "e000001").is_dir()
    assert (work / "done" / "train-act-c1").is_file() and (work / "train" / "act-c1" / "checkpoints").is_dir()
    retrained = json.loads((work / "eval" / "act-c1" / "eval.json").read_text())["policies"][0]["policy"]["sha256"]
    assert retrained == checkpoint_sha256(work / "train" / "act-c1" / "checkpoints" / "last" / "pretrained_model"), \
        "the evaluation of a retrained arm is redone"
