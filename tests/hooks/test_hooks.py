"""Retrain hooks: config, trigger, preflight, ledger (once per version), command and slurm kinds."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import slurm_cluster

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.cli import main
from so101_dataengine.hooks.config import load_hooks
from so101_dataengine.hooks.ledger import Ledger
from so101_dataengine.hooks.render import VersionEvent
from so101_dataengine.hooks.runner import fire_hooks, launch_hook, plan

REPO = "lab/so101_hooks"


def event(tag="ds-0002-aaaaaaaaaaaa", episodes=10, previous=4, root=Path("/data/v2")) -> VersionEvent:
    return VersionEvent(REPO, tag, 2, episodes, previous, root)


def write_config(tmp_path: Path, hooks: str) -> Path:
    path = tmp_path / "dataengine.toml"
    path.write_text(f'ledger = "{tmp_path}/ledger.jsonl"\n' + hooks)
    return path


ECHO = """
[[hooks]]
name = "echo"
repo_id = "lab/so101_hooks"
argv = ["{python}", "-c", "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + chr(10))",
        "{out_dir}/calls.txt", "{repo_id}", "{tag}", "{dataset_root}", "{new_episodes}"]
out_dir = "OUT/{hook}"
min_new_episodes = 5
"""


def test_command_hook_fires_once_per_version_with_templated_argv(tmp_path):
    hooks = load_hooks(write_config(tmp_path, ECHO.replace("OUT", str(tmp_path))))
    runs = fire_hooks(hooks, event())
    assert [r.status for r in runs] == ["succeeded"]
    calls = (tmp_path / "echo" / "calls.txt").read_text().splitlines()
    assert calls == [f"{REPO} ds-0002-aaaaaaaaaaaa /data/v2 6"]  # one argv item per value: no shell, no splitting
    assert fire_hooks(hooks, event()) == []  # a retried publish of the same version fires nothing
    assert fire_hooks(hooks, event(tag="ds-0003-bbbbbbbbbbbb", episodes=12, previous=10)) == []  # grew by 2 < 5
    rerun = launch_hook(hooks.hooks[0], event(), Ledger(hooks.ledger), manual=True)
    assert rerun.status == "succeeded" and rerun.run_id.endswith(":2")
    runs = Ledger(hooks.ledger).runs()
    assert [(r.tag, r.status, r.exit_status, r.manual) for r in runs] == [
        ("ds-0002-aaaaaaaaaaaa", "succeeded", 0, False), ("ds-0002-aaaaaaaaaaaa", "succeeded", 0, True)]
    assert all(r.end >= r.start and Path(r.log).is_file() for r in runs)


@pytest.mark.parametrize("grown, fires", [(5, True), (4, False)])
def test_a_version_grown_by_exactly_min_new_episodes_fires(tmp_path, grown, fires):
    """``min_new_episodes = 5`` means "grew by at least 5": a version with exactly 5 new episodes retrains."""
    hooks = load_hooks(write_config(tmp_path, ECHO.replace("OUT", str(tmp_path))))
    runs = fire_hooks(hooks, event(episodes=10 + grown, previous=10))
    assert [r.status for r in runs] == (["succeeded"] if fires else [])


def test_three_stage_pipeline_stops_at_the_first_failing_stage(tmp_path):
    # checkpoint_gb = 0: the HLRP template's disk preflight (2 x 5 GB) is not what this tests, and must not depend on
    # the machine's free disk (a CI machine with 3 GB left after its installs failed it).
    config = write_config(tmp_path, f"""
[[hooks]]
name = "hlrp"
template = "hlrp"
repo_id = "{REPO}"
out_dir = "{tmp_path}/{{hook}}"
checkpoint_gb = 0
stages = [["{{python}}", "-c", "open('{tmp_path}/stage1', 'w')"], ["{{python}}", "-c", "raise SystemExit(3)"],
          ["{{python}}", "-c", "open('{tmp_path}/stage3', 'w')"]]
""")
    (run,) = fire_hooks(load_hooks(config), event())
    assert (run.status, run.exit_status) == ("failed", 3) and "exited with 3" in run.reason
    assert (tmp_path / "stage1").exists() and not (tmp_path / "stage3").exists()


def test_preflight_failures_are_recorded_with_their_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    config = write_config(tmp_path, f"""
[[hooks]]
name = "pi0"
template = "pi0"
repo_id = "{REPO}"
out_dir = "{tmp_path}/pi0"
checkpoints = 100000
[[hooks]]
name = "pi0-weights"
template = "pi0"
repo_id = "{REPO}"
out_dir = "{tmp_path}/pi0w"
[[hooks]]
name = "unwritable"
repo_id = "{REPO}"
argv = ["true"]
out_dir = "{blocker}/out"
""")
    runs = {r.hook: r for r in fire_hooks(load_hooks(config), event())}
    assert runs["pi0"].status == "preflight_failed" and "13 GB = 1300000.0 GB needed" in runs["pi0"].reason
    assert "model weights missing" in runs["pi0"].reason, "every reason is reported at once, not only the first"
    assert "lerobot/pi0_base (not in the Hub cache and HF_HUB_OFFLINE=1)" in runs["pi0-weights"].reason
    assert "cannot write to" in runs["unwritable"].reason
    assert {r.status for r in Ledger(tmp_path / "ledger.jsonl").runs()} == {"preflight_failed"}


def test_config_errors_name_the_problem(tmp_path):
    cases = {
        '[[hooks]]\nname = "x"\nrepo_id = "a/b"\nargv = ["true"]\ntriger = 1\n': "unknown key\\(s\\) triger",
        '[[hooks]]\nname = "x"\nrepo_id = "a/b"\n': "'argv' \\(or 'stages'\\) must be a non-empty list",
        '[[hooks]]\nname = "x"\nrepo_id = "a/b"\ntemplate = "pi9"\n': "template 'pi9' not found: use one of act, hlrp",
        '[[hooks]]\nname = "x"\nrepo_id = "a/b"\nkind = "ssh"\nargv = ["true"]\n': "unknown kind 'ssh'",
        'hooks = [': "not valid TOML",
    }
    for text, message in cases.items():
        with pytest.raises(DataEngineError, match=message):
            load_hooks(write_config(tmp_path, text))
    hooks = load_hooks(write_config(tmp_path, '[[hooks]]\nname = "x"\nrepo_id = "a/b"\nargv = ["{stpes}"]\n'))
    with pytest.raises(DataEngineError, match=r"unknown variable \{stpes\}; known: .*tag"):
        plan(hooks.hooks[0], event(), "r:1")


def test_eval_config_is_typed_with_defaults_and_errors_name_the_problem(tmp_path):
    from so101_dataengine.base.seeds import EVAL_SEED
    from so101_dataengine.hooks.config import HookEval

    hook = '[[hooks]]\nname = "x"\nrepo_id = "a/b"\nargv = ["true"]\n'
    (plain,) = load_hooks(write_config(tmp_path, hook)).hooks
    assert plain.eval is None
    (evaluated,) = load_hooks(write_config(tmp_path, hook + "eval = { n = 200 }\n")).hooks
    assert evaluated.eval == HookEval(n=200, seed=EVAL_SEED,
                                      checkpoint="{out_dir}/train/checkpoints/last/pretrained_model", args=[])
    cases = {
        "eval = 200": "must be a table like eval = \\{ n = 200 \\}",
        "eval = { n = 2, seeds = 5 }": "unknown key\\(s\\) seeds; allowed: n, seed, checkpoint, args",
        "eval = { seed = 5 }": "has no 'n'",
        "eval = { n = 0 }": "n must be a positive integer",
        'eval = { n = "200" }': "n must be a positive integer",
        "eval = { n = true }": "n must be a positive integer",
        "eval = { n = 2, seed = -1 }": "seed must be an integer >= 0",
        'eval = { n = 2, checkpoint = "" }': "checkpoint must be a non-empty path template",
        'eval = { n = 2, args = "--workers 1" }': "args must be a list of strings",
    }
    for line, message in cases.items():
        with pytest.raises(DataEngineError, match=f"^hook 'x': eval.*{message}") as error:
            load_hooks(write_config(tmp_path, hook + line + "\n"))
        assert "\n" not in str(error.value)


def test_eval_stage_follows_the_programs_and_does_not_change_once_per_version(tmp_path):
    echo = ECHO.replace("OUT", str(tmp_path))
    evaluated = 'eval = { n = 3, seed = 7, checkpoint = "{out_dir}/model-{tag}", args = ["--num-envs", "2"] }\n'
    (hook,) = load_hooks(write_config(tmp_path, echo + evaluated)).hooks
    run_id = f"{REPO}@ds-0002-aaaaaaaaaaaa:echo:1"
    launch = plan(hook, event(), run_id)
    assert launch.stages[-1] == [sys.executable, "-m", "so101_dataengine.cli", "eval", "--policy",
                                 f"{tmp_path}/echo/model-ds-0002-aaaaaaaaaaaa", "--n", "3", "--seed", "7",
                                 "--out", str(launch.run_dir / "eval"), "--num-envs", "2"]
    assert launch.stages[:-1] == plan(load_hooks(write_config(tmp_path, echo)).hooks[0], event(), run_id).stages
    # a failing evaluation fails the run, says so, and the hook still fires once per version
    hooks = load_hooks(write_config(tmp_path, echo + 'eval = { n = 1, args = ["--no-such-flag"] }\n'))
    (run,) = fire_hooks(hooks, event())
    assert (run.status, run.reason) == ("failed", "the evaluation exited with 2")
    assert (tmp_path / "echo" / "calls.txt").read_text().count("\n") == 1  # the programs ran first
    assert fire_hooks(hooks, event()) == [] and run.success() == "-"


def test_ledger_folds_the_runs_eval_json_and_status_shows_it(tmp_path, capsys):
    config = write_config(tmp_path, ECHO.replace("OUT", str(tmp_path)))
    (run,) = fire_hooks(load_hooks(config), event())
    assert main(["hooks", "--config", str(config), "status"]) == 0
    assert "success (95 % CI)" in capsys.readouterr().out and run.evaluation is None
    (Path(run.run_dir) / "eval").mkdir()
    (Path(run.run_dir) / "eval" / "eval.json").write_text(json.dumps({
        "schema": "dataengine.eval/1", "n": 200, "seed": 1_000_000_000,
        "policies": [{"success_rate": 0.81, "ci95": [0.75, 0.8587], "successes": 162, "episodes": 200}]}))
    (folded,) = Ledger(hooks_ledger := tmp_path / "ledger.jsonl").runs()
    assert folded.evaluation["successes"] == 162 and folded.success() == "81.0 % [75.0-85.9], n=200"
    assert main(["hooks", "--config", str(config), "status"]) == 0
    assert "81.0 % [75.0-85.9], n=200" in capsys.readouterr().out
    assert Ledger(hooks_ledger).evaluated(REPO, "ds-0002-aaaaaaaaaaaa")["echo"].run_id == run.run_id


SLURM = """
[[hooks]]
name = "pi0"
template = "pi0"
repo_id = "{repo}"
out_dir = "{tmp}/{{hook}}/{{tag}}"
weights = []
checkpoint_gb = 0
partitions = ["queue_a", "queue_b"]
sbatch = []
stages = [["{{python}}", "-c", "import sys; open('{tmp}/trained-' + sys.argv[1], 'a').write('x')", "{{tag}}"]]
"""


def test_slurm_dry_run_prints_a_valid_script_with_the_exact_revision(tmp_path, capsys, demo_dataset):
    from so101_dataengine.publish.publish import PublishConfig, publish

    registry = tmp_path / "registry"
    result = publish(PublishConfig(dataset=demo_dataset.out, repo_id=REPO, registry=registry))
    config = write_config(tmp_path, f"""
[[hooks]]
name = "pi0"
template = "pi0"
repo_id = "{REPO}"
out_dir = "{tmp_path}/{{hook}}/{{tag}}"
partitions = ["queue_a", "queue_b"]
sbatch = ["--gres=gpu:1"]
""")
    assert main(["hooks", "--config", str(config), "run", "--version", f"{REPO}@v3.0", "--registry",
                 str(registry), "--dry-run"]) == 0
    script = capsys.readouterr().out
    assert f"--dataset.revision={result.tag}" in script and "--policy.path=lerobot/pi0_base" in script
    assert "#SBATCH --gres=gpu:1" in script and "scancel" in script
    body = script[script.index("#!/bin/bash"):]
    assert subprocess.run(["bash", "-n"], input=body, text=True).returncode == 0  # valid bash
    assert not Ledger(tmp_path / "ledger.jsonl").runs()  # a dry run launches nothing


def test_slurm_script_runs_the_eval_stage_quoted_and_the_ledger_reads_its_result(tmp_path, monkeypatch):
    """The evaluation is one more line of the sbatch script, quoted like the others (a path with a space and a
    ``$``); the job, run here by bash as Slurm would run it, really evaluates (the scripted expert stands in for a
    checkpoint), and the ledger reads its exit status and eval.json from the run directory."""
    from so101_dataengine.hooks import slurm as slurm_kind

    def run_job_here(hook, script, run_dir):
        subprocess.run(["bash", str(script)], check=False, capture_output=True)
        return ["4242"]

    monkeypatch.setattr(slurm_kind, "submit", run_job_here)
    out_dir = tmp_path / "slurm runs $HOME"
    config = write_config(tmp_path, f"""
[[hooks]]
name = "vla"
kind = "slurm"
repo_id = "{REPO}"
out_dir = "{out_dir}/{{hook}}"
argv = ["{{python}}", "-c", "import sys; open(sys.argv[1], 'w').write('trained')", "{{out_dir}}/trained"]
eval = {{ n = 2, checkpoint = "scripted", args = ["--image-size", "32", "--workers", "1", "--device", "cpu"] }}
""")
    (hook,) = load_hooks(config).hooks
    (run,) = fire_hooks(load_hooks(config), event())
    assert (run.status, run.job_ids) == ("submitted", ["4242"]), run.reason
    script = (Path(run.run_dir) / "job.sbatch").read_text()
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    stage = [sys.executable, "-m", "so101_dataengine.cli", "eval", "--policy", "scripted", "--n", "2",
             "--seed", "1000000000", "--out", f"{run.run_dir}/eval", "--image-size", "32", "--workers", "1",
             "--device", "cpu"]
    lines = script.splitlines()
    assert shlex.join(stage) in lines and "'" in shlex.join(stage)  # quoted: the space and $HOME stay literal
    assert lines.index(shlex.join(stage)) == len(lines) - 1, "the evaluation runs after the training"
    assert shlex.split(lines[-1]) == stage
    assert (out_dir / "vla" / "trained").read_text() == "trained"
    (done,) = Ledger(hooks_ledger := tmp_path / "ledger.jsonl").runs()
    assert (done.status, done.exit_status) == ("succeeded", 0)
    assert done.evaluation["episodes"] == 2 and done.success().endswith("], n=2")
    assert Path(done.evaluation["eval"]) == Path(run.run_dir) / "eval" / "eval.json"
    assert hook.eval is not None and Ledger(hooks_ledger).fired(REPO, event().tag, "vla").run_id == run.run_id


def test_slurm_hook_races_two_partitions_on_a_real_cluster(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    hooks = load_hooks(write_config(tmp_path, SLURM.format(repo=REPO, tmp=tmp_path)))
    (run,) = fire_hooks(hooks, event())
    assert run.status == "submitted" and len(run.job_ids) == 2, run.reason
    done = slurm_cluster.finished_run(hooks.ledger)
    assert (done.status, done.exit_status) == ("succeeded", 0)
    assert (tmp_path / "trained-ds-0002-aaaaaaaaaaaa").read_text() == "x"  # exactly one of the two jobs trained
    winner = (Path(run.run_dir) / "race_winner" / "job_id").read_text().strip()
    assert winner in run.job_ids
    time.sleep(1)
    queue = subprocess.run(["squeue", "-h", "-j", ",".join(run.job_ids)], env=slurm, capture_output=True, text=True)
    assert queue.stdout.strip() == ""  # the other job was cancelled (or stood down): nothing left queued
