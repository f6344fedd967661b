"""The failure taxonomy from ground-truth sequences (no physics needed to pin the rules down)."""

import numpy as np

from scenes.outcome import GroundTruth, Outcome, OutcomeRules, OutcomeTracker

BOWL = np.array([0.2, -0.1, 0.0])


def _run(track: list[tuple[tuple[float, float, float], bool]], max_steps: int = 100) -> OutcomeTracker:
    tracker = OutcomeTracker(OutcomeRules(), max_steps)
    for pos, grasped in track:
        tracker.update(GroundTruth(np.array(pos), BOWL, grasped))
    return tracker


ON_TABLE = ((0.2, 0.1, 0.0125), False)
HELD_HIGH = ((0.2, 0.0, 0.1), True)


def test_success_when_cube_rests_in_bowl_released():
    tracker = _run([ON_TABLE, HELD_HIGH] + [((0.2, -0.1, 0.0165), False)] * 15)
    assert tracker.done and tracker.succeeded
    assert tracker.outcome() is Outcome.SUCCESS


def test_never_picked_up():
    assert _run([ON_TABLE] * 5).outcome() is Outcome.NEVER_PICKED_UP


def test_dropped_far_from_bowl_is_dropped_during_transport():
    tracker = _run([ON_TABLE, HELD_HIGH, ((0.2, 0.05, 0.08), False), ((0.2, 0.05, 0.0125), False)])
    assert tracker.outcome() is Outcome.DROPPED_DURING_TRANSPORT


def test_released_next_to_bowl_is_missed_goal():
    near = (0.2, -0.1 + 0.09, 0.06)
    tracker = _run([ON_TABLE, HELD_HIGH, (near, True), (near, False), ((0.2, -0.01, 0.0125), False)])
    assert tracker.outcome() is Outcome.MISSED_GOAL


def test_still_holding_at_the_end_is_timeout():
    tracker = _run([ON_TABLE] + [HELD_HIGH] * 9, max_steps=10)
    assert tracker.done and tracker.outcome() is Outcome.TIMEOUT
    assert tracker.metrics().max_cube_height > 0.08
