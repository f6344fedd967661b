"""A privileged scripted expert: top-down grasp, lift, carry, release, from the simulator's state.

It plans a few Cartesian waypoints from the true cube and bowl poses, solves inverse kinematics for each
(damped least squares on the ``gripperframe`` site, in a scratch ``MjData``), and moves between them in joint space
along minimum-jerk profiles. Heights, timings, approach offsets and grip width are drawn per episode from the
expert's own seeded generator, so demonstrations vary naturally instead of replaying one trajectory. Each phase
is re-planned from the current state when it starts, so a cube nudged during the approach is still grasped.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from so101_dataengine.scenes.pick_place import PickPlaceEnv
from so101_dataengine.scenes.so101 import GRIPPER_RANGE_RAD, sim_to_lerobot

_ARM_DOF = 5
_DOWN = np.array([0.0, 0.0, -1.0])


@dataclass
class ExpertConfig:
    """Ranges the expert draws its per-episode style from (metres, seconds, radians)."""

    hover_height: tuple[float, float] = (0.04, 0.07)
    """Grasp point above the cube centre before the descent."""
    carry_height: tuple[float, float] = (0.07, 0.10)
    """Cube bottom above the table while carrying."""
    release_height: tuple[float, float] = (0.047, 0.06)
    """Cube bottom above the table at release (the bowl's rim is at 0.037)."""
    grasp_depth: tuple[float, float] = (0.0, 0.004)
    """Grasp point height relative to the cube centre at the grasp (the jaw tips reach 11 mm below it)."""
    xy_noise: float = 0.004
    """Approach and release offsets in x and y."""
    grasp_bias: float = 0.009
    """Shift the grasp point this far along the jaw axis to the fixed jaw's side, so that the fixed jaw clears the
    cube by 11.5 mm instead of 2.5 mm (the closing moving jaw then pushes the cube against it). With 2.5 mm the grasp
    tolerated aim errors along the jaw axis of -24 mm one way but only about +3 mm the other (the way that lands the
    fixed jaw on the cube; +4 mm already failed 3 times in 10): the expert grasped at the edge of its own window, and
    a policy imitating it a few mm off missed. With 9 mm the window is centred: -16 to +8 mm succeeded every time,
    +12 mm 9 times in 10 (``benchmarks/grasp_tolerance.py``, docs/benchmarks.md)."""
    gripper_open: tuple[float, float] = (0.7, 1.0)
    gripper_closed: float = GRIPPER_RANGE_RAD[0]
    """Fully closed: the position servo squeezes the cube with its force limit."""
    speed: tuple[float, float] = (0.85, 1.2)
    """Multiplies every phase duration."""


@dataclass(frozen=True)
class _Phase:
    name: str
    duration: float
    gripper: float


def _damped_pinv(jac: np.ndarray, damping: float) -> np.ndarray:
    return jac.T @ np.linalg.inv(jac @ jac.T + damping * np.eye(jac.shape[0]))


def _min_jerk(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


class InverseKinematics:
    """Damped least-squares IK for the grasp point and a top-down gripper orientation.

    The grasp point is the ``grasp_center`` site: half a cube (12.5 mm + 2.5 mm clearance) off the fixed jaw's inner
    face, so a cube centred on it touches the fixed jaw and is squeezed against it by the moving jaw. Aiming
    Menagerie's ``gripperframe`` TCP at the cube centre would drive the fixed jaw into the cube. The expert aims it
    ``ExpertConfig.grasp_bias`` from the cube centre, for a margin on both sides.
    """

    def __init__(self, model: mujoco.MjModel, iterations: int = 150, damping: float = 1e-3):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = model.site("grasp_center").id
        self.body = model.body("gripper").id
        self.iterations = iterations
        self.damping = damping
        self.lo, self.hi = model.jnt_range[:_ARM_DOF].T
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def solve(self, q_start: np.ndarray, target: np.ndarray, jaw_axis: np.ndarray) -> np.ndarray:
        """Arm joint angles (5) putting the TCP at ``target`` pointing down, jaws closing along ``jaw_axis``."""
        desired = np.column_stack([_DOWN, np.cross(jaw_axis, _DOWN), jaw_axis])
        q = q_start[:_ARM_DOF].copy()
        eye = np.eye(_ARM_DOF)
        for _ in range(self.iterations):
            self.data.qpos[:_ARM_DOF] = q
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_comPos(self.model, self.data)
            pos_err = target - self.data.site_xpos[self.site]
            rot = self.data.xmat[self.body].reshape(3, 3)
            rot_err = 0.5 * sum(np.cross(rot[:, i], desired[:, i]) for i in range(3))
            if np.linalg.norm(pos_err) < 1e-4 and np.linalg.norm(rot_err) < 1e-3:
                break
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            jp, jr = self._jacp[:, :_ARM_DOF], self._jacr[:, :_ARM_DOF]
            # Position first; orientation only in the position task's null space, so an unreachable
            # top-down pose (wrist at its limit) tilts the gripper instead of missing the cube.
            jp_pinv = _damped_pinv(jp, self.damping)
            dq = jp_pinv @ pos_err
            null = eye - jp_pinv @ jp
            dq += null @ _damped_pinv(jr @ null, self.damping) @ (rot_err - jr @ dq)
            q_next = np.clip(q + dq, self.lo, self.hi)
            if np.abs(q_next - q).max() < 1e-5:
                break
            q = q_next
        return q


class ScriptedExpert:
    """Solves the pick-and-place task from privileged state; returns actions in LeRobot units.

    The approach from the rest pose moves in joint space (free space, natural arcs); every later phase moves the
    grasp point along a straight Cartesian line with a minimum-jerk profile, solving IK each control step from the
    previous solution, so the jaws descend vertically onto the cube instead of sweeping into it.
    """

    def __init__(self, env: PickPlaceEnv, config: ExpertConfig | None = None):
        self.env = env
        self.config = config or ExpertConfig()
        self.ik = InverseKinematics(env.model)

    def reset(self, seed: int) -> None:
        """Draw this episode's style. Call after ``env.reset(seed)``."""
        c = self.config
        rng = np.random.default_rng([seed, 0x5EED])
        speed = rng.uniform(*c.speed)
        opened = rng.uniform(*c.gripper_open)
        self.hover = rng.uniform(*c.hover_height)
        self.carry = rng.uniform(*c.carry_height)
        self.release = rng.uniform(*c.release_height)
        self.depth = rng.uniform(*c.grasp_depth)
        self.grasp_offset = rng.uniform(-c.xy_noise, c.xy_noise, 2)
        self.place_offset = rng.uniform(-c.xy_noise, c.xy_noise, 2)
        self.phases = [
            _Phase("approach", 1.6 * speed, opened),
            _Phase("descend", 0.9 * speed, opened),
            _Phase("close", 0.5, c.gripper_closed),
            _Phase("lift", 0.8 * speed, c.gripper_closed),
            _Phase("carry", 1.5 * speed, c.gripper_closed),
            _Phase("lower", 0.6 * speed, c.gripper_closed),
            _Phase("release", 0.5, opened),
            _Phase("retreat", 1.0 * speed, opened),
        ]
        self._phase_index = -1
        self._phase_time = 0.0
        self._q = self.env.joint_positions()
        self._start_q = self._q.copy()
        self._goal_q = self._q.copy()
        self._start_pos = self.env.data.site_xpos[self.ik.site].copy()
        self._goal_pos = self._start_pos.copy()
        self._jaw_axis = self._grasp_jaw_axis()

    def _grasp_jaw_axis(self) -> np.ndarray:
        """The cube face normal closest to the radial direction, so the wrist rolls as little as possible."""
        cube = self.env.ground_truth().cube_pos
        yaw = self.env.scene.cube_yaw
        radial = cube[:2] / np.linalg.norm(cube[:2])
        normals = [np.array([np.cos(yaw + k * np.pi / 2), np.sin(yaw + k * np.pi / 2)]) for k in range(4)]
        best = max(normals, key=lambda n: float(n @ radial))
        return np.array([best[0], best[1], 0.0])

    def _target(self, name: str) -> np.ndarray:
        truth = self.env.ground_truth()
        cube, bowl = truth.cube_pos, truth.bowl_pos
        half = self.env.config.rules.cube_half_size
        grasp_xy = cube[:2] + self.grasp_offset - self.config.grasp_bias * self._jaw_axis[:2]
        place_xy = bowl[:2] + self.place_offset
        here = self._goal_pos
        targets = {
            "approach": (*grasp_xy, cube[2] + self.hover),
            "descend": (*grasp_xy, cube[2] + self.depth),
            "close": tuple(here),
            "lift": (*here[:2], self.carry + half),
            "carry": (*place_xy, self.carry + half),
            "lower": (*place_xy, self.release + half),
            "release": tuple(here),
            "retreat": (*here[:2], here[2] + 0.06),
        }
        return np.array(targets[name], dtype=np.float64)

    def _start_phase(self, index: int) -> None:
        self._phase_index, self._phase_time = index, 0.0
        phase = self.phases[index]
        self._start_q = self._q.copy()
        self._start_pos = self._goal_pos.copy()
        self._goal_pos = self._target(phase.name)
        if phase.name == "carry":
            self._jaw_axis = _rotate_z(self._jaw_axis, _azimuth(self._goal_pos) - _azimuth(self._start_pos))
        if phase.name == "approach":
            self._goal_q = np.append(self.ik.solve(self._q, self._goal_pos, self._jaw_axis), phase.gripper)

    def act(self) -> np.ndarray:
        """The next action (6 values, LeRobot units)."""
        if self._phase_index < 0 or (
            self._phase_time >= self.phases[self._phase_index].duration and self._phase_index + 1 < len(self.phases)
        ):
            self._start_phase(self._phase_index + 1)
        phase = self.phases[self._phase_index]
        self._phase_time += 1.0 / self.env.config.fps
        s = _min_jerk(self._phase_time / phase.duration)
        if phase.name == "approach":
            self._q = self._start_q + s * (self._goal_q - self._start_q)
        else:
            point = self._start_pos + s * (self._goal_pos - self._start_pos)
            arm = self.ik.solve(self._q, point, self._jaw_axis)
            gripper = self._start_q[5] + s * (phase.gripper - self._start_q[5])
            self._q = np.append(arm, gripper)
        return sim_to_lerobot(self._q)


def _azimuth(point: np.ndarray) -> float:
    return float(np.arctan2(point[1], point[0]))


def _rotate_z(vector: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * vector[0] - s * vector[1], s * vector[0] + c * vector[1], vector[2]])
