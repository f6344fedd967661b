"""The curation filters: small named steps, applied in order, each rejecting some of the episodes still in the
running and saying why. A step that is switched off (``enabled = false``) passes everything.

Why a rejection is a :class:`Rejection` (a stable code and a detail), as datatrove's filters return
``(False, "reason_code")``: the counts in the console table, ``summary.json`` and the report group by the code,
while the detail (the measured number against its limit) stays per episode. Codes are part of the on-disk format
(docs/curation.md lists them); details may change wording.

Steps see only measured signals (``so101_dataengine.curation.signals``) and the verdict scores, never the simulator's outcome
unless the verdict was explicitly set to use it (``--use-sim-outcome``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from so101_dataengine.curation.config import (
    BalanceFilter,
    CurateConfig,
    DuplicateFilter,
    GripFilter,
    LengthFilter,
    MotionFilter,
    VerdictFilter,
)
from so101_dataengine.curation.signals import EpisodeSignals
from so101_dataengine.scenes.outcome import Outcome


@dataclass
class Candidate:
    """One rollout episode under consideration."""

    signals: EpisodeSignals
    meta: dict
    score: float | None = None
    """The verdict's success probability (classifier), 1/0 for the simulator's outcome, None without a verdict."""

    @property
    def key(self) -> tuple[int, int]:
        return self.signals.key

    @property
    def outcome(self) -> str | None:
        return self.meta.get("metrics", {}).get("outcome")


@dataclass(frozen=True)
class Rejection:
    """Why one step rejected one episode: ``code`` (stable, snake_case) and ``detail`` (the measurement)."""

    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


REJECTION_CODES = {
    "motion": ("non_finite", "jerk", "joint_limit", "frozen"),
    "grip": ("no_transport", "lazy_grip", "edge_grip", "slipping"),
    "verdict": ("low_score",),
    "length": ("too_short", "length_outlier"),
    "duplicates": ("duplicate",),
    "balance": ("over_represented",),
}
"""Every code each step can give (the documented set; a test holds the rules to it)."""


@dataclass
class StepReport:
    name: str
    enabled: bool
    seen: int
    rejected: dict[tuple[int, int], Rejection] = field(default_factory=dict)
    """Rejected episode key -> why."""


Rule = Callable[[list[Candidate], object], dict[tuple[int, int], Rejection]]


def verdict_rule(threshold: float) -> Rule:
    def rule(candidates: list[Candidate], _config: VerdictFilter) -> dict:
        return {c.key: Rejection("low_score", f"score {c.score:.2f} < {threshold:.2f}") for c in candidates if not c.score >= threshold}

    return rule


def grip_rule(candidates: list[Candidate], config: GripFilter) -> dict:
    rejected = {}
    for c in candidates:
        s = c.signals
        if s.transport_frames == 0:
            rejected[c.key] = Rejection("no_transport", "never held the cube")
        elif s.squeeze < config.min_squeeze:
            rejected[c.key] = Rejection("lazy_grip", f"squeeze {s.squeeze:.2f} < {config.min_squeeze}")
        elif s.aperture > config.max_aperture:
            rejected[c.key] = Rejection("edge_grip", f"aperture {s.aperture:.1f} > {config.max_aperture}")
        elif s.slip > config.max_slip:
            rejected[c.key] = Rejection("slipping", f"aperture moved {s.slip:.1f} > {config.max_slip}")
    return rejected


def motion_rule(candidates: list[Candidate], config: MotionFilter) -> dict:
    rejected = {}
    for c in candidates:
        s = c.signals
        if not s.finite:
            rejected[c.key] = Rejection("non_finite", "NaN/inf in state or action")
        elif s.max_jerk > config.max_jerk:
            rejected[c.key] = Rejection("jerk", f"{s.max_jerk:.3g} > {config.max_jerk:.3g} deg/s^3")
        elif s.limit_frames > config.max_limit_frames:
            rejected[c.key] = Rejection("joint_limit", f"{s.limit_frames} frames pushing a joint limit")
        elif s.frozen_frames > config.max_frozen_frames:
            rejected[c.key] = Rejection("frozen", f"{s.frozen_frames} frozen frames")
    return rejected


def length_rule(candidates: list[Candidate], config: LengthFilter) -> dict:
    lengths = np.array([c.signals.length for c in candidates], dtype=np.float64)
    if len(lengths) == 0:
        return {}
    median = np.median(lengths)
    spread = max(1.4826 * np.median(np.abs(lengths - median)), config.min_spread * median)
    rejected = {}
    for c, length in zip(candidates, lengths):
        if length < config.min_frames:
            rejected[c.key] = Rejection("too_short", f"{int(length)} frames < {config.min_frames}")
        elif spread > 0 and abs(length - median) / spread > config.max_z:
            rejected[c.key] = Rejection("length_outlier",
                                       f"{int(length)} frames, median {median:.0f}, z {abs(length - median) / spread:.1f}")
    return rejected


def duplicate_rule(candidates: list[Candidate], config: DuplicateFilter) -> dict:
    """Greedy: walk in order (best score first); an episode matching an already kept one is a duplicate."""
    ordered = sorted(candidates, key=lambda c: (-(c.score if c.score is not None else 0.0), c.key))
    kept: list[Candidate] = []
    rejected = {}
    for c in ordered:
        scene = np.asarray(c.signals.scene)
        for k in kept:
            other = np.asarray(k.signals.scene)
            same_scene = (np.all(np.abs(scene[[0, 1, 3, 4]] - other[[0, 1, 3, 4]]) <= config.scene_tolerance)
                          and abs(scene[2] - other[2]) <= config.yaw_tolerance)
            if not same_scene:
                continue
            rms = float(np.sqrt(np.mean((c.signals.trajectory - k.signals.trajectory) ** 2)))
            if rms < config.state_tolerance:
                rejected[c.key] = Rejection("duplicate", f"of run {k.key[0]} episode {k.key[1]} (state RMS {rms:.2f})")
                break
        else:
            kept.append(c)
    return rejected


def balance_rule(candidates: list[Candidate], config: BalanceFilter) -> dict:
    """Cap each cube-position cell at ``max_ratio`` x the mean occupancy; within a cell, the best scores stay."""
    if not candidates:
        return {}
    xy = np.array([c.signals.scene[:2] for c in candidates])
    low, high = xy.min(axis=0), xy.max(axis=0)
    cells = np.clip(((xy - low) / np.maximum(high - low, 1e-9) * config.grid).astype(int), 0, config.grid - 1)
    by_cell: dict[tuple[int, int], list[Candidate]] = {}
    for c, cell in zip(candidates, map(tuple, cells)):
        by_cell.setdefault(cell, []).append(c)
    cap = max(1, math.ceil(config.max_ratio * len(candidates) / len(by_cell)))
    rejected = {}
    for cell, members in by_cell.items():
        members.sort(key=lambda c: (-(c.score if c.score is not None else 0.0), c.key))
        for c in members[cap:]:
            rejected[c.key] = Rejection("over_represented", f"scene cell {cell}: {len(members)} > {cap}")
    return rejected


def steps(config: CurateConfig, threshold: float | None) -> list[tuple[str, object, Rule]]:
    """The pipeline, in order: cheap physical checks first, the verdict, then set-level steps (length outliers,
    duplicates, balance), which depend on which episodes are still in."""
    return [
        ("motion", config.motion, motion_rule),
        ("grip", config.grip, grip_rule),
        ("verdict", config.verdict, verdict_rule(threshold if threshold is not None else 0.5)),
        ("length", config.length, length_rule),
        ("duplicates", config.duplicates, duplicate_rule),
        ("balance", config.balance, balance_rule),
    ]


def apply_filters(candidates: list[Candidate], config: CurateConfig, threshold: float | None
                  ) -> tuple[list[Candidate], list[StepReport]]:
    """Accepted candidates (in their original order) and one report per step."""
    remaining = list(candidates)
    reports = []
    for name, section, rule in steps(config, threshold):
        report = StepReport(name, section.enabled, len(remaining))
        if section.enabled:
            report.rejected = rule(remaining, section)
            remaining = [c for c in remaining if c.key not in report.rejected]
        reports.append(report)
    return remaining, reports


def purity_and_yield(candidates: list[Candidate], accepted: list[Candidate]) -> dict[str, float | int | None]:
    """Measured against the simulator's privileged outcome (when the run recorded one): purity = accepted
    successes / accepted, yield = accepted successes / all successes."""
    success = Outcome.SUCCESS.value
    known = [c for c in candidates if c.outcome is not None]
    if not known:
        return {"purity": None, "yield": None}
    successes = sum(c.outcome == success for c in known)
    accepted_successes = sum(c.outcome == success for c in accepted)
    return {
        "purity": accepted_successes / len(accepted) if accepted else None,
        "yield": accepted_successes / successes if successes else None,
        "accepted": len(accepted),
        "accepted_successes": accepted_successes,
        "successes": successes,
    }
