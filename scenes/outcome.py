"""Episode outcomes from the simulator's ground truth: the users' failure taxonomy and per-episode metrics.

The taxonomy (SUCCESS, NEVER_PICKED_UP, DROPPED_DURING_TRANSPORT, MISSED_GOAL, TIMEOUT) is what made the users'
evaluations explainable. It is privileged information: kept with every episode to audit the visual classifier,
never used to fake it.

SUCCESS means one thing, decided in one place (``OutcomeTracker.update``): the cube has been *in the bowl*
(centre inside the inner wall by a quarter cube, bottom below the rim), *released* (not touching both jaws), for
``success_hold_steps`` consecutive control steps, i.e. it came to rest there (half a second at 30 Hz) rather than
bouncing through or being dangled in it. The episode ends at that step (``done``) and ``outcome()`` reads the same
latched flag. An episode that runs out of steps with the cube in the bowl for fewer steps is a TIMEOUT: the task
was not finished in time (a cube still sliding or rocking on the rim would otherwise be labelled a success that a
camera a moment later could contradict). ``docs/testing.md`` lists the boundary tests.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass

import numpy as np


class Outcome(str, enum.Enum):
    SUCCESS = "SUCCESS"
    NEVER_PICKED_UP = "NEVER_PICKED_UP"
    DROPPED_DURING_TRANSPORT = "DROPPED_DURING_TRANSPORT"
    MISSED_GOAL = "MISSED_GOAL"
    TIMEOUT = "TIMEOUT"


@dataclass(frozen=True)
class GroundTruth:
    """What the simulator knows after a control step (metres, world frame; table top at z = 0)."""

    cube_pos: np.ndarray
    bowl_pos: np.ndarray
    grasped: bool
    """The cube touches both gripper jaws."""


@dataclass(frozen=True)
class OutcomeRules:
    """Thresholds that turn ground truth into outcomes (metres)."""

    cube_half_size: float = 0.0125
    lift_height: float = 0.02
    """The cube counts as picked once grasped with its bottom this far above the table."""
    bowl_inner_radius: float = 0.058
    bowl_rim_height: float = 0.037
    goal_margin: float = 0.06
    """A cube released within bowl radius + this margin of the bowl centre missed the goal; further away it was dropped."""
    success_hold_steps: int = 15
    """Control steps the cube must rest in the bowl, released, before the episode ends as a success."""


@dataclass(frozen=True)
class EpisodeMetrics:
    """Per-episode summary kept beside every recorded episode."""

    outcome: Outcome
    picked: bool
    max_cube_height: float
    """Highest cube bottom above the table during the episode (m)."""
    steps: int
    final_distance_to_bowl: float
    """Horizontal distance from cube to bowl centre at the end (m)."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["outcome"] = self.outcome.value
        return d


class OutcomeTracker:
    """Follows one episode step by step and says when it is over and how it ended."""

    def __init__(self, rules: OutcomeRules, max_steps: int):
        self.rules = rules
        self.max_steps = max_steps
        self.steps = 0
        self.picked = False
        self.max_cube_height = 0.0
        self.release_distance: float | None = None
        self._was_grasped = False
        self._success_streak = 0
        self._succeeded = False
        self._last: GroundTruth | None = None

    def _distance_to_bowl(self, truth: GroundTruth) -> float:
        return float(np.linalg.norm(truth.cube_pos[:2] - truth.bowl_pos[:2]))

    def in_bowl(self, truth: GroundTruth) -> bool:
        """Cube inside the bowl's walls, below its rim, and not held."""
        r = self.rules
        cube_bottom = truth.cube_pos[2] - r.cube_half_size
        return (
            not truth.grasped
            and self._distance_to_bowl(truth) < r.bowl_inner_radius - r.cube_half_size * 0.5
            and cube_bottom < r.bowl_rim_height
        )

    def update(self, truth: GroundTruth) -> None:
        r = self.rules
        self.steps += 1
        self._last = truth
        height = float(truth.cube_pos[2] - r.cube_half_size)
        self.max_cube_height = max(self.max_cube_height, height)
        if truth.grasped and height > r.lift_height:
            self.picked = True
        if self._was_grasped and not truth.grasped and self.picked:
            self.release_distance = self._distance_to_bowl(truth)
        self._was_grasped = truth.grasped
        self._success_streak = self._success_streak + 1 if self.in_bowl(truth) else 0
        self._succeeded = self._succeeded or self._success_streak >= r.success_hold_steps

    @property
    def succeeded(self) -> bool:
        """The one definition of SUCCESS (module docstring): latched, so stepping on cannot undo it."""
        return self._succeeded

    @property
    def done(self) -> bool:
        return self.succeeded or self.steps >= self.max_steps

    def outcome(self) -> Outcome:
        if self.succeeded:
            return Outcome.SUCCESS
        if not self.picked:
            return Outcome.NEVER_PICKED_UP
        if self._last is not None and (self._last.grasped or self.in_bowl(self._last)):
            return Outcome.TIMEOUT  # still holding it, or it had not come to rest in the bowl yet
        near_goal = self.rules.bowl_inner_radius + self.rules.goal_margin
        if self.release_distance is not None and self.release_distance < near_goal:
            return Outcome.MISSED_GOAL
        return Outcome.DROPPED_DURING_TRANSPORT

    def metrics(self) -> EpisodeMetrics:
        final_distance = self._distance_to_bowl(self._last) if self._last is not None else float("nan")
        return EpisodeMetrics(
            outcome=self.outcome(),
            picked=self.picked,
            max_cube_height=self.max_cube_height,
            steps=self.steps,
            final_distance_to_bowl=final_distance,
        )
