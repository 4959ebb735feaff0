"""The autograder end to end: fixture submissions named by their expected outcome.

One batch through the real CLI (fresh kernels, two workers) grades every file in
tests/submissions/; each test then reads that submission's result. The batch takes about a
minute, so the module is marked slow.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nbformat
import pytest

from grader import Limits, ProjectGuard, grade_notebook, isolation
from grader.cli import main

from .plans import MISTAKES

SUBMISSIONS = Path(__file__).parent / "submissions"
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def batch():
    return SUBMISSIONS


@pytest.fixture(scope="module")
def graded(tmp_path_factory, batch):
    out = tmp_path_factory.mktemp("grades")
    code = main(["grade", str(batch), "--out", str(out), "--jobs", "2",
                 "--cell-timeout", "4", "--timeout", "25"])
    assert code == 0
    return out


def result(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def failing(res: dict) -> set[str]:
    return {t["name"] for t in res["tests"] if t["score"] < t["max_score"]}


@pytest.mark.parametrize("name", ["ex1_solution_full_marks", "ex2_solution_full_marks",
                                  "mini_challenge_solution_full_marks",
                                  "ex1_old_nbformat_graded", "ex1_huge_print_graded",
                                  "ex1_cell_raises_still_graded",
                                  "ex1_infinite_loop_interrupted_graded"])
def test_full_marks(graded, name):
    res = result(graded, name)
    assert (res["status"], failing(res)) == ("graded", set())
    assert res["score"] == res["max_score"] > 0


def test_every_submission_has_a_gradebook_row(graded, batch):
    with (graded / "gradebook.csv").open() as handle:
        rows = {r["submission"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {p.name for p in batch.glob("*.ipynb")}
    row = rows["ex1_solution_full_marks.ipynb"]
    assert (row["exercise"], row["status"], row["score"], row["max_score"]) == (
        "ex1", "graded", "16", "16")
    assert len(row["sha256"]) == 64
    # the gradebook says how every kernel was confined (issue 12): here, under bubblewrap
    expected = "isolated" if isolation().isolated else "not isolated"
    assert {r["isolation"] for r in rows.values() if r["status"] != "invalid_notebook"} == {
        expected}
    assert rows["not_json_invalid.ipynb"]["isolation"] == ""


@pytest.mark.parametrize("mistake", ["append_on_rerun", "unlimited_parallelism",
                                     "no_validations", "d0_watermark", "too_wide_target"])
def test_each_mistake_loses_exactly_its_checks(graded, mistake):
    exercise, _, rules, outcomes = MISTAKES[mistake]
    res = result(graded, f"{exercise}_mistake_{mistake}")
    assert res["status"] == "graded"
    assert failing(res) == rules | outcomes


def test_untouched_exercise_is_zero_without_a_crash(graded):
    res = result(graded, "ex1_untouched_zero")
    assert (res["status"], res["score"], res["max_score"]) == ("missing_answer", 0, 16)
    assert "placeholder" in res["tests"][0]["output"]


@pytest.mark.parametrize(("name", "status", "reason"), [
    ("ex1_ignores_interrupt_timeout", "timeout", "ignored the interrupt"),
    ("ex1_os_exit_kernel_died", "kernel_died", "the kernel process ended while cell 3 ran"),
    ("not_json_invalid", "invalid_notebook", "not JSON"),
    ("text_renamed_invalid", "invalid_notebook", "not JSON"),
])
def test_broken_submissions_get_a_status_and_a_reason(graded, name, status, reason):
    res = result(graded, name)
    assert res["status"] == status and reason in res["reason"]
    assert res["score"] == 0


def test_a_kernel_that_ignores_the_interrupt_is_reported_once_and_the_same_way(graded):
    res = result(graded, "ex1_ignores_interrupt_timeout")
    stuck = [c for c in res["failed_cells"] if c["ename"] == "CellTimeoutError"]
    assert len(stuck) == 1 and f"cell {stuck[0]['cell']} ran longer" in res["reason"]
    assert "ignored the interrupt" in stuck[0]["evalue"]
    assert "ignored the interrupt" in res["reason"]
    # the feedback says it once per section (status, the cell, what to fix), not per check
    md = (graded / "ex1_ignores_interrupt_timeout.md").read_text()
    assert md.count("ignored the interrupt") == 3 and "- all 13 checks (range, " in md


def test_a_submission_that_kills_its_parent_harms_only_itself(graded):
    res = result(graded, "ex1_kills_its_parent_no_harm")
    # sandboxed, it can only kill itself; unsandboxed, it kills its grading worker, and the
    # batch replaces the worker and records the submission as an error
    assert res["status"] in ("kernel_died", "error") and res["score"] == 0
    if isolation().isolated:
        assert res["status"] == "kernel_died"
    assert result(graded, "ex1_solution_full_marks")["score"] == 16


def test_output_is_capped(graded):
    res = (graded / "ex1_huge_print_graded.json").stat().st_size
    assert res < 20_000  # a 10 MB print costs nothing in the report
    assert "cut" in " ".join(result(graded, "ex1_huge_print_graded")["notes"])


def test_monkeypatching_the_checks_gains_nothing(graded):
    res = result(graded, "ex1_monkeypatch_checks_no_gain")
    assert failing(res) == {"idempotent_writes", "outcome_idempotent"}  # graded as an append plan


def test_printing_a_fake_report_gains_nothing(graded):
    res = result(graded, "ex1_fake_report_no_gain")
    assert res["score"] == 8  # the plan it really defines: range and mode only
    assert "outcome_complete" in failing(res)


def test_feedback_teaches_and_names_failing_cells(graded):
    md = (graded / "ex1_cell_raises_still_graded.md").read_text()
    assert "cell 2: `ZeroDivisionError`" in md and "16 / 16" in md
    mistake = (graded / "ex1_mistake_append_on_rerun.md").read_text()
    assert "## What to fix" in mistake and "Fix: use mode: overwrite" in mistake
    assert "see notebooks/05_designing_safe_backfills.ipynb" in mistake
    assert "checks passed" in mistake and "all tests passed" not in mistake.lower()


def test_merge_builds_one_gradebook(graded, tmp_path, capsys):
    assert main(["merge", str(graded), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "gradebook.csv").read_text() == (graded / "gradebook.csv").read_text()


def _notebook(path: Path, *sources: str, exercise: str = "ex1") -> Path:
    nb = nbformat.v4.new_notebook(metadata={"backfill_lab": {"exercise": exercise}})
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_a_submission_that_changes_project_files_fails_with_error(tmp_path):
    fake_root = tmp_path / "project"
    (fake_root / "backfill_lab").mkdir(parents=True)
    (fake_root / "backfill_lab" / "rules.py").write_text("RULES = {}\n")
    guard = ProjectGuard(fake_root)
    evil = _notebook(tmp_path / "evil.ipynb",
                     f"open({str(fake_root / 'backfill_lab' / 'rules.py')!r}, 'a').write('#')",
                     "plan = ...")
    res = grade_notebook(evil, limits=Limits(cell_timeout=10, timeout=30), guard=guard)
    assert res.status == "error" and "backfill_lab/rules.py" in res.reason


@pytest.mark.skipif(not isolation().isolated, reason="kernel sandbox needs root on Linux")
def test_the_sandbox_keeps_project_files_and_the_key_out_of_reach(tmp_path):
    target = ROOT / "backfill_lab" / "course" / "rules.py"
    before = target.read_bytes()
    probe = _notebook(
        tmp_path / "probe.ipynb",
        f"import os\ntry:\n    open({str(target)!r}, 'a').write('# pwned')\n    wrote = True\n"
        f"except OSError:\n    wrote = False\n"
        f"try:\n    os.listdir({str(ROOT / 'solutions')!r})\n    peeked = True\n"
        f"except OSError:\n    peeked = False\n"
        "seen = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "plan = {'backfill': {'partitions': '2024-12-01'}, 'wrote': wrote, 'peeked': peeked,\n"
        "        'parent': os.getppid(), 'seen': seen}")
    from grader.execute import run_submission

    run = run_submission(nbformat.read(probe, as_version=4), Limits(timeout=60),
                         sandbox=isolation())
    assert run.status == "graded" and run.isolated
    assert run.data["plan"]["wrote"] is False
    assert run.data["plan"]["peeked"] is False
    assert target.read_bytes() == before
    # its own PID namespace: no parent to signal, and no process of the grader in sight
    assert run.data["plan"]["parent"] == 0 and run.data["plan"]["seen"] == [1]


@pytest.mark.parametrize(("name", "correct"), [("quick_test_all_right", 15),
                                               ("quick_test_half_right", 8),
                                               ("quick_test_junk_values", 0)])
def test_quiz_submissions(graded, name, correct):
    res = result(graded, name)
    assert res["status"] == "graded" and res["max_score"] == 15
    assert res["score"] == correct
    assert [t["name"] for t in res["tests"]] == [f"q{i}" for i in range(1, 16)]


def test_quiz_feedback_never_gives_the_key_away(graded):
    from grader.score import load_key

    key = load_key(ROOT)
    for name in ("quick_test_half_right", "quick_test_junk_values"):
        text = (graded / f"{name}.md").read_text() + (graded / f"{name}.json").read_text()
        for entry in key.values():
            assert entry["explanation"][:40] not in text
        assert "Review: notebooks/" in text or "is not a choice" in text


def test_a_plan_string_naming_a_solution_file_scores_nothing(graded):
    """The grader once read such a path as root, outside the sandbox, and gave full marks."""
    res = result(graded, "ex1_plan_is_a_path_zero")
    assert (res["status"], res["score"]) == ("graded", 0)
    assert all("does not load" in t["output"] for t in res["tests"])


def test_learner_text_in_the_feedback_is_inert(graded):
    import re

    md = (graded / "ex1_forged_feedback_escaped.md").read_text()
    prose = re.sub(r"(`+).*?\1", "", md)
    assert "<script" not in prose and "<img" not in prose and "&lt;script&gt;" in md
    lines = md.splitlines()
    assert sum(line.startswith("- score:") for line in lines) == 1
    assert sum(line.startswith("## ") for line in lines) == len(set(lines) & {
        "## Cells that raised", "## What to fix", "## Checks passed"})  # only the grader's


SAME_GRADE = ("ex1_solution_full_marks", "ex1_mistake_append_on_rerun", "ex1_untouched_zero",
              "ex2_mistake_d0_watermark", "quick_test_half_right")


def _verdict(res: dict) -> tuple:
    """What a grade is, without how long it took to get."""
    return (res["status"], res["score"], res["max_score"], res["reason"], res["tests"],
            res.get("replay"))


def test_a_submission_gets_the_same_grade_at_any_jobs_and_in_any_batch(graded, tmp_path,
                                                                       capsys):
    """A few submissions graded again at --jobs 1 (each plan judged while the next notebook
    runs) get exactly the grade the full --jobs 2 batch gave them, and so does one graded on
    its own with the library call (no batch, no overlap)."""
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in SAME_GRADE:
        (subset / f"{name}.ipynb").write_bytes((SUBMISSIONS / f"{name}.ipynb").read_bytes())
    out = tmp_path / "out"
    assert main(["grade", str(subset), "--out", str(out), "--jobs", "1",
                 "--cell-timeout", "4", "--timeout", "25"]) == 0
    for name in SAME_GRADE:
        assert _verdict(result(out, name)) == _verdict(result(graded, name)), name
    alone = grade_notebook(subset / "ex1_mistake_append_on_rerun.ipynb",
                           limits=Limits(cell_timeout=4, timeout=25), sandbox=isolation())
    assert _verdict(alone.to_json()) == _verdict(result(graded, "ex1_mistake_append_on_rerun"))
    capsys.readouterr()
