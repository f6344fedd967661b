import subprocess
import sys

from so101_dataengine.cli import main
from so101_dataengine.lerobot_compat import video


def test_console_script_lists_every_verb():
    result = subprocess.run([sys.executable, "-m", "so101_dataengine.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for verb in ["demos", "train", "rollout", "classifier", "curate", "stats", "publish", "versions", "hooks", "cycle"]:
        assert verb in result.stdout


def test_cycle_without_its_config_says_what_to_write(tmp_path, capsys):
    assert main(["cycle", "round1", "--config", str(tmp_path / "dataengine.toml")]) == 2
    assert capsys.readouterr().err.strip().endswith("not found: write a [cycle] table with at least repo_id (see README)")


def test_video_backend_falls_back_to_pyav_when_torchcodec_cannot_load(monkeypatch):
    video.video_backend.cache_clear()
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)  # import now fails, as without system FFmpeg
    try:
        assert video.video_backend() == "pyav"
    finally:
        video.video_backend.cache_clear()


def test_pyav_fallback_decodes_what_lerobot_decodes(demo_dataset, monkeypatch):
    """torchvision >= 0.26 has no io.VideoReader; the fallback must return lerobot's frames exactly (lerobot 0.6
    decodes with PyAV itself and needs no fallback)."""
    import torch
    import torchvision
    from lerobot.datasets import video_utils

    from so101_dataengine.lerobot_compat import LEROBOT_06, decode_video_frames_pyav, install_video_fallback

    video = next((demo_dataset.out / "videos" / "observation.images.wrist").rglob("*.mp4"))
    # the open file is reused between calls: seeking backwards and forwards must still give lerobot's frames
    for timestamps in ([0.0, 0.5, 1.0, 1.0333333], [1.5], [0.1, 0.2], [1.5], [0.0]):
        reference = video_utils.decode_video_frames(video, timestamps, 1e-4, "pyav")
        torch.testing.assert_close(decode_video_frames_pyav(video, timestamps, 1e-4), reference, atol=0, rtol=0)
    if LEROBOT_06:
        assert not install_video_fallback()
        return
    monkeypatch.delattr(torchvision.io, "VideoReader")
    monkeypatch.setattr(video_utils, "decode_video_frames_torchvision", video_utils.decode_video_frames_torchvision)
    assert install_video_fallback()
    assert video_utils.decode_video_frames_torchvision is decode_video_frames_pyav
