"""Hostile requests and manifests: nothing outside the registry is ever served or read through a name.

``dataengine serve``'s server (the real one, on a free port) gets URL segments that try to climb out (``..`` as an
owner, percent-encoded ``..``, ``..`` in a file path) and a registry whose version manifest was edited to list a
file outside its version (with its true sha256, so only the path check stands in the way). Repo ids on the command
line are names, never paths: ``versions ../x`` is one error line.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import threading
from pathlib import Path

import pytest
from test_hardening_inputs import assert_one_error_line

from so101_dataengine.cli import main
from so101_dataengine.publish.hub_server import RegistryStore, make_server
from so101_dataengine.publish.registry import LocalRegistry

REPO = "local/hardening_serve"
SECRET = b"a file outside the registry that must never be served"


@pytest.fixture(scope="module")
def registry(demo_dataset, tmp_path_factory) -> Path:
    """A real registry with one published version, and a secret file beside it (outside it)."""
    root = tmp_path_factory.mktemp("serve") / "registry"
    assert main(["publish", str(demo_dataset.out), "--repo-id", REPO, "--registry", str(root), "--no-hooks"]) == 0
    (root.parent / "secret.txt").write_bytes(SECRET)
    outside = root.parent / "outside" / "x" / "versions"  # a look-alike repo outside the registry
    shutil.copytree(next((root / REPO / "versions").iterdir()), outside / next((root / REPO / "versions").iterdir()).name)
    return root


def _get(root: Path, paths: list[str]) -> list[tuple[int, bytes]]:
    server = make_server(RegistryStore(LocalRegistry(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answers = []
    try:
        for path in paths:
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
            connection.request("GET", path)  # sent as written: no client-side normalisation of '..'
            response = connection.getresponse()
            answers.append((response.status, response.read()))
            connection.close()
    finally:
        server.shutdown()
        server.server_close()
    return answers


ESCAPES = [
    "/api/datasets/../../refs",
    "/api/datasets/%2e%2e/%2e%2e/refs",
    "/api/datasets/../outside/refs",
    "/api/datasets/..%2Foutside/x/revision/main",
    f"/datasets/{REPO}/resolve/main/../../../secret.txt",
    f"/datasets/{REPO}/resolve/main/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    f"/datasets/{REPO}/resolve/main//etc/passwd",
    "/datasets/../outside/resolve/main/meta/info.json",
]


def test_url_segments_cannot_climb_out_of_the_registry(registry):
    answers = _get(registry, ESCAPES + [f"/api/datasets/{REPO}/refs"])
    for path, (status, body) in zip(ESCAPES, answers):
        assert status == 404 and SECRET not in body and b"root:" not in body, (path, status, body[:200])
    assert answers[-1][0] == 200  # the real repo is served


def test_a_manifest_path_outside_its_version_is_never_served_or_read(registry, tmp_path, capfd):
    copy = tmp_path / "registry"
    shutil.copytree(registry, copy)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (version,) = (copy / REPO / "versions").iterdir()
    manifest_path = version / "meta" / "version.json"
    manifest = json.loads(manifest_path.read_text())
    escape = "../../../../../secret.txt"  # version, versions, NAME, OWNER, registry: then the secret beside it
    assert (version / escape).resolve().read_bytes() == SECRET
    manifest["files"][escape] = {"sha256": hashlib.sha256(SECRET).hexdigest(), "size": len(SECRET)}
    manifest_path.chmod(0o644)
    manifest_path.write_text(json.dumps(manifest))
    ((status, body),) = _get(copy, [f"/datasets/{REPO}/resolve/main/{escape}"])
    assert status in (404, 409) and SECRET not in body
    ((status, body),) = _get(copy, [f"/api/datasets/{REPO}/revision/main"])
    assert status == 409 and b"is damaged" in body and SECRET not in body
    for argv in (["versions", REPO, "--registry", str(copy), "--config", str(tmp_path / "none.toml")],
                 ["verify", REPO, "--registry", str(copy)]):
        assert_one_error_line(argv, capfd, f"file path {escape!r}", [copy])


@pytest.mark.parametrize("argv", [
    ["versions", "../outside"],
    ["verify", "../outside"],
    ["diff", "../outside@ds-0001", "x@1"],
    ["hooks", "run", "--version", "../outside@v3.0"],
])
def test_a_repo_id_on_the_command_line_never_becomes_a_path(registry, tmp_path, capfd, argv):
    config = tmp_path / "dataengine.toml"
    config.write_text("")
    args = argv[:1] + (["--config", str(config)] if argv[0] in ("hooks", "versions") else []) + argv[1:]
    assert_one_error_line(args + ["--registry", str(registry)], capfd, "repo id '..", [registry.parent])
