"""The SO-101 pick-and-place task: "pick up the cube and place it in the bowl".

One ``PickPlaceEnv`` is one simulated scene. ``reset(seed)`` draws the cube pose, the bowl position and (optionally)
the look of the scene from a seeded generator, so the same seed always gives the same episode. ``step(action)``
takes an action in LeRobot units (see ``so101_dataengine.scenes.so101``), holds it for one 30 Hz control period of physics and
returns the next observation. The simulator's ground truth feeds an ``OutcomeTracker``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.scenes.outcome import EpisodeMetrics, GroundTruth, OutcomeRules, OutcomeTracker
from so101_dataengine.scenes.randomization import SceneRandomization, SceneSample, sample_scene
from so101_dataengine.scenes.render import CameraRenderer, apply_preset, get_preset, tile_grid
from so101_dataengine.scenes.so101 import JOINT_NAMES, lerobot_to_sim, sim_to_lerobot

ASSETS = Path(__file__).parent / "assets"
TASK = "pick up the cube and place it in the bowl"
DEFAULT_IMAGE_SIZE = 224


@dataclass
class PickPlaceConfig:
    """Everything that defines the simulated task; saved beside every dataset and run."""

    fps: int = 30
    max_episode_steps: int = 450
    """15 s at 30 Hz; the scripted expert needs ~7 s."""
    image_size: int | None = DEFAULT_IMAGE_SIZE
    """Square camera images (None: decided by the policy that will act, see ``dataengine rollout``). 224 px is what Pi0/Pi0.5 (PaliGemma) and SigLIP-based VLAs consume, so datasets are
    stored at the size they are trained at (no per-step resize), and ACT's ResNet takes any size."""
    render_preset: str = "fast"
    render: bool = True
    """False gives physics and ground truth only (no cameras): for measuring the expert or physics alone."""
    randomization: SceneRandomization = field(default_factory=SceneRandomization)
    rules: OutcomeRules = field(default_factory=OutcomeRules)


@dataclass(frozen=True)
class Observation:
    """What a policy sees: ``observation.state`` (6, LeRobot units) and camera images keyed by feature name."""

    state: np.ndarray
    images: dict[str, np.ndarray]


def build_model(config: PickPlaceConfig, tiles: int = 1) -> mujoco.MjModel:
    """Compile the scene with the render preset applied and an offscreen buffer for ``tiles`` images."""
    spec = mujoco.MjSpec.from_file(str(ASSETS / "pick_place.xml"))
    size = config.image_size or DEFAULT_IMAGE_SIZE
    columns, rows = tile_grid(tiles)
    apply_preset(spec, get_preset(config.render_preset), (columns * size, rows * size))
    return spec.compile()


class PickPlaceEnv:
    """One simulated pick-and-place scene.

    Environments stepped together may share one compiled ``model`` (the rollout engine renders them all with one
    ``TiledRenderer``): physics state lives in each env's own ``MjData``, and each env's visual draw (colours,
    lights, camera jitter) is written into the shared model by ``apply_visuals`` just before it is rendered.
    """

    def __init__(self, config: PickPlaceConfig | None = None, model: mujoco.MjModel | None = None):
        self.config = config or PickPlaceConfig()
        if self.config.image_size is None:
            self.config = dataclasses.replace(self.config, image_size=DEFAULT_IMAGE_SIZE)
        if self.config.image_size < 16:
            raise DataEngineError(f"image_size {self.config.image_size} is too small: use at least 16 pixels")
        self.model = model if model is not None else build_model(self.config)
        self.data = mujoco.MjData(self.model)
        period = 1.0 / self.config.fps
        self.substeps = int(round(period / self.model.opt.timestep))
        if abs(self.substeps * self.model.opt.timestep - period) > 1e-6:
            raise DataEngineError(
                f"fps {self.config.fps} is not a whole number of {self.model.opt.timestep:.6f} s physics steps: use 30"
            )
        self._arm_qpos = np.array([self.model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._cube_qpos = self.model.joint("cube").qposadr[0]
        self._cube_geom = self.model.geom("cube").id
        self._pad_geoms = {self.model.geom("fixed_jaw").id, self.model.geom("moving_jaw_pad").id}
        self._home = self.model.key("home").id
        self._defaults = _VisualDefaults.read(self.model)
        self._renderer = CameraRenderer(self.model, self.config.image_size) if self.config.render else None
        self.scene: SceneSample | None = None
        self.tracker = OutcomeTracker(self.config.rules, self.config.max_episode_steps)

    # -- episode ---------------------------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        """Start a new episode whose scene is fully determined by ``seed``."""
        self.scene = sample_scene(np.random.default_rng(seed), self.config.randomization)
        mujoco.mj_resetDataKeyframe(self.model, self.data, self._home)
        s = self.scene
        half = self.config.rules.cube_half_size
        self.data.qpos[self._cube_qpos : self._cube_qpos + 3] = (s.cube_xy[0], s.cube_xy[1], half)
        self.data.qpos[self._cube_qpos + 3 : self._cube_qpos + 7] = (np.cos(s.cube_yaw / 2), 0, 0, np.sin(s.cube_yaw / 2))
        self.data.mocap_pos[0] = (s.bowl_xy[0], s.bowl_xy[1], 0.0)
        mujoco.mj_forward(self.model, self.data)
        self.tracker = OutcomeTracker(self.config.rules, self.config.max_episode_steps)
        return self.observe()

    def step(self, action: np.ndarray) -> Observation:
        """Apply one action (6 values in LeRobot units) for one control period."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (len(JOINT_NAMES),):
            raise DataEngineError(f"action has shape {action.shape}, expected ({len(JOINT_NAMES)},) in LeRobot units")
        if not np.all(np.isfinite(action)):
            raise DataEngineError(f"action contains NaN or inf: {action.tolist()}; the policy output is broken")
        lo, hi = self.model.actuator_ctrlrange.T
        self.data.ctrl[:] = np.clip(lerobot_to_sim(action), lo, hi)
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self.tracker.update(self.ground_truth())
        return self.observe()

    @property
    def done(self) -> bool:
        return self.tracker.done

    def metrics(self) -> EpisodeMetrics:
        return self.tracker.metrics()

    # -- observation and ground truth ------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """Arm and gripper joint angles in radians (simulator units)."""
        return self.data.qpos[self._arm_qpos].copy()

    def observe(self) -> Observation:
        images = {}
        if self._renderer is not None:
            self.apply_visuals()
            images = self._renderer.render(self.data)
        return Observation(state=sim_to_lerobot(self.joint_positions()), images=images)

    def apply_visuals(self) -> None:
        """Write this episode's look (colours, lights, camera jitter) into the model, which may be shared by
        several environments: call it right before rendering this environment. Camera and light poses in ``data``
        were computed from the model at this environment's last physics step, when the model may have held another
        environment's jitter: they are recomputed here from this environment's own."""
        self._defaults.apply(self.model, self.scene)
        mujoco.mj_camlight(self.model, self.data)

    def cube_grasped(self) -> bool:
        """Both jaw pads touch the cube (vectorised over the contact array: a Python loop over contacts cost
        ~0.1-0.4 ms per control step, more than the physics itself)."""
        pairs = self.data.contact.geom[: self.data.ncon]
        cube = self._cube_geom
        touching = set(pairs[pairs[:, 0] == cube, 1].tolist()) | set(pairs[pairs[:, 1] == cube, 0].tolist())
        return self._pad_geoms <= touching

    def ground_truth(self) -> GroundTruth:
        return GroundTruth(
            cube_pos=self.data.qpos[self._cube_qpos : self._cube_qpos + 3].copy(),
            bowl_pos=self.data.mocap_pos[0].copy(),
            grasped=self.cube_grasped(),
        )

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


@dataclass(frozen=True)
class _VisualDefaults:
    """The scene's own colours, lights and camera poses, so visual randomisation always starts from them."""

    geom_rgba: np.ndarray
    light_diffuse: np.ndarray
    light_pos: np.ndarray
    cam_pos: np.ndarray

    @classmethod
    def read(cls, model: mujoco.MjModel) -> "_VisualDefaults":
        return cls(model.geom_rgba.copy(), model.light_diffuse.copy(), model.light_pos.copy(), model.cam_pos.copy())

    def apply(self, model: mujoco.MjModel, scene: SceneSample) -> None:
        model.geom_rgba[:] = self.geom_rgba
        model.light_diffuse[:] = self.light_diffuse * scene.light_scale
        model.light_pos[:] = self.light_pos + scene.light_offset
        model.cam_pos[:] = self.cam_pos + scene.camera_offsets
        for name, rgba in scene.colors.items():
            model.geom(name).rgba[:3] = rgba
