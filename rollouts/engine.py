"""The rollout loop: many environments in lock-step, batched rendering and policy calls, pipelined over lanes.

The environments of a worker are split into lanes; a lane owns a fixed set of environments and two threads.
    while episodes remain, for each lane in turn:                 (main thread)
        collect the lane's physics step; commit finished episodes, start queued ones in their environments
        render every camera of the lane's environments            one tiled render, one pixel readback
        actions = policy.act(lane's slots, observations)          one batched forward pass (GPU)
        hand the actions to the lane's physics thread             not waited for: it steps while the main
                                                                  thread renders and infers for the next lane
        hand frames + actions to the lane's recorder thread       not waited for (bounded backlog)
MuJoCo and Pillow's JPEG encoder release the GIL, so the threads use separate cores. With one lane this is the
plain loop render -> policy -> physics; with two, rendering and inference of one half overlap the physics of the
other.

Frames are encoded as they arrive (memory stays flat whatever the episode length and number of environments) and
an environment's episodes always go to the same lane, so its writers see frames in order. Environments that
finish are reset on their own (partial resets); their policy state is reset with them. ``run_chunk`` is what a
dask task runs: it skips episodes already in the store, so a retried or resumed chunk never duplicates work.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from so101_dataengine.base.configs import to_jsonable
from so101_dataengine.formats.frames import JPEG_QUALITY
from so101_dataengine.formats.store import EpisodeStore, EpisodeWriter
from so101_dataengine.rollouts.policies import FAULTY_KIND, FaultyScriptedPolicy, LeRobotPolicy, ScriptedPolicy
from so101_dataengine.scenes.faulty_expert import FaultMix
from so101_dataengine.scenes.pick_place import TASK, Observation, PickPlaceConfig, PickPlaceEnv, build_model
from so101_dataengine.scenes.render import CAMERA_NAMES, TiledRenderer, image_feature_key


@dataclass(frozen=True)
class PolicySpec:
    """How a worker builds the policy (a picklable recipe, not the policy itself)."""

    kind: str
    """``scripted``, ``scripted-faulty``, or a checkpoint's lerobot policy type (``act``, ``diffusion``, ...)."""
    checkpoint: str | None = None
    device: str | None = None
    temporal_ensemble_coeff: float | None = None
    n_action_steps: int | None = None
    faults: FaultMix | None = None
    """The failure mix of ``scripted-faulty``."""

    def build(self) -> LeRobotPolicy | ScriptedPolicy:
        if self.kind == "scripted":
            return ScriptedPolicy()
        if self.kind == FAULTY_KIND:
            return FaultyScriptedPolicy(self.faults)
        return LeRobotPolicy(Path(self.checkpoint), self.device, self.temporal_ensemble_coeff, self.n_action_steps)


@dataclass(frozen=True)
class ChunkTask:
    """One unit of distributed work: some episode ids of one run."""

    run_dir: str
    episode_ids: tuple[int, ...]
    first_seed: int
    policy: PolicySpec
    scene: PickPlaceConfig
    num_envs: int
    jpeg_quality: int = JPEG_QUALITY
    lanes: int = 2
    """Groups of environments, each with a physics and a recorder thread, served in turn by the main thread."""
    classifier: str | None = None
    """A success classifier artifact: score the task's episodes once they are stored (``score_stored``)."""


@dataclass
class ChunkResult:
    episodes: int = 0
    """Episodes this task stored (a retried task stores only what was missing)."""
    env_steps: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Where the time went. Main thread: ``render``, ``policy``, ``wait_lanes`` (waiting for physics),
    ``reset``; lanes (summed over lanes): ``physics``, ``encode``, ``commit``."""

    def add(self, other: "ChunkResult") -> None:
        self.episodes += other.episodes
        self.env_steps += other.env_steps
        for phase, seconds in other.seconds.items():
            self.seconds[phase] += seconds


@dataclass
class _Slot:
    """One environment and the episode it is running."""

    env: PickPlaceEnv
    lane: int
    episode_id: int = -1
    seed: int = 0
    observation: Observation | None = None
    writer: EpisodeWriter | None = None

    def start(self, episode_id: int, seed: int, policy, index: int, store: EpisodeStore, task: ChunkTask) -> None:
        self.episode_id, self.seed = episode_id, seed
        self.observation = self.env.reset(seed)
        policy.reset(index, self.env, seed)
        self.writer = store.begin(episode_id, task.scene.fps, task.jpeg_quality)


GIL_SWITCH_INTERVAL_S = 0.0005
"""Lanes release the GIL inside MuJoCo and the frame encoder many times per step and must get it back quickly;
with Python's default 5 ms switch interval each re-acquisition could wait behind the main thread's Python loop for
up to 5 ms (on the GPU machine: ~4 ms per encoded frame instead of ~0.4)."""


class _Lanes:
    """Lane k owns a fixed set of environments and has two threads: one steps their physics (the main thread
    collects the step on the lane's next turn), one records their frames (in order, as its own FIFO queue; the main
    thread does not wait for it, except to keep at most ``RECORD_BACKLOG`` steps per lane of frames queued)."""

    RECORD_BACKLOG = 2

    def __init__(self, count: int):
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # this worker process runs the engine
        self.count = count
        self.physics = [ThreadPoolExecutor(1, thread_name_prefix=f"physics{k}") for k in range(count)]
        self.recorders = [ThreadPoolExecutor(1, thread_name_prefix=f"recorder{k}") for k in range(count)]
        self.seconds = {executor: defaultdict(float) for executor in self.physics + self.recorders}
        self.recording: list[Future] = []
        self._steps: collections.deque[Future] = collections.deque()

    def step_physics(self, lane: int, items: list) -> Future:
        return self._submit(self.physics[lane], _lane_physics, items)

    def record(self, lane: int, function, *args) -> Future:
        future = self._submit(self.recorders[lane], function, *args)
        self.recording.append(future)
        return future

    def record_step(self, lane: int, items: list) -> None:
        """Hand one lane-step's frames to the lane's recorder, keeping at most ``RECORD_BACKLOG`` steps per lane
        queued: beyond that, wait for the oldest step's recording."""
        self._steps.append(self.record(lane, _lane_record, items))
        while len(self._steps) > self.RECORD_BACKLOG * self.count:
            self._steps.popleft().result()

    def _submit(self, executor: ThreadPoolExecutor, function, *args) -> Future:
        return executor.submit(function, self.seconds[executor], *args)

    def stored(self, wait: bool = False) -> int:
        """Episodes stored by finished recording work (all of it with ``wait``); re-raises a lane's error here."""
        finished = [f for f in self.recording if wait or f.done()]
        self.recording = [f for f in self.recording if f not in finished]
        return sum(f.result() for f in finished)

    def close(self) -> dict[str, float]:
        for executor in self.physics + self.recorders:
            executor.shutdown(wait=True, cancel_futures=True)
        totals: dict[str, float] = defaultdict(float)
        for seconds in self.seconds.values():
            for phase, value in seconds.items():
                totals[phase] += value
        return totals


def _lane_physics(seconds: dict, items: list) -> list[np.ndarray]:
    """Step one lane's environments; returns their new states."""
    start = time.perf_counter()
    states = [env.step(action).state for env, action in items]
    seconds["physics"] += time.perf_counter() - start
    return states


def _lane_record(seconds: dict, items: list) -> int:
    """Encode the frames (observation + action) of one step of one lane's environments."""
    start = time.perf_counter()
    for writer, observation, action in items:
        writer.add(observation.state, action, observation.images)
    seconds["encode"] += time.perf_counter() - start
    return 0


def _lane_commit(seconds: dict, writer: EpisodeWriter, slot_copy: tuple) -> int:
    start = time.perf_counter()
    stored = writer.commit(*slot_copy)
    seconds["commit"] += time.perf_counter() - start
    return int(stored)


def _render(renderer: TiledRenderer, slots: list[_Slot]) -> None:
    """Every camera of every given environment in one tiled render and one readback."""
    cameras = len(CAMERA_NAMES)
    views = [(slot.env.data, camera) for slot in slots for camera in CAMERA_NAMES]

    def look_of(i: int) -> None:  # each env's look is written once, before its first camera
        if i % cameras == 0:
            slots[i // cameras].env.apply_visuals()

    images = renderer.render(views, before_each=look_of)
    keys = [image_feature_key(camera) for camera in CAMERA_NAMES]
    for k, slot in enumerate(slots):
        by_key = dict(zip(keys, images[k * cameras : (k + 1) * cameras]))
        slot.observation = Observation(slot.observation.state, by_key)


def _step_slots(slots: list[_Slot], todo: list[int], task: ChunkTask, policy, renderer: TiledRenderer,
                store: EpisodeStore, lanes: _Lanes, identity: dict, result: ChunkResult) -> None:
    """The lock-step loop over the task's episodes, pipelined over lanes (see the module docstring): while lane
    k's physics thread steps its environments, the main thread renders and runs the policy for the next lane."""
    clock = result.seconds
    queue = list(reversed(todo))
    for index, slot in enumerate(slots):
        episode_id = queue.pop()
        slot.start(episode_id, task.first_seed + episode_id, policy, index, store, task)
    active = {lane: [i for i, slot in enumerate(slots) if slot.lane == lane] for lane in range(lanes.count)}
    stepping: dict[int, Future] = {}
    while any(active.values()):
        for lane in active:
            t0 = time.perf_counter()
            if lane in stepping:
                for i, state in zip(active[lane], stepping.pop(lane).result()):
                    slots[i].observation = Observation(state, {})
                result.env_steps += len(active[lane])
                result.episodes += lanes.stored()
            t1 = time.perf_counter()
            active[lane] = _next_episodes(slots, active[lane], queue, task, policy, store, lanes, identity)
            if not active[lane]:
                continue
            members = [slots[i] for i in active[lane]]
            t2 = time.perf_counter()
            _render(renderer, members)
            t3 = time.perf_counter()
            actions = policy.act(active[lane], [slot.observation for slot in members])
            t4 = time.perf_counter()
            stepping[lane] = lanes.step_physics(lane, [(slot.env, action) for slot, action in zip(members, actions)])
            lanes.record_step(lane, [(slot.writer, slot.observation, action) for slot, action in zip(members, actions)])
            clock["wait_lanes"] += t1 - t0
            clock["reset"] += t2 - t1
            clock["render"] += t3 - t2
            clock["policy"] += t4 - t3


def _next_episodes(slots: list[_Slot], active: list[int], queue: list[int], task: ChunkTask, policy,
                   store: EpisodeStore, lanes: _Lanes, identity: dict) -> list[int]:
    """Hand finished episodes to their lane's recorder for commit and start the next queued ones in their
    environments; returns the slots still running."""
    still_active = []
    for i in active:
        slot = slots[i]
        if not slot.env.done:
            still_active.append(i)
            continue
        lanes.record(slot.lane, _lane_commit, slot.writer, (slot.seed, slot.env.scene, slot.env.metrics(), identity, TASK))
        slot.writer = None
        if queue:
            episode_id = queue.pop()
            slot.start(episode_id, task.first_seed + episode_id, policy, i, store, task)
            still_active.append(i)
    return still_active


_POLICY_CACHE: dict[tuple[PolicySpec, int], LeRobotPolicy | ScriptedPolicy] = {}


def policy_for_worker(spec: PolicySpec) -> LeRobotPolicy | ScriptedPolicy:
    """The worker's policy, on its GPU (see ``_pin_gpu``). One policy per worker thread and spec: loading a
    checkpoint per chunk would dominate small chunks, and a policy keeps per-slot state, so two tasks running in
    threads of one worker must not share one."""
    spec = _pin_gpu(spec)
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
    policy = policy_for_worker(task.policy)
    identity = to_jsonable(policy.identity)
    num_envs = min(task.num_envs, len(todo))
    lane_count = max(1, min(task.lanes, num_envs))
    model = build_model(task.scene, tiles=num_envs * len(CAMERA_NAMES))
    renderer = TiledRenderer(model, task.scene.image_size, num_envs * len(CAMERA_NAMES))
    physics_only = dataclasses.replace(task.scene, render=False)
    slots = [_Slot(PickPlaceEnv(physics_only, model), lane=i % lane_count) for i in range(num_envs)]
    lanes = _Lanes(lane_count)
    try:
        _step_slots(slots, todo, task, policy, renderer, store, lanes, identity, result)
        result.episodes += lanes.stored(wait=True)
        if task.classifier is not None:
            start = time.perf_counter()
            score_stored(store, todo, task.classifier)
            result.seconds["score"] += time.perf_counter() - start
    finally:
        for phase, seconds in lanes.close().items():
            result.seconds[phase] += seconds
        for slot in slots:  # a failed or interrupted chunk: unfinished episodes leave nothing behind
            if slot.writer is not None:
                slot.writer.abort()
        renderer.close()
    return result


def score_stored(store: EpisodeStore, episode_ids: list[int], artifact: str) -> None:
    """Score the task's stored episodes with the success classifier (on this worker's GPU when it has one) and
    record each verdict beside its episode, so curation reuses it instead of scoring again."""
    from so101_dataengine.classifier.scoring import classifier_at, verdicts_of

    stored = set(store.completed_ids())
    verdicts_of(classifier_at(artifact), store, [i for i in episode_ids if i in stored], record=True)
