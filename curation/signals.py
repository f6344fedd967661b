"""Per-episode quality signals, measured once from what the rollout recorded (state, commands, camera frames).

The filters (``so101_dataengine.curation.filters``) only compare these numbers with thresholds, so a whole run is decoded once and
re-filtering with other thresholds is instant. Units are LeRobot's SO-101 units: arm joints in degrees, gripper
0 (closed) .. 100 (open).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from so101_dataengine.curation.config import GripFilter, MotionFilter
from so101_dataengine.formats.store import StoredEpisode
from so101_dataengine.scenes.so101 import JOINT_NAMES

GRIPPER = 5
ARM = slice(0, 5)
_SO101_XML = Path(__file__).resolve().parents[1] / "scenes" / "assets" / "so101.xml"


@functools.cache
def arm_limits_deg() -> np.ndarray:
    """(5, 2) joint ranges of the arm in degrees, read from the simulated arm's MJCF (the one source of truth)."""
    ranges = {j.get("name"): j.get("range") for j in ET.parse(_SO101_XML).iter("joint") if j.get("range")}
    return np.degrees(np.array([[float(v) for v in ranges[name].split()] for name in JOINT_NAMES[:5]]))


@dataclass(frozen=True)
class EpisodeSignals:
    """What the filters look at, for one stored episode."""

    key: tuple[int, int]
    """(index of the run in the curate command, episode id in that run)."""
    length: int
    finite: bool
    max_jerk: float
    """Largest |third difference| of the arm joints' recorded positions x fps^3 (degrees/s^3)."""
    limit_frames: int
    """Frames whose arm command lies beyond a joint's range by more than the margin (pushing into the stop)."""
    frozen_frames: int
    """Longest run of identical consecutive camera frames while the arm moved (a stalled recording)."""
    transport_frames: int
    squeeze: float
    """Median (aperture - commanded aperture) during transport; nan without transport."""
    aperture: float
    """Median gripper aperture during transport; nan without transport."""
    slip: float
    """max - min aperture during transport; nan without transport."""
    scene: tuple[float, ...]
    """cube x, cube y, cube yaw, bowl x, bowl y."""
    trajectory: np.ndarray
    """The state resampled to a fixed number of points (for near-duplicate detection)."""


def transport_segment(states: np.ndarray, actions: np.ndarray, config: GripFilter) -> slice | None:
    """The longest run of frames with the jaws closed on something: aperture above ``empty_aperture`` and a
    command that asks for a narrower one (the servo is blocked by the cube), from the moment the jaws settled
    (first within 1 unit of the run's median aperture; before that they are still closing)."""
    aperture, command = states[:, GRIPPER], actions[:, GRIPPER]
    holding = (aperture > config.empty_aperture) & (command < aperture - 0.1)
    best, start = None, None
    for t, held in enumerate(np.append(holding, False)):
        if held and start is None:
            start = t
        elif not held and start is not None:
            if best is None or t - start > best.stop - best.start:
                best = slice(start, t)
            start = None
    if best is None:
        return None
    settled = np.flatnonzero(aperture[best] <= np.median(aperture[best]) + 1.0)
    start = best.start + int(settled[0])
    if best.stop - start < config.min_transport_frames:
        return None
    return slice(start, best.stop)


def _longest_frozen_run(images: dict[str, np.ndarray], moving: np.ndarray) -> int:
    """Longest run of consecutive frames identical to their predecessor in any camera while the arm moved."""
    longest = 0
    for frames in images.values():
        same = np.all(frames[1:] == frames[:-1], axis=(1, 2, 3)) & moving
        run = 0
        for frozen in same:
            run = run + 1 if frozen else 0
            longest = max(longest, run)
    return longest


def _resample(states: np.ndarray, points: int) -> np.ndarray:
    source = np.linspace(0.0, 1.0, len(states))
    target = np.linspace(0.0, 1.0, points)
    return np.stack([np.interp(target, source, states[:, d]) for d in range(states.shape[1])], axis=1)


def measure(key: tuple[int, int], episode: StoredEpisode, fps: int, grip: GripFilter, motion: MotionFilter,
            resample: int) -> EpisodeSignals:
    states = np.asarray(episode.states, dtype=np.float64)
    actions = np.asarray(episode.actions, dtype=np.float64)
    finite = bool(np.isfinite(states).all() and np.isfinite(actions).all())
    if not finite:  # nothing below is meaningful on NaN/inf; the motion filter rejects on `finite` alone
        states, actions = np.nan_to_num(states), np.nan_to_num(actions)
    jerk = float(np.abs(np.diff(states[:, ARM], 3, axis=0)).max(initial=0.0) * fps**3)
    limits = arm_limits_deg()
    beyond = (actions[:, ARM] < limits[:, 0] - motion.limit_margin) | (actions[:, ARM] > limits[:, 1] + motion.limit_margin)
    moving = np.abs(np.diff(states[:, ARM], axis=0)).max(axis=1) > 0.05
    segment = transport_segment(states, actions, grip)
    if segment is None:
        transport, squeeze, aperture, slip = 0, float("nan"), float("nan"), float("nan")
    else:
        held = states[segment, GRIPPER]
        transport = segment.stop - segment.start
        squeeze = float(np.median(held - actions[segment, GRIPPER]))
        aperture, slip = float(np.median(held)), float(held.max() - held.min())
    scene = episode.meta.get("scene", {})
    return EpisodeSignals(
        key=key,
        length=len(states),
        finite=finite,
        max_jerk=jerk,
        limit_frames=int(beyond.any(axis=1).sum()),
        frozen_frames=_longest_frozen_run(episode.images, moving),
        transport_frames=transport,
        squeeze=squeeze,
        aperture=aperture,
        slip=slip,
        scene=(*scene.get("cube_xy", (np.nan, np.nan)), scene.get("cube_yaw", np.nan),
               *scene.get("bowl_xy", (np.nan, np.nan))),
        trajectory=_resample(states, resample).astype(np.float32),
    )
