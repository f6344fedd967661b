"""What every refused command must print (docs/guarantees.md): exactly one ``error:`` line on stderr, no traceback."""

from __future__ import annotations


def one_error_line(capsys) -> str:
    """The single error line of the command just run (``capsys`` or ``capfd``); asserts there is nothing else."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]
