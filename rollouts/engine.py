"""The rollout loop: many environments in lock-step, one batched policy call per control step.

    while episodes remain:
        render every camera of every active environment   one tiled render, one pixel readback
        actions = policy.act(active slots, observations)   one batched forward pass
        for each active environment: record (obs, action), step its physics; if done: store it, start the next

Environments that finish are reset on their own (partial resets); their policy state is reset with them.
``run_chunk`` is what a dask task runs: it skips episodes already in the store, so a retried or resumed chunk
never duplicates work.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from curation.writer import EpisodeFrames
from dataengine.config import to_jsonable
from rollouts.episode import RecordedEpisode
from rollouts.policies import ActPolicy, ScriptedPolicy
from rollouts.store import EpisodeStore
from scenes.pick_place import TASK, Observation, PickPlaceConfig, PickPlaceEnv, build_model
from scenes.render import CAMERA_NAMES, TiledRenderer, image_feature_key


@dataclass(frozen=True)
class PolicySpec:
    """How a worker builds the policy (a picklable recipe, not the policy itself)."""

    kind: str
    """``act`` or ``scripted``."""
    checkpoint: str | None = None
    device: str | None = None
    temporal_ensemble_coeff: float | None = None
    n_action_steps: int | None = None

    def build(self) -> ActPolicy | ScriptedPolicy:
        if self.kind == "scripted":
            return ScriptedPolicy()
        return ActPolicy(Path(self.checkpoint), self.device, self.temporal_ensemble_coeff, self.n_action_steps)


@dataclass(frozen=True)
class ChunkTask:
    """One unit of distributed work: some episode ids of one run."""

    run_dir: str
    episode_ids: tuple[int, ...]
    first_seed: int
    policy: PolicySpec
    scene: PickPlaceConfig
    num_envs: int
    codec: str = "libx264"


@dataclass
class ChunkResult:
    episodes: int = 0
    """Episodes this task stored (a retried task stores only what was missing)."""
    env_steps: int = 0


@dataclass
class _Slot:
    env: PickPlaceEnv
    episode_id: int = -1
    seed: int = 0
    observation: Observation | None = None
    states: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    images: dict = field(default_factory=dict)

    def start(self, episode_id: int, seed: int, policy, slot: int) -> None:
        self.episode_id, self.seed = episode_id, seed
        self.observation = self.env.reset(seed)
        policy.reset(slot, self.env, seed)
        self.states, self.actions = [], []
        self.images = {image_feature_key(camera): [] for camera in CAMERA_NAMES}

    def record(self, action: np.ndarray) -> None:
        self.states.append(self.observation.state)
        self.actions.append(action)
        for key, image in self.observation.images.items():
            self.images[key].append(image)

    def finish(self) -> RecordedEpisode:
        frames = EpisodeFrames(np.stack(self.states), np.stack(self.actions).astype(np.float32),
                               {k: np.stack(v) for k, v in self.images.items()}, TASK)
        return RecordedEpisode(self.seed, self.env.scene, self.env.metrics(), frames)


def _render(renderer: TiledRenderer, slots: list[_Slot]) -> None:
    """Every camera of every given environment in one tiled render and one readback."""
    views = [(slot.env.data, camera) for slot in slots for camera in CAMERA_NAMES]
    cameras = len(CAMERA_NAMES)

    def look_of(i: int) -> None:  # each env's look is written once, before its first camera
        if i % cameras == 0:
            slots[i // cameras].env.apply_visuals()

    images = renderer.render(views, before_each=look_of)
    for k, slot in enumerate(slots):
        tiles = images[k * len(CAMERA_NAMES) : (k + 1) * len(CAMERA_NAMES)]
        by_key = {image_feature_key(camera): tile for camera, tile in zip(CAMERA_NAMES, tiles)}
        slot.observation = Observation(slot.observation.state, by_key)


def _run_slots(slots: list[_Slot], todo: list[int], task: ChunkTask, policy, renderer: TiledRenderer,
               store: EpisodeStore, identity: dict, result: ChunkResult) -> None:
    """The lock-step loop over the task's episodes (see the module docstring).

    Finished episodes are encoded and stored by a background thread (PyAV releases the GIL while encoding), so
    the simulation keeps stepping; at most one episode per environment waits to be written, which bounds memory.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="episode-writer") as writer:
        writes: collections.deque[Future] = collections.deque()

        def store_episode(slot: _Slot) -> None:
            while len(writes) >= len(slots):
                result.episodes += writes.popleft().result()
            writes.append(writer.submit(store.write, slot.episode_id, slot.finish(), identity, task.scene.fps,
                                        task.codec))

        _step_slots(slots, todo, task, policy, renderer, store_episode, result)
        while writes:
            result.episodes += writes.popleft().result()


def _step_slots(slots: list[_Slot], todo: list[int], task: ChunkTask, policy, renderer: TiledRenderer,
                store_episode, result: ChunkResult) -> None:
    queue = list(reversed(todo))
    for index, slot in enumerate(slots):
        episode_id = queue.pop()
        slot.start(episode_id, task.first_seed + episode_id, policy, index)
    active = list(range(len(slots)))
    while active:
        _render(renderer, [slots[i] for i in active])
        actions = policy.act(active, [slots[i].observation for i in active])
        still_active = []
        for i, action in zip(active, actions):
            slot = slots[i]
            slot.record(action)
            slot.observation = slot.env.step(action)
            result.env_steps += 1
            if not slot.env.done:
                still_active.append(i)
                continue
            store_episode(slot)
            if queue:
                episode_id = queue.pop()
                slot.start(episode_id, task.first_seed + episode_id, policy, i)
                still_active.append(i)
        active = still_active


_POLICY_CACHE: dict[tuple[PolicySpec, int], ActPolicy | ScriptedPolicy] = {}


def _policy(spec: PolicySpec) -> ActPolicy | ScriptedPolicy:
    """One policy per worker thread and spec: loading a checkpoint per chunk would dominate small chunks, and a
    policy keeps per-slot state, so two tasks running in threads of one worker must not share one."""
    key = (spec, threading.get_ident())
    if key not in _POLICY_CACHE:
        _POLICY_CACHE[key] = spec.build()
    return _POLICY_CACHE[key]


def _pin_gpu(spec: PolicySpec) -> PolicySpec:
    """On a machine with several GPUs, worker k of an embedded cluster uses GPU k % count for the policy and
    for EGL rendering (set before this process creates its first GL context)."""
    import torch

    count = torch.cuda.device_count()
    if spec.device is not None or count < 2:
        return spec
    try:
        from distributed import get_worker

        index = int(get_worker().name) % count
    except (ValueError, TypeError):  # not in a dask worker, or a worker not named by a number
        return spec
    os.environ.setdefault("MUJOCO_EGL_DEVICE_ID", str(index))
    return dataclasses.replace(spec, device=f"cuda:{index}")


def run_chunk(task: ChunkTask) -> ChunkResult:
    """Roll out the task's episodes that are not in the store yet; store each as soon as it ends."""
    store = EpisodeStore.open(Path(task.run_dir))
    done = set(store.completed_ids())
    todo = [i for i in task.episode_ids if i not in done]
    result = ChunkResult()
    if not todo:
        return result
    policy = _policy(_pin_gpu(task.policy))
    identity = to_jsonable(policy.identity)
    num_envs = min(task.num_envs, len(todo))
    model = build_model(task.scene, tiles=num_envs * len(CAMERA_NAMES))
    renderer = TiledRenderer(model, task.scene.image_size, num_envs * len(CAMERA_NAMES))
    physics_only = dataclasses.replace(task.scene, render=False)
    slots = [_Slot(PickPlaceEnv(physics_only, model)) for _ in range(num_envs)]
    try:
        _run_slots(slots, todo, task, policy, renderer, store, identity, result)
    finally:
        renderer.close()
    return result
