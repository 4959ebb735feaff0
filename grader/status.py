"""How grading one submission ended: a :class:`Status` (its values are what JSON and CSV hold)."""

from __future__ import annotations

import enum

__all__ = ["STATUS_TEXT", "Status"]


class Status(enum.StrEnum):
    """How grading one submission ended (the values are what JSON and CSV hold)."""

    GRADED = "graded"  # it ran to the end and was scored
    TIMEOUT = "timeout"  # stopped: it ran out of time
    KERNEL_DIED = "kernel_died"  # its kernel process ended
    INVALID_NOTEBOOK = "invalid_notebook"  # not a notebook the grader can read
    MISSING_ANSWER = "missing_answer"  # no answer defined yet
    ERROR = "error"  # the grader could not grade it (and says why)

    @property
    def text(self) -> str:
        """What the status means, in the learner's feedback."""
        return STATUS_TEXT[self]


STATUS_TEXT = {
    Status.GRADED: "graded",
    Status.TIMEOUT: "stopped: it ran out of time",
    Status.KERNEL_DIED: "stopped: the kernel died",
    Status.INVALID_NOTEBOOK: "not a notebook the grader can read",
    Status.MISSING_ANSWER: "nothing to grade yet",
    Status.ERROR: "not graded: the grader hit a problem",
}
