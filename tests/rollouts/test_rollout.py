"""The rollout engine, its episode store and the dask executor, end to end on real processes."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from distributed import Client, LocalCluster
from file_identities import file_identities

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.executors import ExecutorConfig
from so101_dataengine.cli import main
from so101_dataengine.formats.episode import record_episode
from so101_dataengine.formats.store import EpisodeStore, episode_dirname
from so101_dataengine.rollouts import engine, policies
from so101_dataengine.rollouts.config import RolloutConfig
from so101_dataengine.rollouts.engine import ChunkTask, PolicySpec, run_chunk
from so101_dataengine.rollouts.policies import expert_sha256
from so101_dataengine.rollouts.run import rollout
from so101_dataengine.scenes.expert import ExpertConfig, ScriptedExpert
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv

SMALL = PickPlaceConfig(image_size=32)


def _config(out, **kwargs) -> RolloutConfig:
    defaults = dict(policy="scripted", n=4, out=out, num_envs=2, chunk_size=2, scene=SMALL,
                    executor=ExecutorConfig(workers=1))
    defaults.update(kwargs)
    return RolloutConfig(**defaults)


def test_batched_engine_reproduces_single_env_episodes(tmp_path):
    """Three envs in lock-step with partial resets give exactly the episodes of one env run alone."""
    store = EpisodeStore.create(tmp_path / "run", {"n": 5})
    task = ChunkTask(str(store.root), (0, 1, 2, 3, 4), 500, PolicySpec("scripted"), SMALL, num_envs=3)
    result = run_chunk(task)
    assert result.episodes == 5 and store.completed_ids() == [0, 1, 2, 3, 4]
    env = PickPlaceEnv(SMALL)
    expert = ScriptedExpert(env)
    for episode_id in (0, 3):
        reference = record_episode(env, 500 + episode_id, lambda _o: expert.act(), expert.reset)
        stored = store.read(episode_id)
        np.testing.assert_allclose(stored.actions, reference.frames.actions, atol=1e-5)
        assert stored.meta["metrics"] == reference.metrics.to_dict()
        wrist = stored.images["observation.images.wrist"]
        assert wrist.shape == (len(reference.frames), 32, 32, 3)
        error = np.abs(wrist.astype(int) - reference.frames.images["observation.images.wrist"]).mean()
        # JPEG q90 with 4:2:0 chroma: ~4-5 / 255 on 32 px frames, ~1.1 at 224 px
        assert error < 6, f"stored frames differ from the rendered ones by {error:.2f} / 255 on average"
        tail = store.read(episode_id, frames=slice(-3, None))  # decodes only the frames asked for
        np.testing.assert_array_equal(tail.images["observation.images.wrist"], wrist[-3:])
        np.testing.assert_array_equal(tail.states, stored.states[-3:])
    files = file_identities(store.episodes_dir)
    retried = run_chunk(task)
    assert (retried.episodes, retried.env_steps) == (0, 0), "a retried chunk must not re-simulate stored episodes"
    assert file_identities(store.episodes_dir) == files, "a retried chunk must leave stored episodes untouched"


def test_a_second_attempt_at_a_stored_episode_is_dropped_not_stored_over_it(tmp_path):
    """Two attempts at one episode (a chunk retried while the first attempt still runs) race to commit: the first
    is stored, the second returns False and leaves the stored episode as it was."""
    store = EpisodeStore.create(tmp_path / "run", {"n": 1})
    env = PickPlaceEnv(SMALL)
    observation = env.reset(3)
    first, second = store.begin(0, 30), store.begin(0, 30)
    for writer, action in ((first, np.ones(6)), (second, np.zeros(6))):
        writer.add(observation.state, action, observation.images)
    env.step(np.zeros(6))
    committed = [w.commit(3, env.scene, env.metrics(), {"kind": "scripted"}, "task") for w in (first, second)]
    assert committed == [True, False]
    np.testing.assert_array_equal(store.read(0).actions, np.ones((1, 6)))
    assert store.completed_ids() == [0] and len(list(store.episodes_dir.iterdir())) == 1


def test_resume_fills_the_holes_of_a_run_and_simulates_only_them(tmp_path, workspace):
    """Chunks finish out of order (and workers die), so an interrupted run has holes, not a prefix: --resume makes
    exactly the missing ids, with their own seeds, and re-simulates none of the stored ones."""
    quick = dataclasses.replace(SMALL, max_episode_steps=12)
    out = tmp_path / "run"
    rollout(_config(out, n=6, num_envs=1, scene=quick), workspace)
    store = EpisodeStore.open(out)
    holes = (0, 3, 4)
    for episode_id in holes:
        shutil.rmtree(store.episodes_dir / episode_dirname(episode_id))
    kept = file_identities(store.episodes_dir)
    summary = rollout(_config(out, n=6, num_envs=1, scene=quick, resume=True), workspace)
    assert store.completed_ids() == list(range(6))
    assert [store.read_meta(i)["seed"] for i in range(6)] == [1_000_000 + i for i in range(6)]
    assert summary.env_steps == sum(store.read_meta(i)["length"] for i in holes), "only the holes are simulated"
    now = file_identities(store.episodes_dir)
    assert {name: now[name] for name in kept} == kept, "stored episodes were rewritten"


def test_cli_rollout_on_embedded_dask_cluster_with_summary(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["rollout", "--policy", "scripted", "--n", "4", "--num-envs", "2", "--chunk-size", "2",
                 "--workers", "2", "--image-size", "32", "--out", str(out)]) == 0
    store = EpisodeStore.open(out)
    assert store.completed_ids() == [0, 1, 2, 3]
    assert len(store.manifest["run_id"]) == 32
    meta = store.read_meta(2)
    assert meta["seed"] == 1_000_002 and meta["policy"]["kind"] == "scripted"
    assert meta["metrics"]["outcome"] == "SUCCESS"
    summary = (out / "summary.json").read_text()
    assert '"episodes": 4' in summary
    assert "env-steps/s" in capsys.readouterr().err
    # the expert's settings are its identity: episodes of a changed expert (e.g. its grasp aim) are told apart
    assert meta["policy"] == store.manifest["policy"] and meta["policy"]["sha256"] == expert_sha256()
    monkeypatch.setattr(policies, "ExpertConfig", lambda: ExpertConfig(grasp_bias=0.0))
    assert expert_sha256() != meta["policy"]["sha256"]
    assert main(["rollout", "--policy", "scripted", "--n", "4", "--image-size", "32", "--out", str(out),
                 "--resume"]) == 2, "a run is not resumed with a different expert"
    assert "policy" in capsys.readouterr().err


def test_act_rollout_records_policy_identity(act_checkpoint, tmp_path, workspace):
    summary = rollout(_config(tmp_path / "run", policy="act", n=2, scene=PickPlaceConfig(image_size=None)), workspace)
    assert summary.episodes == 2
    meta = EpisodeStore.open(tmp_path / "run").read_meta(0)
    assert meta["policy"]["path"] == str(act_checkpoint.resolve()) and len(meta["policy"]["sha256"]) == 64
    assert meta["length"] > 0


def test_an_episode_started_in_a_used_slot_acts_like_a_fresh_policy(act_checkpoint, tmp_path, monkeypatch):
    """The users' worst bug (no policy.reset() between episodes: 73 % -> 23 %), through the engine: episodes of 7
    steps end with 3 actions of a 5-action chunk still queued; the next episode in that environment must act
    exactly as the same episode run alone by a freshly loaded policy."""
    scene = PickPlaceConfig(image_size=64, max_episode_steps=7)
    spec = PolicySpec("act", str(act_checkpoint), device="cpu")
    used = EpisodeStore.create(tmp_path / "used", {"n": 3})
    run_chunk(ChunkTask(str(used.root), (0, 1, 2), 0, spec, scene, num_envs=1, lanes=1))
    monkeypatch.setattr(engine, "_POLICY_CACHE", {})  # the reference gets a newly loaded policy
    fresh = EpisodeStore.create(tmp_path / "fresh", {"n": 3})
    run_chunk(ChunkTask(str(fresh.root), (2,), 0, spec, scene, num_envs=1, lanes=1))
    np.testing.assert_array_equal(used.read(2).actions, fresh.read(2).actions)
    assert not np.allclose(used.read(2).actions[:3], used.read(1).actions[-3:]), "the comparison must mean something"


def test_bad_input_gets_one_clear_error(tmp_path, workspace, act_checkpoint):
    with pytest.raises(DataEngineError, match="--n must be at least 1"):
        rollout(_config(tmp_path / "a", n=0), workspace)
    with pytest.raises(DataEngineError, match="not 'act', 'scripted' or a checkpoint"):
        rollout(_config(tmp_path / "b", policy=str(tmp_path / "missing")), workspace)
    with pytest.raises(DataEngineError, match="renders 32 px but the policy was trained on 64 px"):
        rollout(_config(tmp_path / "d", policy="act"), workspace)
    with pytest.raises(DataEngineError, match="no trained act policy"):
        rollout(_config(tmp_path / "c", policy="act"), type(workspace)(tmp_path / "empty_ws"))
    rollout(_config(tmp_path / "run", n=2), workspace)
    before = sorted(p.name for p in (tmp_path / "run").rglob("*"))
    with pytest.raises(DataEngineError, match="already exists and is not empty"):
        rollout(_config(tmp_path / "run", n=2), workspace)
    with pytest.raises(DataEngineError, match=r"belongs to another run \(n differ"):
        rollout(_config(tmp_path / "run", n=3, resume=True), workspace)
    assert sorted(p.name for p in (tmp_path / "run").rglob("*")) == before


def test_killed_run_resumes_to_exactly_n_episodes(tmp_path):
    """SIGKILL the whole `dataengine rollout` process group mid-run, then --resume: ids 0..n-1, once each."""
    out = tmp_path / "run"
    args = ["rollout", "--policy", "scripted", "--n", "6", "--num-envs", "1", "--chunk-size", "1",
            "--workers", "1", "--image-size", "32", "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "so101_dataengine.cli", *args], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(EpisodeStore(out).completed_ids() if out.exists() else []) < 2:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    store = EpisodeStore.open(out)
    partial = len(store.completed_ids())
    assert 2 <= partial < 6
    run_id = store.manifest["run_id"]
    assert main([*args, "--resume"]) == 0
    assert store.completed_ids() == list(range(6))
    assert store.manifest["run_id"] == run_id, "resume must continue the same run, not replace its manifest"
    assert not [p for p in store.episodes_dir.iterdir() if p.name.startswith(".tmp-")]


def test_a_worker_lost_mid_run_is_retried_elsewhere(tmp_path, workspace):
    """A real LocalCluster with two workers; one worker process is killed once episodes start landing."""
    out = tmp_path / "run"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as cluster, Client(cluster) as client:

        pids_before = set(client.run(os.getpid).values())
        killed = []

        def kill_one_worker():
            while not (out.exists() and EpisodeStore(out).completed_ids()):
                time.sleep(0.1)
            victim = min(pids_before)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        config = _config(out, n=8, num_envs=1, chunk_size=2, executor=ExecutorConfig(scheduler=cluster.scheduler_address))
        summary = rollout(config, workspace)
        killer.join(timeout=5)
        assert killed and killed[0] not in set(client.run(os.getpid).values()), "no worker was killed"
    assert summary.episodes == 8
    assert EpisodeStore.open(out).completed_ids() == list(range(8))
