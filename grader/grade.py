"""Grade one submission: read it, run it in a fresh kernel, score what it defined.

:func:`grade_notebook` is the library API. The CLI runs the two halves apart, in parallel workers:
:func:`run_notebook` once per file, then :func:`grader.judge.judge_limited` once per distinct plan.
Whatever the submission does, it gets a :class:`~grader.report.GradeResult` with one of the
statuses ``graded``, ``timeout``, ``kernel_died``, ``invalid_notebook``, ``missing_answer`` or
``error`` and a reason, and the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat

from backfill_lab.course import registry

from .execute import Execution, Limits, Sandbox, run_submission
from .inputs import InputError, read_regular
from .judge import Judged, JudgeLimits, judge_limited
from .report import GradeResult
from .score import TestResult, load_key, max_score, read_plan, score_quiz, zero_tests
from .status import Status

__all__ = ["PROJECT_ROOT", "ProjectGuard", "conclude", "failed", "grade_notebook", "out_problem",
           "parse_submission", "read_submission", "run_notebook", "settle", "worker_lost"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GUARDED = ("backfill_lab", "grader", "solutions", "exercises", "notebooks", "tools",
           "pyproject.toml", "Makefile")
CODE = ("backfill_lab", "grader", "tools")  # guarded folders whose files could be run


def out_problem(out: Path, root: Path = PROJECT_ROOT) -> str | None:
    """Why ``out`` cannot be the grader's output folder, or None when it can.

    The grader's own results are never counted as tampering (:class:`ProjectGuard` leaves the
    output folder out), so the folder must not hold guarded files nor lie among the project's
    code: there, leaving it out would leave a submission's writes unseen.
    """
    out = out.resolve()
    for entry in GUARDED:
        path = (root / entry).resolve()
        if path.is_relative_to(out) or (entry in CODE and out.is_relative_to(path)):
            return (f"'--out' must be a folder of its own, not one that holds or lies inside "
                    f"the project's {entry} (got {str(out)!r}); use e.g. build/grades")
    return None


class ProjectGuard:
    """Fingerprints of the project's files, to prove a submission changed none of them.

    ``exclude`` names folders the grader itself writes while it grades (its ``--out``): they
    are not the project's files, so what the grader writes there never counts as a change.
    """

    def __init__(self, root: Path = PROJECT_ROOT, entries: Iterable[str] = GUARDED, *,
                 exclude: Iterable[Path] = ()) -> None:
        self.root = root
        self.entries = tuple(entries)
        self.exclude = tuple(Path(p).resolve() for p in exclude)
        self.baseline = self.fingerprint()

    def _files(self) -> Iterable[Path]:
        for entry in self.entries:
            path = self.root / entry
            if path.is_file():
                yield path
            elif path.is_dir():
                for f in sorted(path.rglob("*")):
                    if f.is_file() and "__pycache__" not in f.parts and \
                            ".ipynb_checkpoints" not in f.parts and f.suffix != ".pyc" and \
                            not any(f.resolve().is_relative_to(x) for x in self.exclude):
                        yield f

    def fingerprint(self) -> dict[str, str]:
        """SHA-256 of every guarded file, by its path relative to the root."""
        out = {}
        for f in self._files():
            out[str(f.relative_to(self.root))] = hashlib.sha256(f.read_bytes()).hexdigest()
        return out

    def changed(self) -> list[str]:
        """Project files added, removed or modified since the guard was made."""
        now = self.fingerprint()
        return sorted(k for k in set(now) | set(self.baseline)
                      if now.get(k) != self.baseline.get(k))


def read_submission(path: Path) -> tuple[nbformat.NotebookNode | None, str]:
    """The notebook (upgraded to nbformat 4), or None and why it cannot be graded (only a
    regular file is read, never through a link: see :func:`grader.inputs.read_regular`)."""
    try:
        raw = read_regular(path)
    except InputError as exc:
        return None, str(exc)
    return parse_submission(raw, path.name)


def parse_submission(raw: bytes, name: str) -> tuple[nbformat.NotebookNode | None, str]:
    """:func:`read_submission` of bytes already read (``name`` is the file's, for reasons)."""
    path = Path(name)
    try:
        text = raw.decode("utf-8")
        data = json.loads(text)
    except ValueError as exc:  # not UTF-8, not JSON, or JSON no notebook holds (a 5,000-digit int)
        return None, f"{path.name} is not a notebook (not JSON: {str(exc).splitlines()[0]})"
    except RecursionError:  # a notebook is a few levels deep; '[[[[...' crashed the batch
        return None, (f"{path.name} is not a notebook (its JSON is nested too deep to be one); "
                      f"submit the notebook as Jupyter saved it")
    if not isinstance(data, dict) or ("cells" not in data and "worksheets" not in data):
        return None, f"{path.name} is JSON but not a Jupyter notebook (no cells)"
    try:
        nb = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several kinds for broken notebooks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"{path.name} is not a valid notebook: {first[:200]}"
    return nb, ""


def _exercise_of(nb: nbformat.NotebookNode, override: str | None) -> str | None:
    if override:
        return override
    meta = nb.metadata.get("backfill_lab", {})
    value = meta.get("exercise") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def grade_notebook(
    path: str | Path,
    *,
    exercise: str | None = None,
    limits: Limits | None = None,
    key: dict[str, Any] | None = None,
    root: Path = PROJECT_ROOT,
    sandbox: Sandbox | None = None,
    guard: ProjectGuard | None = None,
    name: str | None = None,
    judging: JudgeLimits | None = None,
) -> GradeResult:
    """Grade the notebook at ``path`` and return its result (never raises for a submission).

    ``exercise`` overrides the id in the notebook's metadata; ``key`` is the quiz key (read from
    ``root/solutions`` when omitted); ``sandbox`` confines the kernel (see
    :func:`grader.execute.isolation`); ``guard`` checks the project's files after the run;
    ``judging`` limits the judge of its plan (see :mod:`grader.judge`).
    """
    result, plan_json = run_notebook(path, exercise=exercise, limits=limits, key=key,
                                     root=root, sandbox=sandbox, guard=guard, name=name)
    if plan_json is not None and result.exercise is not None:
        judged = judge_limited(result.exercise, plan_json, judging)
        settle(result, judged, judged.seconds, key if key is not None else load_key(root))
    return result


def run_notebook(
    path: str | Path,
    *,
    exercise: str | None = None,
    limits: Limits | None = None,
    key: dict[str, Any] | None = None,
    root: Path = PROJECT_ROOT,
    sandbox: Sandbox | None = None,
    guard: ProjectGuard | None = None,
    name: str | None = None,
) -> tuple[GradeResult, str | None]:
    """:func:`grade_notebook` but for judging the plan: ``(result, plan_json)``.

    ``plan_json`` is None when ``result`` is final; otherwise it is the plan to judge (with
    :func:`grader.score.judge`) and hand to :func:`conclude`. A batch judges each distinct plan
    once, wherever a worker is free, instead of once per worker that meets it.
    """
    path = Path(path)
    limits = limits or Limits()
    if key is None:
        key = load_key(root)
    t0 = time.perf_counter()
    result = GradeResult(name or path.name, exercise, Status.ERROR,
                         isolated=bool(sandbox and sandbox.isolated))
    try:
        raw = read_regular(path)
    except InputError as exc:
        nb, why = None, str(exc)
    else:
        result.sha256 = hashlib.sha256(raw).hexdigest()
        nb, why = parse_submission(raw, path.name)
    if nb is None:
        result.status, result.reason = Status.INVALID_NOTEBOOK, why
        result.max_score = max_score(exercise, key)
        result.tests = zero_tests(exercise, key, why)
        result.duration = time.perf_counter() - t0
        return result, None
    ex = _exercise_of(nb, exercise)
    result.exercise = ex
    if ex not in registry.IDS:
        result.reason = (f"unknown exercise {ex!r} in the notebook's metadata; pass --exercise "
                         f"with one of {', '.join(registry.IDS)}" if ex else
                         f"the notebook names no exercise (metadata backfill_lab.exercise); "
                         f"pass --exercise with one of {', '.join(registry.IDS)}")
        result.duration = time.perf_counter() - t0
        return result, None
    result.max_score = max_score(ex, key)
    kind = registry.exercise(ex)
    if kind.is_quiz and not key:
        result.reason = (f"no quiz key: solutions/{kind.notebook} is missing or has no key")
        result.duration = time.perf_counter() - t0
        return result, None
    run: Execution = run_submission(nb, limits, sandbox=sandbox)
    result.failed_cells = run.failed_cells
    if run.output_truncated:
        result.notes.append("Some cell output was longer than the grader keeps and was cut.")
    if guard is not None:
        changed = guard.changed()
        if changed:
            result.status = Status.ERROR
            result.reason = (f"project files changed while this submission ran: "
                             f"{', '.join(changed[:5])}; the grading environment is no longer "
                             f"trusted")
            result.tests = zero_tests(ex, key, result.reason)
            result.duration = time.perf_counter() - t0
            return result, None
    if run.status != Status.GRADED or run.data is None:
        result.status, result.reason = Status(run.status), run.reason
        result.tests = zero_tests(ex, key, run.reason)
        result.duration = time.perf_counter() - t0
        return result, None
    plan_json = None
    if kind.is_quiz:
        result.status, result.tests = score_quiz(run.data, key)
    else:
        result.status, result.tests, plan_json = read_plan(run.data, ex)
    result.duration = time.perf_counter() - t0
    if plan_json is None:
        conclude(result, result.tests)
    return result, plan_json


def worker_lost(path: str | Path, *, exercise: str | None = None,
                key: dict[str, Any] | None = None, name: str | None = None) -> GradeResult:
    """The result of a submission whose grading process died while it ran, alone: the
    submission killed it (possible only without the sandbox) or took all the memory."""
    path = Path(path)
    reason = ("the process grading this submission died while it ran (did it kill processes, "
              "or use up the memory?); nothing else was affected")
    return failed(path, reason, exercise=exercise, key=key, name=name)


def failed(path: str | Path, reason: str, *, exercise: str | None = None,
           key: dict[str, Any] | None = None, name: str | None = None) -> GradeResult:
    """The result of a submission the grader could not grade: status ``error``, every test of
    its exercise at zero with ``reason``."""
    path = Path(path)
    try:
        raw: bytes | None = read_regular(path)
    except InputError:
        raw = None
    nb = parse_submission(raw, path.name)[0] if raw is not None else None
    ex = _exercise_of(nb, exercise) if nb is not None else exercise
    result = GradeResult(name or path.name, ex, Status.ERROR, reason=reason,
                         sha256=hashlib.sha256(raw).hexdigest() if raw is not None else "")
    if ex in registry.IDS:
        result.max_score = max_score(ex, key)
        result.tests = zero_tests(ex, key, reason)
    return result


def settle(result: GradeResult, judged: Judged, seconds: float,
           key: dict[str, Any] | None) -> GradeResult:
    """Finish ``result`` with its plan's verdict, or, when judging it failed, status ``error``,
    the reason, and every test at zero (:func:`conclude` does the rest)."""
    result.replay = judged.picture  # the grid the replay left, for the feedback's picture
    if not judged.error:
        return conclude(result, list(judged.tests), seconds)
    result.status = Status.ERROR
    result.reason = f"the grader could not judge this plan: {judged.error}"
    return conclude(result, zero_tests(result.exercise, key, result.reason), seconds)


def conclude(result: GradeResult, tests: list[TestResult], seconds: float = 0.0) -> GradeResult:
    """Finish ``result`` with its ``tests`` (and ``seconds`` more of grading time): the reason
    for a missing answer, the note on cells that raised."""
    result.tests = list(tests)
    result.duration += seconds
    if result.status == Status.MISSING_ANSWER and result.exercise in registry.IDS:
        result.reason = f"no `{registry.exercise(result.exercise).answer}` to grade"
    if result.failed_cells and result.status == Status.GRADED:
        cells = ", ".join(str(c["cell"]) for c in result.failed_cells)
        result.notes.append(f"Cells {cells} raised an error; the rest of the notebook still ran.")
    return result
