"""Whiskers: predicted end-effector paths, forward-simulated in a copy of the simulation, on the overhead view.

The scripted expert's whiskers must be exactly the path it then takes (it is the reference a learned policy's
whiskers are read against); a policy that always outputs the same action must draw one static bundle; every policy
type the engine drives (ACT chunked and temporally ensembled, Diffusion) draws, as a still and as a video."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from PIL import Image

from so101_dataengine.cli import main
from so101_dataengine.review.whiskers import (
    OverheadCanvas,
    PolicyForecaster,
    WhiskersRequest,
    forecaster_for,
    make_whiskers,
    trace_episode,
)
from so101_dataengine.rollouts.engine import PolicySpec
from so101_dataengine.rollouts.policies import LeRobotPolicy
from so101_dataengine.scenes.faulty_expert import FaultMix
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv

SMALL = PickPlaceConfig(image_size=64)


@pytest.mark.parametrize("spec", [PolicySpec("scripted"), PolicySpec("scripted-faulty", faults=FaultMix.parse("drop=1"))],
                         ids=["expert", "expert-dropping"])
def test_the_experts_whiskers_lie_on_the_path_it_then_takes(spec):
    env = PickPlaceEnv(dataclasses.replace(SMALL, render=False))  # the expert needs no cameras
    trace = trace_episode(forecaster_for(spec), env, seed=11, every=20)
    assert trace.outcome == ("SUCCESS" if spec.kind == "scripted" else "DROPPED_DURING_TRANSPORT")
    checked = 0
    for whisker in trace.whiskers:
        taken = trace.path[whisker.step : whisker.step + len(whisker.points)]
        assert np.abs(taken - whisker.points[: len(taken)]).max() < 1e-4, whisker.step  # metres
        checked += len(taken) > 1
    assert checked >= 8 and len(trace.whiskers[0].points) == 31  # 30 steps looked ahead, from where the arm is
    moved = np.linalg.norm(trace.whiskers[1].points[-1] - trace.whiskers[1].points[0])
    assert moved > 0.01  # the whiskers show motion, not a point


def _constant_act(act_checkpoint, tmp_path):
    """The tiny ACT with its action head zeroed: every action of every chunk is the dataset's mean action."""
    from safetensors.torch import load_file, save_file

    checkpoint = tmp_path / "constant_act"
    shutil.copytree(act_checkpoint, checkpoint)
    weights = load_file(checkpoint / "model.safetensors")
    weights["model.action_head.weight"].zero_()
    weights["model.action_head.bias"].zero_()
    save_file(weights, checkpoint / "model.safetensors")
    return checkpoint


def test_a_policy_that_always_outputs_the_same_action_draws_a_static_bundle(act_checkpoint, tmp_path):
    policy = LeRobotPolicy(_constant_act(act_checkpoint, tmp_path), device="cpu")
    env = PickPlaceEnv(dataclasses.replace(SMALL, max_episode_steps=90))
    forecaster = PolicyForecaster(policy)
    trace = trace_episode(forecaster, env, seed=3, every=5)
    chunk = forecaster.chunk(None, env.observe(), 0)
    assert chunk.shape == (10, 6) and np.ptp(chunk, axis=0).max() < 1e-4  # the same action, a chunk of it
    settled = np.stack([w.points for w in trace.whiskers if w.step >= 60])
    assert len(settled) == 6
    assert np.abs(settled - settled[0]).max() < 2e-3  # every late whisker is the same one: a static bundle
    assert np.linalg.norm(settled[0][-1] - trace.path[-1]) < 2e-3  # ... where the arm actually rests
    first = trace.whiskers[0].points
    assert np.linalg.norm(first[-1] - first[0]) > 0.01  # while the arm still moved toward it, the whisker did too


def test_diffusion_whiskers_as_a_video(diffusion_checkpoint, tmp_path):
    import av

    out = tmp_path / "diffusion.mp4"
    spec = PolicySpec("diffusion", str(diffusion_checkpoint), "cpu")
    trace = make_whiskers(WhiskersRequest(spec, 5, dataclasses.replace(SMALL, max_episode_steps=20), every=5,
                                          size=128), out)
    assert [w.step for w in trace.whiskers] == [0, 5, 10, 15]
    assert {len(w.points) for w in trace.whiskers} == {8}  # horizon 8 - 2 observations + 1 actions, + the start
    with av.open(str(out)) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == 20 and frames[0].shape == (128, 128, 3)
    assert not list(tmp_path.glob(".tmp-*"))


def test_whiskers_command_one_action_at_a_time_act(act_checkpoint, tmp_path, capsys):
    out = tmp_path / "act.png"
    assert main(["--workspace", str(tmp_path), "whiskers", "--policy", str(act_checkpoint), "--seed", "4",
                 "--max-steps", "20", "--every", "4", "--temporal-ensemble", "0.01", "--device", "cpu",
                 "--out", str(out)]) == 0
    assert "5 predictions over 20 steps" in capsys.readouterr().out
    image = np.asarray(Image.open(out))
    assert image.shape == (448, 448, 3)
    whisker_orange = (image[..., 0] > 200) & (image[..., 1] > 100) & (image[..., 1] < 190) & (image[..., 2] < 90)
    assert whisker_orange.sum() > 20  # drawn


def test_the_projection_puts_the_cube_on_the_cube():
    env = PickPlaceEnv(SMALL)
    env.reset(21)
    canvas = OverheadCanvas(env.model, 256)
    image = canvas.render(env)
    u, v = canvas.project(env, env.ground_truth().cube_pos[None])[0].round().astype(int)
    r, g, b = image[v, u].astype(int)
    canvas.close()
    env.close()
    assert r > 150 and g < 90 and b < 90, (u, v, (r, g, b))  # the cube is red (0.85, 0.15, 0.12)


@pytest.mark.parametrize("args,message", [
    (["--out", "w.gif"], "end it in .png or .mp4"),
    (["--every", "0"], "--every 0"),
    (["--horizon", "0"], "--horizon 0"),
    (["--out", "nowhere/w.png"], "does not exist: create it"),
    (["--policy", "nothing-here"], "is not 'act', 'scripted' or a checkpoint directory"),
])
def test_bad_whiskers_options_are_one_error_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    policy = [] if "--policy" in args else ["--policy", "scripted"]
    assert main(["whiskers", "--seed", "1", *policy, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_forecasting_leaves_the_episode_untouched():
    """Forecasting runs copies: the path taken while predicting every step is the path taken without predicting."""
    def path(every: int) -> np.ndarray:
        env = PickPlaceEnv(dataclasses.replace(SMALL, render=False, max_episode_steps=120))
        return trace_episode(forecaster_for(PolicySpec("scripted")), env, seed=2, every=every).path

    assert np.array_equal(path(1), path(1000))
