"""The quick test as a form: radio buttons per question that fill the learner's ``answers`` dict.

The questions are in :mod:`backfill_lab.course.questions`, the key and scoring in
:mod:`backfill_lab.course.answers` (both re-exported here). With the key (the instructor's copy of
the workbook) the form says right or wrong after each click and explains why (self-study);
without it (the learners' bundle) the form only records the answers, which are graded later
(course mode).

The form writes every click into the dict it was given, so ``answers`` in the kernel is always
what the learner clicked. Clicks are not saved in the notebook file, so the form also prints the
dict to paste into the answers cell before submitting; typing the dict by hand works as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from types import EllipsisType
from typing import Any

from ..display.live import WidgetFallback
from ..errors import ConfigError
from ..report import escape
from .answers import (
    KEY_NOTEBOOK,
    QuizReport,
    answers_literal,
    load_key,
    normalise,
    quiz_progress,
    score_answers,
)
from .progress import grading
from .questions import LETTERS, QUESTIONS, Question, question_order

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
    "question_order",
    "quiz",
    "quiz_progress",
    "score_answers",
]


_UNSET: Any = object()


class Quiz(WidgetFallback):
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
        """``self-study`` with a key (each click is marked), ``course`` without one."""
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
        """How many are answered (and right, with a key), and the line to paste."""
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
            self._summary.value = f"<p>{escape(self.summary())}</p>"

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

            boxes = [ipywidgets.HTML(f"<p>{escape(self._intro())}</p>")]
            for n, q in enumerate(self.questions, 1):
                prompt = ipywidgets.HTML(f"<b>{n}. ({q.id})</b> {q.html()}")
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
            self._summary = ipywidgets.HTML(f"<p>{escape(self.summary())}</p>")
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
        """The form as text (what a terminal shows): the options, marked, and the summary."""
        lines = [self._intro(), ""]
        for n, q in enumerate(self.questions, 1):
            lines.append(f"{n}. ({q.id}) {q.text()}")
            mine = normalise(self.answers.get(q.id))
            for letter, text in q.choices():
                lines.append(f"   {'(x)' if mine == letter else '( )'} {letter}) {text}")
            if self.feedback(q.id):
                lines.append(f"   -> {self.feedback(q.id)}")
        lines += ["", "No interactive form here: type your answers, e.g. "
                      'answers = {"q1": "a", "q2": "c"}', self.summary()]
        return "\n".join(lines)

    def to_html(self) -> str:
        """The form as static HTML (what nbconvert and GitHub show), options disabled."""
        parts = [f"<div class='backfill-quiz'><p>{escape(self._intro())}</p>"]
        for n, q in enumerate(self.questions, 1):
            mine = normalise(self.answers.get(q.id))
            options = "".join(
                f"<li><label><input type='radio' disabled{' checked' if mine == letter else ''}>"
                f" {letter}) {escape(text)}</label></li>" for letter, text in q.choices())
            note = _html_feedback(self.feedback(q.id))
            parts.append(f"<div class='backfill-quiz-question'><div><b>{n}. ({q.id})</b> "
                         f"{q.html()}</div><ul style='list-style:none'>{options}</ul>"
                         f"{note}</div>")
        parts.append("<p>No interactive form here: type your answers in the answers cell, e.g. "
                     "<code>answers = {\"q1\": \"a\", \"q2\": \"c\"}</code>.</p>")
        parts.append(f"<p>{escape(self.summary())}</p></div>")
        return "".join(parts)



def _html_feedback(text: str) -> str:
    return f"<div class='backfill-quiz-feedback'><small>{escape(text)}</small></div>" \
        if text else ""


def quiz(answers: MutableMapping[str, Any] | EllipsisType | None = None, *,
         key: Any = _UNSET) -> Quiz:
    """The quick test as a form that writes each click into ``answers`` (a new dict if None).

    ``key`` defaults to :func:`load_key` (self-study when found, course mode otherwise; never
    while grading). Pass ``key=None`` to force course mode. Taught in exercises/quick_test.ipynb.
    """
    if answers is Ellipsis:
        answers = None
    if key is _UNSET:
        key = None if grading() else load_key()
    return Quiz(answers, key)
