"""``dataengine``: one subcommand per verb. Parse, build the config, run; user errors print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering: Mesa on CPU machines, the driver on NVIDIA ones

from so101_dataengine.base.configs import default_of  # noqa: E402
from so101_dataengine.base.errors import DataEngineError  # noqa: E402
from so101_dataengine.base.workspace import Workspace  # noqa: E402
from so101_dataengine.classifier import cli as classifier_cli  # noqa: E402
from so101_dataengine.curation import cli as curation_cli  # noqa: E402
from so101_dataengine.demos import DemosConfig  # noqa: E402
from so101_dataengine.evaluation import cli as eval_cli  # noqa: E402
from so101_dataengine.hooks import cli as hooks_cli  # noqa: E402
from so101_dataengine.publish import cli as publish_cli  # noqa: E402
from so101_dataengine.review import cli as review_cli  # noqa: E402
from so101_dataengine.rollouts.config import RolloutConfig  # noqa: E402
from so101_dataengine.training.train import POLICY_RECIPES, TrainConfig  # noqa: E402

INTERRUPTED = {
    "demos": "nothing was written at --out",
    "rollout": "finished episodes are kept; run the same command with --resume --out RUN to finish",
    "train": "checkpoints saved so far are kept; continue with --resume --out RUN",
    "curate": "nothing was written at --out",
    "cycle": "run the same command again to finish the round (each stage resumes or is skipped when done)",
}


def _add_demos(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demos", help="record scripted-expert demonstrations as a LeRobot v3 dataset")
    p.add_argument("--n", type=int, default=default_of(DemosConfig, "n"), help="episodes to record (%(default)s)")
    p.add_argument("--out", type=Path, required=True, help="new dataset directory (must not exist)")
    p.add_argument("--repo-id", default=default_of(DemosConfig, "repo_id"), help="dataset repo id OWNER/NAME")
    p.add_argument("--seed", type=int, default=default_of(DemosConfig, "seed"), help="first scene seed (%(default)s)")
    p.add_argument("--include-failures", action="store_true", help="also keep episodes the expert failed")
    p.add_argument("--image-size", type=int, default=224, help="square camera images in pixels (default 224)")
    p.add_argument("--render-preset", default="fast", help="fast (no shadows, default) or pretty")
    p.add_argument("--visual-randomization", action="store_true", help="randomise lights, colours, camera poses")
    p.add_argument("--vcodec", default=default_of(DemosConfig, "vcodec"), help="video codec (%(default)s)")
    p.add_argument("--workers", type=int, default=1, help="record shards in parallel on dask workers, then merge")
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler (with --workers)")
    p.set_defaults(run=_run_demos)


def _run_demos(args: argparse.Namespace) -> None:
    from so101_dataengine.base.preflight import check_seed
    from so101_dataengine.demos import record_demos

    check_seed("--seed", args.seed)
    from so101_dataengine.scenes.pick_place import PickPlaceConfig
    from so101_dataengine.scenes.randomization import SceneRandomization

    scene = PickPlaceConfig(image_size=args.image_size, render_preset=args.render_preset,
                            randomization=SceneRandomization(visual=args.visual_randomization))
    config = DemosConfig(out=args.out, n=args.n, repo_id=args.repo_id, seed=args.seed,
                         include_failures=args.include_failures, vcodec=args.vcodec, workers=args.workers,
                         scheduler=args.scheduler, scene=scene)
    record_demos(config)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a policy (ACT, Diffusion, SmolVLA) with lerobot-train, offline",
                       description="Extra lerobot-train options go after '--', e.g. -- --policy.chunk_size=50")
    p.add_argument("--policy", default="act",
                   help="policy type: act, diffusion or smolvla (offline defaults per type; smolvla needs "
                        "-- --policy.vlm_model_name=DIR, a local VLM; pi0/pi05 need hub files: use a retrain hook)")
    p.add_argument("--dataset", required=True, help="LeRobot v3 dataset directory (or a cached repo id)")
    recipes = "; ".join(f"{name}: {r.steps} steps, batch {r.batch_size}, lr {r.learning_rate:g}"
                        for name, r in POLICY_RECIPES.items())
    p.add_argument("--steps", type=int, default=None, help=f"optimizer steps (default: the policy's recipe: {recipes}); with --epochs, "
                        "the most steps")
    p.add_argument("--epochs", type=float, default=None,
                   help="passes over the dataset's frames (steps = epochs x frames / batch size, at most --steps): "
                        "a grown dataset is trained as thoroughly as a small one")
    p.add_argument("--batch-size", type=int, default=None, help="(default: the policy's recipe)")
    p.add_argument("--lr", type=float, default=None, help="learning rate, backbone included (default: the policy's recipe)")
    p.add_argument("--mixed-precision", default=default_of(TrainConfig, "mixed_precision"),
                   help="bf16, fp16 or no, on CUDA (%(default)s)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default <workspace>/train/...)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--num-workers", type=int, default=default_of(TrainConfig, "num_workers"),
                   help="dataloader workers (default: all cores but two)")
    p.add_argument("--save-freq", type=int, default=default_of(TrainConfig, "save_freq"), help="(%(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-frame-cache", dest="frame_cache", action="store_false",
                   help="decode video frames per sample instead of once into <workspace>/cache/frames")
    p.add_argument("extra", nargs="*", help="passed to lerobot-train after '--'")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    from so101_dataengine.training.train import train

    config = TrainConfig(dataset=args.dataset, policy=args.policy, steps=args.steps, epochs=args.epochs,
                         batch_size=args.batch_size,
                         learning_rate=args.lr, mixed_precision=args.mixed_precision, out=args.out,
                         device=args.device, num_workers=args.num_workers, save_freq=args.save_freq,
                         resume=args.resume, frame_cache=args.frame_cache, extra_args=list(args.extra))
    checkpoint = train(config, Workspace.from_option(args.workspace))
    print(f"checkpoint: {checkpoint}")


def _add_rollout(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="run a policy over many seeded episodes into an episode store (dask)")
    p.add_argument("--policy", required=True,
                   help="act or diffusion (the newest trained), scripted, "
                        "scripted-faulty[:none=2,miss_grasp=1,drop=1,miss_goal=1,hold=1] (the expert failing on "
                        "purpose, for the classifier), or a LeRobot pretrained_model path (act, diffusion, smolvla, "
                        "pi0, pi05)")
    p.add_argument("--n", type=int, default=default_of(RolloutConfig, "n"), help="episodes (%(default)s)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default <workspace>/rollouts/...)")
    p.add_argument("--seed", type=int, default=default_of(RolloutConfig, "seed"),
                   help="episode k uses scene seed SEED+k")
    p.add_argument("--num-envs", type=int, default=default_of(RolloutConfig, "num_envs"),
                   help="environments per worker, stepped together (default: the largest that fits, see capacity:)")
    p.add_argument("--lanes", type=int, default=default_of(RolloutConfig, "lanes"),
                   help="threads per worker for physics and encoding (default: its share of the cores - 1)")
    p.add_argument("--chunk-size", type=int, default=default_of(RolloutConfig, "chunk_size"),
                   help="episodes per dask task (default: --num-envs)")
    p.add_argument("--workers", type=int, default=None,
                   help="embedded cluster workers (default: one per core)")
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run in --out")
    p.add_argument("--device", default=None, help="policy device (default: cuda when available)")
    p.add_argument("--temporal-ensemble", type=float, default=None, metavar="COEFF",
                   help="ACT temporal ensembling with this coefficient (e.g. 0.01) instead of chunk execution")
    p.add_argument("--n-action-steps", type=int, default=None, help="actions executed per predicted chunk")
    p.add_argument("--image-size", type=int, default=None,
                   help="camera size (default: the policy's input size; 224 for the scripted policy)")
    p.add_argument("--classifier", type=Path, default=None,
                   help="success classifier artifact: score episodes as they are stored (classifier.json)")
    p.add_argument("--render-preset", default="fast")
    p.add_argument("--visual-randomization", action="store_true")
    p.set_defaults(run=_run_rollout)


def _run_rollout(args: argparse.Namespace) -> None:
    from so101_dataengine.base.executors import ExecutorConfig
    from so101_dataengine.rollouts.run import rollout
    from so101_dataengine.scenes.pick_place import PickPlaceConfig
    from so101_dataengine.scenes.randomization import SceneRandomization

    scene = PickPlaceConfig(image_size=args.image_size, render_preset=args.render_preset,
                            randomization=SceneRandomization(visual=args.visual_randomization))
    config = RolloutConfig(policy=args.policy, n=args.n, out=args.out, seed=args.seed, num_envs=args.num_envs,
                           lanes=args.lanes, chunk_size=args.chunk_size, resume=args.resume, device=args.device,
                           temporal_ensemble_coeff=args.temporal_ensemble, n_action_steps=args.n_action_steps,
                           classifier=args.classifier,
                           executor=ExecutorConfig(scheduler=args.scheduler, workers=args.workers), scene=scene)
    rollout(config, Workspace.from_option(args.workspace))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dataengine", description="SO-101 policy-distillation data engine")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="where runs and the policy index live (default ./outputs or $DATAENGINE_WORKSPACE)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demos(sub)
    _add_train(sub)
    _add_rollout(sub)
    eval_cli.add_parser(sub)
    classifier_cli.add_parser(sub)
    curation_cli.add_parser(sub)
    publish_cli.add_parsers(sub)
    hooks_cli.add_parser(sub)
    review_cli.add_parsers(sub)
    _add_cycle(sub)
    return parser


def _add_cycle(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cycle", help="one round of rollout -> curate -> publish -> hooks from dataengine.toml; "
                                     "run it again to finish an interrupted round")
    p.add_argument("name", help="the round's name: its files go to <workspace>/cycles/NAME")
    p.add_argument("--config", type=Path, default=Path("dataengine.toml"),
                   help="[cycle], [curate], [[hooks]] (%(default)s)")
    p.add_argument("--workers", type=int, default=None, help="embedded dask workers (default: one per core)")
    p.set_defaults(run=_cycle)


def _cycle(args: argparse.Namespace) -> None:
    from so101_dataengine.cycle import run_cycle

    run_cycle(args.config, args.name, Workspace.from_option(args.workspace), args.workers)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except DataEngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {INTERRUPTED.get(args.command, 'stopped')}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
