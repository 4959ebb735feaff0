"""The Safe Backfills autograder: nbclient execution, scoring outside the learner's kernel.

``grade_notebook(path)`` grades one submission and returns a :class:`GradeResult`; the
``backfill-grader`` command grades folders in parallel and writes results an LMS can import.
"""

from .execute import Execution, Limits, Sandbox, isolation, run_submission
from .grade import ProjectGuard, grade_notebook, read_submission
from .report import GradeResult, write_gradebook, write_result
from .score import TestResult, load_key, score_plan, score_quiz

__all__ = [
    "Execution",
    "GradeResult",
    "Limits",
    "ProjectGuard",
    "Sandbox",
    "TestResult",
    "grade_notebook",
    "isolation",
    "load_key",
    "read_submission",
    "run_submission",
    "score_plan",
    "score_quiz",
    "write_gradebook",
    "write_result",
]
