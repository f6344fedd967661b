"""``dataengine curate --config``: a mistyped [curate] value is one error line before any work, not a traceback."""

from so101_dataengine.cli import main


def test_mistyped_curate_value_is_one_error_line(tmp_path, capsys):
    config = tmp_path / "dataengine.toml"
    config.write_text('[curate]\nimage_size = "big"\n')
    assert main(["curate", "--runs", str(tmp_path), "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "image_size must be an integer" in err[0]
    assert not (tmp_path / "out").exists()


def test_an_unknown_table_in_the_project_file_is_one_error_line_not_ignored(tmp_path, capsys):
    """``[curation]`` for ``[curate]`` used to configure nothing, silently: every command that reads the project
    file (curate, cycle, publish's hooks) now names the unknown table and the known ones."""
    config = tmp_path / "dataengine.toml"
    config.write_text('[curation]\nimage_size = 64\n')
    assert main(["curate", "--runs", str(tmp_path), "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "unknown top-level name 'curation'" in err[0], err
    assert "curate" in err[0].split("known:")[1] and not (tmp_path / "out").exists()
    config.write_text('ledger = "l.jsonl"\n[cycel]\nrepo_id = "lab/x"\n')
    assert main(["--workspace", str(tmp_path / "ws"), "cycle", "r1", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'cycel'" in err[0] and not (tmp_path / "ws").exists(), err
