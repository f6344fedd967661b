"""`dataengine curate`: real rollouts (scripted expert, MuJoCo, the episode store) -> a curated LeRobot v3 dataset
that lerobot's own loader reads, with exact stats across the merged base, provenance, a report, clean errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from pixel_stats import assert_stats_exact

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.cli import main
from so101_dataengine.curation.config import CurateConfig, load_curate_config
from so101_dataengine.curation.curate import step_summary
from so101_dataengine.curation.filters import REJECTION_CODES, Candidate, Rejection, StepReport, apply_filters
from so101_dataengine.curation.signals import GRIPPER, arm_limits_deg, measure, transport_segment
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.lerobot_compat.video import video_backend

CAMERAS = ["observation.images.overhead", "observation.images.wrist"]
REPO = "local/so101_curated"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real finished rollout run: 4 scripted-expert episodes at 32 px (the base demos are 64 px)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["rollout", "--policy", "scripted", "--n", "4", "--num-envs", "2", "--workers", "1",
                 "--image-size", "32", "--out", str(out)]) == 0
    return out


def _tree_digest(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def curated(run, demo_dataset, tmp_path_factory):
    """`dataengine curate` with the demos as base, the simulator's outcome as (explicit) verdict, AV1 (default)."""
    before = (_tree_digest(run), _tree_digest(demo_dataset.out))
    out = tmp_path_factory.mktemp("curated") / "ds"
    assert main(["curate", "--runs", str(run), "--base", str(demo_dataset.out), "--out", str(out),
                 "--use-sim-outcome", "--workers", "2"]) == 0
    assert (_tree_digest(run), _tree_digest(demo_dataset.out)) == before, "inputs must never be modified"
    return out


@pytest.fixture(scope="module")
def loaded(curated):
    return LeRobotDataset(REPO, root=curated, video_backend=video_backend())


def test_base_first_then_accepted_rollouts_resized_once(loaded, demo_dataset):
    base = LeRobotDataset(demo_dataset.repo_id, root=demo_dataset.out, video_backend=video_backend())
    assert loaded.num_episodes == base.num_episodes + 4 and loaded.fps == 30
    assert len(loaded) == loaded.meta.total_frames == sum(loaded.meta.episodes[i]["length"] for i in range(6))
    for index in (0, len(base) - 1):  # base episodes are carried over unchanged, pixels included
        for key in ["observation.state", "action", *CAMERAS]:
            np.testing.assert_array_equal(loaded[index][key].numpy(), base[index][key].numpy())
    last = loaded[len(loaded) - 1]
    assert last["observation.images.wrist"].shape == (3, 64, 64), "32 px rollouts resized to the base's 64 px"
    assert int(last["episode_index"]) == 5 and last["task"] == "pick up the cube and place it in the bowl"


def test_rollout_frames_match_the_store(loaded, run, demo_dataset):
    """State/action exactly as stored; images (resized 2x, AV1) close to the stored frames."""
    from PIL import Image

    episode = EpisodeStore.open(run).read(0)
    start = loaded.meta.episodes[2]["dataset_from_index"]
    for t in (0, 50):
        item = loaded[start + t]
        np.testing.assert_array_equal(item["observation.state"].numpy(), episode.states[t])
        expected = np.asarray(Image.fromarray(episode.images["observation.images.overhead"][t]).resize((64, 64)))
        decoded = (item["observation.images.overhead"].permute(1, 2, 0).numpy() * 255)
        assert np.abs(decoded - expected).mean() < 12


def test_image_stats_are_exact_over_every_decoded_pixel_of_base_and_rollouts(loaded):
    """meta/stats.json equals a float64 numpy computation over every pixel lerobot's loader returns, across the
    merged base and rollouts (tolerance 1e-6), and the vector stats equal numpy's (rtol 1e-6)."""
    assert_stats_exact(loaded, loaded.meta.stats, CAMERAS)
    for key in CAMERAS:
        assert int(np.asarray(loaded.meta.stats[key]["count"]).item()) == len(loaded)
    states = np.asarray(loaded.hf_dataset.with_format("numpy")["observation.state"], dtype=np.float64)
    np.testing.assert_allclose(loaded.meta.stats["observation.state"]["q99"], np.quantile(states, 0.99, axis=0),
                               rtol=1e-6)


def test_every_episode_carries_its_provenance(curated, run):
    table = pq.read_table(next((curated / "meta" / "episodes").glob("chunk-*/file-*.parquet"))).to_pylist()
    rollouts = [row for row in table if row["dataengine/source"] == "rollout"]
    manifest = EpisodeStore.open(run).manifest
    assert [r["dataengine/source_episode"] for r in rollouts] == [0, 1, 2, 3]
    for row in rollouts:
        meta = EpisodeStore.open(run).read_meta(row["dataengine/source_episode"])
        assert row["dataengine/source_run"] == str(run.resolve()) and row["dataengine/run_id"] == manifest["run_id"]
        assert row["dataengine/seed"] == meta["seed"] and row["dataengine/policy_kind"] == "scripted"
        assert row["dataengine/score"] == 1.0 and row["dataengine/classifier_version"] == "sim-outcome"
    engine = json.loads((curated / "meta" / "dataengine.json").read_text())
    assert [e["source"] for e in engine["episodes"]] == ["base", "base"] + ["rollout"] * 4
    assert engine["episodes"][0]["seed"] == 100  # the base's own provenance is kept


def test_rejections_are_counted_by_their_code_whatever_their_detail():
    """summary.json, the console table and the report count reasons per code: two jerky episodes with different
    measured jerks are one reason, "jerk 2", not two (the bug of grouping by the text before " (")."""
    report = StepReport("motion", True, 3, {(0, 0): Rejection("jerk", "5.1e+03 > 1e+03 deg/s^3"),
                                            (0, 1): Rejection("jerk", "7.7e+03 > 1e+03 deg/s^3"),
                                            (0, 2): Rejection("frozen", "40 frozen frames")})
    assert step_summary(report)["reasons"] == {"jerk": 2, "frozen": 1}


def test_report_is_self_contained_with_pngs_and_measured_purity(curated):
    report = curated / "meta" / "curation"
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4 and "src='http" not in page
    for name in ["filters.png", "outcomes.png", "scores.png", "gallery_accepted.png"]:
        assert (report / name).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["measured"]["purity"] == 1.0 and summary["measured"]["yield"] == 1.0
    assert [s["name"] for s in summary["steps"]] == ["motion", "grip", "verdict", "length", "duplicates", "balance"]
    decisions = [json.loads(line) for line in (report / "decisions.jsonl").read_text().splitlines()]
    assert [d["decision"] for d in decisions] == ["accepted"] * 4 and all(d["code"] is None for d in decisions)
    assert [d["episode"] for d in decisions] == [0, 1, 2, 3] and all(d["score"] == 1.0 for d in decisions)


def test_lerobot_train_runs_on_the_curated_dataset_on_cpu(curated, tmp_path):
    out = tmp_path / "train"
    command = [os.path.join(os.path.dirname(sys.executable), "lerobot-train"), f"--dataset.repo_id={REPO}",
               f"--dataset.root={curated}", f"--dataset.video_backend={video_backend()}", "--policy.type=act",
               "--policy.device=cpu", "--policy.push_to_hub=false", "--policy.pretrained_backbone_weights=null",
               "--steps=2", "--batch_size=2", "--num_workers=0", "--save_freq=2", "--wandb.enable=false",
               f"--output_dir={out}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "checkpoints" / "000002" / "pretrained_model" / "model.safetensors").is_file()


# -- filters on real episodes, altered the way bad rollouts look ------------------------------------------------


def _candidates(run, episodes):
    config = CurateConfig()
    return [Candidate(measure((0, i), e, 30, config.grip, config.motion, config.duplicates.resample), e.meta, 1.0)
            for i, e in enumerate(episodes)]


def test_filters_reject_lazy_grips_broken_motion_duplicates_and_length_outliers(run):
    store = EpisodeStore.open(run)
    good = [store.read(i) for i in range(4)]
    lazy_actions = good[0].actions.copy()
    closed = good[0].actions[:, 5] < 1.0  # where the expert commands the jaws shut on the cube...
    lazy_actions[closed, 5] = good[0].states[closed, 5] - 0.3  # ...command barely below the aperture instead
    nan_states = good[1].states.copy()
    nan_states[40, 2] = np.nan
    frozen = {k: v.copy() for k, v in good[2].images.items()}
    frozen["observation.images.overhead"][5:50] = frozen["observation.images.overhead"][5]  # while the arm moves
    pad = 400  # the arm resting at its final pose for 13 more seconds: a length outlier, nothing else wrong
    long = dataclasses.replace(good[3], states=np.concatenate([good[3].states, np.repeat(good[3].states[-1:], pad, 0)]),
                               actions=np.concatenate([good[3].actions, np.repeat(good[3].actions[-1:], pad, 0)]),
                               images={k: np.concatenate([v, np.repeat(v[-1:], pad, 0)])
                                       for k, v in good[3].images.items()})
    episodes = good + [dataclasses.replace(good[0], actions=lazy_actions),
                       dataclasses.replace(good[1], states=nan_states),
                       dataclasses.replace(good[2], images=frozen),
                       good[3],  # an exact repeat: same scene, same trajectory
                       long]
    config = CurateConfig()
    accepted, reports = apply_filters(_candidates(run, episodes), config, threshold=0.5)
    rejected = {key[1]: (r.name, reason) for r in reports for key, reason in r.rejected.items()}
    assert [c.key[1] for c in accepted] == [0, 1, 2, 3]
    assert rejected[4][0] == "grip" and rejected[4][1].code == "lazy_grip"
    assert rejected[5] == ("motion", Rejection("non_finite", "NaN/inf in state or action"))
    assert rejected[6][0] == "motion" and rejected[6][1].code == "frozen"
    assert rejected[7][0] == "duplicates" and rejected[7][1].code == "duplicate" and "episode 3" in rejected[7][1].detail
    assert rejected[8][0] == "length" and rejected[8][1].code in REJECTION_CODES["length"]
    for report in reports:
        summary = step_summary(report)
        assert set(summary["reasons"]) <= set(REJECTION_CODES[report.name])
        assert sum(summary["reasons"].values()) == summary["rejected"] == len(report.rejected)

    config.grip.enabled = config.motion.enabled = config.duplicates.enabled = config.length.enabled = False
    accepted, reports = apply_filters(_candidates(run, episodes), config, threshold=0.5)
    assert len(accepted) == len(episodes) and all(not r.rejected for r in reports)


def _transport(episode) -> slice:
    segment = transport_segment(episode.states, episode.actions, CurateConfig().grip)
    assert segment is not None, "the expert's episode must have a transport phase to alter"
    return segment


def _gripper_offset(episode, offset):
    """The recorded aperture during transport moved by ``offset`` (an array over the transport frames or one
    value): what a cube held by its edge, or turning between the jaws, looks like in the state."""
    states = episode.states.copy()
    states[_transport(episode), GRIPPER] += offset
    return dataclasses.replace(episode, states=states)


def _never_closing(episode):
    actions = episode.actions.copy()
    actions[:, GRIPPER] = episode.states[:, GRIPPER] + 1.0  # the jaws are never commanded onto anything
    return dataclasses.replace(episode, actions=actions)


def _jerked(episode):
    states = episode.states.copy()
    states[60:, 1] += 40.0  # a chunk boundary where the shoulder jumps 40 degrees in one frame
    return dataclasses.replace(episode, states=states)


def _into_the_stop(episode):
    actions = episode.actions.copy()
    actions[30:50, 0] = arm_limits_deg()[0, 1] + 5.0  # 20 frames commanding the base 5 degrees past its range
    return dataclasses.replace(episode, actions=actions)


@pytest.mark.parametrize("alter, step, reason", [
    (lambda e: _gripper_offset(e, np.linspace(0.0, 6.0, _transport(e).stop - _transport(e).start)), "grip",
     "slipping"),
    (lambda e: _gripper_offset(e, 12.0), "grip", "edge_grip"),
    (_never_closing, "grip", "no_transport"),
    (_jerked, "motion", "jerk"),
    (_into_the_stop, "motion", "joint_limit"),
], ids=["slip", "edge-grip", "no-transport", "jerk", "joint-limits"])
def test_each_quality_check_alone_rejects_its_kind_of_bad_episode(run, alter, step, reason):
    """One altered episode among good ones (not its own original, which the duplicate step would catch): the
    named check rejects it, and with its step off nothing else does, so no other check stands in for it."""
    store = EpisodeStore.open(run)
    episodes = [alter(store.read(0))] + [store.read(i) for i in (1, 2, 3)]
    config = CurateConfig()
    accepted, reports = apply_filters(_candidates(run, episodes), config, threshold=0.5)
    rejected = {key[1]: (r.name, why) for r in reports for key, why in r.rejected.items()}
    assert list(rejected) == [0] and rejected[0][0] == step and rejected[0][1].code == reason, rejected
    getattr(config, step).enabled = False
    accepted, _ = apply_filters(_candidates(run, episodes), config, threshold=0.5)
    assert [c.key[1] for c in accepted] == [0, 1, 2, 3]


def test_verdict_keeps_only_scores_at_the_threshold_and_balance_caps_crowded_cells(run):
    store = EpisodeStore.open(run)
    candidates = _candidates(run, [store.read(i) for i in range(4)])
    for c, score in zip(candidates, [0.9, 0.2, 0.5, 0.49]):
        c.score = score
    accepted, _ = apply_filters(candidates, CurateConfig(), threshold=0.5)
    assert [c.key[1] for c in accepted] == [0, 2]

    config = CurateConfig()
    config.balance.enabled, config.balance.grid, config.balance.max_ratio = True, 1, 0.5  # one cell, cap 2
    for c in candidates:
        c.score = 1.0
    accepted, reports = apply_filters(candidates, config, threshold=0.5)
    assert len(accepted) == 2 and len(reports[-1].rejected) == 2


def test_toml_config_sets_thresholds_and_switches_steps_off(tmp_path):
    path = tmp_path / "dataengine.toml"
    path.write_text('[curate]\nvcodec = "h264"\n[curate.grip]\nmin_squeeze = 2.5\n[curate.length]\nenabled = false\n')
    config = load_curate_config(path)
    assert config.vcodec == "h264" and config.grip.min_squeeze == 2.5 and not config.length.enabled
    assert config.motion.enabled and config.motion.max_jerk == CurateConfig().motion.max_jerk
    path.write_text("[curate.grip]\nmin_squeez = 2.5\n")
    with pytest.raises(DataEngineError, match=r"\[curate.grip\] of .*unknown key\(s\) min_squeez; allowed: .*min_squeeze"):
        load_curate_config(path)


# -- bad input: one line each, nothing written, inputs untouched -----------------------------------------------


def _fails(capsys, args, message, out):
    assert main(["curate", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_no_verdict_without_a_classifier_or_an_explicit_sim_outcome(run, tmp_path, capsys):
    _fails(capsys, ["--runs", str(run)], "curate needs a success verdict: pass --classifier", tmp_path / "a")
    _fails(capsys, ["--runs", str(run), "--classifier", str(tmp_path / "none")], "does not exist", tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_run_in_progress_or_corrupt_is_refused_untouched(run, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "summary.json").unlink()
    shutil.rmtree(unfinished / "episodes" / "e000003")
    digest = _tree_digest(unfinished)
    _fails(capsys, ["--runs", str(unfinished), "--use-sim-outcome"], "still in progress or was interrupted",
           tmp_path / "o1")
    assert _tree_digest(unfinished) == digest
    corrupt = tmp_path / "corrupt"
    shutil.copytree(run, corrupt)
    (corrupt / "episodes" / "e000001" / "data.npz").unlink()
    _fails(capsys, ["--runs", str(corrupt), "--use-sim-outcome"], "is corrupt: e000001 lacks data.npz", tmp_path / "o2")


def test_a_base_of_other_fps_or_features_is_refused(run, demo_dataset, tmp_path, capsys):
    for name, change, message in [("fps", lambda i: i.update(fps=15), "has fps 15 but the rollouts have 30"),
                                  ("features", lambda i: i["features"].pop("observation.images.wrist"),
                                   "has other features than the rollouts (observation.images.wrist)")]:
        base = tmp_path / f"base_{name}"
        shutil.copytree(demo_dataset.out / "meta", base / "meta")
        info = json.loads((base / "meta" / "info.json").read_text())
        change(info)
        (base / "meta" / "info.json").write_text(json.dumps(info))
        _fails(capsys, ["--runs", str(run), "--base", str(base), "--use-sim-outcome"], message, tmp_path / f"o_{name}")


def test_an_existing_output_is_refused(run, curated, capsys):
    digest = _tree_digest(curated)
    assert main(["curate", "--runs", str(run), "--use-sim-outcome", "--out", str(curated)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert _tree_digest(curated) == digest


def test_writer_encodes_with_lerobots_own_codec_settings():
    from so101_dataengine.formats.v3_writer import LEROBOT_CODEC_OPTIONS
    from so101_dataengine.lerobot_compat import codec_options

    for codec, options in LEROBOT_CODEC_OPTIONS.items():
        assert options == codec_options(codec)
