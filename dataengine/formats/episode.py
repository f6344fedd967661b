"""Run one episode in one environment and keep every frame in memory: the simplest rollout, used for expert demos
and as the reference of the batched engine (many environments, one policy call; ``so101_dataengine.rollouts.engine``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from so101_dataengine.scenes.outcome import EpisodeMetrics
from so101_dataengine.scenes.pick_place import TASK, Observation, PickPlaceEnv
from so101_dataengine.scenes.randomization import SceneSample


@dataclass(frozen=True)
class EpisodeFrames:
    """One episode in memory: T frames of state, action and camera images (keyed by LeRobot feature name)."""

    states: np.ndarray
    actions: np.ndarray
    images: dict[str, np.ndarray]
    task: str

    def __len__(self) -> int:
        return self.states.shape[0]


@dataclass(frozen=True)
class RecordedEpisode:
    seed: int
    scene: SceneSample
    metrics: EpisodeMetrics
    frames: EpisodeFrames


def record_episode(env: PickPlaceEnv, seed: int, act: Callable[[Observation], np.ndarray],
                   on_reset: Callable[[int], None] | None = None) -> RecordedEpisode:
    """Reset ``env`` to ``seed`` and step it with ``act`` until done; frame t pairs observation t with action t."""
    observation = env.reset(seed)
    if on_reset is not None:
        on_reset(seed)
    states, actions = [], []
    images: dict[str, list[np.ndarray]] = {key: [] for key in observation.images}
    while not env.done:
        action = act(observation)
        states.append(observation.state)
        actions.append(np.asarray(action, dtype=np.float32))
        for key, image in observation.images.items():
            images[key].append(image)
        observation = env.step(action)
    frames = EpisodeFrames(
        states=np.stack(states),
        actions=np.stack(actions),
        images={key: np.stack(values) for key, values in images.items()},
        task=TASK,
    )
    return RecordedEpisode(seed=seed, scene=env.scene, metrics=env.metrics(), frames=frames)
