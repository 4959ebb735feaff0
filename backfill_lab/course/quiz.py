"""The quick test: single-choice questions, a form that fills the learner's ``answers`` dict, and
scoring against a key that lives only in ``solutions/quick_test.ipynb``.

The questions are here; the answers are not. :func:`load_key` finds the key by walking up from
the working directory to ``solutions/quick_test.ipynb`` (notebook metadata
``backfill_lab.key``). In the instructor's copy of the workbook it is there: the form says right
or wrong after each click and explains why (self-study). In the learners' bundle it is not: the
form only records the answers, which are graded later (course mode).

The form writes every click into the dict it was given, so ``answers`` in the kernel is always
what the learner clicked. Clicks are not saved in the notebook file, so the form also prints the
dict to paste into the answers cell before submitting; typing the dict by hand works as well.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .progress import grading
from .rules import RuleResult, ScoredReport

__all__ = [
    "KEY_NOTEBOOK",
    "LETTERS",
    "QUESTIONS",
    "Question",
    "Quiz",
    "QuizReport",
    "answers_literal",
    "load_key",
    "normalise",
    "quiz",
    "quiz_progress",
    "score_answers",
]

LETTERS: tuple[str, ...] = ("a", "b", "c", "d")
KEY_NOTEBOOK = Path("solutions") / "quick_test.ipynb"
EXERCISE = "quick_test"


@dataclass(frozen=True)
class Question:
    """One single-choice question: an id (``q1``), the prompt, and four options a-d."""

    id: str
    topic: str
    prompt: str
    options: tuple[str, str, str, str]

    def choices(self) -> list[tuple[str, str]]:
        """``[("a", text), ...]``."""
        return list(zip(LETTERS, self.options, strict=True))


QUESTIONS: tuple[Question, ...] = (
    Question("q1", "key terms: catchup",
             "The scheduler was stopped for three nights. When it starts again with catchup "
             "on, what does it do?",
             ("It rebuilds every partition of the table, from the first day on.",
              "It runs each scheduled interval it missed since its last successful run, "
              "oldest first.",
              "Nothing, until an engineer triggers a backfill for the missed days.",
              "It skips the missed nights and carries on with tonight's run.")),
    Question("q2", "key terms: backfill",
             "What makes a run a backfill rather than a normal scheduled run?",
             ("It always runs every layer of the pipeline.",
              "It rewrites the newest partition only.",
              "Someone triggers it for a chosen range of past partitions.",
              "It reads a partition to check that consumers can still load it.")),
    Question("q3", "key terms: idempotency",
             "A backfill step is idempotent when ...",
             ("it never fails, so it never needs a retry.",
              "it finishes within one schedule interval.",
              "it writes its output to a new table on every run.",
              "running it again leaves the data exactly as one run left it.")),
    Question("q4", "common mistake: non-idempotent writes",
             "A backfill that writes in append mode is run a second time over the same days "
             "(someone reran it to be sure). What do those partitions hold now?",
             ("Every row twice: sums and counts downstream double.",
              "The same rows as before: the warehouse drops the repeated ones.",
              "Only the rows of the second run: append replaces the partition.",
              "Nothing: the second run refuses to start.")),
    Question("q5", "design step: write mode",
             "Each run rebuilds a day's partition from scratch. Which write makes a rerun "
             "harmless?",
             ("Append the new rows and delete old ones at the end of the month.",
              "Overwrite exactly that partition, in one transaction.",
              "Insert the rows with a new run-id column, and keep every version.",
              "Truncate the whole table, then append the day.")),
    Question("q6", "design step: concurrency",
             "A shared warehouse takes 4 concurrent writes and nightly jobs use some of them. "
             "How parallel should a 31-day backfill be?",
             ("31 runs at once, one per partition: it finishes fastest.",
              "As many as the orchestrator's worker pool allows.",
              "Capped within what the warehouse can take, raised only while throughput holds.",
              "Always one at a time: parallel backfills are never safe.")),
    Question("q7", "common mistake: ignoring dependencies",
             "features reads a trailing 7-day window of staging, which reads raw. In what "
             "order do you backfill three layers over a month?",
             ("For each day upstream before downstream (raw, staging, features), oldest "
              "day first.",
              "features for every day first, then staging, then raw.",
              "Newest day first, so today's features are fixed soonest.",
              "Any order: overwrite makes the order irrelevant.")),
    Question("q8", "design step: exact range",
             "The ledger shows raw failed for 03-01..03-03 and features (7-day window) failed "
             "for 03-01..03-09. What do you backfill?",
             ("Every layer for the whole month, to be safe.",
              "features only, for 03-01..03-09.",
              "Every layer for 03-01..03-09.",
              "Every layer for 03-01..03-03, then features only for 03-04..03-09.")),
    Question("q9", "validation checklist",
             "A bad config multiplied one feature column by 1.8 on two days. Row counts, "
             "nulls and keys look normal. Which check catches it?",
             ("Row count within expected bounds.",
              "Feature distribution drift against a baseline.",
              "Key uniqueness.",
              "The null-rate check.")),
    Question("q10", "common mistake: mixing code versions",
             "A release is deployed while your backfill is halfway through. What is the safe "
             "behaviour?",
             ("Carry on: each remaining day uses whatever code is deployed when it runs.",
              "Lower the concurrency so that fewer days run on the new code.",
              "Pin one code version for the whole range: stop rather than mix, then resume "
              "on that version.",
              "Run the remaining days on both versions and keep the larger output.")),
    Question("q11", "late data: watermark",
             "Events reach the warehouse up to 48 hours late and the daily job runs at 02:00 "
             "UTC. When should day D be processed for the first time?",
             ("Once a watermark delay of two days has passed, so its late events can have "
              "arrived.",
              "At 02:00 the morning after D: late events are too few to matter.",
              "Only at the end of the month, when nothing can arrive any more.",
              "Every hour, appending whatever arrived since the last run.")),
    Question("q12", "late data: rolling reprocessing",
             "Why does the nightly job also rerun the last 2-3 partitions, merging on "
             "(entity_id, date)?",
             ("To spread the warehouse load more evenly over the night.",
              "Because append mode cannot write to partitions older than a day.",
              "To recompute features with the newest code version every night.",
              "To pick up stragglers that arrived after the first processing, without "
              "counting any event twice.")),
    Question("q13", "switchover",
             "You recomputed 90 days into features_v2 beside features_v1. When do readers "
             "switch to v2?",
             ("As soon as the backfill reports success.",
              "After every targeted partition passed validation (and a canary comparison), "
              "in one atomic switch you can roll back.",
              "Before the backfill starts, so they see new partitions as they land.",
              "Never: overwrite v1 in place instead, it is simpler.")),
    Question("q14", "design step: lineage",
             "Months later someone asks why December's features changed, who did it and from "
             "which inputs. What answers that?",
             ("The table's size history in the warehouse.",
              "The orchestrator's log files, if they are still kept.",
              "A backfill id, audit tags on every write, and a ledger row per write with its "
              "code version and the upstream partitions it read.",
              "The modification times of the partition files.")),
    Question("q15", "validation checklist",
             "A retry wrote 10 % of one partition's rows a second time. Which check flags "
             "that partition?",
             ("Key uniqueness on (entity_id, date).",
              "Distribution drift with a PSI threshold of 0.2.",
              "The null-rate check.",
              "A downstream read test.")),
)
_BY_ID = {q.id: q for q in QUESTIONS}


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


def question_order(qid: str) -> tuple[int, str]:
    """``q2`` before ``q10`` (keys read from JSON come sorted as text)."""
    digits = qid.lstrip("q")
    return (int(digits) if digits.isdigit() else 10**6, qid)


# -- scoring ------------------------------------------------------------------------------
def normalise(value: object) -> str | None:
    """A choice as a letter a-d, or None when it is not one (``" B "`` -> ``"b"``).

    >>> normalise(" B "), normalise("b)"), normalise("e"), normalise(2)
    ('b', 'b', None, None)
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower().rstrip(")").strip()
    return text if text in LETTERS else None


@dataclass
class QuizReport(ScoredReport):
    """One result per question (name = question id), with points and a message."""

    results: list[RuleResult]
    status: str = "checked"  # checked | not_answered | invalid_answers | no_key
    detail: str = ""
    exercise: str = EXERCISE

    def __str__(self) -> str:
        head = f"quick test: {self.score:g}/{self.max_score:g} points"
        if self.detail:
            head += f" ({self.detail})"
        lines = [head]
        for r in self.results:
            lines.append(f"  {'pass' if r.passed else 'FAIL'}  {r.name:<4} {r.message}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr style='background:{'#e8f5e9' if r.passed else '#ffebee'}'>"
            f"<td>{'✔' if r.passed else '✘'}</td><td><code>{r.name}</code></td>"
            f"<td>{r.points:g}/{r.max_points:g}</td>"
            f"<td style='text-align:left'>{html.escape(r.message)}</td></tr>"
            for r in self.results)
        note = f"<p>{html.escape(self.detail)}</p>" if self.detail else ""
        return (f"<div class='backfill-check'><h4>Quick test: {self.score:g} / "
                f"{self.max_score:g} points</h4>{note}<table><tr><th></th><th>question</th>"
                f"<th>points</th><th>message</th></tr>{rows}</table></div>")


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


# -- the form -----------------------------------------------------------------------------
_UNSET: Any = object()


class Quiz:
    """The quick test as a form: radio buttons per question that fill ``answers`` live.

    Root CSS class ``backfill-quiz``, one ``backfill-quiz-question`` per question. With a key
    (self-study) each click is marked right or wrong with an explanation; without one (course
    mode) the form records the choice and says it is graded later.
    """

    def __init__(self, answers: MutableMapping[str, Any] | None = None,
                 key: Mapping[str, Mapping[str, str]] | None = None,
                 questions: Iterable[Question] = QUESTIONS) -> None:
        if answers is not None and not isinstance(answers, MutableMapping):
            raise ConfigError.invalid("answers", 'a dict like {"q1": "a"} (or None)', answers)
        self.answers: MutableMapping[str, Any] = {} if answers is None else answers
        self.key = key
        self.questions = tuple(questions)
        self._widget: Any = None
        self._feedback: dict[str, Any] = {}
        self._radios: dict[str, Any] = {}
        self._summary: Any = None

    @property
    def mode(self) -> str:
        return "self-study" if self.key else "course"

    def feedback(self, qid: str) -> str:
        """What the form says under question ``qid`` for the current answer."""
        raw = self.answers.get(qid)
        if raw is None:
            return ""
        choice = normalise(raw)
        if choice is None:
            return f"{raw!r} is not a choice: pick a, b, c or d."
        if not self.key or qid not in self.key:
            return f"saved: {qid} = {choice!r}. Answers are graded later."
        entry = self.key[qid]
        verdict = "✔ right." if choice == entry["answer"] else "✘ not quite."
        return f"{verdict} {entry.get('explanation', '')} (see {entry.get('section', '')})"

    def summary(self) -> str:
        done = sum(1 for q in self.questions if normalise(self.answers.get(q.id)) is not None)
        line = f"{done}/{len(self.questions)} answered."
        if self.key:
            right = sum(1 for q in self.questions if q.id in self.key
                        and normalise(self.answers.get(q.id)) == self.key[q.id]["answer"])
            line += f" {right} right so far."
        return (f"{line} Clicks are not saved in the notebook: before you submit, paste this "
                f"line into the answers cell: {answers_literal(self.answers)}")

    def select(self, qid: str, letter: str | None) -> None:
        """Choose ``letter`` for ``qid`` (None clears it), exactly as a click on the form does."""
        if qid not in {q.id for q in self.questions}:
            raise ConfigError.invalid("question id", f"one of q1..q{len(self.questions)}", qid)
        choice = None if letter is None else normalise(letter)
        if letter is not None and choice is None:
            raise ConfigError.invalid(qid, "one of the letters a, b, c, d", letter)
        radio = self._radios.get(qid)
        if radio is not None and radio.value != choice:
            radio.value = choice  # the radio's observer records it, as for a click
            return
        if choice is None:
            self.answers.pop(qid, None)
        else:
            self.answers[qid] = choice
        self._refresh(qid)

    def _refresh(self, qid: str) -> None:
        if qid in self._feedback:
            self._feedback[qid].value = _html_feedback(self.feedback(qid))
        if self._summary is not None:
            self._summary.value = f"<p>{html.escape(self.summary())}</p>"

    def _intro(self) -> str:
        if self.key:
            return ("Self-study mode: each answer is marked right or wrong as you click, with "
                    "the reason and where the workbook explains it.")
        return ("Course mode: your clicks fill the `answers` dict; they are graded later, when "
                "you submit the notebook.")

    @property
    def widget(self) -> Any:
        """The form as an ipywidget (built on first use)."""
        if self._widget is None:
            import ipywidgets

            boxes = [ipywidgets.HTML(f"<p>{html.escape(self._intro())}</p>")]
            for n, q in enumerate(self.questions, 1):
                prompt = ipywidgets.HTML(f"<b>{n}. ({q.id})</b> {html.escape(q.prompt)}")
                current = normalise(self.answers.get(q.id))
                radio = ipywidgets.RadioButtons(
                    options=[(f"{letter}) {text}", letter) for letter, text in q.choices()],
                    value=current, layout=ipywidgets.Layout(width="auto"))
                radio.observe(self._on_click(q.id), names="value")
                feedback = ipywidgets.HTML(_html_feedback(self.feedback(q.id)))
                box = ipywidgets.VBox([prompt, radio, feedback])
                box.add_class("backfill-quiz-question")
                self._radios[q.id] = radio
                self._feedback[q.id] = feedback
                boxes.append(box)
            self._summary = ipywidgets.HTML(f"<p>{html.escape(self.summary())}</p>")
            boxes.append(self._summary)
            root = ipywidgets.VBox(boxes)
            root.add_class("backfill-quiz")
            self._widget = root
        return self._widget

    def _on_click(self, qid: str) -> Any:
        def handler(change: dict[str, Any]) -> None:
            value = change["new"]
            if value is None:
                self.answers.pop(qid, None)
            else:
                self.answers[qid] = value
            self._refresh(qid)
        return handler

    def to_text(self) -> str:
        lines = [self._intro(), ""]
        for n, q in enumerate(self.questions, 1):
            lines.append(f"{n}. ({q.id}) {q.prompt}")
            mine = normalise(self.answers.get(q.id))
            for letter, text in q.choices():
                lines.append(f"   {'(x)' if mine == letter else '( )'} {letter}) {text}")
            if self.feedback(q.id):
                lines.append(f"   -> {self.feedback(q.id)}")
        lines += ["", "No interactive form here: type your answers, e.g. "
                      'answers = {"q1": "a", "q2": "c"}', self.summary()]
        return "\n".join(lines)

    def to_html(self) -> str:
        parts = [f"<div class='backfill-quiz'><p>{html.escape(self._intro())}</p>"]
        for n, q in enumerate(self.questions, 1):
            mine = normalise(self.answers.get(q.id))
            options = "".join(
                f"<li><label><input type='radio' disabled{' checked' if mine == letter else ''}>"
                f" {letter}) {html.escape(text)}</label></li>" for letter, text in q.choices())
            note = _html_feedback(self.feedback(q.id))
            parts.append(f"<div class='backfill-quiz-question'><p><b>{n}. ({q.id})</b> "
                         f"{html.escape(q.prompt)}</p><ul style='list-style:none'>{options}</ul>"
                         f"{note}</div>")
        parts.append("<p>No interactive form here: type your answers in the answers cell, e.g. "
                     "<code>answers = {\"q1\": \"a\", \"q2\": \"c\"}</code>.</p>")
        parts.append(f"<p>{html.escape(self.summary())}</p></div>")
        return "".join(parts)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.to_text(), "text/html": self.to_html()}
        view = self.widget._repr_mimebundle_().get("application/vnd.jupyter.widget-view+json")
        if view is not None:
            bundle["application/vnd.jupyter.widget-view+json"] = view
        return bundle


def _html_feedback(text: str) -> str:
    return f"<div class='backfill-quiz-feedback'><small>{html.escape(text)}</small></div>" \
        if text else ""


def quiz(answers: MutableMapping[str, Any] | None = None, *, key: Any = _UNSET) -> Quiz:
    """The quick test as a form that writes each click into ``answers`` (a new dict if None).

    ``key`` defaults to :func:`load_key` (self-study when found, course mode otherwise; never
    while grading). Pass ``key=None`` to force course mode.
    """
    if answers is Ellipsis:
        answers = None
    if key is _UNSET:
        key = None if grading() else load_key()
    return Quiz(answers, key)
