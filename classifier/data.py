"""Labelled frames from the three label sources, split by episode.

Every episode becomes an ``EpisodeRef`` that records where its label came from:
- ``simulator``: a rollout episode labelled by the stored outcome (privileged truth, available in simulation);
- ``human``: a rollout episode labelled in a labels file (``so101_dataengine.classifier.labels``), which wins over the simulator;
- ``demo``: an expert demonstration from a LeRobot v3 dataset (its recorded outcome, SUCCESS unless the dataset
  was made with ``--include-failures``).
Frames are chosen by ``FrameSampling``: the last K frames carry the episode's label, a few early frames are
failures (the task is not done yet). Frames are resized to the network's input size once, when loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.classifier.config import FrameSampling
from so101_dataengine.classifier.labels import Label
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.formats.v3_dataset import check_readable, is_v3_dataset, recorded_outcomes
from so101_dataengine.scenes.outcome import Outcome

SIMULATOR, HUMAN, DEMO = "simulator", "human", "demo"


@dataclass(frozen=True)
class EpisodeRef:
    """One labelled episode and where it lives."""

    kind: str
    """``rollout`` or ``demo``."""
    path: str
    origin: str
    """The run id (rollouts) or dataset directory (demos): with ``episode_id``, the episode's identity."""
    episode_id: int
    length: int
    success: bool
    label_source: str
    outcome: str | None
    """The simulator's outcome where known (for confusion by failure type)."""

    @property
    def key(self) -> str:
        return f"{self.origin}/{self.episode_id}"


def rollout_episodes(run_dir: Path, labels: dict[tuple[str, int], Label]) -> list[EpisodeRef]:
    store = EpisodeStore.open(run_dir)
    run_id = store.manifest["run_id"]
    refs = []
    for episode_id in store.completed_ids():
        meta = store.read_meta(episode_id)
        outcome = meta["metrics"]["outcome"]
        human = labels.get((run_id, episode_id))
        success, source = (human.success, HUMAN) if human else (outcome == Outcome.SUCCESS.value, SIMULATOR)
        refs.append(EpisodeRef("rollout", str(Path(run_dir).resolve()), run_id, episode_id, meta["length"], success,
                               source, outcome))
    if not refs:
        raise DataEngineError(f"run {run_dir} has no finished episodes: finish it with 'dataengine rollout --resume'")
    return refs


def demo_episodes(dataset_dir: Path) -> list[EpisodeRef]:
    """Every episode of a LeRobot v3 dataset, labelled by the outcome ``meta/dataengine.json`` records (SUCCESS
    without one: expert demos). Its files are read first, so a damaged one is one error line before training."""
    dataset_dir = Path(dataset_dir).resolve()
    if not is_v3_dataset(dataset_dir):
        raise DataEngineError(f"{dataset_dir} is not a LeRobot v3 dataset (no meta/info.json): pass a 'dataengine "
                              f"demos' output")
    info = check_readable(dataset_dir)
    outcomes = recorded_outcomes(dataset_dir) or [Outcome.SUCCESS.value] * info["total_episodes"]
    lengths = [int(b - a) for a, b in _DemoReader(dataset_dir).bounds] if outcomes else []
    return [EpisodeRef("demo", str(dataset_dir), str(dataset_dir), i, lengths[i], outcome == Outcome.SUCCESS.value,
                       DEMO, outcome) for i, outcome in enumerate(outcomes)]


def check_labels_known(labels: dict[tuple[str, int], Label], refs: list[EpisodeRef], labels_path: Path) -> None:
    """Every human label must name an episode of the given runs: a typo must not silently train without it."""
    known = {(r.origin, r.episode_id) for r in refs if r.kind == "rollout"}
    unknown = [k for k in labels if k not in known]
    if unknown:
        run_id, episode_id = unknown[0]
        runs = {r.origin for r in refs if r.kind == "rollout"}
        where = "its run is not among --runs" if run_id not in runs else "that run has no such episode"
        raise DataEngineError(f"{labels_path} labels {len(unknown)} episode(s) not in the training data, e.g. run "
                              f"{run_id} episode {episode_id} ({where}): pass that run with --runs, or fix the file")


def check_classes(refs: list[EpisodeRef]) -> None:
    """Both classes need episodes: at least 2 each, one for training and one held out for calibration."""
    for success, name, fix in ((True, "successful", "add --demos or a run with successes"),
                               (False, "failed", "add a run with failures, e.g. 'dataengine rollout --policy "
                                                 "scripted-faulty'")):
        count = sum(r.success is success for r in refs)
        if count < 2:
            raise DataEngineError(f"{'no' if count == 0 else 'only one'} {name} episode among the {len(refs)} given "
                                  f"(needs 2+: one to train, one held out to calibrate): {fix}")


def split_by_episode(refs: list[EpisodeRef], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and validation episodes; stratified by label, never splitting an episode's frames."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for success in (True, False):
        members = [i for i, r in enumerate(refs) if r.success is success]
        rng.shuffle(members)
        held = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        val += members[:held]
        train += members[held:]
    return sorted(train), sorted(val)


def frame_plan(ref: EpisodeRef, sampling: FrameSampling, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of one episode and their labels (1 success, 0 failure)."""
    end = np.arange(max(0, ref.length - sampling.end_frames), ref.length)
    early_pool = max(1, int(ref.length * sampling.early_fraction))
    early = np.sort(rng.choice(early_pool, size=min(sampling.early_frames, early_pool), replace=False))
    indices = np.concatenate([early, end])
    labels = np.concatenate([np.zeros(len(early)), np.full(len(end), float(ref.success))])
    return indices, labels.astype(np.float32)


@dataclass
class FrameSet:
    """Frames ``(N, V, S, S, 3)`` uint8 at the network's input size, labels, and each frame's episode."""

    images: np.ndarray
    labels: np.ndarray
    episode: np.ndarray
    """Index into the episode list for every frame."""
    end_frame: np.ndarray
    """True for the episode's last-K frames (the ones the episode-level rule averages)."""
    frame_size: int


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 -> ``(N, size, size, 3)`` uint8, antialiased (as ``SuccessNet.prepare`` does)."""
    if frames.shape[1:3] == (size, size):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def load_frames(refs: list[EpisodeRef], views: tuple[str, ...], image_size: int, sampling: FrameSampling, seed: int,
                workers: int, on_episode: Callable[[], None] = lambda: None) -> FrameSet:
    """Decode the planned frames of every episode (rollouts in parallel threads), resized to ``image_size``."""
    rng = np.random.default_rng([seed, 0xF7A3])
    plans = [frame_plan(ref, sampling, rng) for ref in refs]
    demo_readers: dict[str, _DemoReader] = {}

    def load(i: int) -> tuple[np.ndarray, int]:
        ref, indices = refs[i], plans[i][0]
        if ref.kind == "rollout":
            images = EpisodeStore(Path(ref.path)).read(ref.episode_id, frames=indices).images  # only those frames
            frames = _pick_views(images, views, slice(None), f"run {ref.path} episode {ref.episode_id}")
        else:
            frames = demo_readers[ref.path].frames(ref.episode_id, indices, views)
        size = frames.shape[2]
        stacked = np.stack([resize_frames(frames[:, v], image_size) for v in range(len(views))], axis=1)
        on_episode()
        return stacked, size

    for ref in refs:
        if ref.kind == "demo" and ref.path not in demo_readers:
            demo_readers[ref.path] = _DemoReader(Path(ref.path))
    rollout_ids = [i for i, r in enumerate(refs) if r.kind == "rollout"]
    results: dict[int, tuple[np.ndarray, int]] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results.update(zip(rollout_ids, pool.map(load, rollout_ids)))
    results.update({i: load(i) for i, r in enumerate(refs) if r.kind == "demo"})  # lerobot's loader: one thread
    sizes = {}
    for i, (_frames, size) in results.items():
        sizes.setdefault(size, refs[i])
    if len(sizes) > 1:
        described = ", ".join(f"{s} px ({r.path})" for s, r in sizes.items())
        raise DataEngineError(f"the training episodes have frames of different sizes: {described}; "
                              f"train on one size (the classifier refuses other sizes when scoring)")
    order = range(len(refs))
    return FrameSet(
        images=np.concatenate([results[i][0] for i in order]),
        labels=np.concatenate([plans[i][1] for i in order]),
        episode=np.concatenate([np.full(len(plans[i][0]), i) for i in order]),
        end_frame=np.concatenate([np.arange(len(plans[i][0])) >= len(plans[i][0]) - min(sampling.end_frames,
                                                                                         refs[i].length)
                                  for i in order]),
        frame_size=next(iter(sizes)),
    )


def _pick_views(images: dict[str, np.ndarray], views: tuple[str, ...], indices: np.ndarray | slice,
                name: str) -> np.ndarray:
    missing = [v for v in views if v not in images]
    if missing:
        raise DataEngineError(f"{name} has no {', '.join(missing)} (it has {', '.join(sorted(images))}): "
                              f"pass --views with cameras the episodes have")
    return np.stack([images[v][indices] for v in views], axis=1)


class _DemoReader:
    """Frames of a LeRobot v3 dataset, read through lerobot's own ``LeRobotDataset`` (offline)."""

    def __init__(self, root: Path):
        from so101_dataengine.lerobot_compat import LeRobotDataset
        from so101_dataengine.lerobot_compat.video import video_backend

        self.dataset = LeRobotDataset(f"local/{root.name}", root=root, video_backend=video_backend())
        episodes = self.dataset.meta.episodes
        self.bounds = list(zip(episodes["dataset_from_index"], episodes["dataset_to_index"]))

    def frames(self, episode: int, indices: np.ndarray, views: tuple[str, ...]) -> np.ndarray:
        missing = [v for v in views if v not in self.dataset.meta.camera_keys]
        if missing:
            raise DataEngineError(f"dataset {self.dataset.root} has no {', '.join(missing)} "
                                  f"(it has {', '.join(self.dataset.meta.camera_keys)})")
        start = self.bounds[episode][0]
        out = []
        for index in indices:
            item = self.dataset[int(start + index)]
            out.append(np.stack([(item[v].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for v in views]))
        return np.stack(out)
