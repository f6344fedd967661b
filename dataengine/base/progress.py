"""The one progress bar style of long commands: label, bar, done/total, a live status line, elapsed, remaining."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(console: Console, label: str) -> Progress:
    """A rich ``Progress`` whose task takes a ``status`` field (e.g. success rate, throughput)."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)
