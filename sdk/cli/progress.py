"""Progress on stderr that library functions drive through a plain callback (off with -q or --json)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("splitsdk.cli")


def note(message: str) -> None:
    """A line for the user on stderr (`splitsdk: message`), silenced by -q."""
    log.info(message)


def _shown(enabled: bool) -> bool:
    """Bars only on a terminal: a log file or a pipe gets none (not even rich's blank line)."""
    return enabled and log.isEnabledFor(logging.INFO) and sys.stderr.isatty()


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """Yield `tick(stage, done, total)`; each stage gets a bar, and a stage is shown finished once the next
    one starts (or the block ends)."""
    if not _shown(enabled):
        yield lambda stage, done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=Console(file=sys.stderr), transient=True,
    ) as prog:
        tasks: dict[str, TaskID] = {}

        def finish_all() -> None:
            for task in prog.tasks:
                if task.total is not None and task.completed < task.total:
                    prog.update(task.id, completed=task.total)

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                finish_all()  # the previous stage is over: no "0/1" left behind
                tasks[stage] = prog.add_task(f"{label}: {stage}", total=total)
            prog.update(tasks[stage], completed=done, total=total)

        yield tick
        finish_all()


@contextmanager
def working(label: str, enabled: bool = True) -> Iterator[None]:
    """A pulsing bar with the elapsed time for a step that reports no progress of its own."""
    if not _shown(enabled):
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=Console(file=sys.stderr), transient=True,
    ) as prog:
        prog.add_task(label, total=None)
        yield
