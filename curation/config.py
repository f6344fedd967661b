"""``dataengine curate`` configuration: one dataclass per filter, their defaults in one place, a TOML section.

```toml
[curate]                      # in dataengine.toml, passed with --config
vcodec = "h264"
image_size = 224

[curate.grip]                 # every filter has `enabled`; the other keys are its thresholds
enabled = true
min_squeeze = 1.0

[curate.balance]
enabled = true
```
Command-line flags override the file; the file overrides these defaults.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.preflight import check_table
from so101_dataengine.base.project_file import read_project_file


@dataclass
class VerdictFilter:
    """Keep episodes judged successful. The judge is the visual classifier (``--classifier``) at its calibrated
    threshold; the simulator's outcome is privileged ground truth and is the judge only when asked for
    explicitly (``use_sim_outcome``, simulation-only datasets). With neither, curation refuses to run."""

    enabled: bool = True
    use_sim_outcome: bool = False
    threshold: float | None = None
    """Override the classifier's calibrated threshold (None: the artifact's own)."""


@dataclass
class GripFilter:
    """Reject "lazy grips": simulated friction holds a cube that a real SO-101 would drop. Measured on the
    transport phase (the longest run of frames where the gripper is closed on something: aperture above
    ``empty_aperture`` while the command asks for less), in LeRobot gripper units (0 closed .. 100 open)."""

    enabled: bool = True
    empty_aperture: float = 3.0
    """Below this the jaws closed on nothing."""
    min_transport_frames: int = 10
    """A grasp held for fewer frames is not a transport (no transport: rejected)."""
    min_squeeze: float = 1.0
    """Median (aperture - command) during transport: how hard the position servo squeezes. A command that barely
    undercuts the aperture holds only by friction."""
    max_aperture: float = 20.0
    """A wider aperture means the cube is held by an edge or corner (the cube's face width is ~10.5)."""
    max_slip: float = 3.0
    """Aperture change during transport: the cube turning or sliding between the jaws."""


@dataclass
class MotionFilter:
    """Reject physically implausible or broken recordings."""

    enabled: bool = True
    max_jerk: float = 1.0e6
    """Largest |third difference| of the recorded arm joint positions x fps^3, in degrees/s^3. The scripted
    expert's minimum-jerk moves peak at ~2-2.5e5; a policy whose chunks jump shows up here."""
    max_limit_frames: int = 15
    """Frames whose arm command lies beyond a joint's range by more than ``limit_margin`` degrees: the servo
    pushes the joint into its stop (the expert's top-down grasp rests *at* the wrist limit, which is fine)."""
    limit_margin: float = 1.0
    max_frozen_frames: int = 30
    """Longest run of consecutive identical camera frames (a stalled renderer or recording)."""


@dataclass
class LengthFilter:
    """Reject length outliers: robust z-score |len - median| / max(1.4826 MAD, min_spread x median) above
    ``max_z`` among the episodes still in the running, and episodes shorter than ``min_frames``."""

    enabled: bool = True
    max_z: float = 3.5
    min_spread: float = 0.1
    """The spread is at least this fraction of the median length: with few, similar episodes the MAD alone would
    call ordinary variation (the expert's lengths vary ~10 %) an outlier."""
    min_frames: int = 30


@dataclass
class DuplicateFilter:
    """Reject near-duplicates: same start scene (cube and bowl within ``scene_tolerance`` m, cube yaw within
    ``yaw_tolerance`` rad) and the same trajectory (state RMS difference below ``state_tolerance`` degrees after
    resampling both to ``resample`` points). The first episode of a group is kept."""

    enabled: bool = True
    scene_tolerance: float = 0.002
    yaw_tolerance: float = 0.02
    state_tolerance: float = 1.0
    resample: int = 32


@dataclass
class BalanceFilter:
    """Even out scene coverage: the cube's start positions are binned into a ``grid`` x ``grid`` grid over the
    accepted episodes' extent and no cell keeps more than ``max_ratio`` x the mean of the occupied cells. Off by
    default (it drops good episodes)."""

    enabled: bool = False
    grid: int = 4
    max_ratio: float = 2.0


@dataclass
class CurateConfig:
    """``dataengine curate``: rollout runs (+ an optional base dataset) -> one curated LeRobot v3 dataset."""

    runs: list[Path] = field(default_factory=list)
    out: Path | None = None
    base: Path | None = None
    """A LeRobot v3 dataset (e.g. from ``dataengine demos``) whose episodes come first, copied as they are."""
    classifier: Path | None = None
    repo_id: str = "local/so101_curated"
    vcodec: str = "libsvtav1"
    """lerobot's default (AV1); ``h264`` encodes several times faster."""
    image_size: int | None = None
    """Resize rollout frames once, at write time (None: the base's size, else the rollouts' own)."""
    workers: int | None = None
    scheduler: str | None = None
    gallery: int = 6
    """Episodes shown per side (accepted / rejected) in the report."""
    verdict: VerdictFilter = field(default_factory=VerdictFilter)
    grip: GripFilter = field(default_factory=GripFilter)
    motion: MotionFilter = field(default_factory=MotionFilter)
    length: LengthFilter = field(default_factory=LengthFilter)
    duplicates: DuplicateFilter = field(default_factory=DuplicateFilter)
    balance: BalanceFilter = field(default_factory=BalanceFilter)


FILTER_SECTIONS = ("verdict", "grip", "motion", "length", "duplicates", "balance")
_RANGES = {"threshold": (0.0, 1.0), "grid": (1, math.inf), "resample": (2, math.inf)}
"""Filter fields with a range other than [0, inf): a score threshold is a probability, a grid has cells, a
trajectory resampled to fewer than 2 points has no shape. Every threshold is finite: NaN compares false, so a
``max_z = nan`` would silently reject nothing (or everything)."""


def check_filters(config: CurateConfig, source: str = "") -> None:
    """Every filter threshold finite and in its range, before any work: a negative ``max_z`` or a NaN
    ``min_spread`` is accepted by TOML and by the type check, then rejects every episode for no visible reason.
    ``source``: where the values came from (`` of PATH``), for the error line."""
    for section in FILTER_SECTIONS:
        settings = getattr(config, section)
        for spec in dataclasses.fields(settings):
            value = getattr(settings, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            least, most = _RANGES.get(spec.name, (0, math.inf))
            if not (math.isfinite(value) and least <= value <= most):
                allowed = f"between {least} and {most}" if math.isfinite(most) else f">= {least}"
                example = spec.default if spec.default is not None else (least + most) / 2
                raise DataEngineError(f"[curate.{section}]{source}: {spec.name} must be a finite number {allowed}, "
                                      f"got {value}: write e.g. {spec.name} = {example}")


def _apply(instance, values: dict, where: str):
    known = {f.name: f for f in dataclasses.fields(instance)}
    for key, value in values.items():
        if key not in known:
            raise DataEngineError(f"unknown key {where}.{key} in the config file: use one of {', '.join(known)}")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise DataEngineError(f"{where}.{key} must be a table ([{where}.{key}]) in the config file")
            _apply(current, value, f"{where}.{key}")
        else:
            setattr(instance, key, Path(value) if key in ("out", "base", "classifier") else value)
    return instance


def load_curate_config(path: Path | None) -> CurateConfig:
    """Defaults, overridden by the ``[curate]`` section of a TOML file when given."""
    config = CurateConfig()
    if path is None:
        return config
    section = read_project_file(path, "pass an existing TOML file with a [curate] section").get("curate", {})
    check_table(CurateConfig, section, f"[curate] of {path}")  # image_size = "big": one line, before any work
    if "runs" in section:
        section = {**section, "runs": [Path(r) for r in section["runs"]]}
    config = _apply(config, section, "curate")
    check_filters(config, f" of {path}")
    return config
