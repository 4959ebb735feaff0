"""The Safe Backfills autograder: nbclient execution, scoring outside the learner's kernel.

``grade_notebook(path)`` grades one submission and returns a :class:`GradeResult`; the
``backfill-grader`` command grades folders in parallel and writes results an LMS can import.
"""

import sys

# nbformat imports jsonschema, which imports rfc3987_syntax (when installed) for its "iri"
# format checks, and that compiles a grammar at import: about 0.7 s of every grading batch's
# start-up, before any worker can start. nbformat validates notebooks without format checks,
# so the grader goes without it (jsonschema then simply has no "iri" checkers in this process).
if "jsonschema" not in sys.modules:
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from .execute import Execution, Limits, Sandbox, isolation, run_submission
from .grade import ProjectGuard, grade_notebook, read_submission
from .judge import JudgeLimits
from .report import GradeResult, write_gradebook, write_result
from .score import TestResult, VerdictCache, load_key, score_plan, score_quiz
from .status import Status

__all__ = [
    "Execution",
    "GradeResult",
    "JudgeLimits",
    "Limits",
    "ProjectGuard",
    "Sandbox",
    "Status",
    "TestResult",
    "VerdictCache",
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
