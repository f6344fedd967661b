"""``dataengine``: one subcommand per verb. Parse, build the config, run; user errors print one line and exit 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering: Mesa on CPU machines, the driver on NVIDIA ones

from dataengine.errors import DataEngineError  # noqa: E402

PLANNED = {
    "train": "train a policy (ACT) with lerobot-train",
    "rollout": "batched policy rollouts into an episode store",
    "classifier": "train / evaluate / label the visual success classifier",
    "curate": "filter rollouts into a curated LeRobot v3 dataset",
    "stats": "recompute the stats of a LeRobot v3 dataset",
    "publish": "publish an immutable dataset version",
    "versions": "list the published versions of a dataset",
    "hooks": "retrain hooks fired per dataset version",
    "cycle": "rollout -> curate -> publish -> hooks in one go",
}


def _add_demos(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demos", help="record scripted-expert demonstrations as a LeRobot v3 dataset")
    p.add_argument("--n", type=int, default=50, help="episodes to record (default 50)")
    p.add_argument("--out", type=Path, required=True, help="new dataset directory (must not exist)")
    p.add_argument("--repo-id", default="local/so101_pick_place_demos", help="dataset repo id OWNER/NAME")
    p.add_argument("--seed", type=int, default=0, help="first scene seed (default 0)")
    p.add_argument("--include-failures", action="store_true", help="also keep episodes the expert failed")
    p.add_argument("--image-size", type=int, default=224, help="square camera images in pixels (default 224)")
    p.add_argument("--render-preset", default="fast", help="fast (no shadows, default) or pretty")
    p.add_argument("--visual-randomization", action="store_true", help="randomise lights, colours, camera poses")
    p.add_argument("--vcodec", default="libsvtav1", help="video codec (default libsvtav1, lerobot's default)")
    p.set_defaults(run=_run_demos)


def _run_demos(args: argparse.Namespace) -> None:
    from dataengine.config import DemosConfig
    from dataengine.demos import record_demos
    from scenes.pick_place import PickPlaceConfig
    from scenes.randomization import SceneRandomization

    scene = PickPlaceConfig(image_size=args.image_size, render_preset=args.render_preset,
                            randomization=SceneRandomization(visual=args.visual_randomization))
    config = DemosConfig(out=args.out, n=args.n, repo_id=args.repo_id, seed=args.seed,
                         include_failures=args.include_failures, vcodec=args.vcodec, scene=scene)
    record_demos(config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dataengine", description="SO-101 policy-distillation data engine")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demos(sub)
    for name, help_text in PLANNED.items():
        p = sub.add_parser(name, help=f"{help_text} (not implemented yet)")
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(run=_not_implemented)
    return parser


def _not_implemented(args: argparse.Namespace) -> None:
    raise DataEngineError(f"'dataengine {args.command}' is not implemented yet: see the open issues")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except DataEngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written at the output", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
