"""``dataengine eval`` end to end: real rollouts on held-out scenes, paired results, resume, sweeps, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import TINY_ACT

from so101_dataengine.base.seeds import EVAL_SEED
from so101_dataengine.cli import main
from so101_dataengine.evaluation.evaluate import PolicyResult
from so101_dataengine.evaluation.report import scene_outcomes
from so101_dataengine.evaluation.stats import mcnemar_exact_p
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.scenes.randomization import SceneRandomization, sample_scene

FAILING = "scripted-faulty:none=0,miss_grasp=1,drop=1"
"""The expert failing on purpose, two ways: every episode is a failure the taxonomy must name."""


def _eval(tmp_path, *args: str) -> int:
    return main(["--workspace", str(tmp_path / "ws"), "eval", *args, "--image-size", "32", "--workers", "1"])


def test_eval_pairs_policies_on_held_out_scenes_and_resumes_a_run_with_holes(tmp_path):
    out = tmp_path / "eval"
    args = ("--policy", "scripted", "--policy", FAILING, "--n", "4", "--out", str(out))
    assert _eval(tmp_path, *args) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["schema"] == "dataengine.eval/1" and result["seed"] == EVAL_SEED and result["n"] == 4
    expert, failing = result["policies"]
    for policy in (expert, failing):
        store = EpisodeStore.open(out / "runs" / policy["name"])
        metas = [store.read_meta(i) for i in range(4)]
        assert [m["seed"] for m in metas] == [EVAL_SEED + k for k in range(4)], "every policy sees the same scenes"
        assert policy["per_episode"] == [m["metrics"]["outcome"] for m in metas]
        assert policy["successes"] == policy["per_episode"].count("SUCCESS") == policy["outcomes"].get("SUCCESS", 0)
        low, high = policy["ci95"]
        assert low <= policy["success_rate"] <= high
    assert failing["successes"] == 0 and failing["pick_rate"] < 1
    comparison = result["comparisons"][0]
    only_expert = sum(a == "SUCCESS" and b != "SUCCESS" for a, b in zip(expert["per_episode"], failing["per_episode"]))
    assert comparison["only_baseline"] == only_expert and comparison["only_policy"] == 0
    assert comparison["difference"] == pytest.approx(failing["success_rate"] - expert["success_rate"])
    assert comparison["mcnemar_p"] == pytest.approx(mcnemar_exact_p(0, only_expert))
    page = (out / "report.html").read_text()
    for outcome in set(failing["per_episode"]):
        assert f"<h3>{outcome}</h3>" in page, "every failure type gets its frame strips"
    assert (out / "success.png").stat().st_size > 0
    # the scene map: each episode's cube start is its scene's, with the episode's outcome
    for policy in (expert, failing):
        drawn = scene_outcomes(PolicyResult(**{**policy, "ci95": tuple(policy["ci95"])}))
        scenes = [sample_scene(np.random.default_rng(EVAL_SEED + k), SceneRandomization()) for k in range(4)]
        assert drawn == [(*scene.cube_xy, outcome) for scene, outcome in zip(scenes, policy["per_episode"])]
    assert (out / "scenes.png").read_bytes()[:4] == b"\x89PNG" and "Where each policy succeeds and fails" in page

    # resume: punch a hole into one run; only that episode is simulated again, and it comes back the same
    run = EpisodeStore.open(out / "runs" / failing["name"])
    kept = {i: (run.episodes_dir / f"e{i:06d}").stat().st_ino for i in (0, 2, 3)}
    shutil.rmtree(run.episodes_dir / "e000001")
    assert _eval(tmp_path, *args) == 0
    again = json.loads((out / "eval.json").read_text())
    assert again["policies"][1]["per_episode"] == failing["per_episode"]
    assert {i: (run.episodes_dir / f"e{i:06d}").stat().st_ino for i in (0, 2, 3)} == kept, "finished episodes are kept"
    assert run.completed_ids() == [0, 1, 2, 3]


def test_eval_of_a_training_run_sweeps_every_checkpoint(tmp_path, demo_dataset):
    train_dir = tmp_path / "train"
    assert main(["--workspace", str(tmp_path / "ws"), "train", "--dataset", str(demo_dataset.out), "--steps", "4",
                 "--save-freq", "2", "--batch-size", "2", "--num-workers", "0", "--device", "cpu",
                 "--out", str(train_dir), "--", *TINY_ACT]) == 0
    out = tmp_path / "sweep"
    assert main(["--workspace", str(tmp_path / "ws"), "eval", "--run", str(train_dir), "--n", "1", "--workers", "1",
                 "--device", "cpu", "--out", str(out)]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert [point["step"] for point in sweep] == [2, 4], "both saved checkpoints, in step order"
    result = json.loads((out / "eval.json").read_text())
    assert [p["step"] for p in result["policies"]] == [2, 4]
    assert len({p["policy"]["sha256"] for p in result["policies"]}) == 2
    assert (out / "success.png").is_file()


@pytest.mark.parametrize("args,message", [
    (("--policy", "scripted", "--n", "0"), "--n must be"),
    (("--policy", "scripted", "--policy", "scripted"), "given twice"),
    (("--policy", "scripted", "--seed", "-5"), "--seed must be at least 0"),
    (("--run", "{tmp}"), "holds no saved checkpoint"),
    (("--policy", "{tmp}"), "is not"),
])
def test_bad_eval_input_is_one_error_line(tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert _eval(tmp_path, *args, "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "out").exists(), "nothing is written for bad input"


@pytest.mark.parametrize("damaged", ["manifest.json", "episodes/e000000/meta.json"])
def test_a_damaged_run_file_is_one_error_line_and_is_left_as_it_is(tmp_path, capsys, damaged):
    out = tmp_path / "eval"
    args = ("--policy", "scripted", "--n", "1", "--out", str(out))
    assert _eval(tmp_path, *args) == 0
    (run,) = (out / "runs").iterdir()
    target = run / damaged
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])  # truncated, as by a full disk
    before = target.read_bytes()
    capsys.readouterr()
    assert _eval(tmp_path, *args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {target} is damaged") and "Traceback" not in err, err
    assert target.read_bytes() == before
