"""``dataengine review``: the page a person labels episodes on, served by Flask on this machine.

Read-only except the labels file: the runs' files are only read (episodes are named by run index and episode id,
both integers, and a camera only by a name its ``meta.json`` lists, so no request reaches a path of its choosing),
the page's own assets are served from this package (no CDN: it works offline), and the only write is a label
(``labelbook.LabelBook``). Writes must be JSON requests, which a foreign web page cannot send without a CORS
preflight this server never grants, and on a loopback address a request must name this server in its Host header
(a DNS-rebinding page cannot reach it).

Endpoints: ``GET /`` the page; ``GET /api/state``; ``GET /api/episodes?sort&outcome&verdict&labelled&disagreement
&curation&page&per_page`` (``curation``: ``accepted``, ``rejected`` or a rejection code); ``GET /api/episodes/R/E``;
``GET /media/R/E/CAMERA.mjpeg`` (the stored JPEG stream, which the page splits into frames with the offsets of
``/api/episodes/R/E``); ``GET /thumb/R/E.jpg`` (a frame strip);
``POST /api/labels`` and ``POST /api/labels/undo``; ``POST|GET /api/whiskers/R/E`` and ``GET /whiskers/R/E.png``.
"""

from __future__ import annotations

import functools
import getpass
import io
import logging
import shlex
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request, send_file
from PIL import Image
from werkzeug.exceptions import HTTPException

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.listen import listen_errors
from so101_dataengine.classifier.labels import Label, LabelConflict
from so101_dataengine.curation.report import (
    frame_strip,  # imports matplotlib (seconds): at start, not on the first thumbnail
)
from so101_dataengine.formats.store import EpisodeStore, episode_dirname
from so101_dataengine.review.catalog import PAGE_SIZES, SORTS, Catalog, Query, Row
from so101_dataengine.review.labelbook import LabelBook

STATIC = Path(__file__).parent / "static"
THUMBNAILS_CACHED = 2048
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def retrain_command(catalog: Catalog, labels: Path, classifier: Path | None) -> str:
    """The command that trains the classifier again with these labels winning over the simulator."""
    runs = " ".join(shlex.quote(run.shown) for run in catalog.runs)
    base = f" --init {shlex.quote(str(classifier))}" if classifier else ""
    out = (classifier.parent / f"{classifier.name}-relabelled") if classifier else Path("outputs/classifiers/relabelled")
    return (f"dataengine classifier train --runs {runs} --labels {shlex.quote(str(labels))}{base} "
            f"--out {shlex.quote(str(out))}")


class Whiskers:
    """Whisker images made on demand, one at a time in a worker thread, kept in memory (never written)."""

    def __init__(self, catalog: Catalog, every: int):
        self.catalog, self.every = catalog, every
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="review-whiskers")
        self._jobs: dict[tuple[int, int], Future] = {}
        self._lock = threading.Lock()

    def start(self, row: Row) -> Future:
        with self._lock:
            key = (row.run, row.episode_id)
            if key not in self._jobs or (self._jobs[key].done() and self._jobs[key].exception() is not None):
                self._jobs[key] = self._pool.submit(self._make, row)
            return self._jobs[key]

    def get(self, row: Row) -> Future | None:
        return self._jobs.get((row.run, row.episode_id))

    def _make(self, row: Row) -> bytes:
        from so101_dataengine.review.whiskers import run_episode_png

        return run_episode_png(self.catalog.runs[row.run].store.manifest, row.seed, self.every)


def create_app(catalog: Catalog, book: LabelBook, by: str | None = None, classifier: Path | None = None,
               whisker_every: int = 5) -> Flask:
    """The review application over ``catalog``, writing labels through ``book``."""
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["allowed_hosts"] = None  # set by serve() once the port is known
    whiskers = Whiskers(catalog, whisker_every)
    by = by or getpass.getuser()
    ours = {(catalog.runs[r.run].run_id, r.episode_id) for r in catalog.rows}
    curation_filters = catalog.curation_filters()

    def row_of(run: int, episode: int) -> Row:
        try:
            return catalog.row(run, episode)
        except KeyError:
            abort(404)

    def label_json(label: Label | None) -> dict | None:
        return None if label is None else asdict(label)

    @app.before_request
    def check_request():
        allowed = app.config["allowed_hosts"]
        if allowed is not None and request.host not in allowed:
            abort(403, "this server answers only to its own address")
        if request.method == "POST" and not request.is_json:
            abort(415, "send JSON")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return jsonify(error=error.description), error.code

    @app.errorhandler(DataEngineError)
    def user_error(error: DataEngineError):
        return jsonify(error=str(error)), 409 if isinstance(error, LabelConflict) else 400

    @app.get("/")
    def index():
        return send_file(STATIC / "index.html", max_age=0)

    @app.get("/api/state")
    def state():
        return jsonify(
            runs=[{"index": r.index, "run_id": r.run_id, "dir": r.shown, "policy": r.policy,
                   "fps": r.fps} for r in catalog.runs],
            episodes=len(catalog.rows), labelled=len(ours & book.current().keys()), labels_file=str(book.path), by=by,
            retrain=retrain_command(catalog, book.path, classifier), outcomes=catalog.outcomes(), sorts=SORTS,
            page_sizes=PAGE_SIZES, scoring=catalog.scoring, curation_filters=curation_filters,
            curation_reveals_outcome=any(d.reveals_outcome for r in catalog.rows for d in r.curation))

    @app.get("/api/episodes")
    def episodes():
        args = request.args
        try:
            q = Query(sort=args.get("sort", "episode"), outcome=args.get("outcome") or None,
                      verdict=_tristate(args.get("verdict")), labelled=_tristate(args.get("labelled")),
                      disagreement=args.get("disagreement") == "true", curation=args.get("curation") or None,
                      page=max(0, int(args.get("page", 0))), per_page=int(args.get("per_page", 50)))
            if q.per_page not in PAGE_SIZES or q.sort not in SORTS or q.curation not in (None, *curation_filters):
                raise ValueError
        except ValueError:
            abort(400, f"sort is one of {', '.join(SORTS)}, per_page one of {PAGE_SIZES}, curation one of "
                       f"{', '.join(curation_filters) or '(none: no curated dataset)'}")
        labels = book.current()
        total, rows = catalog.query(q, labels)
        return jsonify(total=total, page=q.page, per_page=q.per_page, rows=[
            {**r.to_json(), "label": label_json(labels.get((catalog.runs[r.run].run_id, r.episode_id)))}
            for r in rows])

    @app.get("/api/episodes/<int:run>/<int:episode>")
    def episode(run: int, episode: int):
        row = row_of(run, episode)
        store = catalog.runs[run].store
        meta = store.read_meta(episode)
        offsets = store.frame_offsets(episode)
        label = book.current().get((catalog.runs[run].run_id, episode))
        return jsonify(**row.to_json(), metrics=meta["metrics"], cameras=meta["cameras"], offsets=offsets,
                       fps=catalog.runs[run].fps, label=label_json(label))

    @app.get("/media/<int:run>/<int:episode>/<camera>.mjpeg")
    def media(run: int, episode: int, camera: str):
        row_of(run, episode)
        store = catalog.runs[run].store
        if camera not in store.read_meta(episode)["cameras"]:
            abort(404)
        return send_file(store.episodes_dir / episode_dirname(episode) / f"{camera}.mjpeg", mimetype="application/octet-stream",
                         max_age=3600)

    @app.get("/thumb/<int:run>/<int:episode>.jpg")
    def thumbnail(run: int, episode: int):
        row_of(run, episode)
        return Response(_strip(str(catalog.runs[run].store.root), episode), mimetype="image/jpeg",
                        headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/labels")
    def add_label():
        body = request.get_json()
        row = row_of(_int(body, "run"), _int(body, "episode"))
        if not isinstance(body.get("success"), bool):
            abort(400, "success must be true or false")
        who = body.get("by") or by
        run = catalog.runs[row.run]
        label = book.add(run.run_id, row.episode_id, body["success"], str(who), str(run.store.root.resolve()))
        return jsonify(label=label_json(label))

    @app.post("/api/labels/undo")
    def undo_label():
        body = request.get_json()
        raw = body.get("label")
        try:
            label = Label(**raw)
        except TypeError:
            abort(400, "label must be a label this server returned")
        if not any(run.run_id == label.run_id for run in catalog.runs):
            abort(404)
        return jsonify(label=label_json(book.undo(label)))

    @app.post("/api/whiskers/<int:run>/<int:episode>")
    def start_whiskers(run: int, episode: int):
        return _job_state(whiskers.start(row_of(run, episode)))

    @app.get("/api/whiskers/<int:run>/<int:episode>")
    def whiskers_state(run: int, episode: int):
        return _job_state(whiskers.get(row_of(run, episode)))

    @app.get("/whiskers/<int:run>/<int:episode>.png")
    def whiskers_png(run: int, episode: int):
        job = whiskers.get(row_of(run, episode))
        if job is None or not job.done() or job.exception() is not None:
            abort(404)
        return Response(job.result(), mimetype="image/png")

    return app


def _job_state(job: Future | None):
    if job is None:
        return jsonify(status="none")
    if not job.done():
        return jsonify(status="running")
    error = job.exception()
    if error is not None:
        message = str(error) if isinstance(error, DataEngineError) else f"{type(error).__name__}: {error}"
        return jsonify(status="error", error=message)
    return jsonify(status="done")


def _tristate(value: str | None) -> bool | None:
    if value in (None, ""):
        return None
    if value not in ("true", "false"):
        raise ValueError(value)
    return value == "true"


def _int(body: dict, key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        abort(400, f"{key} must be an integer")
    return value


@functools.lru_cache(maxsize=THUMBNAILS_CACHED)
def _strip(root: str, episode: int) -> bytes:
    """A frame strip (``so101_dataengine.curation.report.frame_strip``) as JPEG; cached, thumbnails are asked for again and again."""
    buffer = io.BytesIO()
    Image.fromarray(frame_strip(EpisodeStore(Path(root)), episode)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port``, or one error line saying what to pass instead.

    Bound here, not by werkzeug's ``make_server``: on a busy port or a bad host that one prints its own lines and
    calls ``sys.exit(1)`` (no ``error:`` line), a port above 65535 wraps silently onto another one, and a host
    ``unix://PATH`` makes it delete the file at PATH to put a socket there."""
    from werkzeug.serving import LISTEN_QUEUE, select_address_family

    with listen_errors(host, port):
        if host.startswith("unix://"):
            raise DataEngineError(f"--host {host!r} is a socket file, not a host: pass e.g. --host 127.0.0.1")
        family = select_address_family(host, port)  # werkzeug's choice: IPv6 for an address with ':'
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)[0][4]
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug: a restart reuses the port
            listener.bind(address)
            listener.listen(LISTEN_QUEUE)
        except OSError:
            listener.close()
            raise
    return listener


def bind(app: Flask, host: str, port: int):
    """A threaded server for ``app`` listening on ``host:port`` (a clip loading never blocks a label; port 0 picks
    a free one); on a loopback address it answers only requests that name it in their Host header."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request drowns what matters
    with listening_socket(host, port) as listener:  # werkzeug serves a duplicate of it
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())
    bound = server.port
    if host in LOOPBACK:
        app.config["allowed_hosts"] = {f"127.0.0.1:{bound}", f"localhost:{bound}", f"[::1]:{bound}"}
    return server


def url_of(server) -> str:
    host = server.host if ":" not in server.host else f"[{server.host}]"
    return f"http://{host}:{server.port}/"


def serve(app: Flask, host: str, port: int, on_ready=print) -> None:
    """Serve until Ctrl-C; ``on_ready`` gets the page's address once it is listening."""
    server = bind(app, host, port)
    on_ready(url_of(server))
    try:
        server.serve_forever()
    finally:
        server.server_close()
