"""Keep one frame's failure to that frame: a batch holds many cameras' frames.

`contained(process)` runs a batch; if it raises (the model, the post-processing hook or the store
refused something), it runs the batch's frames again one at a time, so the frames that work get their
results and only the offending ones get a `FrameFailed` (their cameras an ERROR). A batch function
that commits its rows in one transaction leaves nothing behind when it raises, so rerunning is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class FrameFailed:
    """A frame whose processing raised `error`; the other frames of its batch are unaffected."""

    error: Exception


def contained(process: Callable[[list[J]], list[R]]) -> Callable[[list[J]], list[R | FrameFailed]]:
    """`process`, with a failing batch retried frame by frame (see the module docstring)."""

    def run(jobs: list[J]) -> list[R | FrameFailed]:
        try:
            return list(process(jobs))
        except Exception as exc:
            if len(jobs) == 1:
                return [FrameFailed(exc)]
        out: list[R | FrameFailed] = []
        for job in jobs:
            try:
                out.extend(process([job]))
            except Exception as exc:
                out.append(FrameFailed(exc))
        return out

    return run


def unwrap(outcome: R | FrameFailed) -> R:
    """The result, or the frame's own failure raised."""
    if isinstance(outcome, FrameFailed):
        raise outcome.error
    return outcome
