"""Policies that act for many environments at once: a LeRobot ACT checkpoint, or the scripted expert.

Both answer ``act(slots, observations) -> (len(slots), 6)`` actions in LeRobot units for the environments in
``slots`` and keep per-environment state, reset with ``reset(slot, ...)`` whenever that environment starts an
episode. Per-slot state matters for ACT: lerobot's ``select_action`` keeps ONE action queue for the whole batch,
which is wrong as soon as environments finish at different times (and forgetting ``reset()`` between episodes
cost the users a 73 % -> 23 % drop). Here each slot has its own queue, or its own temporal-ensembling buffer.
"""

from __future__ import annotations

import collections
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dataengine.errors import DataEngineError
from scenes.expert import ExpertConfig, ScriptedExpert
from scenes.faulty_expert import FaultMix, FaultyExpert
from scenes.pick_place import Observation, PickPlaceEnv
from scenes.render import CAMERA_NAMES, image_feature_key
from scenes.so101 import JOINT_NAMES

STATE_KEY = "observation.state"
ACTION_KEY = "action"


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
"""``--policy scripted-faulty`` or ``scripted-faulty:none=2,hold=1,...`` (a ``scenes.faulty_expert.FaultMix``)."""


class FaultyScriptedPolicy(ScriptedPolicy):
    """The scripted expert failing on purpose in a seeded mix of ways (``scenes.faulty_expert``): realistic
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


def read_policy_config(checkpoint: Path) -> dict:
    config_file = Path(checkpoint) / "config.json"
    if not config_file.is_file():
        raise DataEngineError(
            f"{checkpoint} is not a LeRobot checkpoint (no config.json): pass a .../pretrained_model directory"
        )
    return json.loads(config_file.read_text())


def inspect_act_checkpoint(checkpoint: Path) -> int:
    """Check that ``checkpoint`` is an ACT ``pretrained_model`` directory that fits the scene; returns its image size."""
    raw = read_policy_config(checkpoint)
    if raw.get("type") != "act":
        raise DataEngineError(f"{checkpoint} holds a {raw.get('type')!r} policy; this engine runs ACT checkpoints")
    return image_size_of(raw)


def image_size_of(config: dict) -> int:
    """The square image size the checkpoint was trained on, checked against the scene's cameras and state."""
    features = config.get("input_features", {})
    cameras = {image_feature_key(c) for c in CAMERA_NAMES}
    wanted_images = {k for k, f in features.items() if f.get("type") == "VISUAL"}
    missing = sorted(wanted_images - cameras) + ([STATE_KEY] if STATE_KEY not in features else [])
    if missing:
        raise DataEngineError(
            f"the policy needs {', '.join(missing)} which the scene does not provide "
            f"(it has {STATE_KEY}, {', '.join(sorted(cameras))})"
        )
    if features[STATE_KEY]["shape"] != [len(JOINT_NAMES)]:
        raise DataEngineError(f"the policy's {STATE_KEY} has shape {features[STATE_KEY]['shape']}, the SO-101 has 6")
    shapes = {tuple(features[k]["shape"]) for k in wanted_images}
    if len(shapes) != 1 or any(s[1] != s[2] or s[0] != 3 for s in shapes):
        raise DataEngineError(f"the policy's cameras must share one square RGB shape, got {sorted(shapes)}")
    return shapes.pop()[1]


class ActPolicy:
    """A LeRobot ACT checkpoint with its own pre/post-processors, batched over environments."""

    def __init__(self, checkpoint: Path, device: str | None = None, temporal_ensemble_coeff: float | None = None,
                 n_action_steps: int | None = None):
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.act.modeling_act import ACTPolicy, ACTTemporalEnsembler
        from lerobot.policies.factory import make_pre_post_processors

        checkpoint = Path(checkpoint)
        self.image_size = inspect_act_checkpoint(checkpoint)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        config = PreTrainedConfig.from_pretrained(checkpoint)
        config.device = self.device
        if temporal_ensemble_coeff is not None:
            config.temporal_ensemble_coeff, config.n_action_steps = temporal_ensemble_coeff, 1
        elif n_action_steps is not None:
            if not 1 <= n_action_steps <= config.chunk_size:
                raise DataEngineError(
                    f"--n-action-steps {n_action_steps} must be between 1 and the chunk size {config.chunk_size}"
                )
            config.n_action_steps = n_action_steps
        self.policy = ACTPolicy.from_pretrained(checkpoint, config=config).to(self.device).eval()
        self.preprocess, self.postprocess = make_pre_post_processors(
            config, pretrained_path=str(checkpoint),
            preprocessor_overrides={"device_processor": {"device": self.device}},
        )
        self.config = config
        self.image_keys = list(config.image_features)
        self.identity = PolicyIdentity("act", str(checkpoint.resolve()), checkpoint_sha256(checkpoint))
        self._make_ensembler = lambda: ACTTemporalEnsembler(config.temporal_ensemble_coeff, config.chunk_size)
        self._queues: dict[int, collections.deque] = {}
        self._ensemblers: dict = {}

    @property
    def ensembling(self) -> bool:
        return self.config.temporal_ensemble_coeff is not None

    def reset(self, slot: int, env: PickPlaceEnv, seed: int) -> None:
        self._queues[slot] = collections.deque()
        if self.ensembling:
            self._ensemblers[slot] = self._make_ensembler()

    def _batch(self, observations: list[Observation]) -> dict[str, torch.Tensor]:
        batch = {STATE_KEY: torch.from_numpy(np.stack([o.state for o in observations])).float()}
        for key in self.image_keys:
            images = torch.from_numpy(np.stack([o.images[key] for o in observations]))
            batch[key] = images.permute(0, 3, 1, 2).float().div_(255.0)
        return batch

    @torch.inference_mode()
    def predict_chunks(self, observations: list[Observation]) -> torch.Tensor:
        """(B, chunk_size, 6) actions in LeRobot units for the given observations."""
        batch = self.preprocess(self._batch(observations))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.startswith("cuda")):
            chunks = self.policy.predict_action_chunk(batch)
        return self.postprocess(chunks.float())

    def act(self, slots: list[int], observations: list[Observation]) -> np.ndarray:
        need = [i for i, slot in enumerate(slots) if self.ensembling or not self._queues[slot]]
        actions = np.empty((len(slots), len(JOINT_NAMES)), dtype=np.float32)
        if need:
            chunks = self.predict_chunks([observations[i] for i in need])
            for row, i in enumerate(need):
                slot = slots[i]
                if self.ensembling:
                    actions[i] = self._ensemblers[slot].update(chunks[row : row + 1])[0].numpy()
                else:
                    self._queues[slot].extend(chunks[row, : self.config.n_action_steps].numpy())
        for i, slot in enumerate(slots):
            if not self.ensembling:
                actions[i] = self._queues[slot].popleft()
        if not np.all(np.isfinite(actions)):
            raise DataEngineError(f"the policy produced NaN/inf actions ({self.identity.path}): the checkpoint is broken")
        return actions
