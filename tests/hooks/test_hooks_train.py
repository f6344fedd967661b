"""The real client test: ``dataengine publish`` fires the ACT hook, which runs lerobot's own lerobot-train (CPU, a
few steps) on exactly the published version, fetched by its tag by lerobot's loader from ``dataengine serve``
(the engine's own Hub-API server over the local registry; no test double here)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from so101_dataengine.cli import main
from so101_dataengine.hooks.ledger import Ledger
from so101_dataengine.publish.hub_server import RegistryStore, make_server
from so101_dataengine.publish.registry import LocalRegistry

pytestmark = pytest.mark.slow

REPO = "lab/so101_train_hook"
SMALL_ACT = ["--policy.dim_model=64", "--policy.n_heads=2", "--policy.dim_feedforward=128",
             "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
             "--policy.n_action_steps=5"]


def test_publish_fires_act_hook_that_trains_on_the_exact_version_resolved_by_tag(demo_dataset, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    server = make_server(RegistryStore(LocalRegistry(registry.resolve())))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where resolve_by_tag hooks let lerobot download
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot_home"))
    config = tmp_path / "dataengine.toml"
    config.write_text(f"""
ledger = "{tmp_path}/ledger.jsonl"
[[hooks]]
name = "act"
template = "act"
repo_id = "{REPO}"
resolve_by_tag = true
out_dir = "{tmp_path}/hooks/{{hook}}/{{tag}}"
vars = {{ device = "cpu", steps = "3", batch_size = "2", num_workers = "0" }}
extra_args = {json.dumps(SMALL_ACT)}
env = {{ HF_ENDPOINT = "http://127.0.0.1:{server.server_port}", HF_HUB_OFFLINE = "0", HF_HOME = "{tmp_path}/hf" }}
""")
    try:
        assert main(["publish", str(demo_dataset.out), "--repo-id", REPO, "--registry", str(registry),
                     "--hooks", str(config)]) == 0
    finally:
        server.shutdown()
    (run,) = Ledger(tmp_path / "ledger.jsonl").runs()
    assert (run.status, run.exit_status) == ("succeeded", 0), Path(run.log).read_text()[-3000:]
    (version,) = LocalRegistry(registry).versions(REPO)
    assert run.tag == version.tag
    train_config = json.loads((tmp_path / "hooks" / "act" / version.tag / "train" / "checkpoints" / "last" /
                               "pretrained_model" / "train_config.json").read_text())
    assert (train_config["dataset"]["repo_id"], train_config["dataset"]["revision"]) == (REPO, version.tag)
    assert train_config["steps"] == 3 and train_config["policy"]["type"] == "act"
    # lerobot fetched this very version by its tag (the root started empty): its manifest names it.
    downloaded = Path(train_config["dataset"]["root"])
    assert json.loads((downloaded / "meta" / "version.json").read_text())["tag"] == version.tag
    assert downloaded.is_relative_to(tmp_path / "home")


EVAL_REPO = "lab/so101_evaluated"


def test_hook_with_eval_trains_act_then_evaluates_it_into_ledger_status_versions_and_card(
        demo_dataset, tmp_path, capsys, lerobot_home):
    """``eval = { n = 2 }``: the hook trains a tiny ACT (lerobot-train, CPU), then ``dataengine eval`` really rolls
    it out on 2 held-out scenes; the result reaches the ledger, ``hooks status``, ``versions`` and the card."""
    registry = tmp_path / "registry"
    config = tmp_path / "dataengine.toml"
    config.write_text(f"""
ledger = "{tmp_path}/ledger.jsonl"
[[hooks]]
name = "act"
template = "act"
repo_id = "{EVAL_REPO}"
out_dir = "{tmp_path}/hooks/{{hook}}/{{tag}}"
vars = {{ device = "cpu", steps = "3", batch_size = "2", num_workers = "0" }}
extra_args = {json.dumps(SMALL_ACT)}
eval = {{ n = 2, args = ["--workers", "1", "--device", "cpu"] }}
""")
    assert main(["publish", str(demo_dataset.out), "--repo-id", EVAL_REPO, "--registry", str(registry),
                 "--hooks", str(config)]) == 0
    (run,) = Ledger(tmp_path / "ledger.jsonl").runs()
    log = Path(run.log).read_text()
    assert (run.status, run.exit_status) == ("succeeded", 0), log[-3000:]
    (version,) = LocalRegistry(registry).versions(EVAL_REPO)
    checkpoint = tmp_path / "hooks" / "act" / version.tag / "train" / "checkpoints" / "last" / "pretrained_model"
    assert f"-m so101_dataengine.cli eval --policy {checkpoint} --n 2 --seed 1000000000 --out {run.run_dir}/eval" in log
    result = json.loads((Path(run.run_dir) / "eval" / "eval.json").read_text())
    (policy,) = result["policies"]
    assert result["schema"] == "dataengine.eval/1" and policy["episodes"] == 2 and result["seed"] == 1_000_000_000
    assert policy["policy"]["kind"] != "scripted"  # the checkpoint the hook trained, not a stand-in
    low, high = policy["ci95"]
    assert run.evaluation["success_rate"] == policy["success_rate"] and run.evaluation["ci95"] == [low, high]
    shown = f"{100 * policy['success_rate']:.1f} % [{100 * low:.1f}-{100 * high:.1f}], n=2"
    assert run.success() == shown
    out = capsys.readouterr().out
    assert f"hook act {version.tag}: succeeded, evaluated {shown}" in out

    assert main(["hooks", "--config", str(config), "status"]) == 0
    assert shown in capsys.readouterr().out
    assert main(["versions", EVAL_REPO, "--registry", str(registry), "--config", str(config)]) == 0
    assert f"act: {shown}" in capsys.readouterr().out
    assert main(["versions", EVAL_REPO, "--registry", str(registry), "--config", str(config),
                 "--card", version.tag]) == 0
    card = capsys.readouterr().out
    section = card[card.index("## Policies trained on this version"):card.index("## Provenance")]
    assert f"| act | 1 | succeeded | {shown} | `{run.run_dir}/eval/eval.json` |" in section
    assert "held-out scenes from seed 1000000000" in section
    # the stored card is the version's, unchanged since publishing: it points at the shown one
    stored = (registry / EVAL_REPO / "versions" / version.tag / "README.md").read_text()
    assert f"`dataengine versions {EVAL_REPO} --card {version.tag}`" in stored and shown not in stored
    assert card.removesuffix("\n").replace(section, "") == stored.replace(
        stored[stored.index("## Policies trained on this version"):stored.index("## Provenance")], "")
