"""A scripted expert that fails on purpose, in the ways that are hard to tell from success on camera.

The success classifier needs realistic failures to learn from and to be measured on, and the scripted expert
succeeds every time. ``FaultyExpert`` is the same expert with one fault drawn per episode from its seed:

| fault          | what the arm does                                                  | simulator outcome          |
|----------------|--------------------------------------------------------------------|----------------------------|
| ``none``       | the expert's plan                                                  | SUCCESS                    |
| ``miss_grasp`` | descends 3.5-5 cm beside the cube, closes on air, carries nothing  | NEVER_PICKED_UP            |
| ``drop``       | opens the gripper during transport, >= 13 cm from the bowl         | DROPPED_DURING_TRANSPORT   |
| ``miss_goal``  | lowers and releases the cube 8.8-10.5 cm from the bowl centre      | MISSED_GOAL (next to bowl) |
| ``hold``       | carries the cube over or next to the bowl and never lets go        | TIMEOUT                    |

The last two are the hard cases: the final frames show the cube beside the bowl, or above it in the gripper.
Which fault an episode gets, and its size, depend only on the seed and the ``FaultMix``, so a run is reproducible
and two mixes (training vs evaluation) give different policies.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields

import numpy as np

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.scenes.expert import ExpertConfig, ScriptedExpert, _Phase
from so101_dataengine.scenes.outcome import Outcome
from so101_dataengine.scenes.pick_place import PickPlaceEnv
from so101_dataengine.scenes.so101 import sim_to_lerobot


class Fault(str, enum.Enum):
    NONE = "none"
    MISS_GRASP = "miss_grasp"
    DROP = "drop"
    MISS_GOAL = "miss_goal"
    HOLD = "hold"


INTENDED_OUTCOME = {
    Fault.NONE: Outcome.SUCCESS,
    Fault.MISS_GRASP: Outcome.NEVER_PICKED_UP,
    Fault.DROP: Outcome.DROPPED_DURING_TRANSPORT,
    Fault.MISS_GOAL: Outcome.MISSED_GOAL,
    Fault.HOLD: Outcome.TIMEOUT,
}


@dataclass(frozen=True)
class FaultMix:
    """Relative weights of the faults (any non-negative numbers; normalised when drawing)."""

    none: float = 0.4
    miss_grasp: float = 0.15
    drop: float = 0.15
    miss_goal: float = 0.15
    hold: float = 0.15

    @classmethod
    def parse(cls, text: str) -> "FaultMix":
        """``"none=2,hold=1"`` (unnamed faults get weight 0); an empty string is the default mix."""
        if not text:
            return cls()
        names = {f.name for f in fields(cls)}
        weights = dict.fromkeys(names, 0.0)
        for item in text.split(","):
            name, _, value = item.partition("=")
            name = name.strip()
            try:
                weight = float(value)
            except ValueError:
                weight = -1.0
            if name not in names or not (math.isfinite(weight) and weight >= 0):  # nan and inf break the draw
                raise DataEngineError(
                    f"bad fault mix entry {item!r}: use NAME=WEIGHT with NAME one of {', '.join(sorted(names))} "
                    "and WEIGHT a finite number >= 0"
                )
            weights[name] = weight
        if not 0 < sum(weights.values()) < math.inf:  # 1e308 twice overflows the normalisation
            raise DataEngineError(f"fault mix {text!r} has no positive weight, or weights too large to add up: "
                                  "use weights like none=2,hold=1")
        return cls(**weights)

    def canonical(self) -> str:
        """A stable text form (recorded as the policy's identity)."""
        return ",".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self))

    def draw(self, rng: np.random.Generator) -> Fault:
        weights = np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float64)
        return Fault(fields(self)[rng.choice(len(weights), p=weights / weights.sum())].name)


MISS_GRASP_OFFSET = (0.035, 0.05)
"""How far beside the cube the gripper closes (m): the jaws clear a 25 mm cube."""
DROP_DISTANCE = (0.14, 0.20)
"""Distance from the bowl centre at which the cube is let go during transport (m); beyond the 0.118 m that
``OutcomeRules`` counts as next to the bowl."""
MISS_GOAL_DISTANCE = (0.088, 0.105)
"""Release point from the bowl centre (m): outside its 0.065 m wall, inside the 0.118 m 'next to the bowl' zone."""
HOLD_OFFSET = (0.0, 0.05)
"""Where the held cube ends up, from the bowl centre (m)."""
REACH = (0.14, 0.31)
"""Distances from the arm's base where a top-down pose is comfortable (m): released points are kept inside."""


class FaultyExpert(ScriptedExpert):
    """The scripted expert with one fault per episode drawn from the seed (see the module docstring)."""

    def __init__(self, env: PickPlaceEnv, mix: FaultMix | None = None, config: ExpertConfig | None = None):
        super().__init__(env, config)
        self.mix = mix or FaultMix()
        self.fault = Fault.NONE

    @property
    def intended_outcome(self) -> Outcome:
        return INTENDED_OUTCOME[self.fault]

    def reset(self, seed: int) -> None:
        super().reset(seed)
        rng = np.random.default_rng([seed, 0xFA17])
        self.fault = self.mix.draw(rng)
        self._dropped = False
        self._drop_at = float(rng.uniform(*DROP_DISTANCE))
        bowl = self.env.ground_truth().bowl_pos[:2]
        if self.fault is Fault.MISS_GRASP:
            side = np.cross([0.0, 0.0, 1.0], self._jaw_axis)[:2]  # beside the cube, across the jaws' closing axis
            self.grasp_offset = side * rng.choice([-1.0, 1.0]) * rng.uniform(*MISS_GRASP_OFFSET)
        elif self.fault is Fault.MISS_GOAL:
            self.place_offset = _reachable_offset(rng, bowl, MISS_GOAL_DISTANCE)
        elif self.fault is Fault.HOLD:
            self.place_offset = _reachable_offset(rng, bowl, HOLD_OFFSET)
            closed = self.config.gripper_closed
            self.phases = [_Phase(p.name, p.duration, closed) if p.name in ("release", "retreat") else p
                           for p in self.phases]

    def act(self) -> np.ndarray:
        action = super().act()
        if self.fault is Fault.DROP and not self._dropped and self.phases[self._phase_index].name == "carry":
            here = self.env.data.site_xpos[self.ik.site][:2]
            self._dropped = float(np.linalg.norm(here - self.env.ground_truth().bowl_pos[:2])) <= self._drop_at
        if self._dropped:
            self._q[5] = self.phases[0].gripper  # the open width of this episode
            action = sim_to_lerobot(self._q)
        return action


def _reachable_offset(rng: np.random.Generator, bowl: np.ndarray, distance: tuple[float, float]) -> np.ndarray:
    """A random offset of the given length from the bowl whose end the arm reaches comfortably."""
    length = rng.uniform(*distance)
    for _ in range(64):
        angle = rng.uniform(-np.pi, np.pi)
        offset = length * np.array([np.cos(angle), np.sin(angle)])
        if REACH[0] <= np.linalg.norm(bowl + offset) <= REACH[1]:
            return offset
    return -length * bowl / np.linalg.norm(bowl)  # toward the base: always reachable for the scene's bowl range
