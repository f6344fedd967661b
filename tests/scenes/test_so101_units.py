import numpy as np

from so101_dataengine.scenes.so101 import (
    GRIPPER_RANGE_RAD,
    JOINT_NAMES,
    MOTOR_FEATURE_NAMES,
    lerobot_to_sim,
    sim_to_lerobot,
)


def test_feature_names_follow_lerobot_so_follower_order():
    assert MOTOR_FEATURE_NAMES == [
        "shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos",
    ]
    assert len(JOINT_NAMES) == 6


def test_arm_joints_are_degrees_and_gripper_is_0_closed_to_100_open():
    q = np.array([np.pi / 2, -np.pi / 4, 0.0, 0.1, -1.0, GRIPPER_RANGE_RAD[0]])
    a = sim_to_lerobot(q)
    np.testing.assert_allclose(a[:5], np.degrees(q[:5]), rtol=1e-6)
    assert a[5] == 0.0
    assert sim_to_lerobot(np.array([0, 0, 0, 0, 0, GRIPPER_RANGE_RAD[1]]))[5] == 100.0


def test_round_trip_is_identity():
    rng = np.random.default_rng(0)
    q = rng.uniform(-1.5, 1.5, size=(50, 6))
    np.testing.assert_allclose(lerobot_to_sim(sim_to_lerobot(q)), q, atol=1e-5)
