"""The failure-injecting expert fails exactly the way it was asked to, as the simulator's own outcome rules see it."""

import numpy as np
import pytest

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.formats.episode import record_episode
from so101_dataengine.scenes.faulty_expert import Fault, FaultMix, FaultyExpert
from so101_dataengine.scenes.outcome import Outcome
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv

ONLY = {fault: FaultMix(**{f.value: float(f is fault) for f in Fault}) for fault in Fault}


@pytest.mark.parametrize("fault, outcome", [
    (Fault.NONE, Outcome.SUCCESS),
    (Fault.MISS_GRASP, Outcome.NEVER_PICKED_UP),
    (Fault.DROP, Outcome.DROPPED_DURING_TRANSPORT),
    (Fault.MISS_GOAL, Outcome.MISSED_GOAL),
    (Fault.HOLD, Outcome.TIMEOUT),
])
def test_each_fault_gives_its_outcome(fault, outcome):
    env = PickPlaceEnv(PickPlaceConfig(render=False, max_episode_steps=300))
    expert = FaultyExpert(env, ONLY[fault])
    for seed in (11, 12):
        episode = record_episode(env, seed, lambda _o: expert.act(), expert.reset)
        assert expert.fault is fault and expert.intended_outcome is outcome
        assert episode.metrics.outcome is outcome, (seed, episode.metrics)
    if fault is Fault.HOLD:
        assert episode.metrics.max_cube_height > 0.05 and episode.metrics.final_distance_to_bowl < 0.06
    if fault is Fault.MISS_GOAL:
        assert 0.065 < episode.metrics.final_distance_to_bowl < 0.2, "the cube should end next to the bowl"


def test_mix_is_seeded_and_parsed():
    mix = FaultMix.parse("none=1,hold=3")
    assert mix == FaultMix(none=1, miss_grasp=0, drop=0, miss_goal=0, hold=3)
    draws = [mix.draw(np.random.default_rng([s, 0xFA17])) for s in range(200)]
    assert draws == [mix.draw(np.random.default_rng([s, 0xFA17])) for s in range(200)]
    assert 0.6 < draws.count(Fault.HOLD) / 200 < 0.9 and set(draws) == {Fault.NONE, Fault.HOLD}
    with pytest.raises(DataEngineError, match="bad fault mix entry 'wobble=1'"):
        FaultMix.parse("wobble=1")
