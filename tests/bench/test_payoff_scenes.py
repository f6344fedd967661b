"""benchmarks/payoff_scenes.py: the per-scene analysis of the payoff experiment's evaluations, on tarballs laid out
as payoff_poll.sh brings them back (eval/<policy>/eval.json), with outcomes chosen here so every figure is known."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from benchmarks import payoff_scenes
from so101_dataengine.base.seeds import EVAL_SEED
from so101_dataengine.scenes.randomization import SceneRandomization

N = 30


def _tarball(path, seed: int, outcomes: dict[str, list[bool]]):
    with tarfile.open(path, "w:gz") as archive:
        for name, successes in outcomes.items():
            record = {"schema": "dataengine.eval/1", "n": len(successes), "seed": seed, "policies": [
                {"per_episode": ["SUCCESS" if s else "NEVER_PICKED_UP" for s in successes]}]}
            data = json.dumps(record).encode()
            info = tarfile.TarInfo(f"eval/{name}/eval.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_rates_pool_each_group_over_leases_and_split_by_demo_distance(tmp_path):
    randomization = SceneRandomization()
    scenes = payoff_scenes.Scenes.from_seeds(list(range(EVAL_SEED, EVAL_SEED + N)), randomization)
    demos = payoff_scenes.Scenes.from_seeds(payoff_scenes.demo_seeds(), randomization)
    distance = payoff_scenes.nearest_demo_distance(scenes, demos, randomization)
    near = distance < np.quantile(distance, 1 / 3)  # the teachers solve exactly the nearest third
    rng = np.random.default_rng(1)
    student = rng.random(N) < 0.5
    logs = [_tarball(tmp_path / f"payoff_h200_lease{k}_logs.tgz", EVAL_SEED,
                     {"act-i": near.tolist(), "act-ii": student.tolist()}) for k in range(2)]

    result = payoff_scenes.analyse(logs, randomization)

    assert set(result["policies"]) == {"lease0:act-i", "lease0:act-ii", "lease1:act-i", "lease1:act-ii"}
    assert result["overall"]["teachers"]["episodes"] == 2 * N
    assert result["overall"]["teachers"]["rate"] == pytest.approx(near.mean())
    assert result["overall"]["ACT students"]["rate"] == pytest.approx(student.mean())
    low, high = result["overall"]["ACT students"]["ci95"]
    assert low <= student.mean() <= high
    thirds = result["by_feature"]["nearest demo cube (scaled)"]["groups"]["teachers"]
    assert [cell["rate"] for cell in thirds] == [1.0, 0.0, 0.0]
    assert result["teachers_solving_each_scene"] == [N - near.sum(), 0, near.sum()]
    assert [row["seed"] for row in result["per_scene"]] == list(range(EVAL_SEED, EVAL_SEED + N))
    assert [row["teachers_share"] for row in result["per_scene"]] == near.astype(float).tolist()
    assert [row["nearest_demo"] for row in result["per_scene"]] == pytest.approx(distance.tolist())
    figure = tmp_path / "scenes.png"
    payoff_scenes.figure(result, figure)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_demo_scene_is_at_distance_zero():
    randomization = SceneRandomization()
    demos = payoff_scenes.Scenes.from_seeds(payoff_scenes.demo_seeds(), randomization)
    assert len(payoff_scenes.demo_seeds()) == payoff_scenes.BASE_DEMOS
    assert np.all(payoff_scenes.nearest_demo_distance(demos, demos, randomization) == 0)


def test_evaluations_of_different_scenes_are_refused(tmp_path, capsys):
    logs = [_tarball(tmp_path / "payoff_h200_a_logs.tgz", EVAL_SEED, {"act-i": [True] * N}),
            _tarball(tmp_path / "payoff_h200_b_logs.tgz", EVAL_SEED + 1, {"act-i": [True] * N})]
    for argv, message in ((["--logs", *map(str, logs)], "error: the evaluations ran on different scenes"),
                          (["--logs", str(tmp_path / "missing.tgz")], "error: no payoff logs tarball")):
        with pytest.raises(SystemExit) as stop:
            payoff_scenes.main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize("content, message", [
    (b"not a tarball", "is not a readable payoff logs tarball"),
    ({"eval/act-i/eval.json": b'{"broken'}, "is not a readable payoff logs tarball (JSONDecodeError"),
    ({"eval/act-i/eval.json": b'{"seed": 1, "n": 2}'}, "is not a readable payoff logs tarball (KeyError"),
    ({"notes.txt": b"no evaluation here"}, "holds no eval/<policy>/eval.json"),
])
def test_a_damaged_or_foreign_logs_file_is_one_error_line(tmp_path, capsys, content, message):
    logs = tmp_path / "my logs $(x).tgz"
    if isinstance(content, bytes):
        logs.write_bytes(content)
    else:
        with tarfile.open(logs, "w:gz") as archive:
            for name, data in content.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    before = logs.read_bytes()
    with pytest.raises(SystemExit) as stop:
        payoff_scenes.main(["--logs", str(logs)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"error: {logs} ") and message in err and err.count("\n") == 1
    assert logs.read_bytes() == before
