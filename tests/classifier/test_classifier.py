"""The success classifier end to end on real rollouts of the failure-injecting expert: train -> artifact ->
scores, evaluation on a held-out run, human labels, and one clear error per bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.executors import ExecutorConfig
from so101_dataengine.classifier.artifact import CONFIG, load_classifier
from so101_dataengine.classifier.config import ClassifierEvalConfig, ClassifierTrainConfig, FrameSampling, ModelConfig
from so101_dataengine.classifier.data import EpisodeRef, load_frames, split_by_episode
from so101_dataengine.classifier.evaluate import evaluate
from so101_dataengine.classifier.labels import read_labels
from so101_dataengine.classifier.metrics import calibrate_threshold, confusion, roc_auc
from so101_dataengine.classifier.scoring import verdicts_of
from so101_dataengine.classifier.train import collect_episodes, train_classifier
from so101_dataengine.cli import main
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.formats.verdict import Verdict
from so101_dataengine.rollouts.config import RolloutConfig
from so101_dataengine.rollouts.run import rollout
from so101_dataengine.scenes.pick_place import PickPlaceConfig

SIZE = 64
SCENE = PickPlaceConfig(image_size=SIZE, max_episode_steps=270)
"""Successes end by ~250 steps; failures run to the limit, so a short limit keeps the fixture cheap."""
TINY = dict(model=ModelConfig(image_size=SIZE), frames=FrameSampling(end_frames=6, early_frames=2), epochs=10,
            patience=10, batch_size=32, learning_rate=2e-3, device="cpu", workers=2)


def _rollout(out, policy, n, seed, workspace):
    rollout(RolloutConfig(policy=policy, n=n, out=out, seed=seed, num_envs=n, chunk_size=n, scene=SCENE,
                          executor=ExecutorConfig(workers=1)), workspace)
    return out


@pytest.fixture(scope="module")
def train_run(tmp_path_factory, workspace):
    return _rollout(tmp_path_factory.mktemp("clf") / "train", "scripted-faulty:none=1,miss_grasp=1,hold=1", 8,
                    7010, workspace)


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory, workspace):
    """Another policy (fault mix) and other seeds than training."""
    return _rollout(tmp_path_factory.mktemp("clf") / "eval", "scripted-faulty:none=1,miss_grasp=2", 4, 9000,
                    workspace)


@pytest.fixture(scope="module")
def trained(train_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("clf") / "artifact"
    result = train_classifier(ClassifierTrainConfig(out=out, runs=[train_run], **TINY))
    return result


def _outcomes(run):
    store = EpisodeStore.open(run)
    return {i: store.read_meta(i)["metrics"]["outcome"] for i in store.completed_ids()}


def test_trained_artifact_round_trips_and_separates_success_from_failure(trained, train_run):
    clf = load_classifier(trained.artifact)
    assert clf.version == trained.version and len(clf.version) == 12
    assert clf.threshold == pytest.approx(trained.threshold)
    described = clf.describe()
    assert described["backbone"] == ModelConfig.backbone and described["frame_size"] == SIZE
    assert described["training"]["runs"][0]["run_id"] == EpisodeStore.open(train_run).manifest["run_id"]
    assert described["training"]["label_sources"] == {"simulator": 8}
    assert described["training"]["runs"][0]["policy"]["kind"] == \
        "scripted-faulty:none=1,miss_grasp=1,drop=0,miss_goal=0,hold=1", "the fault mix is the policy's identity"
    assert sorted(p.name for p in trained.artifact.iterdir()) == ["classifier.json", "model.safetensors"]
    store = EpisodeStore.open(train_run)
    episodes = [store.read(i) for i in store.completed_ids()]
    scores = clf.score_episodes(episodes)
    truth = np.array([e.meta["metrics"]["outcome"] == "SUCCESS" for e in episodes])
    assert truth.sum() == 3, "the fixture's seeds give 3 successes, 3 misses, 2 holds"
    assert roc_auc(scores, truth) == 1.0, list(zip(scores.round(3), truth))
    assert scores[truth].mean() - scores[~truth].mean() > 0.3


def test_early_stopping_counts_patience_from_the_last_gain_above_min_improvement(train_run, tmp_path):
    """A validation loss that only creeps down must not keep training: with a min_improvement no epoch can beat,
    training stops after the first epoch plus the patience, and keeps the weights of the lowest loss."""
    result = train_classifier(ClassifierTrainConfig(out=tmp_path / "a", runs=[train_run],
                                                    **{**TINY, "patience": 2, "min_improvement": 1e9}))
    fit = result.fit
    assert fit.epochs == 3 and len(fit.history) == 3
    losses = [h["val_loss"] for h in fit.history]
    assert fit.val_loss == min(losses) and fit.best_epoch == 1 + losses.index(min(losses))
    assert all(h["seconds"] > 0 for h in fit.history)
    assert load_classifier(result.artifact).training["fit"]["history"] == fit.history


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_050", "lcnet_050"])
def test_backbones_with_a_widening_pre_logits_head_train_and_score(backbone):
    """MobileNetV3/LCNet widen their pooled features (num_features 288/256 -> 1024/1280): the head must fit."""
    import torch

    from so101_dataengine.classifier.model import SuccessNet

    net = SuccessNet(backbone, views=2, image_size=32)
    logits = net(torch.randint(0, 256, (3, 2, 40, 40, 3), dtype=torch.uint8))
    assert logits.shape == (3,)
    logits.sum().backward()
    assert net.head.weight.grad is not None


def test_validation_is_split_by_episode_never_by_frame(trained, train_run):
    refs = [EpisodeRef("rollout", "p", "run", i, 20, i % 3 == 0, "simulator", None) for i in range(30)]
    train, val = split_by_episode(refs, 0.25, seed=0)
    assert sorted(train + val) == list(range(30)) and not set(train) & set(val)
    assert sum(refs[i].success for i in val) >= 1 and sum(not refs[i].success for i in val) >= 1
    frames = load_frames(refs[:0] + collect_episodes(ClassifierTrainConfig(out=trained.artifact, runs=[train_run]))[:3],
                         ModelConfig().views, 32, FrameSampling(end_frames=4, early_frames=2), 0, 1)
    for episode in range(3):  # each episode's frames are one block: a split by episode index splits whole episodes
        assert np.sum(frames.episode == episode) == 6 and frames.end_frame[frames.episode == episode].sum() == 4
    training = load_classifier(trained.artifact).training
    val_keys = set(training["val_episodes"])
    assert len(val_keys) == training["episodes"]["val"] >= 2
    assert training["episodes"]["train"] + training["episodes"]["val"] == 8


def test_calibration_meets_target_precision_on_its_calibration_set(trained):
    calibration = trained.calibration
    assert calibration["precision"] >= 0.99 and calibration["fp"] == 0
    rng = np.random.default_rng(0)
    labels = rng.random(2000) < 0.4
    scores = np.clip(np.where(labels, rng.normal(0.75, 0.15, 2000), rng.normal(0.35, 0.15, 2000)), 0, 1)
    for target in (0.9, 0.99):
        chosen = calibrate_threshold(scores, labels, target)
        assert chosen.precision >= target
        lower = confusion(scores, labels, np.sort(scores[labels & (scores < chosen.threshold)])[-1])
        assert lower.precision < target, "a lower threshold also met the target: recall was left on the table"


def test_training_calibrates_for_the_target_precision_it_is_given(train_run, tmp_path):
    """A validation set that no threshold separates, by construction: the training run twice (a copy with its own
    run id) with every label of the copy flipped by a human label, so identical episodes carry opposite labels, and
    90 % of each class held out. Whatever the scores, some threshold reaches precision 0.3 with every success
    (7 of the 14 held-out episodes are successes), and none reaches 0.99 with all of them: a training that
    calibrated for any target but the one given would not keep all the successes."""
    twin = tmp_path / "twin"
    shutil.copytree(train_run, twin)
    manifest = json.loads((twin / "manifest.json").read_text())
    (twin / "manifest.json").write_text(json.dumps({**manifest, "run_id": "twin-" + manifest["run_id"]}))
    run_id = EpisodeStore.open(twin).manifest["run_id"]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"run_id": run_id, "episode_id": i, "success": outcome != "SUCCESS"}) + "\n"
                              for i, outcome in _outcomes(twin).items()))
    result = train_classifier(ClassifierTrainConfig(out=tmp_path / "a", runs=[train_run, twin], labels=labels,
                                                    val_fraction=0.9, target_precision=0.3,
                                                    **{**TINY, "epochs": 1}))
    calibration = result.calibration
    assert calibration["tp"] + calibration["fn"] == 7 and calibration["fp"] + calibration["tn"] == 7
    assert calibration["recall"] == 1.0 and calibration["precision"] >= 0.3, calibration
    assert calibration["target_precision"] == 0.3 == load_classifier(result.artifact).config.target_precision


def test_eval_on_held_out_run_writes_summary_and_plots(trained, eval_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["classifier", "eval", str(trained.artifact), "--runs", str(eval_run), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    outcomes = _outcomes(eval_run)
    assert summary["episodes"] == len(outcomes) == 4
    assert summary["successes"] == sum(o == "SUCCESS" for o in outcomes.values())
    c = summary["confusion"]
    assert c["tp"] + c["fp"] + c["tn"] + c["fn"] == 4
    assert sum(r["episodes"] for r in summary["by_outcome"].values()) == 4
    assert summary["roc_auc"] == 1.0
    assert (out / "reliability.png").stat().st_size > 5000 and (out / "scores.png").stat().st_size > 5000
    assert "ROC-AUC" in capsys.readouterr().err


def test_eval_refuses_a_run_the_classifier_was_trained_on(trained, train_run, tmp_path):
    with pytest.raises(DataEngineError, match="was used to train classifier"):
        evaluate(ClassifierEvalConfig(artifact=trained.artifact, runs=[train_run], out=tmp_path / "e"))


def test_artifact_from_another_backbone_or_size_is_refused(trained, train_run, tmp_path, eval_run):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("model.safetensors", CONFIG):
        (other / name).write_bytes((trained.artifact / name).read_bytes())
    config = json.loads((other / CONFIG).read_text())
    (other / CONFIG).write_text(json.dumps({**config, "backbone": "resnet18"}))
    with pytest.raises(DataEngineError, match="says resnet18 with 2 views, but model.safetensors holds another "
                                              "model's weights"):
        load_classifier(other)
    (other / CONFIG).write_text(json.dumps({**config, "frame_size": 224}))
    episode = EpisodeStore.open(eval_run).read(0)
    with pytest.raises(DataEngineError, match="has 64 px frames but this classifier was trained on 224 px"):
        load_classifier(other).score_episodes([episode])
    with pytest.raises(DataEngineError, match=f"--init .* at 64 px, but this training asks for {ModelConfig.backbone} "
                                              f".* at 48 px"):
        train_classifier(ClassifierTrainConfig(out=tmp_path / "x", runs=[train_run], init=trained.artifact,
                                               **{**TINY, "model": ModelConfig(image_size=48)}))


def test_empty_class_is_one_clear_error(tmp_path, workspace):
    only_successes = _rollout(tmp_path / "ok", "scripted", 2, 7000, workspace)
    with pytest.raises(DataEngineError, match="no failed episode among the 2 given .* scripted-faulty"):
        train_classifier(ClassifierTrainConfig(out=tmp_path / "a", runs=[only_successes], **TINY))
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_label_round_trip_and_labels_win_over_the_simulator(train_run, tmp_path, capsys):
    labels = tmp_path / "labels.jsonl"
    outcomes = _outcomes(train_run)
    failure = next(i for i, o in outcomes.items() if o != "SUCCESS" and i != 0)
    assert main(["classifier", "label", str(train_run), "--labels", str(labels), "--episodes", f"{failure},0",
                 "--success", "--by", "ana"]) == 0
    assert main(["classifier", "label", str(train_run), "--labels", str(labels), "--episodes", "0",
                 "--failure"]) == 0
    run_id = EpisodeStore.open(train_run).manifest["run_id"]
    read = read_labels(labels)
    assert read[(run_id, failure)].success is True and read[(run_id, failure)].by == "ana"
    assert read[(run_id, 0)].success is False, "the last label of an episode wins"
    assert len(labels.read_text().splitlines()) == 3, "relabelling appends: no judgement is lost"
    assert main(["classifier", "label", str(train_run), "--labels", str(labels)]) == 0
    assert "2 labelled episodes" in capsys.readouterr().out
    refs = {r.episode_id: r for r in collect_episodes(ClassifierTrainConfig(out=tmp_path / "o", runs=[train_run],
                                                                            labels=labels))}
    assert refs[failure].success and refs[failure].label_source == "human"
    assert refs[0].label_source == "human" and not refs[0].success
    assert {r.label_source for i, r in refs.items() if i not in (0, failure)} == {"simulator"}


def test_labels_naming_unknown_episodes_are_one_clear_error(train_run, eval_run, tmp_path):
    labels = tmp_path / "labels.jsonl"
    assert main(["classifier", "label", str(eval_run), "--labels", str(labels), "--episodes", "1",
                 "--failure"]) == 0
    with pytest.raises(DataEngineError, match="labels 1 episode.* not in the training data.*its run is not among "
                                              "--runs"):
        train_classifier(ClassifierTrainConfig(out=tmp_path / "a", runs=[train_run], labels=labels, **TINY))
    assert main(["classifier", "label", str(eval_run), "--labels", str(labels), "--episodes", "99",
                 "--failure"]) == 2


def test_demos_are_a_label_source(demo_dataset, train_run, tmp_path):
    config = ClassifierTrainConfig(out=tmp_path / "a", runs=[train_run], demos=[demo_dataset.out])
    refs = collect_episodes(config)
    demos = [r for r in refs if r.label_source == "demo"]
    assert len(demos) == 2 and all(r.success for r in demos)
    frames = load_frames(demos, config.model.views, 32, FrameSampling(end_frames=3, early_frames=2), 0, 1)
    assert frames.images.shape == (10, 2, 32, 32, 3) and frames.frame_size == demo_dataset.scene.image_size
    assert frames.labels.tolist() == [0, 0, 1, 1, 1] * 2
    assert dataclasses.replace(config).demos == [demo_dataset.out]


def test_rollout_scores_episodes_as_they_are_stored(trained, tmp_path, workspace):
    # seeds 9112-9114: two successes and a miss, each clearly on its side of the 8-episode fixture's threshold
    config = RolloutConfig(policy="scripted-faulty:none=1,miss_grasp=1", n=3, out=tmp_path / "scored", seed=9112,
                           num_envs=3, scene=SCENE, classifier=trained.artifact, executor=ExecutorConfig(workers=1))
    summary = rollout(config, workspace)
    store = EpisodeStore.open(tmp_path / "scored")
    clf = load_classifier(trained.artifact)
    expected = clf.score_episodes([store.read(i) for i in store.completed_ids()])
    recorded = [store.read_verdict(i) for i in store.completed_ids()]
    assert [r.classifier for r in recorded] == [clf.version] * 3
    np.testing.assert_allclose([r.score for r in recorded], expected, atol=1e-4)
    assert [r.success for r in recorded] == [bool(s >= clf.threshold) for s in expected]
    assert summary.classifier["scored"] == 3 and summary.classifier["accepted"] == sum(r.success for r in recorded)
    assert 0 < summary.classifier["accepted"] < 3, "the run should show both verdicts"
    with pytest.raises(DataEngineError, match=f"trained on {SIZE} px frames, this run renders 32 px"):
        rollout(dataclasses.replace(config, out=tmp_path / "other", scene=PickPlaceConfig(image_size=32)), workspace)
    # curation judges with the same classifier: it reuses the recorded scores and keeps only accepted episodes
    import pyarrow.parquet as pq

    from so101_dataengine.curation.config import CurateConfig
    from so101_dataengine.curation.curate import curate

    curated = curate(CurateConfig(runs=[tmp_path / "scored"], out=tmp_path / "curated", classifier=trained.artifact,
                                  vcodec="h264", workers=1))
    episodes = pq.read_table(next((tmp_path / "curated" / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
    assert curated.classifier["version"] == clf.version and len(episodes) == curated.accepted >= 1
    for row in episodes:
        assert row["dataengine/classifier_version"] == clf.version
        assert row["dataengine/score"] == pytest.approx(recorded[row["dataengine/source_episode"]].score)
        assert recorded[row["dataengine/source_episode"]].success


def test_a_recorded_verdict_is_reused_only_by_the_classifier_that_made_it(trained, eval_run, tmp_path):
    """Curation, eval and review take a verdict recorded beside an episode instead of scoring again, but only when
    the same classifier version recorded it; another classifier's verdict is scored anew, and a damaged record is
    one error line naming the file."""
    run = shutil.copytree(eval_run, tmp_path / "run")
    store, clf = EpisodeStore.open(run), load_classifier(trained.artifact)
    fresh = verdicts_of(clf, store, [0, 1, 2])
    assert [v.classifier for v in fresh] == [clf.version] * 3 and not (run / "episodes/e000000/classifier.json").exists()
    store.write_verdict(0, Verdict(clf.version, 0.123, clf.threshold))
    store.write_verdict(1, Verdict("another", 0.456, 0.5))
    reused = verdicts_of(clf, store, [0, 1, 2], record=True)
    assert reused[0].score == 0.123, "this classifier's recorded verdict is taken as it is"
    assert reused[1].classifier == clf.version and reused[1].score == pytest.approx(fresh[1].score, abs=1e-5)
    assert store.read_verdict(2) == reused[2], "record=True writes what it scored"
    (run / "episodes/e000001/classifier.json").write_text(json.dumps({"classifier": clf.version, "score": "0.9",
                                                                      "threshold": 0.5}))
    with pytest.raises(DataEngineError, match="e000001/classifier.json is damaged"):
        verdicts_of(clf, store, [1])
