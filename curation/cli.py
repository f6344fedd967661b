"""Command-line setup of ``dataengine curate`` and ``dataengine stats fix`` (imports stay light until run)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from so101_dataengine.base.configs import default_of
    from so101_dataengine.curation.config import CurateConfig

    p = sub.add_parser("curate", help="filter rollouts into a curated LeRobot v3 dataset (+ an optional base)")
    p.add_argument("--runs", type=Path, nargs="+", default=None, help="finished rollout run directories")
    p.add_argument("--out", type=Path, default=None, help="new dataset directory (must not exist)")
    p.add_argument("--base", type=Path, default=None, help="LeRobot v3 dataset whose episodes come first (e.g. demos)")
    p.add_argument("--classifier", type=Path, default=None, help="success classifier artifact (the verdict)")
    p.add_argument("--use-sim-outcome", action="store_true",
                   help="simulation-only: judge success by the simulator's outcome instead of a classifier")
    p.add_argument("--config", type=Path, default=None, help="TOML file with a [curate] section")
    p.add_argument("--repo-id", default=None, help=f"dataset repo id ({default_of(CurateConfig, 'repo_id')})")
    p.add_argument("--vcodec", default=None, help=f"libsvtav1 or h264 ({default_of(CurateConfig, 'vcodec')})")
    p.add_argument("--image-size", type=int, default=None, help="resize frames once at write time (default: as stored)")
    p.add_argument("--balance", action="store_true", help="switch on scene-coverage balancing")
    p.add_argument("--no-filter", action="append", default=[], metavar="STEP",
                   help="switch a filter step off (motion, grip, verdict, length, duplicates, balance); repeatable")
    p.add_argument("--workers", type=int, default=None, help="embedded dask workers (default: one per core)")
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    p.set_defaults(run=_run_curate)

    s = sub.add_parser("stats", help="recompute the stats of a LeRobot v3 dataset")
    actions = s.add_subparsers(dest="stats_command", required=True)
    fix = actions.add_parser("fix", help="recompute exact stats (images included) and rewrite them atomically")
    fix.add_argument("path", type=Path, help="LeRobot v3 dataset directory")
    fix.add_argument("--dry-run", action="store_true", help="only report what would change")
    fix.set_defaults(run=_run_stats_fix)


def _run_curate(args: argparse.Namespace) -> None:
    from so101_dataengine.base.errors import DataEngineError
    from so101_dataengine.curation.config import FILTER_SECTIONS, load_curate_config
    from so101_dataengine.curation.curate import curate

    config = load_curate_config(args.config)
    for name, value in (("runs", args.runs), ("out", args.out), ("base", args.base), ("classifier", args.classifier),
                        ("repo_id", args.repo_id), ("vcodec", args.vcodec), ("image_size", args.image_size),
                        ("workers", args.workers), ("scheduler", args.scheduler)):
        if value is not None:
            setattr(config, name, value)
    if args.use_sim_outcome:
        config.verdict.use_sim_outcome = True
    if args.balance:
        config.balance.enabled = True
    for step in args.no_filter:
        if step not in FILTER_SECTIONS:
            raise DataEngineError(f"unknown filter step {step!r} for --no-filter: use one of {', '.join(FILTER_SECTIONS)}")
        getattr(config, step).enabled = False
    curate(config)


def _run_stats_fix(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from so101_dataengine.formats.stats_fix import fix_stats

    changes = fix_stats(args.path, dry_run=args.dry_run)
    table = Table(title=f"stats {'that would change' if args.dry_run else 'rewritten'}: {args.path}")
    for column in ("feature", "stat", "largest change", "new (first values)"):
        table.add_column(column)
    for c in changes:
        if c.max_abs_change is None or c.max_abs_change > 1e-9:
            change = "added" if c.max_abs_change is None else f"{c.max_abs_change:.3g}"
            table.add_row(c.feature, c.stat, change, ", ".join(f"{v:.4g}" for v in c.new[:3]))
    console = Console()
    console.print(table)
    unchanged = sum(1 for c in changes if c.max_abs_change is not None and c.max_abs_change <= 1e-9)
    console.print(f"{len(changes) - unchanged} stats changed, {unchanged} unchanged"
                  + ("" if args.dry_run else "; data and videos untouched"))
