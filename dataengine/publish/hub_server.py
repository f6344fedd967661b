"""``dataengine serve``: the local registry behind the read side of the Hugging Face Hub's HTTP API.

Point ``HF_ENDPOINT`` at it and lerobot resolves versions itself, as from the Hub, on machines without the
registry's filesystem and without internet: ``LeRobotDataset(repo_id)`` asks for ``v3.0`` (the newest version),
``LeRobotDataset(repo_id, revision="ds-0003-...")`` for exactly that one. Each version is served as a commit
(id: sha1 of its tag); its tags are ``ds-...`` and the refs of ``refs/`` (``v3.0``); ``main`` is the newest.

Endpoints (those huggingface_hub's ``list_repo_refs``, ``repo_info``, ``list_repo_tree``, ``snapshot_download``
and ``hf_hub_download`` call): ``GET /api/datasets/O/N[/revision/REV]``, ``/refs``, ``/tree/REV[/PATH]``,
``GET|HEAD /datasets/O/N/resolve/REV/PATH``. :class:`HubApiHandler` reads any :class:`RepoStore`, so a test's
stand-in for the Hub extends it with the write endpoints.

A file is returned only while its bytes match the sha256 its manifest lists (hashed on first serve, then cached
per inode, size, mtime and ctime, so serving stays fast): a damaged one gets HTTP 409 ``IntegrityError`` with a
body naming the file and ``dataengine verify``, never its bytes (409, not 500: clients do not retry it).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.listen import listen_errors
from so101_dataengine.base.preflight import repo_id_problem
from so101_dataengine.publish.integrity import file_matches
from so101_dataengine.publish.manifest import CARD, MANIFEST, VersionManifest, sha256_file
from so101_dataengine.publish.registry import LocalRegistry


class RepoStore(Protocol):
    def refs(self, repo_id: str) -> dict[str, dict[str, str]] | None:
        """``{"branches": {name: commit}, "tags": {name: commit}}``; None if there is no such repo."""

    def tree(self, repo_id: str, commit: str) -> dict[str, tuple[str, int]]:
        """``{path: (sha256, size)}`` of one commit."""

    def open_file(self, repo_id: str, commit: str, path: str) -> Path:
        """Where the bytes of ``path`` at ``commit`` are."""


def resolve_revision(store: RepoStore, repo_id: str, revision: str) -> str | None:
    refs = store.refs(repo_id)
    if refs is None:
        return None
    for kind in ("branches", "tags"):
        if revision in refs[kind]:
            return refs[kind][revision]
    commits = set(refs["branches"].values()) | set(refs["tags"].values())
    return revision if revision in commits else None


class RegistryStore:
    """The local registry as commits: one per version."""

    def __init__(self, registry: LocalRegistry):
        self.registry = registry

    @staticmethod
    def commit_of(tag: str) -> str:
        return hashlib.sha1(tag.encode()).hexdigest()

    def refs(self, repo_id: str) -> dict[str, dict[str, str]] | None:
        if repo_id_problem(repo_id):  # ``..`` or any other non-name is no repo, never a path
            return None
        versions = self.registry.versions(repo_id)
        if not versions:
            return None
        tags = {v.tag: self.commit_of(v.tag) for v in versions}
        tags.update({name: self.commit_of(tag) for name, tag in self.registry.refs(repo_id).items()})
        return {"branches": {"main": self.commit_of(versions[-1].tag)}, "tags": tags}

    def _tag(self, repo_id: str, commit: str) -> str:
        return next(v.tag for v in self.registry.versions(repo_id) if self.commit_of(v.tag) == commit)

    def tree(self, repo_id: str, commit: str) -> dict[str, tuple[str, int]]:
        root = self.registry.version_path(repo_id, self._tag(repo_id, commit))
        files = {p: (e["sha256"], e["size"]) for p, e in VersionManifest.read(root).files.items()}
        for extra in (MANIFEST, CARD):
            files[extra] = (sha256_file(root / extra), (root / extra).stat().st_size)
        return files

    def open_file(self, repo_id: str, commit: str, path: str) -> Path:
        return self.registry.version_path(repo_id, self._tag(repo_id, commit)) / path


_API = re.compile(r"^/api/(datasets|models|spaces)/([^/]+/[^/]+)(?:/(revision|refs|tree)(?:/([^/]+)(/.*)?)?)?$")
_RESOLVE = re.compile(r"^/(datasets|spaces)?/?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class HubApiHandler(BaseHTTPRequestHandler):
    store: RepoStore
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # quiet: one line per file would drown the training log
        pass

    # --- helpers -----------------------------------------------------------------------------------------------
    def send_json(self, value, status: int = 200, headers: dict | None = None) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, val in (headers or {}).items():
            self.send_header(key, val)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_code(self, status: int, code: str, message: str) -> None:
        """huggingface_hub maps ``X-Error-Code`` to its exceptions (RepositoryNotFound, RevisionNotFound, ...)."""
        self.send_json({"error": message}, status, {"X-Error-Code": code, "X-Error-Message": message})

    def _commit_or_error(self, repo_id: str, revision: str) -> str | None:
        if self.store.refs(repo_id) is None:
            self.send_error_code(404, "RepoNotFound", f"repository {repo_id} not found")
            return None
        commit = resolve_revision(self.store, repo_id, revision)
        if commit is None:
            self.send_error_code(404, "RevisionNotFound", f"revision {revision} not found in {repo_id}")
        return commit

    # --- read endpoints ----------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        try:
            self._get()
        except DataEngineError as error:  # a damaged manifest in the registry: said to the client, not a traceback
            self.send_error_code(409, "IntegrityError", str(error))

    def _get(self) -> None:
        path = unquote(urlsplit(self.path).path)
        if match := _RESOLVE.match(path):
            return self._resolve(match.group(2), match.group(3), match.group(4))
        match = _API.match(path)
        if not match:
            return self.send_error_code(404, "EntryNotFound", f"no endpoint {path}")
        repo_id, action, revision, rest = match.group(2), match.group(3), match.group(4), match.group(5)
        if action == "refs":
            refs = self.store.refs(repo_id)
            if refs is None:
                return self.send_error_code(404, "RepoNotFound", f"repository {repo_id} not found")
            listing = {kind: [{"name": n, "ref": f"refs/{'heads' if kind == 'branches' else 'tags'}/{n}",
                               "targetCommit": c} for n, c in refs[kind].items()] for kind in ("branches", "tags")}
            return self.send_json({**listing, "converts": []})
        commit = self._commit_or_error(repo_id, revision or "main")
        if commit is None:
            return None
        tree = self.store.tree(repo_id, commit)
        if action == "tree":
            prefix = (rest or "").strip("/")
            files = [{"type": "file", "oid": sha, "size": size, "path": p} for p, (sha, size) in sorted(tree.items())
                     if not prefix or p.startswith(prefix + "/")]
            return self.send_json(files)
        siblings = [{"rfilename": p, "size": size} for p, (_, size) in sorted(tree.items())]
        return self.send_json({"id": repo_id, "sha": commit, "private": False, "siblings": siblings, "tags": [],
                               "lastModified": "1970-01-01T00:00:00.000Z"})

    def _resolve(self, repo_id: str, revision: str, file_path: str) -> None:
        commit = self._commit_or_error(repo_id, revision)
        if commit is None:
            return
        entry = self.store.tree(repo_id, commit).get(file_path)
        if entry is None:
            return self.send_error_code(404, "EntryNotFound", f"{file_path} not found at {revision}")
        sha, size = entry
        local = self.store.open_file(repo_id, commit, file_path)
        problem = file_matches(local, sha)
        if problem is not None:
            return self.send_error_code(409, "IntegrityError", f"{file_path} at {revision} {problem}: the stored "
                                        f"file is damaged and is not served; run 'dataengine verify {repo_id}' on "
                                        "the registry's machine")
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("ETag", f'"{sha}"')
        self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if self.command == "GET":
            with open(local, "rb") as f:
                shutil.copyfileobj(f, self.wfile)


def make_server(store: RepoStore, host: str = "127.0.0.1", port: int = 0,
                handler: type[HubApiHandler] = HubApiHandler) -> ThreadingHTTPServer:
    handler_class = type("BoundHubApiHandler", (handler,), {"store": store})
    return ThreadingHTTPServer((host, port), handler_class)


def bind(store: RepoStore, host: str, port: int) -> ThreadingHTTPServer:
    """:func:`make_server`, with a port out of range, in use or not allowed, or a host that is not this machine's,
    as one error line saying what to pass instead."""
    with listen_errors(host, port):
        return make_server(store, host, port)


def serve_registry(registry: LocalRegistry, host: str, port: int) -> None:
    """Serve ``registry`` until Ctrl-C; a registry that does not exist is refused (a mistyped path would otherwise
    serve an empty Hub, and lerobot would then report every dataset as missing)."""
    if not Path(registry.root).is_dir():
        raise DataEngineError(f"registry {registry.root} does not exist: pass --registry the directory 'dataengine "
                              "publish' writes versions to (or publish a dataset first)")
    server = bind(RegistryStore(registry), host, port)
    print(f"serving {registry.root} as a Hub at http://{host}:{server.server_port}\n"
          f"use it with: HF_ENDPOINT=http://{host}:{server.server_port} (and HF_HUB_OFFLINE unset); Ctrl-C stops")
    server.serve_forever()
