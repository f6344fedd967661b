"""Policies that act for many environments at once: a LeRobot checkpoint (ACT, Diffusion, the VLAs), or the
scripted expert.

All answer ``act(slots, observations) -> (len(slots), 6)`` actions in LeRobot units for the environments in
``slots`` and keep per-environment state, reset with ``reset(slot, ...)`` whenever that environment starts an
episode. Per-slot state is the point: lerobot's ``select_action`` keeps ONE action queue (and one observation
history) for the whole batch, which is wrong as soon as environments finish at different times, and forgetting
``reset()`` between episodes cost the users a 73 % -> 23 % drop. Here each slot has its own action queue, its own
observation history (Diffusion) and its own temporal-ensembling buffer (ACT), while the slots that need a new
chunk share one forward pass. Loading is lerobot's own (``so101_dataengine.rollouts.lerobot_policy``).
"""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.rollouts.lerobot_policy import IMAGES_KEY, STATE_KEY, Drive, inspect_checkpoint, load_policy
from so101_dataengine.scenes.expert import ExpertConfig, ScriptedExpert
from so101_dataengine.scenes.faulty_expert import FaultMix, FaultyExpert
from so101_dataengine.scenes.pick_place import TASK, Observation, PickPlaceEnv
from so101_dataengine.scenes.so101 import JOINT_NAMES


@dataclass(frozen=True)
class PolicyIdentity:
    """Recorded with every episode: which policy acted."""

    kind: str
    path: str | None
    sha256: str | None


def checkpoint_sha256(checkpoint: Path) -> str:
    """Content hash of a ``pretrained_model`` directory (weights, config, processors)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        digest.update(file.relative_to(checkpoint).as_posix().encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def expert_sha256() -> str:
    """Content hash of the scripted expert's settings (``ExpertConfig``), recorded as its identity, so episodes of
    the expert before and after a change (its grasp aim, say) are told apart and a run is not resumed across one."""
    return hashlib.sha256(json.dumps(asdict(ExpertConfig()), sort_keys=True).encode()).hexdigest()


class ScriptedPolicy:
    """The privileged scripted expert behind the batched-policy interface (a baseline and a demo source)."""

    image_size: int | None = None

    def __init__(self) -> None:
        self.identity = PolicyIdentity("scripted", None, expert_sha256())
        self._experts: dict[int, ScriptedExpert] = {}

    def reset(self, slot: int, env: PickPlaceEnv, seed: int) -> None:
        expert = self._experts.get(slot)
        if expert is None or expert.env is not env:
            expert = self._experts[slot] = ScriptedExpert(env)
        expert.reset(seed)

    def act(self, slots: list[int], observations: list[Observation]) -> np.ndarray:
        return np.stack([self._experts[slot].act() for slot in slots])


FAULTY_KIND = "scripted-faulty"
"""``--policy scripted-faulty`` or ``scripted-faulty:none=2,hold=1,...`` (a ``so101_dataengine.scenes.faulty_expert.FaultMix``)."""


class FaultyScriptedPolicy(ScriptedPolicy):
    """The scripted expert failing on purpose in a seeded mix of ways (``so101_dataengine.scenes.faulty_expert``): realistic
    failures with known outcomes, to train and measure the success classifier."""

    def __init__(self, mix: FaultMix) -> None:
        super().__init__()
        self.mix = mix
        self.identity = PolicyIdentity(f"{FAULTY_KIND}:{mix.canonical()}", None, expert_sha256())

    def reset(self, slot: int, env: PickPlaceEnv, seed: int) -> None:
        expert = self._experts.get(slot)
        if expert is None or expert.env is not env:
            expert = self._experts[slot] = FaultyExpert(env, self.mix)
        expert.reset(seed)


@dataclass
class _SlotState:
    """One environment's policy state for its current episode."""

    actions: collections.deque = field(default_factory=collections.deque)
    """Actions (LeRobot units) of the current chunk still to execute."""
    history: dict[str, collections.deque] | None = None
    """Diffusion: the last ``n_obs_steps`` preprocessed observations per key (``observation.state``,
    ``observation.images``), filled as lerobot's ``populate_queues`` fills them."""
    ensembler: Any = None
    """ACT with temporal ensembling: this slot's ``ACTTemporalEnsembler``."""
    generator: torch.Generator | None = None
    """Diffusion and the flow-matching VLAs: the sampling noise of this episode, seeded with its scene seed."""


def _limit_action_steps(config: Any, drive: Drive, temporal_ensemble_coeff: float | None,
                        n_action_steps: int | None) -> None:
    """``--temporal-ensemble-coeff`` and ``--n-action-steps`` applied to the config before the policy is built,
    validated against what the type can execute (a chunk, or Diffusion's horizon past its observations)."""
    if temporal_ensemble_coeff is not None:
        if config.type != "act":
            raise DataEngineError(f"temporal ensembling is ACT's (--temporal-ensemble-coeff); this checkpoint is a "
                                  f"{config.type} policy: use --n-action-steps")
        config.temporal_ensemble_coeff, config.n_action_steps = temporal_ensemble_coeff, 1
    elif n_action_steps is not None:
        if drive.history:
            limit, what = config.horizon - config.n_obs_steps + 1, "horizon - n_obs_steps + 1"
        else:
            limit, what = getattr(config, drive.horizon_field), "chunk size"
        if not 1 <= n_action_steps <= limit:
            raise DataEngineError(f"--n-action-steps {n_action_steps} must be between 1 and the {what} {limit}")
        config.n_action_steps = n_action_steps


class LeRobotPolicy:
    """A LeRobot checkpoint of any type the engine drives (``so101_dataengine.rollouts.lerobot_policy.DRIVES``), batched over
    environments, executing per slot exactly what lerobot's single-environment ``select_action`` would execute:
    * chunk policies (ACT, SmolVLA, Pi0, Pi0.5): ``predict_action_chunk`` of the current observation, its first
      ``n_action_steps`` queued; ACT with ``temporal_ensemble_coeff``: a chunk every step, ensembled per slot;
    * Diffusion: each step's preprocessed observation joins the slot's history (the first one copied to fill it),
      and a slot with an empty queue gets the model's generation from its ``n_obs_steps`` history, the
      ``n_action_steps`` actions from the current step on.
    Noise (Diffusion's, and the flow matching of SmolVLA, Pi0 and Pi0.5) is drawn per slot from a generator seeded
    with the episode's seed, so an episode's actions depend on its scene, not on which other environments share the
    batch.
    """

    def __init__(self, checkpoint: Path, device: str | None = None, temporal_ensemble_coeff: float | None = None,
                 n_action_steps: int | None = None):
        checkpoint = Path(checkpoint)
        self.image_size = inspect_checkpoint(checkpoint)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        loaded = load_policy(checkpoint, self.device,
                             edit=lambda c, d: _limit_action_steps(c, d, temporal_ensemble_coeff, n_action_steps))
        self.policy, self.preprocess, self.postprocess = loaded.policy, loaded.preprocess, loaded.postprocess
        self.config, self.drive = loaded.config, loaded.drive
        self.image_keys = list(self.config.image_features)
        self.identity = PolicyIdentity(self.config.type, str(checkpoint.resolve()), checkpoint_sha256(checkpoint))
        self._history_keys = [STATE_KEY] + ([IMAGES_KEY] if self.image_keys else [])
        self._slots: dict[int, _SlotState] = {}

    @property
    def ensembling(self) -> bool:
        return getattr(self.config, "temporal_ensemble_coeff", None) is not None

    def reset(self, slot: int, env: PickPlaceEnv, seed: int) -> None:
        """A new episode in ``slot``: empty queue, empty history, fresh ensembler, noise seeded with ``seed``."""
        state = _SlotState()
        if self.ensembling:
            from so101_dataengine.lerobot_compat import ACTTemporalEnsembler

            state.ensembler = ACTTemporalEnsembler(self.config.temporal_ensemble_coeff, self.config.chunk_size)
        if self.drive.history:
            state.history = self._empty_history()
        if self.drive.history or self.drive.flow_noise:
            state.generator = torch.Generator().manual_seed(seed)
        self._slots[slot] = state

    def _empty_history(self) -> dict[str, collections.deque]:
        return {key: collections.deque(maxlen=self.config.n_obs_steps) for key in self._history_keys}

    def _batch(self, observations: Sequence[Observation]) -> dict[str, Any]:
        """The observations as lerobot's env wrappers hand them over: float [0, 1] CHW images, float state."""
        batch: dict[str, Any] = {STATE_KEY: torch.from_numpy(np.stack([o.state for o in observations])).float()}
        for key in self.image_keys:
            images = torch.from_numpy(np.stack([o.images[key] for o in observations]))
            batch[key] = images.permute(0, 3, 1, 2).float().div_(255.0)
        if self.drive.language:
            batch["task"] = [TASK] * len(observations)
        return batch

    def _preprocessed(self, observations: Sequence[Observation]) -> dict[str, Any]:
        batch = self.preprocess(self._batch(observations))
        if self.drive.history and self.image_keys:  # as Diffusion's select_action stacks them
            batch = dict(batch)
            batch[IMAGES_KEY] = torch.stack([batch[key] for key in self.image_keys], dim=-4)
        return batch

    def _chunks(self, observations: Sequence[Observation], generators: list[torch.Generator]) -> torch.Tensor:
        """(B, chunk_size, 6) normalised actions of a chunk policy for the given observations; a flow-matching
        type integrates each sample from noise drawn from its own generator."""
        batch = self._preprocessed(observations)
        kwargs: dict[str, torch.Tensor] = {}
        if self.drive.flow_noise:
            shape = (1, self.config.chunk_size, self.config.max_action_dim)
            kwargs["noise"] = torch.cat([torch.randn(shape, generator=g) for g in generators]).to(self.device)
        autocast = self.drive.autocast_bf16 and self.device.startswith("cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            return self.policy.predict_action_chunk(batch, **kwargs).float()

    def _generate(self, history: dict[str, torch.Tensor], generators: list[torch.Generator]) -> torch.Tensor:
        """Diffusion's generation for stacked histories, (B, horizon, 6) normalised: lerobot's
        ``DiffusionModel.generate_actions`` with each sample's noise (prior and denoising steps) from its own
        generator, which diffusers' schedulers accept as a list."""
        diffusion = self.policy.diffusion
        global_cond = diffusion._prepare_global_conditioning(history)
        shape = (1, self.config.horizon, self.config.action_feature.shape[0])
        noise = torch.cat([torch.randn(shape, generator=g) for g in generators]).to(global_cond.device)
        return diffusion.conditional_sample(len(generators), global_cond=global_cond, generator=generators, noise=noise)

    def _stacked(self, histories: list[dict[str, collections.deque]]) -> dict[str, torch.Tensor]:
        """Histories as Diffusion's ``predict_action_chunk`` stacks its queues: (B, n_obs_steps, ...)."""
        return {key: torch.stack([torch.stack(list(h[key])) for h in histories]) for key in self._history_keys}

    @torch.inference_mode()
    def predict_chunks(self, observations: Sequence[Observation], slots: Sequence[int] | None = None,
                       seed: int = 0) -> torch.Tensor:
        """(B, n, 6) predicted actions in LeRobot units from each observation on, without changing any slot's state
        (for forward-simulating what the policy intends). Chunk policies: the whole chunk (n = chunk_size; the
        flow-matching VLAs' noise seeded with ``seed + row``).
        Diffusion: the actions from the current step to the horizon (n = horizon - n_obs_steps + 1), from the
        history of ``slots`` followed by the observation (without ``slots``: as at an episode's first step), noise
        seeded with ``seed``."""
        from so101_dataengine.lerobot_compat import populate_queues

        generators = [torch.Generator().manual_seed(seed + row) for row in range(len(observations))]
        if not self.drive.history:
            return self.postprocess(self._chunks(observations, generators))
        batch = self._preprocessed(observations)
        histories = []
        for row in range(len(observations)):
            history = self._empty_history()
            if slots is not None:
                for key, queue in self._slots[slots[row]].history.items():
                    history[key].extend(queue)
            histories.append(populate_queues(history, {k: batch[k][row] for k in self._history_keys}))
        generated = self._generate(self._stacked(histories), generators)
        return self.postprocess(generated[:, self.config.n_obs_steps - 1:])

    @torch.inference_mode()
    def act(self, slots: list[int], observations: list[Observation]) -> np.ndarray:
        if self.drive.history:
            actions = self._act_from_history(slots, observations)
        else:
            actions = self._act_from_chunks(slots, observations)
        if not np.all(np.isfinite(actions)):
            raise DataEngineError(f"the policy produced NaN/inf actions ({self.identity.path}): the checkpoint is broken")
        return actions

    def _act_from_chunks(self, slots: list[int], observations: list[Observation]) -> np.ndarray:
        states = [self._slots[slot] for slot in slots]
        need = [i for i, state in enumerate(states) if self.ensembling or not state.actions]
        actions = np.empty((len(slots), len(JOINT_NAMES)), dtype=np.float32)
        if need:
            chunks = self._chunks([observations[i] for i in need], [states[i].generator for i in need])
            if self.ensembling:  # every slot needs a chunk every step; lerobot ensembles normalised actions
                stepped = torch.cat([states[i].ensembler.update(chunks[row : row + 1]) for row, i in enumerate(need)])
                actions[need] = self.postprocess(stepped).numpy()
                return actions
            executed = self.postprocess(chunks[:, : self.config.n_action_steps]).numpy()
            for row, i in enumerate(need):
                states[i].actions.extend(executed[row])
        for i, state in enumerate(states):
            actions[i] = state.actions.popleft()
        return actions

    def _act_from_history(self, slots: list[int], observations: list[Observation]) -> np.ndarray:
        from so101_dataengine.lerobot_compat import populate_queues

        states = [self._slots[slot] for slot in slots]
        batch = self._preprocessed(observations)
        for row, state in enumerate(states):  # every step, as select_action does, whether or not it generates
            populate_queues(state.history, {key: batch[key][row] for key in self._history_keys})
        need = [i for i, state in enumerate(states) if not state.actions]
        if need:
            generated = self._generate(self._stacked([states[i].history for i in need]),
                                       [states[i].generator for i in need])
            start = self.config.n_obs_steps - 1
            executed = self.postprocess(generated[:, start : start + self.config.n_action_steps]).numpy()
            for row, i in enumerate(need):
                states[i].actions.extend(executed[row])
        return np.stack([state.actions.popleft() for state in states]).astype(np.float32)

