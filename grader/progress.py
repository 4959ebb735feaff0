"""The batch's progress on stderr: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any

from .report import GradeResult, printable

__all__ = ["Progress"]


class Progress:
    """A bar on a terminal, plain lines otherwise (names made printable: no escapes)."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, result: GradeResult) -> None:
        """One more submission done: show it."""
        self.done += 1
        line = (f"{printable(result.submission)}: {result.status} "
                f"{result.score:g}/{result.max_score:g} ({result.duration:.1f}s)")
        if self.tty:
            width = 30
            filled = width * self.done // self.total
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                              f"{self.done}/{self.total} {line[:60]:<60}")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {line}\n")
        self.stream.flush()
