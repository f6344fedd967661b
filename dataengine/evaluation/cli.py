"""``dataengine eval``: parse the flags into an ``EvalConfig`` and run it."""

from __future__ import annotations

import argparse
from pathlib import Path

from so101_dataengine.base.configs import default_of
from so101_dataengine.evaluation.evaluate import EvalConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate policies on the same held-out scenes: success with 95 %% intervals, "
                                    "failure taxonomy, paired McNemar test, checkpoint sweeps, an HTML report")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--policy", action="append", default=[],
                       help="a pretrained_model path, act / diffusion (newest trained) or scripted; repeat to compare "
                            "(the first is the baseline)")
    which.add_argument("--run", dest="train_run", type=Path, default=None,
                       help="a lerobot-train output directory: evaluate every checkpoint it saved")
    p.add_argument("--n", type=int, default=default_of(EvalConfig, "n"), help="episodes per policy (%(default)s)")
    p.add_argument("--seed", type=int, default=default_of(EvalConfig, "seed"),
                   help="first scene seed; held out from demos (0..) and rollouts (1,000,000..) by default (%(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="a new or empty evaluation directory (default <workspace>/evals/...), or an earlier "
                        "eval's to resume it")
    p.add_argument("--device", default=None, help="policy device (default: cuda when available)")
    p.add_argument("--num-envs", type=int, default=None, help="environments per worker (default: the largest that fits)")
    p.add_argument("--workers", type=int, default=None, help="embedded cluster workers (default: one per core)")
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    p.add_argument("--image-size", type=int, default=None,
                   help="camera size for policies without one of their own (scripted); a checkpoint renders at its own size")
    p.add_argument("--gallery", type=int, default=default_of(EvalConfig, "gallery"),
                   help="frame strips per failure type in the report (%(default)s)")
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> None:
    from so101_dataengine.base.executors import ExecutorConfig
    from so101_dataengine.base.workspace import Workspace
    from so101_dataengine.evaluation.evaluate import evaluate
    from so101_dataengine.scenes.pick_place import PickPlaceConfig

    config = EvalConfig(policies=args.policy, run=args.train_run, n=args.n, seed=args.seed, out=args.out,
                        device=args.device, num_envs=args.num_envs, gallery=args.gallery,
                        executor=ExecutorConfig(scheduler=args.scheduler, workers=args.workers),
                        scene=PickPlaceConfig(image_size=args.image_size))
    evaluate(config, Workspace(args.workspace) if args.workspace else Workspace.default())
