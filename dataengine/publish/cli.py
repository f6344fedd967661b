"""``dataengine publish``, ``versions``, ``diff``, ``verify`` and ``serve``: argument parsing and printing only."""

from __future__ import annotations

import argparse
from pathlib import Path

from so101_dataengine.base.configs import default_of


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from so101_dataengine.publish.version import PublishConfig  # light: no torch, no lerobot at import

    p = sub.add_parser("publish", help="verify a dataset and publish it as a new immutable version")
    p.add_argument("dataset", type=Path, help="LeRobot v3 dataset directory")
    p.add_argument("--repo-id", required=True, help="OWNER/NAME")
    p.add_argument("--to", dest="target", default=default_of(PublishConfig, "target"), choices=["local", "hub"],
                   help="local registry (default) or the Hugging Face Hub")
    p.add_argument("--message", default="", help="why this version exists (goes into the card and the tag)")
    p.add_argument("--registry", type=Path, default=None,
                   help="local registry directory (default $DATAENGINE_REGISTRY or <workspace>/registry)")
    p.add_argument("--private", action="store_true", help="create the Hub repo private")
    p.add_argument("--hooks", type=Path, default=Path("dataengine.toml"),
                   help="project config with the retrain hooks to fire (default ./dataengine.toml, if present)")
    p.add_argument("--no-hooks", action="store_true", help="publish without firing hooks")
    p.set_defaults(run=_run_publish)

    p = sub.add_parser("versions", help="list the published versions of a dataset repo and the policies trained "
                                        "on each (hook runs, evaluated success)")
    p.add_argument("repo_id")
    p.add_argument("--registry", type=Path, default=None)
    p.add_argument("--config", type=Path, default=Path("dataengine.toml"),
                   help="project config naming the hook ledger (default ./dataengine.toml if present, else "
                        "<workspace>/hooks/ledger.jsonl)")
    p.add_argument("--card", metavar="REF", default=None,
                   help="print this version's dataset card (tag, v3.0 or number) with the policies trained on it")
    p.set_defaults(run=_run_versions)

    p = sub.add_parser("diff", help="episodes added and removed between two versions")
    p.add_argument("old", help="OWNER/NAME@TAG (or @v3.0, @3), a bare tag, or a dataset directory")
    p.add_argument("new")
    p.add_argument("--registry", type=Path, default=None)
    p.set_defaults(run=_run_diff)

    p = sub.add_parser("verify", help="re-hash every stored file of a repo's versions against their manifests; "
                                      "lists each damaged object with the versions it affects (exit 2 if any)")
    p.add_argument("repo_id", help="OWNER/NAME")
    p.add_argument("version", nargs="?", default=None, help="one version (tag, v3.0 or number; default: all)")
    p.add_argument("--registry", type=Path, default=None)
    p.set_defaults(run=_run_verify)

    p = sub.add_parser("serve", help="serve the local registry over the Hub's HTTP API (read-only) for lerobot")
    p.add_argument("--registry", type=Path, default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787)
    p.set_defaults(run=_run_serve)


def registry_of(args: argparse.Namespace):
    """The registry of ``--registry``, else of the workspace (``--workspace``, ``$DATAENGINE_REGISTRY``...)."""
    from so101_dataengine.base.errors import DataEngineError
    from so101_dataengine.base.workspace import Workspace
    from so101_dataengine.publish.registry import LocalRegistry

    root = Workspace.from_option(args.workspace).registry(args.registry).resolve()
    if root.exists() and not root.is_dir():  # else a file reads as an empty registry: "no published versions"
        raise DataEngineError(f"registry {root} is not a directory: pass --registry the directory 'dataengine "
                              "publish' writes versions to")
    return LocalRegistry(root)


def _run_publish(args: argparse.Namespace) -> None:
    from so101_dataengine.publish.publish import PublishConfig, publish

    config = PublishConfig(dataset=args.dataset, repo_id=args.repo_id, target=args.target, message=args.message,
                           registry=registry_of(args).root, private=args.private)
    result = publish(config)
    if result.created:
        print(f"published {result.repo_id} {result.tag} ({result.manifest.total_episodes} episodes, "
              f"{result.manifest.total_frames} frames): {result.location}")
    else:
        print(f"unchanged: this content is already published as {result.repo_id} {result.tag}; no new version")
    for note in result.notes:
        print(f"cache: {note}")
    if not args.no_hooks and args.hooks.is_file():
        from so101_dataengine.hooks.fire import fire_and_report

        fire_and_report(args.hooks, result, args.workspace)


def _run_versions(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from so101_dataengine.hooks.config import ledger_path
    from so101_dataengine.hooks.ledger import Ledger

    registry = registry_of(args)
    runs = [r for r in Ledger(ledger_path(args.config, args.workspace)).runs() if r.repo_id == args.repo_id]
    if args.card is not None:
        from so101_dataengine.publish.card import render_card

        version = registry.resolve(args.repo_id, args.card)
        trained = [r for r in runs if r.tag == version.tag]
        print(render_card(registry.version_path(args.repo_id, version.tag), version, registry.root, trained))
        return
    versions = registry.versions(args.repo_id)
    if not versions:
        print(f"no published versions of {args.repo_id} in {registry.root}")
        return
    codebase = registry.refs(args.repo_id)
    table = Table(title=f"{args.repo_id} ({registry.root})")
    for column in ("tag", "created", "episodes", "frames", "parent", "refs", "policies trained (success, 95 % CI)",
                   "message"):
        table.add_column(column, no_wrap=column != "message")
    for v in versions:
        refs = ", ".join(name for name, tag in codebase.items() if tag == v.tag)
        policies = "\n".join(f"{r.hook}: {r.success()}" + ("" if r.evaluation else f" ({r.status})")
                              for r in runs if r.tag == v.tag)
        table.add_row(v.tag, v.created, str(v.total_episodes), str(v.total_frames), v.parent or "-", refs,
                      policies or "-", v.message)
    Console(width=200).print(table)


def _run_diff(args: argparse.Namespace) -> None:
    from so101_dataengine.publish.diff import diff_versions, resolve_spec

    registry = registry_of(args)
    diff = diff_versions(resolve_spec(args.old, registry), resolve_spec(args.new, registry))
    print(f"{diff.old.label} -> {diff.new.label}: +{len(diff.added)} added, -{len(diff.removed)} removed, "
          f"{diff.kept} kept")
    for sign, episodes in (("+", diff.added), ("-", diff.removed)):
        for e in episodes:
            outcome = f", {e['outcome']}" if "outcome" in e else ""
            print(f"{sign} {e['id']}  (episode {e['index']}, {e['length']} frames{outcome})")


def _run_verify(args: argparse.Namespace) -> None:
    from so101_dataengine.base.errors import DataEngineError
    from so101_dataengine.base.preflight import check_repo_id
    from so101_dataengine.publish.integrity import format_report, verify_repo

    check_repo_id(args.repo_id)
    report = verify_repo(registry_of(args), args.repo_id, args.version)
    lines, error = format_report(report)
    for line in lines:
        print(line)
    if error is not None:
        raise DataEngineError(error)
    print(f"ok: {args.repo_id}: {len(report.checked)} version(s), {report.files} files ({report.objects} distinct "
          f"stored objects, {report.bytes / 1e6:.1f} MB) match their manifests")


def _run_serve(args: argparse.Namespace) -> None:
    from so101_dataengine.publish.hub_server import serve_registry

    serve_registry(registry_of(args), args.host, args.port)
