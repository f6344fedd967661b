"""``dataengine train``: train a policy with lerobot's own training entry point (``lerobot-train``), offline.

What this adds over calling ``lerobot-train`` by hand, each a trap the users fell into:
* the dataset is resolved (a local LeRobot v3 directory or a repo id already in the local cache) and every file
  lerobot reads of it is read first (``check_readable``: a damaged one is one error line naming it, not a traceback
  in lerobot-train); the video backend is chosen so torchcodec without FFmpeg cannot crash it;
* each policy type gets its offline-safe defaults from one table (``POLICY_RECIPES``): ACT's ResNet backbone takes
  ImageNet weights only if torchvision already has them on disk, Diffusion's is trained from scratch (lerobot's
  preset: group norm, which lerobot refuses with pretrained weights) with a crop that fits the dataset's images;
  nothing is downloaded. SmolVLA builds its VLM from ``--policy.vlm_model_name``, which must be a local directory
  (a downloaded SmolVLM, or a tiny random one from ``so101_dataengine.training.tiny_vlm``); Pi0 and Pi0.5 cannot be built without
  hub files (``HUB_ONLY_POLICIES``);
* runs are step-targeted (lerobot-train cycles its dataloader, so ``--steps`` is never cut at an epoch end; a test
  trains past several epochs);
* the run is recorded in the workspace, so ``--policy act`` (or ``diffusion``) later finds the newest checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

from so101_dataengine.base.configs import default_of, to_jsonable
from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_json_object
from so101_dataengine.base.preflight import check_at_least, check_device, check_positive, check_positive_finite
from so101_dataengine.base.workspace import Workspace
from so101_dataengine.demos import DemosConfig
from so101_dataengine.formats.v3_dataset import (
    check_readable,
    is_v3_dataset,
    read_episodes,
    read_info,
    recorded_repo_id,
)
from so101_dataengine.lerobot_compat import frame_cache
from so101_dataengine.lerobot_compat.video import video_backend

MIXED_PRECISION = ("bf16", "fp16", "no")
RESNET18_WEIGHTS = "resnet18-f37072fd.pth"
"""torchvision's file name for ``ResNet18_Weights.IMAGENET1K_V1`` in ``$TORCH_HOME/hub/checkpoints``."""


@dataclass(frozen=True)
class PolicyRecipe:
    """One policy type's defaults for lerobot-train: what ``--steps``, ``--batch-size`` and ``--lr`` mean when not
    given, which lerobot fields the learning rate goes to, and the offline-safe extras (no downloads)."""

    steps: int
    batch_size: int
    learning_rate: float
    lr_fields: tuple[str, ...]
    """The config fields that get ``--lr`` (only fields the type's lerobot config has)."""
    imagenet_backbone: bool | None
    """Use torchvision's ResNet18 ImageNet weights when they are on disk (else ``pretrained_backbone_weights=null``);
    False: always train the backbone from scratch; None: the type has no ResNet backbone (SmolVLA sees through its
    VLM's vision encoder)."""
    crop_fraction: float | None = None
    """``crop_shape`` as a fraction of the dataset's image size (random crop in training, centre crop at inference);
    None: no ``crop_shape`` argument."""
    measured_demos: int | None = None
    """The number of demos the recipe's success was measured on (a note warns below it); None: not measured."""
    local_vlm: bool = False
    """The type builds its VLM from ``--policy.vlm_model_name`` (config, processor, tokenizer), which must then be
    given as a local directory (``vlm_directory``); the images are resized to its vision encoder's input size."""


POLICY_RECIPES: dict[str, PolicyRecipe] = {
    # The GPU recipe that reached >= 80 % (docs/act_recipe.md): on 400 expert demos at 224 px (``dataengine demos``'
    # default), batch 128, constant lr 1e-4 (lerobot's ACT preset) for the transformer and the (from-scratch) ResNet
    # backbone alike, bf16, 8,000 steps (14 min on an H200 with the frame cache): 82.0 % and 80.5 % success over two
    # sets of 200 seeded episodes, chunks of 100 executed whole. The same recipe on 200 demos stayed at 44-66 %: the
    # number of demos, not the steps, was the lever. A cosine decay to 1e-6 was measured worse (52.5 % vs 77.5 %).
    "act": PolicyRecipe(steps=8_000, batch_size=128, learning_rate=1e-4,
                        lr_fields=("optimizer_lr", "optimizer_lr_backbone"), imagenet_backbone=True,
                        measured_demos=default_of(DemosConfig, "n")),
    # lerobot's Diffusion preset: Adam lr 1e-4 with its cosine schedule and 500 warm-up steps (lerobot-train applies
    # the preset), one lr for backbone and U-Net (DiffusionConfig has no optimizer_lr_backbone). The ResNet18 is
    # trained from scratch with group norm (lerobot's default; it refuses group norm with pretrained weights), the
    # random crop of the original Diffusion Policy (~90 % of the image). Diffusion needs more updates than ACT for
    # the same data; 20,000 steps at batch 64 is a starting point, not a measured recipe.
    "diffusion": PolicyRecipe(steps=20_000, batch_size=64, learning_rate=1e-4, lr_fields=("optimizer_lr",),
                              imagenet_backbone=False, crop_fraction=0.9),
    # lerobot's SmolVLA preset: AdamW lr 1e-4, cosine decay after 1,000 warm-up steps; batch 64 and 20,000 steps as
    # lerobot's SmolVLA fine-tuning example. A starting point, not a measured recipe. Its VLM is a local directory.
    "smolvla": PolicyRecipe(steps=20_000, batch_size=64, learning_rate=1e-4, lr_fields=("optimizer_lr",),
                            imagenet_backbone=None, local_vlm=True),
}
SUPPORTED_POLICIES = tuple(POLICY_RECIPES)
"""The policy types ``dataengine train`` trains offline (and ``rollout --policy TYPE`` resolves to the newest)."""
HUB_ONLY_POLICIES = ("pi0", "pi05")
"""lerobot builds these only from files on the hub, even from scratch: their preprocessor loads PaliGemma's
tokenizer by a hard-coded hub name (google/paligemma-3b-pt-224, no config field to point elsewhere). Besides,
lerobot 0.4.4 refuses PyPI's transformers for them (it wants its patched one, with ``models.siglip.check``), and
their smallest configuration (gemma_300m for both the PaliGemma and the action expert, SigLIP So400m fixed) has 1.56
billion parameters (docs/design.md, "SmolVLA offline" and after)."""
VLM_FIELD = "--policy.vlm_model_name="


@dataclass
class TrainConfig:
    """``dataengine train``. ``steps``, ``batch_size`` and ``learning_rate`` left at None are the policy type's
    recipe (``POLICY_RECIPES``; ACT's is the GPU recipe of docs/act_recipe.md that reached >= 80 %)."""

    dataset: str
    policy: str = "act"
    steps: int | None = None
    epochs: float | None = None
    """Passes over the dataset's frames instead of a step count: steps = ceil(epochs x frames / batch size), so a
    retraining on a grown dataset version trains each sample as often as the last one did (at a fixed step count a
    5x larger version gets a fifth of the passes; measured in docs/benchmarks.md, payoff lease 1). With ``steps``
    also given, ``steps`` caps it."""
    batch_size: int | None = None
    learning_rate: float | None = None
    """Given to every lr field of the type (``PolicyRecipe.lr_fields``): ACT's transformer and backbone alike."""
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
    in-memory columns (``so101_dataengine.lerobot_compat.frame_cache``), instead of seeking in the videos and looking up parquet rows for
    every sample (4.9x the samples/s side by side); costs the decoded size on disk under the workspace."""
    resume: bool = False
    extra_args: list[str] = field(default_factory=list)
    """Passed to lerobot-train as they are (e.g. ``--policy.chunk_size=50``)."""


def check_every_frame_decodes(root: Path) -> None:
    """Every video frame of the dataset decodes and each episode has its frames (publish's full decode, without
    its stats: ~0.06 s per 1,000 frames on 2 cores), so a damaged video is one error line now, not lerobot-train
    dying on that episode mid-training."""
    from so101_dataengine.publish.verify import check_videos

    def refuse(path: Path, problem: str, _fix: str) -> None:
        raise DataEngineError(f"cannot train on {path}: {problem}; write or copy the dataset again")

    check_videos(root, read_info(root), read_episodes(root, stats=False), image_stats=False, fail=refuse)


@dataclass(frozen=True)
class ResolvedDataset:
    repo_id: str
    root: Path


def resolve_dataset(spec: str) -> ResolvedDataset:
    """A local dataset directory, or a repo id whose copy is already in lerobot's cache (we never download); either
    way with every file lerobot will read of it readable (one error line naming a damaged one)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not is_v3_dataset(path):
            raise DataEngineError(f"{path} is not a LeRobot v3 dataset (no meta/info.json)")
        check_readable(path)
        return ResolvedDataset(recorded_repo_id(path) or f"local/{path.name}", path.resolve())
    from so101_dataengine.lerobot_compat import HF_LEROBOT_HOME

    cached = HF_LEROBOT_HOME / spec
    if is_v3_dataset(cached):
        check_readable(cached)
        return ResolvedDataset(spec, cached)
    raise DataEngineError(
        f"dataset {spec!r} is neither a local directory nor in the lerobot cache ({HF_LEROBOT_HOME}): "
        "pass the path of a dataset made by 'dataengine demos'"
    )


def recipe_of(policy: str) -> PolicyRecipe:
    """The type's recipe, or one error line: hub-only VLAs say why and where to go instead."""
    if policy in HUB_ONLY_POLICIES:
        raise DataEngineError(
            f"{policy} cannot be trained offline here: lerobot's preprocessor loads PaliGemma's tokenizer from hub "
            "files (google/paligemma-3b-pt-224, hard-coded) even without pretrained weights, and lerobot 0.4.4 "
            "builds it only with its patched transformers (docs/design.md); with both on disk, "
            "train it through a retrain hook (dataengine/hooks/templates)"
        )
    if policy not in POLICY_RECIPES:
        raise DataEngineError(f"unknown policy {policy!r}: use one of {', '.join(SUPPORTED_POLICIES)}")
    return POLICY_RECIPES[policy]


def resolved(config: TrainConfig) -> TrainConfig:
    """The config with the type's recipe filled in where the user gave nothing, and a local VLM directory made
    absolute: the checkpoint records it, and rollouts load the VLM's config and tokenizer from it again."""
    recipe = recipe_of(config.policy)
    extra_args = config.extra_args
    if recipe.local_vlm and not config.resume:
        directory = vlm_directory(extra_args)
        extra_args = [arg for arg in extra_args if not arg.startswith(VLM_FIELD)] + [f"{VLM_FIELD}{directory}"]
    return replace(config, extra_args=extra_args, steps=recipe.steps if config.steps is None else config.steps,
                   batch_size=recipe.batch_size if config.batch_size is None else config.batch_size,
                   learning_rate=recipe.learning_rate if config.learning_rate is None else config.learning_rate)


def _backbone_args(recipe: PolicyRecipe) -> list[str]:
    if recipe.imagenet_backbone is None:
        return []
    import torch

    hub = Path(torch.hub.get_dir()) / "checkpoints"  # where torchvision looks (TORCH_HOME, XDG_CACHE_HOME)
    if recipe.imagenet_backbone and (hub / RESNET18_WEIGHTS).is_file():
        return []  # lerobot's default ImageNet weights, loaded from disk
    return ["--policy.pretrained_backbone_weights=null"]


def dataset_image_size(root: Path) -> int:
    """The (smallest) side of the dataset's camera images, from meta/info.json."""
    features = read_info(root)["features"]
    sides = [min(f["shape"][i] for i, n in enumerate(f["names"]) if n in ("height", "width"))
             for f in features.values() if f.get("dtype") in ("video", "image")]
    if not sides:
        raise DataEngineError(f"{root} has no camera features in meta/info.json")
    return min(sides)


def vlm_directory(extra_args: list[str]) -> Path:
    """The local VLM directory given as ``--policy.vlm_model_name=DIR``; one error line when none is given (the
    default is a hub repo) or it holds no model config."""
    given = [arg.removeprefix(VLM_FIELD) for arg in extra_args if arg.startswith(VLM_FIELD)]
    if not given:
        raise DataEngineError(
            "smolvla builds its VLM from hub files by default (HuggingFaceTB/SmolVLM2-500M-Video-Instruct): pass a "
            f"local one after '--' as {VLM_FIELD}DIR (a downloaded SmolVLM, or 'python -m so101_dataengine.training.tiny_vlm DIR' "
            "for a tiny random one)"
        )
    directory = Path(given[-1]).expanduser()
    if not (directory / "config.json").is_file():
        raise DataEngineError(f"{VLM_FIELD}{given[-1]} is not a local VLM directory (no config.json): smolvla is "
                              "trained offline only from one (a downloaded SmolVLM, or "
                              "'python -m so101_dataengine.training.tiny_vlm DIR')")
    return directory.resolve()


def vlm_image_size(directory: Path) -> int:
    """The input side of the VLM's vision encoder, from its config.json (SmolVLM2: 512, SmolVLA's default)."""
    try:
        return int(json.loads((directory / "config.json").read_text())["vision_config"]["image_size"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataEngineError(
            f"{directory / 'config.json'} is not a VLM config with vision_config.image_size ({e})") from e


def recipe_args(config: TrainConfig, dataset: ResolvedDataset) -> list[str]:
    """The type's lerobot-train options: its lr fields, backbone weights, crop, and VLM (``config`` resolved)."""
    recipe = recipe_of(config.policy)
    args = [f"--policy.{name}={config.learning_rate}" for name in recipe.lr_fields] + _backbone_args(recipe)
    if recipe.crop_fraction is not None:
        side = max(1, int(recipe.crop_fraction * dataset_image_size(dataset.root)))
        args.append(f"--policy.crop_shape=[{side},{side}]")
    if recipe.local_vlm:
        side = vlm_image_size(vlm_directory(config.extra_args))
        args.append(f"--policy.resize_imgs_with_padding=[{side},{side}]")
    return args


def default_loader_workers() -> int:
    """lerobot-train's dataloader workers: all cores but two (the training loop and the pin-memory thread)."""
    return max(0, (os.cpu_count() or 1) - 2)


def training_device(config: TrainConfig) -> str:
    import torch  # imported here: the CLI should start without loading torch

    return config.device or ("cuda" if torch.cuda.is_available() else "cpu")


def lerobot_train_command(config: TrainConfig, dataset: ResolvedDataset, out: Path, device: str) -> list[str]:
    """lerobot-train's command line for ``config`` (the type's recipe filled in where it gives nothing)."""
    config = resolved(config)
    executable = [sys.executable, "-m", "so101_dataengine.lerobot_compat"]  # lerobot-train, with a video-decode fallback
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
        *recipe_args(config, dataset),
        f"--steps={config.steps}",
        f"--batch_size={config.batch_size}",
        f"--num_workers={default_loader_workers() if config.num_workers is None else config.num_workers}",
        f"--save_freq={min(config.save_freq, config.steps)}",
        "--wandb.enable=false",
        f"--output_dir={out}",
        *config.extra_args,
    ]


def fewer_demos_than_the_recipe(root: Path, policy: str = "act") -> str | None:
    """A note when the dataset is smaller than the one the type's default recipe was measured on: the number of
    demos decided ACT's success there (200: at most 66 %, 400: >= 80 %), so the recipe's figure does not carry over.
    None for types without a measured recipe."""
    recipe = recipe_of(policy).measured_demos
    episodes = read_info(root)["total_episodes"]
    if recipe is None or episodes >= recipe:
        return None
    return (f"note: {root} holds {episodes} episodes; the default recipe reached >= 80 % with {recipe} "
            "(docs/act_recipe.md)")


def steps_for_epochs(epochs: float, frames: int, batch_size: int, cap: int | None) -> int:
    """Optimizer steps that show every frame ``epochs`` times at ``batch_size`` (at least one), at most ``cap``."""
    steps = max(1, math.ceil(round(epochs * frames / batch_size, 6)))  # 4.0000001 steps (float noise) is 4
    return steps if cap is None else min(steps, cap)


def with_epochs(config: TrainConfig, root: Path) -> TrainConfig:
    """``config`` with ``--epochs`` turned into steps for the dataset at ``root`` (unchanged without epochs)."""
    if config.epochs is None:
        return config
    batch_size = config.batch_size or recipe_of(config.policy).batch_size
    frames = read_info(root)["total_frames"]
    return replace(config, steps=steps_for_epochs(config.epochs, frames, batch_size, config.steps))


def check_options(config: TrainConfig) -> None:
    """Every number and name the user gave, before the dataset is read or lerobot-train starts: lerobot-train
    refuses them only after loading the dataset and the policy, with a traceback (``--save-freq 0`` even after its
    first training step), and a NaN learning rate would otherwise reach the optimizer."""
    if config.steps is not None:
        check_positive("--steps", config.steps)
    if config.epochs is not None and not (config.epochs > 0 and math.isfinite(config.epochs)):
        raise DataEngineError(f"--epochs must be above 0 and finite, got {config.epochs}")
    if config.batch_size is not None:
        check_positive("--batch-size", config.batch_size)
    if config.learning_rate is not None:
        check_positive_finite("--lr", config.learning_rate)
    if config.num_workers is not None:
        check_at_least("--num-workers", config.num_workers, 0, "0 loads batches in the training process")
    check_positive("--save-freq", config.save_freq)
    check_device("--device", config.device)
    if config.mixed_precision not in MIXED_PRECISION:
        raise DataEngineError(f"unknown mixed precision {config.mixed_precision!r}: use one of {', '.join(MIXED_PRECISION)}")


RESUME_FILES = ("pretrained_model/train_config.json", "pretrained_model/config.json",
                "pretrained_model/model.safetensors", "pretrained_model/policy_preprocessor.json",
                "pretrained_model/policy_postprocessor.json", "training_state/training_step.json",
                "training_state/rng_state.safetensors", "training_state/optimizer_state.safetensors",
                "training_state/optimizer_param_groups.json")
"""What lerobot-train reads of ``checkpoints/last`` to resume a run of a type trained here (each has one optimizer;
a scheduler's state is read only by types with one, so it is not required). A save cut short leaves some out, and lerobot then dies with a traceback long after starting
(a missing ``train_config.json`` even as a Hub repo id that fails validation)."""


def check_resumable(out: Path) -> None:
    """``out`` holds a complete last checkpoint whose training config parses: one error line naming what is
    missing, with the two ways on (an earlier complete checkpoint, or a new run)."""
    last = out / "checkpoints" / "last"
    if not last.exists():
        raise DataEngineError(f"nothing to resume in {out}: no checkpoints/last; drop --resume to start a new run")
    fix = (f"point {last} at an earlier complete checkpoint (ln -sfn STEP {last}), or drop --resume and train "
           "into a new --out")
    missing = [name for name in RESUME_FILES if not (last / name).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataEngineError(f"cannot resume {out}: {last} lacks {', '.join(missing[:3])}{more} (a save cut short?): "
                              f"{fix}")
    for name in ("pretrained_model/train_config.json", "pretrained_model/config.json"):
        read_json_object(last / name, fix)


def train(config: TrainConfig, workspace: Workspace) -> Path:
    """Run lerobot-train; returns the final checkpoint's ``pretrained_model`` directory."""
    check_options(config)
    out = Path(config.out or workspace.new_train_dir(config.policy)).resolve()
    if config.resume:
        check_resumable(out)
    elif out.exists():
        raise DataEngineError(f"{out} already exists: pass --resume to continue that run, or a new --out")
    dataset = resolve_dataset(config.dataset)
    config = resolved(with_epochs(config, dataset.root))
    out.parent.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    if note := fewer_demos_than_the_recipe(dataset.root, config.policy):
        console.print(note, highlight=False, soft_wrap=True)
    if config.epochs is not None:
        console.print(f"{config.epochs:g} epochs of {read_info(dataset.root)['total_frames']} frames at batch "
                      f"{config.batch_size}: {config.steps} steps", highlight=False)
    device = training_device(config)
    command = lerobot_train_command(config, dataset, out, device)
    precision = config.mixed_precision if device.startswith("cuda") else "no"
    env = dict(os.environ, HF_HUB_OFFLINE="1", ACCELERATE_MIXED_PRECISION=precision)
    if config.frame_cache:
        env[frame_cache.CACHE_ENV] = str(frame_cache.build(dataset.root, workspace.root / "cache" / "frames", console))
    else:  # building the cache decodes every frame; without it, the same proof before lerobot-train meets a bad one
        check_every_frame_decodes(dataset.root)
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

