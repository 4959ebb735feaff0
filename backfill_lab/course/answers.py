"""The quick test's answer key and scoring: the key found in ``solutions/quick_test.ipynb``, a
learner's answers normalised and scored against it, and how far the answers are without it.

:func:`load_key` finds the key by walking up from the working directory to
``solutions/quick_test.ipynb`` (notebook metadata ``backfill_lab.key``). In the instructor's copy
of the workbook it is there; in the learners' bundle it is not, and answers are graded later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..report import Column
from .questions import LETTERS, QUESTIONS, question_order
from .rules import RuleResult, ScoredReport

__all__ = [
    "EXERCISE",
    "KEY_NOTEBOOK",
    "QuizReport",
    "answers_literal",
    "load_key",
    "normalise",
    "quiz_progress",
    "score_answers",
]

KEY_NOTEBOOK = Path("solutions") / "quick_test.ipynb"
EXERCISE = "quick_test"


# -- the key ------------------------------------------------------------------------------
def _check_key(key: object, where: str) -> dict[str, dict[str, str]]:
    if not isinstance(key, Mapping):
        raise ConfigError.invalid(f"quiz key in {where}", "a mapping of question ids", key)
    out: dict[str, dict[str, str]] = {}
    for qid, entry in key.items():
        if not isinstance(entry, Mapping) or entry.get("answer") not in LETTERS:
            raise ConfigError.invalid(f"key[{qid!r}] in {where}",
                                      "{answer: a-d, explanation, section}", entry)
        out[str(qid)] = {"answer": str(entry["answer"]),
                         "explanation": str(entry.get("explanation", "")),
                         "section": str(entry.get("section", ""))}
    return out


def load_key(start: Path | None = None) -> dict[str, dict[str, str]] | None:
    """The quiz key from the nearest ``solutions/quick_test.ipynb`` at or above ``start`` (the
    working directory by default), or None when there is none (the learners' bundle)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / KEY_NOTEBOOK
        if path.is_file():
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))["metadata"]
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(f"{path} is not a readable notebook ({exc}); restore it "
                                  "from the project") from None
            key = meta.get("backfill_lab", {}).get("key")
            return None if key is None else _check_key(key, str(path))
    return None


def normalise(value: object) -> str | None:
    """A choice as a letter a-d, or None when it is not one (``" B "`` -> ``"b"``).

    >>> normalise(" B "), normalise("b)"), normalise("e"), normalise(2)
    ('b', 'b', None, None)
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower().rstrip(")").strip()
    return text if text in LETTERS else None


@dataclass(repr=False)
class QuizReport(ScoredReport):
    """One result per question (name = question id), with points and a message."""

    results: list[RuleResult]
    status: str = "checked"  # checked | not_answered | invalid_answers | no_key
    detail: str = ""
    exercise: str = EXERCISE

    columns = (Column("question", "code"), Column("points"), Column("message", "text"))
    name_width = 4
    show_sections = False

    def title(self) -> str:
        """``quick test: 12/15 points`` (and what was wrong with the answers, if anything)."""
        return f"quick test: {self.score:g}/{self.max_score:g} points" + (
            f" ({self.detail})" if self.detail else "")

    def html_title(self) -> str:
        """``Quick test: 12 / 15 points``."""
        return f"Quick test: {self.score:g} / {self.max_score:g} points"

    def note(self) -> str:
        """What was wrong with the answers, if anything."""
        return self.detail


def score_answers(answers: object, key: Mapping[str, Mapping[str, str]]) -> QuizReport:
    """Score ``answers`` (question id -> letter) against ``key``: one result per key question.

    Messages never contain the right answer of a question that was missed: a wrong choice
    points to the section to review; a value that is not a choice says what is expected.

    >>> key = {"q1": {"answer": "b", "explanation": "Catchup runs missed intervals.",
    ...               "section": "01 § Catchup"}}
    >>> print(score_answers({"q1": "B"}, key))
    quick test: 1/1 points
      pass  q1   correct. Catchup runs missed intervals.
    >>> print(score_answers({"q1": "e"}, key).results[0].message)
    'e' is not a choice: answer with one letter, a, b, c or d (e.g. "a").
    """
    names = sorted(key, key=question_order)
    if answers is None or answers is Ellipsis or (isinstance(answers, Mapping) and not answers):
        detail = "not answered yet: fill in `answers` (click the form or type the dict)"
        return QuizReport([RuleResult(q, False, 0.0, 1.0, detail) for q in names],
                          "not_answered", detail)
    if not isinstance(answers, Mapping):
        detail = (f"`answers` must be a dict of question id -> letter, like "
                  f'{{"q1": "a", "q2": "c"}} (got {type(answers).__name__})')
        return QuizReport([RuleResult(q, False, 0.0, 1.0, detail) for q in names],
                          "invalid_answers", detail)
    given = {str(k).strip().lower(): v for k, v in answers.items()}
    results = []
    for qid in names:
        entry = key[qid]
        section = entry.get("section", "")
        if given.get(qid) in (None, ""):
            results.append(RuleResult(qid, False, 0.0, 1.0, "not answered.", section))
            continue
        choice = normalise(given[qid])
        if choice is None:
            results.append(RuleResult(
                qid, False, 0.0, 1.0, f"{given[qid]!r} is not a choice: answer with one letter, "
                'a, b, c or d (e.g. "a").', section))
        elif choice == entry["answer"]:
            results.append(RuleResult(qid, True, 1.0, 1.0,
                                      f"correct. {entry.get('explanation', '')}".strip(),
                                      section))
        else:
            results.append(RuleResult(qid, False, 0.0, 1.0,
                                      f"not correct (you chose {choice!r}). Review: {section}.",
                                      section))
    unknown = sorted(set(given) - set(names))
    detail = f"ignored unknown question ids: {', '.join(unknown)}" if unknown else ""
    if any(u.isdigit() and f"q{u}" in names for u in unknown):
        detail += f' (question ids look like "{names[0]}", not "{names[0][1:]}")'
    return QuizReport(results, "checked", detail)


def quiz_progress(answers: object) -> str:
    """How far the answers are, without a key: how many answered, and any value that is not a
    choice (course mode's self-check).

    >>> quiz_progress({"q1": "a", "q2": "x"})
    "1/15 answered; q2: 'x' is not a choice (a, b, c or d)"
    >>> quiz_progress(...)
    'not answered yet'
    """
    if not isinstance(answers, Mapping) or not answers:
        return "not answered yet" if answers in (None, Ellipsis) or answers == {} else \
            f"`answers` must be a dict of question id -> letter (got {type(answers).__name__})"
    given = {str(k).strip().lower(): v for k, v in answers.items()}
    done = sum(1 for q in QUESTIONS if normalise(given.get(q.id)) is not None)
    junk = [f"{q.id}: {given[q.id]!r} is not a choice (a, b, c or d)" for q in QUESTIONS
            if q.id in given and normalise(given[q.id]) is None]
    return "; ".join([f"{done}/{len(QUESTIONS)} answered", *junk])


def answers_literal(answers: Mapping[str, Any]) -> str:
    """The dict as a line to paste into the answers cell, in question order.

    >>> answers_literal({"q2": "c", "q1": "a"})
    'answers = {"q1": "a", "q2": "c"}'
    """
    order = {q.id: i for i, q in enumerate(QUESTIONS)}
    items = sorted(answers.items(), key=lambda kv: (order.get(str(kv[0]), len(order)),
                                                    str(kv[0])))
    body = ", ".join(f"{json.dumps(str(k))}: {json.dumps(v)}" for k, v in items)
    return f"answers = {{{body}}}"
