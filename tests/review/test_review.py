"""``dataengine review``: the page a person labels episodes on, driven in a real browser (Debian's chromium,
headless, through Playwright) over a real rollout run, and its labels read back by the classifier's own reader."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from so101_dataengine.base.executors import ExecutorConfig
from so101_dataengine.classifier.data import rollout_episodes
from so101_dataengine.classifier.labels import labels_lock, read_labels
from so101_dataengine.cli import main
from so101_dataengine.formats.store import EpisodeStore, episode_dirname
from so101_dataengine.formats.v3_dataset import read_provenance
from so101_dataengine.formats.verdict import Verdict
from so101_dataengine.review.catalog import Catalog
from so101_dataengine.review.labelbook import LabelBook
from so101_dataengine.review.server import bind, create_app, url_of
from so101_dataengine.rollouts.config import RolloutConfig
from so101_dataengine.rollouts.run import rollout
from so101_dataengine.scenes.pick_place import PickPlaceConfig

CHROMIUM = Path("/usr/bin/chromium")
SCORES = [0.95, 0.10, 0.80, 0.45, 0.05, 0.60]
"""Scores recorded beside the six episodes, as ``rollout --classifier`` records them (threshold 0.5); the
classifier's own scoring is tested in test_classifier.py, here they are the page's input."""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, workspace) -> Path:
    """Six episodes of the failing expert (a mix of outcomes), each with a recorded classifier score."""
    out = tmp_path_factory.mktemp("review") / "run"
    config = RolloutConfig(policy="scripted-faulty:none=1,miss_grasp=1,drop=1", n=6, out=out, num_envs=6,
                           executor=ExecutorConfig(workers=1),
                           scene=PickPlaceConfig(image_size=64, max_episode_steps=240))
    rollout(config, workspace)
    store = EpisodeStore.open(out)
    for episode_id, score in enumerate(SCORES):
        store.write_verdict(episode_id, Verdict("c0ffee", score, 0.5))
    return out


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def curated(run_dir, tmp_path_factory) -> Path:
    """The run curated for real (the simulator's outcome as the verdict): some episodes accepted, the others
    rejected by the grip step (no_transport) or the verdict (low_score). Not beside the run: --curated finds it."""
    dataset = tmp_path_factory.mktemp("curated") / "round1"
    assert main(["curate", "--runs", str(run_dir), "--use-sim-outcome", "--vcodec", "h264", "--workers", "1",
                 "--out", str(dataset), "--repo-id", "local/review_test"]) == 0
    return dataset


def _decisions(dataset: Path) -> dict[int, dict]:
    """Episode id -> its line of the dataset's decisions.jsonl, as curate wrote it."""
    lines = (dataset / "meta" / "curation" / "decisions.jsonl").read_text().splitlines()
    return {line["episode"]: line for line in map(json.loads, lines)}


@contextlib.contextmanager
def _serving(catalog: Catalog, labels: Path):
    """A review server over ``catalog`` on a free port of 127.0.0.1, in this process; yields its URL."""
    book = LabelBook(labels)
    book.check_writable()
    httpd = bind(create_app(catalog, book, by="tester", whisker_every=30), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield url_of(httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(run_dir, tmp_path, monkeypatch):
    """A review server over the run given as a relative path (as a user in the workspace would); yields (url,
    labels path)."""
    labels = tmp_path / "labels.jsonl"
    monkeypatch.chdir(run_dir.parent)
    with _serving(Catalog.load([Path(run_dir.name)]), labels) as url:
        yield url, labels


@contextlib.contextmanager
def _pages(url: str, count: int = 1):
    """``count`` tabs of one headless chromium on the page, each loaded and ready."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.skip("no Debian chromium here: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pages = [context.new_page() for _ in range(count)]
        for page in pages:
            _load(page, url)
        try:
            yield pages
        finally:
            browser.close()


def _load(page, url: str | None = None) -> None:
    page.goto(url) if url else page.reload()
    page.wait_for_selector("body[data-ready=true]")


def _wait_for_episode(page, episode: int) -> None:
    page.wait_for_function(f"document.querySelector('#title').textContent.endsWith('episode {episode}')")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _label_badges(page) -> dict[int, str]:
    """Episode id -> the label the list shows for it."""
    badges = {}
    for row in page.query_selector_all("tr.row"):
        episode = int(row.get_attribute("id").split("-")[-1])
        badges[episode] = row.query_selector("td.label").inner_text().strip()
    return badges


def _current(page) -> str:
    return page.inner_text("#title")


def test_three_labels_by_keyboard_are_in_the_file_at_once_and_shown_after_reload(server, run_dir, tmp_path):
    url, labels = server
    before = _digest(run_dir)
    with _pages(url) as (page,):
        assert _current(page) == "run 0 · episode 0"
        page.wait_for_function("document.querySelector('#time').textContent.startsWith('frame 1 /')")
        sizes = page.evaluate("Promise.all([...document.querySelectorAll('#players img')].map("
                              "async (img) => { await img.decode(); return [img.alt, img.naturalWidth]; }))")
        assert sorted(sizes) == [["observation.images.overhead", 64], ["observation.images.wrist", 64]]
        page.keyboard.press("ArrowRight")  # episode 0: success
        _wait_for_episode(page, 1)
        assert [(l["episode_id"], l["success"]) for l in _lines(labels)] == [(0, True)]  # written at once
        page.keyboard.press("ArrowLeft")  # episode 1: failure
        _wait_for_episode(page, 2)
        page.keyboard.press(" ")  # episode 2: skipped
        _wait_for_episode(page, 3)
        page.keyboard.press("ArrowRight")  # episode 3: success
        _wait_for_episode(page, 4)
        lines = _lines(labels)
        assert [(l["episode_id"], l["success"]) for l in lines] == [(0, True), (1, False), (3, True)]
        assert {l["by"] for l in lines} == {"tester"} and all(l["time"] > time.time() - 300 for l in lines)

        _load(page)
        badges = _label_badges(page)
        assert (badges[0], badges[1], badges[2], badges[3]) == ("success", "failure", "–", "success")
        page.screenshot(path=str(tmp_path / "review.png"))

        page.keyboard.press("z")  # undo survives the reload (this tab's history): episode 3's label goes
        _wait_for_episode(page, 3)
        assert [(l["episode_id"], l["success"]) for l in _lines(labels)] == [(0, True), (1, False)]
        assert _label_badges(page)[3] == "–"
    current = read_labels(labels)  # the classifier's reader: the page's labels win over the simulator
    run_id = EpisodeStore.open(run_dir).manifest["run_id"]
    assert {k: v.success for k, v in current.items()} == {(run_id, 0): True, (run_id, 1): False}
    sources = {ref.episode_id: ref.label_source for ref in rollout_episodes(run_dir, current)}
    assert sources[0] == sources[1] == "human" and sources[2] == "simulator"
    assert _digest(run_dir) == before  # the runs are only read


def test_two_tabs_lose_nothing_and_an_undo_never_drops_a_newer_label(server):
    url, labels = server
    with _pages(url, 2) as (first, second):
        first.keyboard.press("ArrowRight")  # both tabs label episode 0, the second one last
        _wait_for_episode(first, 1)
        second.keyboard.press("ArrowLeft")
        _wait_for_episode(second, 1)
        first.keyboard.press("z")  # the first tab's undo must not remove the second tab's newer label
        first.wait_for_selector("#error:not([hidden])")
        assert "labelled again since" in first.inner_text("#error")
        first.evaluate("window.dispatchEvent(new Event('focus'))")  # back to the first tab: it shows the newer label
        first.wait_for_function("document.querySelector('#row-0-0 td.label').textContent.trim() === 'failure'")
    assert [(l["episode_id"], l["success"]) for l in _lines(labels)] == [(0, True), (0, False)]
    assert next(iter(read_labels(labels).values())).success is False


def test_blind_switch_hides_the_simulator_outcome_and_sorting_by_it(server):
    url, _ = server
    with _pages(url) as (page,):
        assert page.is_visible("td.sim")
        page.select_option("#sort", "disagreement")  # a sort only the simulator's outcome allows
        page.wait_for_function("document.querySelector('#title').textContent.startsWith('run 0')")
        page.check("#blind")
        page.wait_for_function("!document.querySelector('td.sim') || "
                               "getComputedStyle(document.querySelector('td.sim')).display === 'none'")
        assert not page.is_visible("td.sim") and not page.is_visible("#facts .sim")
        assert page.input_value("#sort") == "episode"  # a sort that would reveal the outcome is left
        _load(page)
        assert page.is_checked("#blind") and not page.is_visible("td.sim")  # the switch is remembered


def test_concurrent_labels_of_many_requests_are_all_kept(server, run_dir):
    url, labels = server

    def post(episode: int) -> None:
        body = json.dumps({"run": 0, "episode": episode % 6, "success": episode % 2 == 0}).encode()
        request = urllib.request.Request(url + "api/labels", body, {"Content-Type": "application/json"})
        urllib.request.urlopen(request).read()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(l["episode_id"] for l in _lines(labels)) == sorted(i % 6 for i in range(24))


def test_disagreement_sort_and_filters(run_dir):
    catalog = Catalog.load([run_dir])
    from so101_dataengine.review.catalog import Query

    outcomes = {r.episode_id: r.outcome for r in catalog.rows}
    disagreeing = {i for i, s in enumerate(SCORES) if (s >= 0.5) != (outcomes[i] == "SUCCESS")}
    total, rows = catalog.query(Query(sort="disagreement"), {})
    assert total == 6 and {r.episode_id for r in rows[: len(disagreeing)]} == disagreeing
    assert [r.score for r in catalog.query(Query(sort="-score"), {})[1]] == sorted(SCORES, reverse=True)
    assert catalog.query(Query(sort="uncertain"), {})[1][0].score == 0.45
    failure = next(o for o in outcomes.values() if o != "SUCCESS")
    total, rows = catalog.query(Query(outcome=failure), {})
    assert total == sum(o == failure for o in outcomes.values()) and {r.outcome for r in rows} == {failure}
    total, rows = catalog.query(Query(verdict=True, per_page=10, page=0), {})
    assert total == 3 and all(r.score >= 0.5 for r in rows)


def _get(url: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_server_reads_only_its_runs_and_answers_only_to_its_address(server, run_dir):
    url, labels = server
    port = url.rstrip("/").rsplit(":", 1)[1]
    assert _get(url + "api/state")[0] == 200
    assert _get(url + "media/0/0/observation.images.overhead.mjpeg")[0] == 200
    for bad in ["media/0/0/..%2F..%2Fmanifest.json.mjpeg", "media/0/0/data.mjpeg", "media/1/0/x.mjpeg",
                "api/episodes/0/99", "static/..%2F..%2Fserver.py", "thumb/0/-1.jpg"]:
        assert _get(url + bad)[0] == 404, bad
    assert _get(url + "api/state", host=f"attacker.example:{port}")[0] == 403  # DNS rebinding
    form = urllib.request.Request(url + "api/labels", b"run=0&episode=0&success=true")  # a foreign page's form
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(form)
    assert refused.value.code == 415 and not labels.exists()


def test_thousands_of_episodes_load_once_and_page_fast(run_dir, tmp_path):
    """2,400 stored episodes (hard links of the run's six, a real store layout): the server reads them once and
    answers a page of 50, sorted by score, in a fraction of a second."""
    big = tmp_path / "big"
    shutil.copytree(run_dir, big, copy_function=os.link, ignore=shutil.ignore_patterns("episodes"))
    for episode_id in range(2400):
        source = run_dir / "episodes" / episode_dirname(episode_id % 6)
        shutil.copytree(source, big / "episodes" / episode_dirname(episode_id), copy_function=os.link)
    started = time.perf_counter()
    catalog = Catalog.load([big])
    loaded = time.perf_counter() - started
    app = create_app(catalog, LabelBook(tmp_path / "labels.jsonl"), by="tester")
    client = app.test_client()
    started = time.perf_counter()
    page = client.get("/api/episodes?sort=-score&page=7&per_page=50").get_json()
    paged = time.perf_counter() - started
    assert page["total"] == 2400 and len(page["rows"]) == 50
    assert loaded < 10 and paged < 0.5, (loaded, paged)


def test_bad_input_is_one_error_line(run_dir, curated, tmp_path, capsys):
    bad_labels = tmp_path / "bad.jsonl"
    bad_labels.write_text('{"run_id": "r", "episode_id": 1, "success": "yes"}\n')
    broken, undecided = tmp_path / "broken", tmp_path / "undecided"
    for copy in (broken, undecided):
        shutil.copytree(curated, copy)
    decisions = broken / "meta" / "curation" / "decisions.jsonl"
    decisions.write_text(decisions.read_text().splitlines()[0] + '\n{"run": "r", "episode": 1, "decision": "grip"}\n')
    (undecided / "meta" / "curation" / "decisions.jsonl").unlink()  # curated before curate recorded decisions
    cases = [
        (["review", str(tmp_path / "nowhere")], "does not exist"),
        (["review", str(run_dir), "--labels", str(bad_labels)], "line 1 is not a label"),
        (["review", str(run_dir), "--labels", str(tmp_path / "missing" / "l.jsonl")], "does not exist: create it"),
        (["review", str(run_dir), str(run_dir)], "given twice"),
        (["review", str(run_dir), "--curated", str(tmp_path)], "dataengine.json is missing"),
        (["review", str(run_dir), "--curated", str(broken)], "line 2 is not a curation decision (a rejection needs"),
        (["review", str(run_dir), "--curated", str(undecided)], "decisions.jsonl is missing: pass a dataset written"),
    ]
    for args, message in cases:
        assert main(["--workspace", str(tmp_path), *args]) == 2, args
        stderr = capsys.readouterr().err
        assert stderr.startswith("error: ") and message in stderr and stderr.count("\n") == 1, (args, stderr)


def test_an_episodes_whiskers_on_demand(server):
    """``w`` replays the current episode with its run's policy (here the failing expert) and shows its whiskers."""
    url, _ = server
    with _pages(url) as (page,):
        page.keyboard.press("ArrowDown")
        _wait_for_episode(page, 1)
        page.keyboard.press("w")
        page.wait_for_selector("#whiskers img", timeout=90_000)
        size = page.evaluate("(async () => { const img = document.querySelector('#whiskers img'); await img.decode();"
                             " return [img.naturalWidth, img.naturalHeight]; })()")
    assert size == [448, 448]


def test_the_pages_retrain_command_trains_on_its_labels_and_the_new_classifier_scores(run_dir, tmp_path,
                                                                                     monkeypatch):
    """The loop a person closes: labels from the page, the retrain command the page shows (plus small-model
    options for CPU), and ``--classifier`` with the result: it scores every episode in the background, in memory
    (the run is untouched)."""
    from so101_dataengine.classifier.artifact import load_classifier

    monkeypatch.chdir(tmp_path)
    labels = tmp_path / "labels.jsonl"
    catalog = Catalog.load([run_dir])
    client = create_app(catalog, LabelBook(labels), by="tester").test_client()
    failed = next(r.episode_id for r in catalog.rows if r.outcome != "SUCCESS")
    assert client.post("/api/labels", json={"run": 0, "episode": failed, "success": True}).status_code == 200
    command = shlex.split(client.get("/api/state").get_json()["retrain"])
    assert command[:3] == ["dataengine", "classifier", "train"] and command[command.index("--labels") + 1] == str(labels)
    assert main([*command[1:], "--image-size", "64", "--end-frames", "4", "--epochs", "1", "--device", "cpu"]) == 0
    artifact = Path(command[command.index("--out") + 1])
    assert load_classifier(artifact).training["labels_file"]["used"] == 1  # the page's label was trained on

    before = _digest(run_dir)
    catalog.score_with(artifact).join(timeout=120)
    classifier = load_classifier(artifact)
    store = EpisodeStore.open(run_dir)
    expected = classifier.score_episodes([store.read(i, frames=slice(-classifier.end_frames, None)) for i in range(6)])
    assert catalog.scoring == {"done": 6, "todo": 6, "error": None}
    assert [r.score for r in catalog.rows] == pytest.approx(expected.tolist(), abs=1e-5)
    assert {(r.classifier, r.threshold) for r in catalog.rows} == {(classifier.version, classifier.threshold)}
    assert _digest(run_dir) == before


def test_each_episodes_curation_decision_and_filtering_by_rejection_code(run_dir, curated, tmp_path):
    """``--curated``: every episode shows what the curated dataset decided (accepted, or the step, code and detail
    of its decisions.jsonl), and filtering by a code lists exactly the episodes rejected with it."""
    decisions = _decisions(curated)
    codes = [d["code"] for d in decisions.values() if d["code"]]
    assert {"no_transport", "low_score"} <= set(codes)  # the failing expert's mix: two filters reject
    client = create_app(Catalog.load([run_dir], [curated]), LabelBook(tmp_path / "labels.jsonl")).test_client()
    rows = client.get("/api/episodes?per_page=10").get_json()["rows"]
    assert {r["episode"]: [(d["dataset"], d["accepted"], d["step"], d["code"], d["detail"]) for d in r["curation"]]
            for r in rows} == {e: [(str(curated), d["decision"] == "accepted", None if d["code"] is None
                                    else d["decision"], d["code"], d["detail"])] for e, d in decisions.items()}
    state = client.get("/api/state").get_json()
    assert state["curation_filters"] == ["accepted", "rejected", "no_transport", "low_score"]  # the filters' order
    assert state["curation_reveals_outcome"]  # the simulator's outcome was the verdict: hidden when blind
    for code in set(codes):
        page = client.get(f"/api/episodes?curation={code}").get_json()
        assert sorted(r["episode"] for r in page["rows"]) == sorted(e for e, d in decisions.items() if d["code"] == code)
    accepted = {r["episode"] for r in client.get("/api/episodes?curation=accepted").get_json()["rows"]}
    assert accepted == {e["source_episode"] for e in read_provenance(curated)}  # what the dataset holds
    assert client.get("/api/episodes?curation=rejected").get_json()["total"] == 6 - len(accepted)
    assert client.get("/api/episodes?curation=jerk").status_code == 400  # a code no dataset gave


def test_a_curated_dataset_beside_the_run_is_found_without_asking(run_dir, curated, tmp_path):
    """A cycle's round holds ``rollout/`` and ``dataset/`` side by side: review finds the dataset, since its
    decisions name the run, here one copied elsewhere since (recognised by the run id the dataset records); a
    curated dataset beside it that judged another run adds nothing."""
    round_dir = tmp_path / "round"
    shutil.copytree(run_dir, round_dir / "rollout", copy_function=os.link)
    shutil.copytree(curated, round_dir / "dataset", copy_function=os.link)
    found = Catalog.load([round_dir / "rollout"])
    assert found.curated == [str(round_dir / "dataset")]
    given = Catalog.load([run_dir], [curated])
    assert [[(d.accepted, d.code) for d in r.curation] for r in found.rows] == \
        [[(d.accepted, d.code) for d in r.curation] for r in given.rows]
    assert all(r.curation == [] for r in Catalog.load([run_dir]).rows)  # nothing curated beside the original


def test_the_page_shows_curation_decisions_and_filters_by_code(run_dir, curated, tmp_path):
    decisions = _decisions(curated)
    code = "no_transport"
    with _serving(Catalog.load([run_dir], [curated]), tmp_path / "labels.jsonl") as url, _pages(url) as (page,):
        shown = {int(tr.get_attribute("id").split("-")[-1]): tr.query_selector("td.curation .decision")
                 .get_attribute("data-code") for tr in page.query_selector_all("tr.row")}
        assert shown == {e: d["code"] or "accepted" for e, d in decisions.items()}
        assert decisions[0]["detail"] in page.inner_text("#facts")  # the current episode's detail, written out
        page.select_option("#curation", code)
        page.wait_for_function(f"document.querySelector('#page').textContent.includes("
                               f"'({sum(d['code'] == code for d in decisions.values())} episodes)')")
        listed = [int(tr.get_attribute("id").split("-")[-1]) for tr in page.query_selector_all("tr.row")]
        assert listed == sorted(e for e, d in decisions.items() if d["code"] == code)
        page.check("#blind")  # the verdict was the simulator's outcome: the decisions and their filter go
        page.wait_for_function("!document.querySelector('#curation').value")
        assert not page.is_visible("td.curation .decision") and not page.is_visible("#curation")
        page.uncheck("#blind")
        page.wait_for_function("document.querySelector('#page').textContent.includes('(6 episodes)')")
        page.screenshot(path=str(tmp_path / "review_curated.png"))


LABEL_WRITER = Path(__file__).parents[1] / "classifier" / "label_writer.py"
"""``dataengine classifier label`` in a process of its own, labelling again and again."""


@pytest.fixture
def review_process(run_dir, tmp_path):
    """``dataengine review`` as a user starts it, in its own process, on a free port; yields (url, labels)."""
    labels = tmp_path / "labels.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "so101_dataengine.cli", "review", str(run_dir), "--labels",
                                str(labels), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("review page: "):
                break
        else:
            pytest.fail(f"review exited with {process.wait()} before serving")
        yield line.split()[2], labels
    finally:
        process.terminate()
        process.wait(timeout=30)


def _post_label(url: str, episode: int, by: str) -> int:
    body = json.dumps({"run": 0, "episode": episode, "success": False, "by": by}).encode()
    request = urllib.request.Request(url + "api/labels", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status


def test_the_page_and_the_label_command_at_once_lose_no_label(review_process, run_dir, tmp_path):
    """The review page's server and ``dataengine classifier label``, two processes writing 50 labels each at the
    same time: all 100 lines are in the file."""
    url, labels = review_process
    go = tmp_path / "go"
    command = subprocess.Popen([sys.executable, str(LABEL_WRITER), str(run_dir), str(labels), "cli", "50", str(go)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert command.stdout.readline() == "ready\n", command.communicate()
    go.touch()
    assert all(_post_label(url, i % 6, f"page-{i}") == 200 for i in range(50))
    _, stderr = command.communicate(timeout=300)
    assert command.returncode == 0, stderr
    assert sorted(line["by"] for line in _lines(labels)) == sorted(f"{who}-{i}" for who in ("cli", "page")
                                                                    for i in range(50))


def test_a_held_lock_makes_the_page_wait_then_write(review_process, run_dir):
    """While another process (here the test) holds the labels file's lock, a key press's request waits: nothing
    is written over the file, and once the lock is free the label is added to what the holder wrote."""
    url, labels = review_process
    answered = []
    with labels_lock(labels):
        request = threading.Thread(target=lambda: answered.append(_post_label(url, 2, "page")))
        request.start()
        labels.write_text(json.dumps({"run_id": "other", "episode_id": 7, "success": True}) + "\n")
        request.join(timeout=1.5)
        assert request.is_alive() and not answered  # waiting, not failed
    request.join(timeout=60)
    assert answered == [200]
    assert [(l["run_id"], l["episode_id"]) for l in _lines(labels)] == [
        ("other", 7), (EpisodeStore.open(run_dir).manifest["run_id"], 2)]


def test_a_damaged_episode_is_an_error_naming_it_and_the_others_still_play(run_dir, tmp_path):
    """One episode's data.npz truncated after the server loaded its catalogue (a disk filling up mid-review): its
    episode view answers one error naming the file and how to record it again, not a 500; the others still play."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    app = create_app(Catalog.load([copy]), LabelBook(tmp_path / "labels.jsonl"), by="tester")
    client = app.test_client()
    damaged = copy / "episodes" / episode_dirname(1) / "data.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    answer = client.get("/api/episodes/0/1")
    assert answer.status_code == 400
    assert "data.npz" in answer.get_json()["error"] and "record it again" in answer.get_json()["error"]
    healthy = client.get("/api/episodes/0/0")
    assert healthy.status_code == 200
    offsets = healthy.get_json()["offsets"]
    assert offsets and all(len(o) == healthy.get_json()["length"] + 1 for o in offsets.values())
