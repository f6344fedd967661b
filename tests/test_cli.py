import subprocess
import sys

from dataengine import video
from dataengine.cli import main


def test_console_script_lists_every_verb():
    result = subprocess.run([sys.executable, "-m", "dataengine.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for verb in ["demos", "train", "rollout", "classifier", "curate", "stats", "publish", "versions", "hooks", "cycle"]:
        assert verb in result.stdout


def test_planned_verbs_say_so_in_one_line(capsys):
    assert main(["publish"]) == 2
    assert capsys.readouterr().err.strip() == "error: 'dataengine publish' is not implemented yet: see the open issues"


def test_video_backend_falls_back_to_pyav_when_torchcodec_cannot_load(monkeypatch):
    video.video_backend.cache_clear()
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)  # import now fails, as without system FFmpeg
    try:
        assert video.video_backend() == "pyav"
    finally:
        video.video_backend.cache_clear()
