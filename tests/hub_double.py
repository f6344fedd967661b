"""TEST DOUBLE of the Hugging Face Hub's HTTP API (the real Hub is unreachable from CI).

It implements only the endpoints huggingface_hub 0.35's ``create_repo``, ``upload_folder`` / ``create_commit``
(regular, non-LFS uploads), ``create_tag``, ``delete_tag``, ``list_repo_refs``, ``list_repo_tree``, ``repo_info``,
``hf_hub_download`` and ``snapshot_download`` call, with git-like semantics: commits are immutable trees, branches
move, tags are created and deleted (409 on an existing tag), a commit naming a stale ``parentCommit`` is refused.
The read side is the engine's own ``so101_dataengine.publish.hub_server.HubApiHandler``; this file adds the writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from so101_dataengine.publish.hub_server import HubApiHandler, make_server, resolve_revision


class InMemoryHub:
    def __init__(self, blob_dir: Path):
        self.blob_dir = Path(blob_dir)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, dict] = {}  # repo -> {"commits": {id: tree}, "branches": {}, "tags": {}}
        self.lock = threading.Lock()
        self.calls: list[str] = []

    def put_blob(self, data: bytes) -> tuple[str, int]:
        sha = hashlib.sha256(data).hexdigest()
        (self.blob_dir / sha).write_bytes(data)
        return sha, len(data)

    def refs(self, repo_id):
        repo = self.repos.get(repo_id)
        return None if repo is None else {"branches": dict(repo["branches"]), "tags": dict(repo["tags"])}

    def tree(self, repo_id, commit):
        return self.repos[repo_id]["commits"][commit]

    def open_file(self, repo_id, commit, path):
        return self.blob_dir / self.tree(repo_id, commit)[path][0]

    def create(self, repo_id):
        commit = uuid.uuid4().hex + "00000000"
        self.repos[repo_id] = {"commits": {commit: {".gitattributes": self.put_blob(b"*.mp4 filter=lfs\n")}},
                               "branches": {"main": commit}, "tags": {}}


class HubDoubleHandler(HubApiHandler):
    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_POST(self) -> None:
        path = unquote(urlsplit(self.path).path)
        body = self._body()
        hub: InMemoryHub = self.store
        hub.calls.append(f"POST {path}")
        with hub.lock:
            if path == "/api/validate-yaml":  # the card's YAML header: accepted as the Hub would for ours
                return self.send_json({"errors": [], "warnings": []})
            if path == "/api/repos/create":
                request = json.loads(body)
                organization = request.get("organization")
                repo_id = f"{organization}/{request['name']}" if organization else request["name"]
                url = f"http://{self.headers['Host']}/datasets/{repo_id}"
                if repo_id in hub.repos:  # like the Hub: 409, with the repo's url (create_repo(exist_ok=True) reads it)
                    return self.send_json({"error": "You already created this dataset repo", "url": url}, 409)
                hub.create(repo_id)
                return self.send_json({"url": url})
            parts = path.split("/")  # /api/datasets/O/N/<action>/<rev>
            repo_id, action, revision = f"{parts[3]}/{parts[4]}", parts[5], "/".join(parts[6:])
            if hub.refs(repo_id) is None:
                return self.send_error_code(404, "RepoNotFound", f"{repo_id} not found")
            repo = hub.repos[repo_id]
            if action == "preupload":
                files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                         for f in json.loads(body)["files"]]
                return self.send_json({"files": files, "commitOid": repo["branches"].get(revision)})
            if action == "commit":
                return self._commit(repo, repo_id, revision, body)
            if action == "tag":
                request = json.loads(body)
                commit = resolve_revision(hub, repo_id, revision)
                if request["tag"] in repo["tags"]:
                    return self.send_error_code(409, "TagExists", f"tag {request['tag']} already exists")
                repo["tags"][request["tag"]] = commit
                return self.send_json({})
        self.send_error_code(404, "EntryNotFound", f"no endpoint POST {path}")

    def _commit(self, repo, repo_id, branch, body) -> None:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        head = repo["branches"][branch]
        if header.get("parentCommit") and header["parentCommit"] != head:
            return self.send_error_code(412, "PreconditionFailed", "A commit has happened since the parent commit")
        tree = dict(repo["commits"][head])
        for line in lines:
            if line["key"] == "file":
                tree[line["value"]["path"]] = self.store.put_blob(base64.b64decode(line["value"]["content"]))
            elif line["key"] == "deletedFile":
                tree.pop(line["value"]["path"], None)
        commit = hashlib.sha1(json.dumps(sorted(tree.items())).encode() + head.encode()).hexdigest()
        repo["commits"][commit] = tree
        repo["branches"][branch] = commit
        host = self.headers["Host"]
        self.send_json({"commitUrl": f"http://{host}/datasets/{repo_id}/commit/{commit}", "commitOid": commit,
                        "pullRequestUrl": None})

    def do_DELETE(self) -> None:
        path = unquote(urlsplit(self.path).path)
        hub: InMemoryHub = self.store
        hub.calls.append(f"DELETE {path}")
        parts = path.split("/")  # /api/datasets/O/N/tag/<tag>
        repo_id, tag = f"{parts[3]}/{parts[4]}", "/".join(parts[6:])
        with hub.lock:
            if hub.refs(repo_id) is None or tag not in hub.repos[repo_id]["tags"]:
                return self.send_error_code(404, "RevisionNotFound", f"tag {tag} not found")
            del hub.repos[repo_id]["tags"][tag]
        self.send_json({})


def start_hub_double(blob_dir: Path):
    """Returns (server, hub); ``http://127.0.0.1:{server.server_port}`` is its HF_ENDPOINT."""
    hub = InMemoryHub(blob_dir)
    server = make_server(hub, handler=HubDoubleHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hub
