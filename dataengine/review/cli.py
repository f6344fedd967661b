"""``dataengine review`` and ``dataengine whiskers``: argument parsing; the work is in ``server`` and ``whiskers``."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

DEFAULT_PORT = 8765


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_review(sub)
    _add_whiskers(sub)


def _add_review(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("review", help="a local web page to look through runs and label episodes by keyboard",
                       description="Serves a page over the episodes of the runs: clips, classifier score and "
                                   "verdict, curation, the simulator's outcome (hideable); right arrow accepts, left "
                                   "rejects, space skips, z undoes. Labels go to --labels at once.")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="rollout run directories")
    p.add_argument("--labels", type=Path, default=None,
                   help="labels file the classifier trains from (default <workspace>/labels.jsonl; created if missing)")
    p.add_argument("--classifier", type=Path, default=None,
                   help="score the episodes with this classifier artifact (in the background; recorded scores of "
                        "the same classifier are reused)")
    p.add_argument("--curated", type=Path, action="append", default=[], metavar="DATASET",
                   help="a dataset curated from these runs: show each episode's decision (accepted, or the "
                        "rejection code and detail); repeatable. Curated datasets beside a run whose decisions "
                        "name it are found without it")
    p.add_argument("--by", default=None, help="who labels (default: your user name; the page can change it)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="(%(default)s; 0: any free port)")
    p.add_argument("--whiskers-every", type=int, default=5, help="steps between predictions on the page's whiskers")
    p.set_defaults(run=_run_review)


def _run_review(args: argparse.Namespace) -> None:
    from so101_dataengine.base.errors import DataEngineError
    from so101_dataengine.base.workspace import Workspace
    from so101_dataengine.review.catalog import Catalog
    from so101_dataengine.review.labelbook import LabelBook
    from so101_dataengine.review.server import create_app, serve

    if args.whiskers_every < 1:
        raise DataEngineError(f"--whiskers-every {args.whiskers_every}: predict every step (1) or less often (5, 10 ...)")
    catalog = Catalog.load(args.runs, args.curated)
    labels = args.labels or Workspace.from_option(args.workspace).root / "labels.jsonl"
    book = LabelBook(labels)
    book.check_writable()
    if args.classifier is not None:
        catalog.score_with(args.classifier)
    app = create_app(catalog, book, args.by, args.classifier, args.whiskers_every)
    curated = f"; curation decisions of {', '.join(catalog.curated)}" if catalog.curated else ""
    print(f"{len(catalog.rows)} episodes of {len(catalog.runs)} runs{curated}; labels -> {labels}")
    serve(app, args.host, args.port, on_ready=lambda url: print(f"review page: {url}  (Ctrl-C to stop)", flush=True))


def _add_whiskers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("whiskers", help="draw what a policy intends: its predicted end-effector paths over an episode",
                       description="Runs one episode; every K steps the policy's predicted action chunk is executed in "
                                   "a copy of the simulation and its end-effector path drawn on the overhead view "
                                   "(newest bright, older fading; the path actually taken in cyan).")
    p.add_argument("--policy", required=True,
                   help="act or diffusion (the newest trained), scripted, scripted-faulty[:MIX], or a LeRobot "
                        "pretrained_model path")
    p.add_argument("--seed", type=int, required=True, help="scene seed of the episode")
    p.add_argument("--out", type=Path, default=None,
                   help="FILE.png (the episode's end, every whisker) or FILE.mp4 (every step) "
                        "(default <workspace>/whiskers/seed<SEED>.png, or seed<SEED>-2.png... when that exists)")
    p.add_argument("--every", type=int, default=5, help="steps between predictions (%(default)s)")
    p.add_argument("--horizon", type=int, default=None,
                   help="steps of each prediction drawn (default: the whole chunk; the scripted expert: 30)")
    p.add_argument("--max-steps", type=int, default=None, help="end the episode after this many steps")
    p.add_argument("--size", type=int, default=448, help="pixels of the drawn view (%(default)s)")
    p.add_argument("--image-size", type=int, default=None,
                   help="camera size the policy sees (default: the policy's input size; 224 for the scripted policy)")
    p.add_argument("--temporal-ensemble", type=float, default=None, metavar="COEFF",
                   help="ACT temporal ensembling (one action at a time) instead of chunk execution")
    p.add_argument("--n-action-steps", type=int, default=None, help="actions executed per predicted chunk")
    p.add_argument("--device", default=None, help="policy device (default: cuda when available)")
    p.set_defaults(run=_run_whiskers)


def _next_free(directory: Path, stem: str) -> Path:
    """The default picture of a seed: ``STEM.png``, or ``STEM-2.png``, ``STEM-3.png``... when earlier runs made
    those (an existing file is never replaced; a name the user gives with --out must be new)."""
    directory.mkdir(parents=True, exist_ok=True)
    candidates = (directory / (f"{stem}.png" if k == 1 else f"{stem}-{k}.png") for k in itertools.count(1))
    return next(path for path in candidates if not (path.exists() or path.is_symlink()))


def _run_whiskers(args: argparse.Namespace) -> None:
    from so101_dataengine.base.errors import DataEngineError
    from so101_dataengine.base.preflight import check_seed
    from so101_dataengine.base.workspace import Workspace
    from so101_dataengine.review.whiskers import WhiskersRequest, check_options, make_whiskers
    from so101_dataengine.rollouts.config import RolloutConfig
    from so101_dataengine.rollouts.run import _image_size, resolve_policy
    from so101_dataengine.scenes.pick_place import PickPlaceConfig

    check_seed("--seed", args.seed)
    workspace = Workspace.from_option(args.workspace)
    out = args.out or _next_free(workspace.root / "whiskers", f"seed{args.seed}")
    check_options(args.every, args.horizon, args.size, out)
    if args.max_steps is not None and args.max_steps < 1:
        raise DataEngineError(f"--max-steps {args.max_steps}: run at least one step")
    config = RolloutConfig(policy=args.policy, device=args.device, temporal_ensemble_coeff=args.temporal_ensemble,
                           n_action_steps=args.n_action_steps)
    spec, _, policy_size = resolve_policy(config, workspace)
    scene = PickPlaceConfig(image_size=_image_size(args.image_size, policy_size))
    if args.max_steps is not None:
        scene = dataclasses.replace(scene, max_episode_steps=args.max_steps)
    trace = make_whiskers(WhiskersRequest(spec, args.seed, scene, args.every, args.horizon, args.size), out)
    print(f"{out}: {len(trace.whiskers)} predictions over {len(trace.path) - 1} steps ({trace.outcome})")
