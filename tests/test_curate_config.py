"""``dataengine curate --config``: a mistyped [curate] value is one error line before any work, not a traceback."""

from so101_dataengine.cli import main


def test_mistyped_curate_value_is_one_error_line(tmp_path, capsys):
    config = tmp_path / "dataengine.toml"
    config.write_text('[curate]\nimage_size = "big"\n')
    assert main(["curate", "--runs", str(tmp_path), "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "image_size must be an integer" in err[0]
    assert not (tmp_path / "out").exists()
