"""The failure taxonomy from ground-truth sequences (no physics needed to pin the rules down)."""

import numpy as np
import pytest

from so101_dataengine.scenes.outcome import GroundTruth, Outcome, OutcomeRules, OutcomeTracker

BOWL = np.array([0.2, -0.1, 0.0])


def _run(track: list[tuple[tuple[float, float, float], bool]], max_steps: int = 100) -> OutcomeTracker:
    tracker = OutcomeTracker(OutcomeRules(), max_steps)
    for pos, grasped in track:
        tracker.update(GroundTruth(np.array(pos), BOWL, grasped))
    return tracker


ON_TABLE = ((0.2, 0.1, 0.0125), False)
HELD_HIGH = ((0.2, 0.0, 0.1), True)


RULES = OutcomeRules()
IN_BOWL = ((0.2, -0.1, 0.0165), False)
HOLD = RULES.success_hold_steps


def test_success_when_cube_rests_in_bowl_released():
    tracker = _run([ON_TABLE, HELD_HIGH] + [IN_BOWL] * HOLD)
    assert tracker.done and tracker.succeeded
    assert tracker.outcome() is Outcome.SUCCESS


def test_one_step_short_of_the_hold_is_not_a_success_whatever_the_last_step():
    """SUCCESS is decided once (scenes/outcome.py): the episode that runs out of steps with the cube in the bowl
    for one step fewer than the hold neither ends early nor is reported as a success."""
    track = [ON_TABLE, HELD_HIGH] + [IN_BOWL] * (HOLD - 1)
    tracker = _run(track, max_steps=len(track))
    assert tracker.done and not tracker.succeeded
    assert tracker.outcome() is Outcome.TIMEOUT
    assert tracker.metrics().outcome is Outcome.TIMEOUT
    assert not _run(track).done, "the episode must go on until the cube has rested for the hold steps"


def test_the_hold_counts_consecutive_steps_and_success_stays_once_reached():
    lifted = ((0.2, -0.1, 0.06), False)  # bounced above the rim: the streak starts again
    interrupted = _run([ON_TABLE, HELD_HIGH] + [IN_BOWL] * (HOLD - 1) + [lifted] + [IN_BOWL] * (HOLD - 1))
    assert not interrupted.succeeded
    regrasped = _run([ON_TABLE, HELD_HIGH] + [IN_BOWL] * (HOLD - 1) + [((0.2, -0.1, 0.0165), True)])
    assert not regrasped.succeeded, "a cube held by both jaws is not in the bowl"
    tracker = _run([ON_TABLE, HELD_HIGH] + [IN_BOWL] * HOLD + [ON_TABLE])
    assert tracker.succeeded and tracker.outcome() is Outcome.SUCCESS


@pytest.mark.parametrize("offset, inside", [(-0.001, True), (0.001, False)])
def test_the_bowls_inner_radius_less_a_quarter_cube_is_the_edge(offset, inside):
    """The cube's centre must be a quarter cube inside the bowl's inner wall (58 mm): 1 mm either side of
    51.75 mm decides; the wall itself, or the outer rim, would count cubes resting on the wall as placed."""
    edge = RULES.bowl_inner_radius - RULES.cube_half_size * 0.5
    at_edge = ((BOWL[0] + edge + offset, BOWL[1], 0.0165), False)
    tracker = _run([ON_TABLE, HELD_HIGH] + [at_edge] * HOLD)
    assert tracker.succeeded is inside
    assert (tracker.outcome() is Outcome.SUCCESS) is inside


@pytest.mark.parametrize("height, inside", [(RULES.bowl_rim_height - 0.001, True), (RULES.bowl_rim_height + 0.001, False)])
def test_a_cube_above_the_rim_is_not_in_the_bowl(height, inside):
    above = ((BOWL[0], BOWL[1], height + RULES.cube_half_size), False)
    assert _run([ON_TABLE, HELD_HIGH] + [above] * HOLD).succeeded is inside


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
