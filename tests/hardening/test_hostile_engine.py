"""Hostile inputs to the engine's stages (rollout, demos, curate, cycle, hooks, executors): counts and sizes that
would exhaust memory or run for ever, NaN weights and thresholds, unreachable schedulers, symlinked outputs, a
ledger or config that is a directory, a checkpoint without the robot's state.

The property, as everywhere (docs/guarantees.md): one ``error: <problem>: <fix>`` line, exit status 2, no
traceback, and nothing written (no run directory, no dataset, no lock file beside a link's target). Every check
here runs before any work, so these tests take seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_errors import one_error_line

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.executors import ExecutorConfig, dask_client
from so101_dataengine.base.preflight import MAX_EPISODES, MAX_IMAGE_SIZE, MAX_SEED, check_new_output_dir
from so101_dataengine.cli import main
from so101_dataengine.curation.config import load_curate_config
from so101_dataengine.cycle import cycle_config
from so101_dataengine.hooks.config import load_hooks
from so101_dataengine.hooks.render import VersionEvent
from so101_dataengine.hooks.runner import fire_hooks, plan
from so101_dataengine.rollouts.lerobot_policy import image_size_of
from so101_dataengine.scenes.faulty_expert import FaultMix

SMALL = ["--image-size", "64"]
ROLLOUT = ["rollout", "--policy", "scripted", "--workers", "1", "--num-envs", "1"]
CURATE = ["curate", "--use-sim-outcome", "--workers", "1", "--vcodec", "h264"]
UNREACHABLE = ["tcp://256.0.0.1:99999", "tcp://127.0.0.1:1", "garbage", "tcp://", "inproc://nothing"]


def refused(capsys, workspace: Path, *argv: str) -> str:
    """The command's one error line; asserts exit status 2."""
    assert main(["--workspace", str(workspace), *argv]) == 2
    return one_error_line(capsys)


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def ws(tmp_path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


# --- F8: episode counts and seeds --------------------------------------------------------------------------------

@pytest.mark.parametrize("n, seed, expected", [
    (1_000_000_000_000, 0, f"--n must be at most {MAX_EPISODES}"),
    (2, MAX_SEED, "--seed must be at most"),
    (1, 10**30, "--seed must be at most"),
])
def test_rollout_refuses_a_count_or_seed_beyond_its_bound_before_writing(capsys, ws, n, seed, expected):
    out = ws / "run"
    line = refused(capsys, ws, *ROLLOUT, *SMALL, "--n", str(n), "--seed", str(seed), "--out", str(out))
    assert expected in line
    assert entries(ws) == []


def test_eval_goes_through_the_same_bound(capsys, ws):
    out = ws / "eval"
    line = refused(capsys, ws, "eval", "--policy", "scripted", "--workers", "1", "--num-envs", "1", *SMALL,
                   "--n", "1000000000000", "--out", str(out))
    assert f"--n must be at most {MAX_EPISODES}" in line
    assert not (out / "runs").exists()


@pytest.mark.parametrize("flags, expected", [
    (["--n", "1000000000000"], f"--n must be at most {MAX_EPISODES}"),
    (["--n", "1", "--seed", str(MAX_SEED)], "--seed must be at most"),
    (["--n", "1", "--image-size", "5000"], f"--image-size must be at most {MAX_IMAGE_SIZE}"),
    (["--n", "1", "--image-size", "0"], "--image-size must be at least 16"),
])
def test_demos_refuse_counts_seeds_and_sizes_before_writing(capsys, ws, flags, expected):
    line = refused(capsys, ws, "demos", "--workers", "1", "--vcodec", "h264", *flags, "--out", str(ws / "demos"))
    assert expected in line
    assert entries(ws) == []  # not even the hidden staging directory


@pytest.mark.parametrize("table, expected", [
    ({"n": 10**12}, f"n must be at most {MAX_EPISODES}"),
    ({"n": 2, "seed": MAX_SEED}, "seed must be at most"),
    ({"n": 2, "image_size": 100_000}, f"image_size must be at most {MAX_IMAGE_SIZE}"),
])
def test_cycle_bounds_its_count_seed_and_image_size(tmp_path, table, expected):
    document = {"cycle": {"repo_id": "lab/x", "policy": "scripted", "use_sim_outcome": True, **table}}
    with pytest.raises(DataEngineError, match=expected):
        cycle_config(document, tmp_path / "dataengine.toml")


# --- F10: image sizes --------------------------------------------------------------------------------------------

def test_rollout_refuses_an_image_size_it_would_render_for_ever(capsys, ws):
    line = refused(capsys, ws, *ROLLOUT, "--image-size", "5000", "--n", "1", "--out", str(ws / "run"))
    assert f"--image-size must be at most {MAX_IMAGE_SIZE}" in line
    assert entries(ws) == []


def test_curate_refuses_an_image_size_the_encoder_cannot_take(capsys, ws):
    line = refused(capsys, ws, *CURATE, "--runs", str(ws / "run"), "--out", str(ws / "cur"),
                   "--image-size", "100000000")
    assert f"--image-size must be at most {MAX_IMAGE_SIZE}" in line
    assert entries(ws) == []


# --- F9: fault mixes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weight", ["nan", "inf", "-inf", "NaN"])
def test_a_non_finite_fault_weight_is_one_error_line_before_any_worker(capsys, ws, weight):
    line = refused(capsys, ws, *ROLLOUT, *SMALL, "--policy", f"scripted-faulty:drop={weight}", "--n", "1",
                   "--out", str(ws / "run"))
    assert f"bad fault mix entry 'drop={weight}'" in line and "finite" in line
    assert entries(ws) == []


def test_fault_weights_that_overflow_their_sum_are_refused():
    with pytest.raises(DataEngineError, match="too large to add up"):
        FaultMix.parse("drop=1e308,hold=1e308")


# --- F11: schedulers ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", UNREACHABLE)
def test_an_unreachable_or_malformed_scheduler_is_one_line_before_the_run_exists(capsys, ws, address):
    line = refused(capsys, ws, *ROLLOUT, *SMALL, "--n", "1", "--scheduler", address, "--out", str(ws / "run"))
    assert f"cannot reach the dask scheduler {address!r}" in line and "drop --scheduler" in line
    assert entries(ws) == []


@pytest.mark.parametrize("command", [
    [*CURATE, "--runs", "RUN", "--out", "OUT"],
    ["demos", "--n", "2", "--workers", "2", "--vcodec", "h264", *SMALL, "--out", "OUT"],
])
def test_curate_and_demos_check_the_scheduler_before_writing(capsys, ws, command):
    argv = [str(ws / "run") if a == "RUN" else str(ws / "out") if a == "OUT" else a for a in command]
    line = refused(capsys, ws, *argv, "--scheduler", "tcp://127.0.0.1:1")
    assert "cannot reach the dask scheduler 'tcp://127.0.0.1:1'" in line
    assert entries(ws) == []


def test_a_scheduler_dask_itself_cannot_connect_to_is_one_error_not_its_traceback():
    with pytest.raises(DataEngineError, match="cannot reach the dask scheduler 'inproc://nothing'"):
        with dask_client(ExecutorConfig(scheduler="inproc://nothing")):
            pass


# --- F26: symlinked outputs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("target_exists", [False, True])
def test_curate_refuses_an_out_that_is_a_symlink(capsys, tmp_path, ws, target_exists):
    target = tmp_path / "outside"
    if target_exists:
        target.mkdir()  # an empty directory: check_new_output_dir's "empty is fine" must not follow the link
    (ws / "link").symlink_to(target)
    line = refused(capsys, ws, *CURATE, "--runs", str(ws / "run"), "--out", str(ws / "link"))
    assert "is a symbolic link" in line
    assert entries(tmp_path) == sorted(["ws"] + (["outside"] if target_exists else []))  # no lock beside the target
    assert not target_exists or entries(target) == []


def test_demos_refuse_an_out_that_is_a_symlink(capsys, tmp_path, ws):
    (ws / "link").symlink_to(tmp_path / "nowhere")
    line = refused(capsys, ws, "demos", "--n", "1", "--workers", "1", "--vcodec", "h264", *SMALL,
                   "--out", str(ws / "link"))
    assert "is a symbolic link" in line
    assert entries(tmp_path) == ["ws"] and entries(ws) == ["link"]


def test_check_new_output_dir_refuses_a_dangling_link(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataEngineError, match="is a symbolic link: choose a new --out"):
        check_new_output_dir(tmp_path / "link")


# --- F2, F25, F21: hooks -----------------------------------------------------------------------------------------

HOOK = '''
[[hooks]]
name = "mark"
repo_id = "lab/so101_engine"
argv = ["{python}", "-c", "open('marker', 'w').write('ran')"]
'''


def event() -> VersionEvent:
    return VersionEvent("lab/so101_engine", "ds-0002-aaaaaaaaaaaa", 2, 10, 4, None)


def test_a_ledger_that_is_a_directory_is_one_error_line_for_status_and_run(capsys, tmp_path, ws):
    ledger = tmp_path / "ledger_dir"
    ledger.mkdir()
    config = tmp_path / "dataengine.toml"
    config.write_text(f'ledger = "{ledger}"\n' + HOOK)
    line = refused(capsys, ws, "hooks", "--config", str(config), "status")
    assert f"the hook ledger {ledger} is not a file" in line
    with pytest.raises(DataEngineError, match="is not a file"):
        fire_hooks(load_hooks(config, ws), event())
    assert entries(ws) == [] and entries(ledger) == []  # the hook did not run, no lock file beside the ledger
    assert entries(tmp_path) == ["dataengine.toml", "ledger_dir", "ws"]


def test_versions_refuses_a_config_that_is_a_directory(capsys, tmp_path, ws):
    line = refused(capsys, ws, "versions", "lab/so101_engine", "--config", str(tmp_path))
    assert f"--config {tmp_path} is not a file" in line


def test_a_relative_hook_out_dir_is_under_the_workspace_not_the_cwd(tmp_path, monkeypatch):
    cwd, ws = tmp_path / "cwd", tmp_path / "ws"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = tmp_path / "dataengine.toml"
    config.write_text(f'ledger = "{tmp_path}/ledger.jsonl"\n' + HOOK)
    hooks = load_hooks(config, ws)
    launch = plan(hooks.hooks[0], event(), "r:1", hooks.root)
    assert launch.out_dir == (ws / "hooks" / "mark" / event().tag).resolve()  # the default out_dir
    (run,) = fire_hooks(hooks, event())
    assert run.status == "succeeded" and Path(run.run_dir).is_relative_to(ws.resolve())
    assert entries(cwd) == []


# --- F27: checkpoints without the robot's state ------------------------------------------------------------------

def test_a_checkpoint_without_the_state_is_named_as_the_culprit():
    visual = {"observation.images.front": {"type": "VISUAL", "shape": [3, 64, 64]}}
    with pytest.raises(DataEngineError) as error:
        image_size_of({"input_features": visual})
    message = str(error.value)
    assert "input_features lack observation.state" in message and "not an SO-101 policy" in message
    assert "the scene does not provide" not in message


# --- F28: curation filter thresholds -----------------------------------------------------------------------------

@pytest.mark.parametrize("table, expected", [
    ("[curate.length]\nmax_z = -1.0", "\\[curate.length\\] of .*: max_z must be a finite number >= 0, got -1.0"),
    ("[curate.length]\nmin_spread = nan", "min_spread must be a finite number >= 0, got nan"),
    ("[curate.motion]\nmax_jerk = inf", "max_jerk must be a finite number >= 0, got inf"),
    ("[curate.grip]\nmin_transport_frames = -3", "min_transport_frames must be a finite number >= 0"),
    ("[curate.verdict]\nthreshold = 1.5", "threshold must be a finite number between 0.0 and 1.0"),
    ("[curate.balance]\ngrid = 0", "grid must be a finite number >= 1"),
])
def test_curate_filter_thresholds_are_range_checked(capsys, tmp_path, ws, table, expected):
    config = tmp_path / "curate.toml"
    config.write_text(table + "\n")
    with pytest.raises(DataEngineError, match=expected):
        load_curate_config(config)
    line = refused(capsys, ws, *CURATE, "--runs", str(ws / "run"), "--out", str(ws / "cur"), "--config", str(config))
    assert "must be a finite number" in line
    assert entries(ws) == []


def test_when_no_episode_passes_the_counts_it_points_at_are_printed(capfd, tmp_path, ws):
    run = tmp_path / "run"
    assert main(["--workspace", str(ws), *ROLLOUT, *SMALL, "--n", "1", "--out", str(run)]) == 0
    config = tmp_path / "curate.toml"
    config.write_text("[curate.length]\nmin_frames = 1000000\n")
    capfd.readouterr()
    assert main(["--workspace", str(ws), *CURATE, "--runs", str(run), "--out", str(ws / "cur"),
                 "--config", str(config)]) == 2
    err = capfd.readouterr().err
    table, _, error = err.rpartition("error: ")
    assert error.startswith("no episode of 1 passed the filters: see the counts above")
    assert "curation filters" in table and "too_short 1" in table
    assert not (ws / "cur").exists()
