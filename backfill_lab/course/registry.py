"""The graded exercises, one record each: what the notebooks, the progress table and the grader
all read instead of keeping their own lists.

An exercise is of one of two kinds: a ``plan`` (the learner defines ``plan``; it is judged by the
checklist rules and replayed on the exercise's staged incident, the scenario of the same id) or
the ``quiz`` (the learner defines ``answers``; they are scored against the key kept in the solution
notebook). Code that treats the two differently branches on :attr:`Exercise.kind`, never on an id.

>>> exercise("ex1").kind, exercise("ex1").answer, exercise("quick_test").scenario
(<Kind.PLAN: 'plan'>, 'plan', None)
>>> [e.id for e in EXERCISES if e.kind is Kind.QUIZ]
['quick_test']
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import UnknownNameError

__all__ = ["EXERCISES", "IDS", "Exercise", "Kind", "exercise", "quiz_exercise"]


class Kind(enum.StrEnum):
    """What a learner hands in: a ``plan`` (judged and replayed) or quiz ``answers``."""

    PLAN = "plan"
    QUIZ = "quiz"


@dataclass(frozen=True)
class Exercise:
    """One graded exercise: its id (the notebooks' ``backfill_lab.exercise``), the title the
    progress table shows, its notebook in ``exercises/`` and ``solutions/``, its kind, the name
    of the variable the learner defines, its scenario (plans only) and its hints, revealed in
    order (each a little more specific than the one before)."""

    id: str
    title: str
    notebook: str
    kind: Kind
    answer: str
    scenario: str | None
    hints: tuple[str, ...]

    @property
    def is_quiz(self) -> bool:
        """True for the quiz (answers scored against a key), False for a plan exercise."""
        return self.kind is Kind.QUIZ


def _plan(id: str, title: str, notebook: str, *hints: str) -> Exercise:
    return Exercise(id, title, notebook, Kind.PLAN, "plan", id, hints)


EXERCISES: tuple[Exercise, ...] = (
    _plan("ex1", "Exercise 1 · December backfill", "ex1_december_backfill.ipynb",
          "Process upstream to downstream for each day.",
          "Cap concurrency at what the warehouse takes.",
          "Compare row counts across layers and days.",
          "Pin the code version that is deployed for the whole range, and tag every write "
          "with a ticket and an owner.",
          "Decide how you would undo a bad write before you make it: the plan format has a "
          "rollback section.",
          "Use at least three of the five checklist items, with bounds that a healthy day "
          "passes."),
    _plan("ex2", "Exercise 2 · Late data", "ex2_late_data.ipynb",
          "Process day D only once its late events can have arrived: count from the moment "
          "the day closes, not from when it starts.",
          "The rolling window is insurance behind the watermark: work out how many hours "
          "after day D closes its last rerun runs, and compare that with the lateness.",
          "A rerun must not count an event twice: upsert on the keys that identify a row of "
          "features.",
          "The plan format has a late_data section for the watermark delay and the window.",
          "A merge needs the keys that identify one row of the features table.",
          "With a schedule, the range is the period the schedule covers."),
    _plan("mini_challenge", "Mini challenge · Drifted features", "mini_challenge.ipynb",
          "Target only the five drifted days.",
          "Write the fix beside the old version, or snapshot before overwriting.",
          "Switch readers only after validation; keep a way back.",
          "Drift is what monitoring found: the check that proves it gone belongs in your "
          "validations.",
          "Readers use the view 'features'. A versioned target needs a switchover to that "
          "view; an in-place fix needs a snapshot to go back to."),
    Exercise("quick_test", "Quick test", "quick_test.ipynb", Kind.QUIZ, "answers", None,
             ("Each question names a notebook section; reread it before you answer.",)),
)

#: Every exercise id, in the course's order.
IDS: tuple[str, ...] = tuple(e.id for e in EXERCISES)


def exercise(id: str) -> Exercise:
    """The exercise of an id; an unknown id raises, naming the known ones (and a close one).

    >>> exercise("ex11")
    Traceback (most recent call last):
    ...
    backfill_lab.errors.UnknownNameError: unknown exercise 'ex11'; known: ... Did you mean 'ex1'?
    """
    for e in EXERCISES:
        if e.id == id:
            return e
    raise UnknownNameError.of("exercise", str(id), IDS)


def quiz_exercise() -> Exercise:
    """The exercise of kind ``quiz`` (its solution notebook holds the key)."""
    return next(e for e in EXERCISES if e.is_quiz)
