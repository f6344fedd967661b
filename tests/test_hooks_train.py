"""The real client test: ``dataengine publish`` fires the ACT hook, which runs lerobot's own lerobot-train (CPU, a
few steps) on exactly the published version, fetched by its tag by lerobot's loader from ``dataengine serve``
(the engine's own Hub-API server over the local registry; no test double here)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from dataengine.cli import main
from dataengine.hooks.ledger import Ledger
from dataengine.publish.hub_server import RegistryStore, make_server
from dataengine.publish.registry import LocalRegistry

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
