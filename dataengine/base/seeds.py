"""The three scene-seed ranges, disjoint, so no policy is ever evaluated on a scene it was trained on.

A scene is fully determined by its seed (``PickPlaceEnv.reset(seed)``). Demos record attempts from ``DEMO_SEED``
on (a few thousand at most: attempts include discarded failures); rollouts and cycle rounds take seeds from
``ROLLOUT_SEED`` on, each round after the last; ``dataengine eval`` uses ``EVAL_SEED`` on, the same scenes for every
policy, so two policies' results are paired scene by scene.
"""

from __future__ import annotations

DEMO_SEED = 0
ROLLOUT_SEED = 1_000_000
EVAL_SEED = 1_000_000_000

RANGES = {"demos": (DEMO_SEED, ROLLOUT_SEED), "rollouts": (ROLLOUT_SEED, EVAL_SEED)}
"""Half-open [first, end) ranges the engine's own data comes from; evaluation seeds should avoid them."""


def overlapping_ranges(first: int, count: int) -> list[str]:
    """The names of the engine's data ranges that seeds ``first .. first + count - 1`` fall into."""
    return [name for name, (start, end) in RANGES.items() if first < end and first + count > start]
