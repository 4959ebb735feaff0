"""A learner who wants to take a whole batch down: every submission must still get its row.

Found by a helper acting as a hostile learner: each of these files crashed ``backfill-grader
grade`` with a traceback and no gradebook, so every classmate in the batch lost their grade.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

from grader.cli import main
from grader.report import output_name

from .test_grader_units import _fake_batch, _fake_run

NOTEBOOK = {"metadata": {"backfill_lab": {"exercise": "ex1"}}, "cells": [], "nbformat": 4,
            "nbformat_minor": 5}


def _rows(out: Path) -> dict[str, str]:
    with (out / "gradebook.csv").open() as handle:
        return {r["submission"]: r["status"] for r in csv.DictReader(handle)}


def test_a_notebook_nested_too_deep_is_invalid_and_the_batch_goes_on(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "deep_json_crashes_batch.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    deep_meta = dict(NOTEBOOK, metadata={**NOTEBOOK["metadata"], "x": "@"})
    text = json.dumps(deep_meta).replace('"@"', "[" * 200_000 + "]" * 200_000)
    (subs / "deep_metadata_crashes_batch.ipynb").write_text(text)
    (subs / "bigint_crashes_batch.ipynb").write_text(  # JSON, but no notebook holds it
        json.dumps(NOTEBOOK)[:-1] + ', "x": ' + "9" * 5000 + "}")
    for extra in ([], ["--exercise", "ex1"]):
        out = tmp_path / f"out{len(extra)}"
        assert main(["grade", str(subs), "--out", str(out), "--jobs", "1", *extra]) == 0
        rows = _rows(out)
        assert rows == {"deep_json_crashes_batch.ipynb": "invalid_notebook",
                        "deep_metadata_crashes_batch.ipynb": "invalid_notebook",
                        "bigint_crashes_batch.ipynb": "invalid_notebook"}
        page = json.loads((out / "deep_json_crashes_batch.json").read_text())
        assert "nested too deep" in page["reason"]
    capsys.readouterr()


def test_a_file_name_that_is_not_utf8_gets_its_row(tmp_path, monkeypatch, capsys):
    subs = _fake_batch(tmp_path, monkeypatch, _fake_run, ("a-honest",))
    shutil.copy(subs / "a-honest.ipynb", os.fsencode(subs) + b"/a-bad_\xff_name.ipynb")
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "1"]) == 0
    rows = _rows(out)
    assert set(rows) == {"a-honest.ipynb", "a-bad_\ufffd_name.ipynb"}
    assert "\ufffd" in (out / "a-bad_\ufffd_name.html").read_text()
    capsys.readouterr()


def test_a_folder_named_like_a_result_file_cannot_take_a_classmates_row(
        tmp_path, monkeypatch, capsys):
    """``alice/sub.ipynb`` writes ``alice/sub.json``; a folder ``alice/sub.json/`` of another
    submission made the batch stop on a FileExistsError. A notebook named ``report.ipynb``
    wrote ``report.html``, the class report's page."""
    subs = _fake_batch(tmp_path, monkeypatch, _fake_run, ())
    for rel in ("alice/sub.ipynb", "alice/sub.json/a-x.ipynb", "bob/a-honest.ipynb",
                "report.ipynb", "alice/sub.html/a-y.ipynb"):
        (subs / rel).parent.mkdir(parents=True, exist_ok=True)
        (subs / rel).write_text(json.dumps(NOTEBOOK))
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "1"]) == 0
    assert set(_rows(out)) == {"alice/sub.ipynb", "alice/sub.json/a-x.ipynb",
                               "bob/a-honest.ipynb", "report.ipynb", "alice/sub.html/a-y.ipynb"}
    assert json.loads((out / "alice" / "sub.json").read_text())["submission"] == \
        "alice/sub.ipynb"
    assert "class report" in (out / "report.html").read_text().lower()
    capsys.readouterr()


def test_output_names_never_clash_with_each_other_or_the_batch_files():
    taken: set[str] = set()
    names = [output_name(s, taken) for s in ("x.ipynb", "x.json/y.ipynb", "x.json_/y.ipynb",
                                              "report.ipynb", "a/x.md/b.html/c.ipynb")]
    assert names == ["x", "x.json_/y", "x.json_/y-2", "report-2", "a/x.md_/b.html_/c"]
    files = {f"{n}{s}" for n in names for s in (".json", ".md", ".html")}
    folders = {str(p) for n in names for p in Path(n).parents if str(p) != "."}
    assert not files & folders and "report.html" not in files


def test_the_second_round_of_batch_breakers_each_get_their_row(tmp_path, monkeypatch, capsys):
    """A second attacker's files: a lone surrogate as the exercise, a 200-byte non-UTF-8
    name, a 255-byte folder named '.json', and folders named like the batch's own files
    (gradebook.csv/, run.jsonl/). The 5,000-digit integer is in the test above."""
    subs = _fake_batch(tmp_path, monkeypatch, _fake_run, ("a-honest",))
    (subs / "surrogate_exercise.ipynb").write_text(json.dumps(
        dict(NOTEBOOK, metadata={"backfill_lab": {"exercise": "\ud800"}})))
    shutil.copy(subs / "a-honest.ipynb", os.fsencode(subs) + b"/" + b"\xff" * 200 + b".ipynb")
    for folder in ("a" * 250 + ".json", "gradebook.csv", "run.jsonl", "report.html"):
        (subs / folder).mkdir()
        shutil.copy(subs / "a-honest.ipynb", subs / folder / "a-x.ipynb")
    out = tmp_path / "out"
    assert main(["grade", str(subs), "--out", str(out), "--jobs", "1"]) == 0
    rows = _rows(out)
    assert len(rows) == 7 and rows["a-honest.ipynb"] == "graded"
    assert (out / "gradebook.csv").is_file() and (out / "run.jsonl").is_file()
    assert "class report" in (out / "report.html").read_text().lower()
    capsys.readouterr()
