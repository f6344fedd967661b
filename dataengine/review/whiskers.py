"""Whiskers: what a policy intends, drawn on the overhead view while it acts.

Every ``every`` control steps the policy's predicted action chunk is executed open loop in a *copy* of the
simulation (same compiled model, the exact physics state copied in, never rendered), and the end-effector path it
would produce is drawn as a line on the overhead camera: the newest prediction bright, older ones fading, the path
actually taken beside them. The users debugged Pi0's 0 % this way: ACT's whiskers were smooth arcs toward the
cube, Pi0's noise near the start pose.

What a "predicted chunk" is depends on the policy:
* LeRobot checkpoints (``so101_dataengine.rollouts.policies.LeRobotPolicy``, every type the engine drives): ``predict_chunks``,
  which reads the policy's per-episode state (Diffusion's observation history) without changing it; chunked or
  one action at a time (``n_action_steps`` 1, ACT's temporal ensembling) alike, since the model always predicts a
  whole chunk and only its execution differs;
* the scripted experts (``scripted``, ``scripted-faulty``): a deep copy of the expert, bound to the simulation copy,
  acting closed loop for ``EXPERT_HORIZON`` steps; its whisker is therefore exactly the path it is about to take
  (a test checks it), which makes the expert the reference for reading a learned policy's whiskers.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import mujoco
import numpy as np
from PIL import Image, ImageDraw

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import write_atomic
from so101_dataengine.rollouts.engine import PolicySpec
from so101_dataengine.rollouts.policies import FAULTY_KIND, LeRobotPolicy
from so101_dataengine.scenes.expert import ScriptedExpert
from so101_dataengine.scenes.faulty_expert import FaultyExpert
from so101_dataengine.scenes.outcome import OutcomeRules
from so101_dataengine.scenes.pick_place import Observation, PickPlaceConfig, PickPlaceEnv
from so101_dataengine.scenes.randomization import SceneRandomization

END_EFFECTOR_SITE = "gripperframe"
"""Menagerie's tool centre point of the SO-101 gripper: the point whose path is drawn."""
CAMERA = "overhead"
EXPERT_HORIZON = 30
"""Steps the scripted expert is looked ahead (1 s at 30 Hz; an ACT chunk is 100 steps, Diffusion's ~8)."""
FORMATS = (".png", ".mp4")

PATH_COLOR = (40, 220, 255)
WHISKER_COLOR = (255, 150, 20)
FADE = 0.8
"""Opacity factor per newer prediction: a whisker drawn n predictions ago has opacity FADE ** n."""
PNG_FLOOR = 0.12
"""The still image keeps every whisker at least this opaque, so the first ones still show at the episode's end."""


class Forecaster(Protocol):
    """A policy that acts in one environment and can say what it would do next without doing it."""

    def reset(self, env: PickPlaceEnv, seed: int) -> None:
        """A new episode in ``env`` (already reset to ``seed``)."""

    def act(self, observation: Observation) -> np.ndarray:
        """The action (6, LeRobot units) executed now."""

    def chunk(self, twin: "SimulationCopy", observation: Observation, step: int) -> np.ndarray:
        """The actions (H, 6) the policy predicts from this observation on, leaving its own state untouched."""


class SimulationCopy:
    """A physics-only twin of an environment: same compiled model, its exact state copied in on ``sync``."""

    def __init__(self, source: PickPlaceEnv):
        self.source = source
        self.env = PickPlaceEnv(dataclasses.replace(source.config, render=False), model=source.model)
        self._site = source.model.site(END_EFFECTOR_SITE).id

    def sync(self) -> PickPlaceEnv:
        """The twin, set to the source's current physics state, scene and outcome tracking."""
        mujoco.mj_copyData(self.env.data, self.source.model, self.source.data)
        self.env.scene = self.source.scene
        self.env.tracker = copy.deepcopy(self.source.tracker)
        return self.env

    def path(self, actions: np.ndarray) -> np.ndarray:
        """End-effector positions (H + 1, 3) from now on if ``actions`` were executed open loop."""
        env = self.sync()
        points = [env.data.site_xpos[self._site].copy()]
        for action in actions:
            env.step(action)
            points.append(env.data.site_xpos[self._site].copy())
        return np.stack(points)


def end_effector(env: PickPlaceEnv) -> np.ndarray:
    return env.data.site(END_EFFECTOR_SITE).xpos.copy()


class PolicyForecaster:
    """A LeRobot checkpoint in environment slot 0: acts as in a rollout, predicts with ``predict_chunks``."""

    def __init__(self, policy: LeRobotPolicy, horizon: int | None = None):
        self.policy, self.horizon = policy, horizon
        self.seed = 0

    def reset(self, env: PickPlaceEnv, seed: int) -> None:
        self.policy.reset(0, env, seed)
        self.seed = seed

    def act(self, observation: Observation) -> np.ndarray:
        return self.policy.act([0], [observation])[0]

    def chunk(self, twin: SimulationCopy, observation: Observation, step: int) -> np.ndarray:
        # Diffusion samples noise: each prediction gets its own, reproducible from the episode seed and the step
        actions = self.policy.predict_chunks([observation], slots=[0], seed=self.seed * 1000 + step)[0]
        return np.asarray(actions, dtype=np.float32)[: self.horizon]


class ExpertForecaster:
    """The scripted expert (or its failing variant): its chunk is its own closed-loop future in the twin."""

    def __init__(self, make_expert: Callable[[PickPlaceEnv], ScriptedExpert], horizon: int | None = None):
        self.make_expert, self.horizon = make_expert, horizon or EXPERT_HORIZON
        self.expert: ScriptedExpert | None = None

    def reset(self, env: PickPlaceEnv, seed: int) -> None:
        self.expert = self.make_expert(env)
        self.expert.reset(seed)

    def act(self, observation: Observation) -> np.ndarray:
        return self.expert.act()

    def chunk(self, twin: SimulationCopy, observation: Observation, step: int) -> np.ndarray:
        env = twin.sync()
        # the copy acts on the twin; its IK solver is scratch space (no state between calls), so it is shared
        clone = copy.deepcopy(self.expert, memo={id(self.expert.env): env, id(self.expert.ik): self.expert.ik})
        actions = []
        for _ in range(self.horizon):
            actions.append(clone.act())
            env.step(actions[-1])
        return np.stack(actions)


def forecaster_for(spec: PolicySpec, horizon: int | None = None) -> Forecaster:
    """The forecaster of a resolved ``--policy`` (``so101_dataengine.rollouts.run.resolve_policy``'s recipe)."""
    if spec.kind == "scripted":
        return ExpertForecaster(ScriptedExpert, horizon)
    if spec.kind == FAULTY_KIND:
        return ExpertForecaster(lambda env: FaultyExpert(env, spec.faults), horizon)
    return PolicyForecaster(spec.build(), horizon)


@dataclass
class Whisker:
    step: int
    points: np.ndarray
    """(H + 1, 3) end-effector positions (m, world frame), starting where the arm was at ``step``."""


@dataclass
class Trace:
    """One episode with its whiskers."""

    path: np.ndarray
    """(T + 1, 3) end-effector positions actually visited (before the first action, then after each)."""
    whiskers: list[Whisker]
    outcome: str


def trace_episode(forecaster: Forecaster, env: PickPlaceEnv, seed: int, every: int,
                  on_step: Callable[[PickPlaceEnv, Trace], None] | None = None) -> Trace:
    """Run one episode, predicting every ``every`` steps (before that step's action, from the same observation);
    ``on_step`` sees the environment and the trace so far after every step (to draw video frames)."""
    observation = env.reset(seed)
    forecaster.reset(env, seed)
    twin = SimulationCopy(env)
    trace = Trace([end_effector(env)], [], "")
    step = 0
    while not env.done:
        if step % every == 0:
            trace.whiskers.append(Whisker(step, twin.path(forecaster.chunk(twin, observation, step))))
        observation = env.step(forecaster.act(observation))
        step += 1
        trace.path.append(end_effector(env))
        if on_step is not None:
            on_step(env, trace)
    trace.path = np.stack(trace.path)
    trace.outcome = env.metrics().outcome.value
    return trace


# -- drawing -----------------------------------------------------------------------------------------------
class OverheadCanvas:
    """The overhead camera at drawing resolution and the projection of world points into its pixels."""

    def __init__(self, model: mujoco.MjModel, size: int):
        self.size = size
        self.camera = model.camera(CAMERA).id
        self.focal = size / 2 / np.tan(np.radians(model.cam_fovy[self.camera]) / 2)
        self._renderer = mujoco.Renderer(model, height=size, width=size)

    def render(self, env: PickPlaceEnv) -> np.ndarray:
        env.apply_visuals()  # this episode's look and camera pose, as its own observations were rendered
        self._renderer.update_scene(env.data, camera=CAMERA)
        return self._renderer.render().copy()

    def project(self, env: PickPlaceEnv, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) of world points (N, 3): MuJoCo cameras look along their -z axis, y up."""
        rotation = env.data.cam_xmat[self.camera].reshape(3, 3)
        local = (np.asarray(points) - env.data.cam_xpos[self.camera]) @ rotation
        depth = np.maximum(-local[:, 2], 1e-6)
        return np.column_stack([self.size / 2 + self.focal * local[:, 0] / depth,
                                self.size / 2 - self.focal * local[:, 1] / depth])

    def close(self) -> None:
        self._renderer.close()


def draw(image: np.ndarray, canvas: OverheadCanvas, env: PickPlaceEnv, trace: Trace, floor: float = 0.0) -> np.ndarray:
    """The image with the path taken and, over it, every whisker so far (opacity ``FADE`` per newer one, at least
    ``floor``). Each line is blended in its own layer: drawn into one shared layer, a faint whisker would replace
    the path's pixels under it instead of tinting them (the expert's whiskers lie exactly on its path)."""
    picture = Image.fromarray(image).convert("RGBA")
    width = max(2, canvas.size // 112)

    def blend(points: np.ndarray, color: tuple[int, int, int], opacity: float, line_width: int,
              outline: bool = False, dot: bool = False) -> None:
        nonlocal picture
        layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
        pen = ImageDraw.Draw(layer)
        pixels = [tuple(p) for p in canvas.project(env, points)]
        if outline:  # a dark edge, so the line stands out on the table
            pen.line(pixels, fill=(0, 0, 0, int(150 * opacity)), width=line_width + 2, joint="curve")
        pen.line(pixels, fill=(*color, int(255 * opacity)), width=line_width, joint="curve")
        if dot:
            x, y = pixels[-1]
            pen.ellipse((x - line_width, y - line_width, x + line_width, y + line_width),
                        fill=(*color, int(255 * opacity)))
        picture = Image.alpha_composite(picture, layer)

    if len(trace.path) > 1:
        blend(np.asarray(trace.path), PATH_COLOR, 0.9, width, outline=True)
    newest = len(trace.whiskers) - 1
    for index, whisker in enumerate(trace.whiskers):
        opacity = max(FADE ** (newest - index), floor)
        if opacity >= 0.02:
            blend(whisker.points, WHISKER_COLOR, opacity, width + (index == newest), dot=True)
    return np.asarray(picture.convert("RGB"))


class Mp4Writer:
    """H.264 frames into a hidden file beside ``path``, renamed into place by ``close`` (a stopped run leaves no
    half video at ``path``)."""

    def __init__(self, path: Path, fps: int, size: int):
        import av

        self.path = Path(path)
        self.tmp = self.path.with_name(f".tmp-{self.path.name}-{uuid.uuid4().hex}.mp4")
        self.container = av.open(str(self.tmp), "w")
        self.stream = self.container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        self.stream.width = self.stream.height = size
        self.stream.pix_fmt = "yuv420p"

    def add(self, image: np.ndarray) -> None:
        import av

        self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))

    def close(self) -> None:
        self.container.mux(self.stream.encode())
        self.container.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.container.close()
        self.tmp.unlink(missing_ok=True)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class WhiskersRequest:
    """One episode to draw: ``dataengine whiskers``, or an episode of a run on the review page."""

    spec: PolicySpec
    seed: int
    scene: PickPlaceConfig
    every: int = 5
    horizon: int | None = None
    """Steps of each prediction drawn (None: the whole predicted chunk; the expert: ``EXPERT_HORIZON``)."""
    size: int = 448
    """Pixels of the drawn overhead view (the scene's cameras render at the policy's own, smaller size)."""


def check_options(every: int, horizon: int | None, size: int, out: Path | None = None) -> None:
    """Bad options as one line each, before any simulation."""
    if out is not None and Path(out).suffix.lower() not in FORMATS:
        raise DataEngineError(f"--out {out}: whiskers are written as a still image or a video: end it in .png or .mp4")
    if out is not None and not Path(out).resolve().parent.is_dir():
        raise DataEngineError(f"--out {out}: its directory {Path(out).resolve().parent} does not exist: create it")
    if out is not None and (Path(out).exists() or Path(out).is_symlink()):  # a user's file is never replaced
        raise DataEngineError(f"--out {out} already exists: choose a new --out or remove it")
    if every < 1:
        raise DataEngineError(f"--every {every}: predict every step (--every 1) or less often (5, 10 ...)")
    if horizon is not None and horizon < 1:
        raise DataEngineError(f"--horizon {horizon}: look at least one step ahead (or leave it out: the whole chunk)")
    if not 64 <= size <= 1024:
        raise DataEngineError(f"--size {size}: draw between 64 and 1024 pixels (the scene's offscreen buffer)")


def run_whiskers(request: WhiskersRequest, video: Path | None = None) -> tuple[Trace, np.ndarray]:
    """Run the episode: its trace and the still image of its end with every whisker; with ``video``, an MP4 of
    every step is written there too."""
    check_options(request.every, request.horizon, request.size)
    forecaster = forecaster_for(request.spec, request.horizon)
    env = PickPlaceEnv(request.scene)
    canvas = OverheadCanvas(env.model, request.size)
    writer = Mp4Writer(video, request.scene.fps, request.size) if video is not None else None
    try:
        on_step = None if writer is None else (lambda e, t: writer.add(draw(canvas.render(e), canvas, e, t)))
        trace = trace_episode(forecaster, env, request.seed, request.every, on_step)
        still = draw(canvas.render(env), canvas, env, trace, floor=PNG_FLOOR)
        if writer is not None:
            writer.close()
            writer = None
    finally:
        if writer is not None:
            writer.abort()
        canvas.close()
        env.close()
    return trace, still


def make_whiskers(request: WhiskersRequest, out: Path) -> Trace:
    """``dataengine whiskers``: write ``out``, a PNG of the episode's end with every whisker or an MP4 of it."""
    check_options(request.every, request.horizon, request.size, out)
    is_video = Path(out).suffix.lower() == ".mp4"
    trace, still = run_whiskers(request, Path(out) if is_video else None)
    if not is_video:
        write_atomic(out, png_bytes(still))
    return trace


def scene_of_run(scene: dict) -> PickPlaceConfig:
    """The scene config a run's manifest recorded (``manifest.json`` ``scene``), to replay one of its episodes."""
    try:
        values = dict(scene)
        values["randomization"] = SceneRandomization(**{k: tuple(v) if isinstance(v, list) else v
                                                        for k, v in scene["randomization"].items()})
        values["rules"] = OutcomeRules(**scene["rules"])
        return PickPlaceConfig(**values)
    except (KeyError, TypeError) as error:
        raise DataEngineError(f"the run's manifest.json has a scene this version cannot rebuild ({error}): "
                              "roll the episode out again with this version") from None


def policy_of_run(manifest: dict) -> PolicySpec:
    """The policy a run's episodes were rolled out with, checked to be the same bytes (``manifest.json``)."""
    from so101_dataengine.base.workspace import Workspace
    from so101_dataengine.rollouts.config import RolloutConfig
    from so101_dataengine.rollouts.run import resolve_policy

    recorded, options = manifest.get("policy") or {}, manifest.get("config") or {}
    config = RolloutConfig(policy=recorded.get("path") or recorded.get("kind", "?"),
                           temporal_ensemble_coeff=options.get("temporal_ensemble_coeff"),
                           n_action_steps=options.get("n_action_steps"))
    spec, identity, _ = resolve_policy(config, Workspace.default())
    if identity.get("sha256") != recorded.get("sha256"):
        raise DataEngineError(f"the policy {config.policy} is not the one this run was rolled out with (its files "
                              "changed since): its whiskers would show another policy")
    return spec


def run_episode_png(manifest: dict, seed: int, every: int) -> bytes:
    """The whiskers of one stored episode (the review page's on-demand view), replayed with its run's policy and
    scene: a PNG."""
    request = WhiskersRequest(policy_of_run(manifest), seed, scene_of_run(manifest["scene"]), every)
    return png_bytes(run_whiskers(request)[1])
