"""``dataengine train``: train a policy with lerobot's own training entry point (``lerobot-train``), offline.

What this adds over calling ``lerobot-train`` by hand, each a trap the users fell into:
* the dataset is resolved (a local LeRobot v3 directory or a repo id already in the local cache) and checked
  before the run starts; the video backend is chosen so torchcodec without FFmpeg cannot crash it;
* the ResNet backbone's ImageNet weights are used only if torchvision already has them on disk: nothing is
  downloaded;
* runs are step-targeted (lerobot-train cycles its dataloader, so ``--steps`` is never cut at an epoch end; a test
  trains past several epochs);
* the run is recorded in the workspace, so ``--policy act`` later finds the newest checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from curation.dataset_stats import read_info
from dataengine import frame_cache
from dataengine.config import DemosConfig, default_of, to_jsonable
from dataengine.errors import DataEngineError
from dataengine.video import video_backend
from dataengine.workspace import Workspace

SUPPORTED_POLICIES = ("act",)
MIXED_PRECISION = ("bf16", "fp16", "no")
RESNET18_WEIGHTS = "resnet18-f37072fd.pth"
"""torchvision's file name for ``ResNet18_Weights.IMAGENET1K_V1`` in ``$TORCH_HOME/hub/checkpoints``."""


@dataclass
class TrainConfig:
    """``dataengine train``. Defaults: the GPU recipe that reached >= 80 % (docs/act_recipe.md): on 400 expert demos
    at 224 px (``dataengine demos``' default), batch 128, constant lr 1e-4, bf16, 8,000 steps (14 min on an H200 with
    the frame cache): 82.0 % and 80.5 % success over two sets of 200 seeded episodes, chunks of 100 executed whole.
    The same recipe on 200 demos stayed at 44-66 %: the number of demos, not the steps, was the lever."""

    dataset: str
    policy: str = "act"
    steps: int = 8_000
    batch_size: int = 128
    learning_rate: float = 1e-4
    """Constant (lerobot's ACT preset), for the transformer and the (from-scratch) ResNet backbone alike; lerobot's
    default is 1e-5 at batch 8. A cosine decay to 1e-6 was measured worse (200 demos, 9,000 steps: 52.5 % vs 77.5 %)."""
    mixed_precision: str = "bf16"
    """Autocast on CUDA (``bf16``, ``fp16`` or ``no``; CPU runs use ``no``), given to lerobot-train's Accelerator.
    Measured on the H200 at batch 128: ~0.09 s per update, as in fp32 (the update is not GPU-bound there); the
    recipe's runs used it."""
    out: Path | None = None
    """Run directory; default ``<workspace>/train/<policy>-<time>``."""
    device: str | None = None
    """``cuda`` when available, else ``cpu``."""
    num_workers: int | None = None
    """Dataloader workers; default: all cores but two (the training loop and the pin-memory thread need theirs)."""
    save_freq: int = 4_000
    frame_cache: bool = True
    """Decode every camera frame once before training and read frames from that cache, and action chunks from
    in-memory columns (``dataengine.frame_cache``), instead of seeking in the videos and looking up parquet rows for
    every sample (4.9x the samples/s side by side); costs the decoded size on disk under the workspace."""
    resume: bool = False
    extra_args: list[str] = field(default_factory=list)
    """Passed to lerobot-train as they are (e.g. ``--policy.chunk_size=50``)."""


@dataclass(frozen=True)
class ResolvedDataset:
    repo_id: str
    root: Path


def resolve_dataset(spec: str) -> ResolvedDataset:
    """A local dataset directory, or a repo id whose copy is already in lerobot's cache (we never download)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        info = path / "meta" / "info.json"
        if not info.is_file():
            raise DataEngineError(f"{path} is not a LeRobot v3 dataset (no meta/info.json)")
        engine_meta = path / "meta" / "dataengine.json"
        repo_id = json.loads(engine_meta.read_text())["config"]["repo_id"] if engine_meta.is_file() else f"local/{path.name}"
        return ResolvedDataset(repo_id, path.resolve())
    from lerobot.utils.constants import HF_LEROBOT_HOME

    cached = HF_LEROBOT_HOME / spec
    if (cached / "meta" / "info.json").is_file():
        return ResolvedDataset(spec, cached)
    raise DataEngineError(
        f"dataset {spec!r} is neither a local directory nor in the lerobot cache ({HF_LEROBOT_HOME}): "
        "pass the path of a dataset made by 'dataengine demos'"
    )


def _backbone_args() -> list[str]:
    import torch

    hub = Path(torch.hub.get_dir()) / "checkpoints"  # where torchvision looks (TORCH_HOME, XDG_CACHE_HOME)
    if (hub / RESNET18_WEIGHTS).is_file():
        return []  # lerobot's default ImageNet weights, loaded from disk
    return ["--policy.pretrained_backbone_weights=null"]


def default_loader_workers() -> int:
    """lerobot-train's dataloader workers: all cores but two (the training loop and the pin-memory thread)."""
    return max(0, (os.cpu_count() or 1) - 2)


def training_device(config: TrainConfig) -> str:
    import torch  # imported here: the CLI should start without loading torch

    return config.device or ("cuda" if torch.cuda.is_available() else "cpu")


def lerobot_train_command(config: TrainConfig, dataset: ResolvedDataset, out: Path, device: str) -> list[str]:
    executable = [sys.executable, "-m", "dataengine.lerobot_compat"]  # lerobot-train, with a video-decode fallback
    if config.resume:
        return [*executable, f"--config_path={out / 'checkpoints' / 'last' / 'pretrained_model' / 'train_config.json'}",
                "--resume=true", f"--steps={config.steps}", *config.extra_args]
    return [
        *executable,
        f"--dataset.repo_id={dataset.repo_id}",
        f"--dataset.root={dataset.root}",
        f"--dataset.video_backend={video_backend()}",
        f"--policy.type={config.policy}",
        f"--policy.device={device}",
        "--policy.push_to_hub=false",
        *_backbone_args(),
        f"--steps={config.steps}",
        f"--batch_size={config.batch_size}",
        f"--policy.optimizer_lr={config.learning_rate}",
        f"--policy.optimizer_lr_backbone={config.learning_rate}",
        f"--num_workers={default_loader_workers() if config.num_workers is None else config.num_workers}",
        f"--save_freq={min(config.save_freq, config.steps)}",
        "--wandb.enable=false",
        f"--output_dir={out}",
        *config.extra_args,
    ]


def fewer_demos_than_the_recipe(root: Path) -> str | None:
    """A note when the dataset is smaller than the one the default recipe was measured on: the number of demos
    decided ACT's success there (200: at most 66 %, 400: >= 80 %), so the recipe's figure does not carry over."""
    episodes = read_info(root)["total_episodes"]
    recipe = default_of(DemosConfig, "n")
    if episodes >= recipe:
        return None
    return (f"note: {root} holds {episodes} episodes; the default recipe reached >= 80 % with {recipe} "
            "(docs/act_recipe.md)")


def train(config: TrainConfig, workspace: Workspace) -> Path:
    """Run lerobot-train; returns the final checkpoint's ``pretrained_model`` directory."""
    if config.policy not in SUPPORTED_POLICIES:
        raise DataEngineError(f"unknown policy {config.policy!r}: use one of {', '.join(SUPPORTED_POLICIES)}")
    if config.steps < 1:
        raise DataEngineError(f"--steps must be at least 1, got {config.steps}")
    if config.mixed_precision not in MIXED_PRECISION:
        raise DataEngineError(f"unknown mixed precision {config.mixed_precision!r}: use one of {', '.join(MIXED_PRECISION)}")
    dataset = resolve_dataset(config.dataset)
    out = Path(config.out or workspace.new_train_dir(config.policy)).resolve()
    if config.resume and not (out / "checkpoints" / "last").exists():
        raise DataEngineError(f"nothing to resume in {out}: no checkpoints/last; drop --resume to start a new run")
    if not config.resume and out.exists():
        raise DataEngineError(f"{out} already exists: pass --resume to continue that run, or a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    if note := fewer_demos_than_the_recipe(dataset.root):
        console.print(note, highlight=False, soft_wrap=True)
    device = training_device(config)
    command = lerobot_train_command(config, dataset, out, device)
    precision = config.mixed_precision if device.startswith("cuda") else "no"
    env = dict(os.environ, HF_HUB_OFFLINE="1", ACCELERATE_MIXED_PRECISION=precision)
    if config.frame_cache:
        env[frame_cache.CACHE_ENV] = str(frame_cache.build(dataset.root, workspace.root / "cache" / "frames", console))
    started = time.time()
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        raise DataEngineError(f"lerobot-train failed with exit status {result.returncode} (its log is above)")
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    record = {"config": to_jsonable(config), "dataset": to_jsonable(dataset), "command": command,
              "seconds": time.time() - started, "checkpoint": str(checkpoint)}
    (out / "dataengine_train.json").write_text(json.dumps(record, indent=2))
    workspace.record_policy(config.policy, checkpoint)
    return checkpoint

