"""Exercises are generated from the solutions: markers, freshness, and nothing given away.

Plain JSON in and out (no kernel): the real solutions/ and exercises/ are compared in-process,
so this fails as soon as someone edits a solution without regenerating the exercises.
"""

from __future__ import annotations

import ast
import doctest
import json
from pathlib import Path
from typing import Any

import pytest

from backfill_lab.course.rules import judge
from backfill_lab.course.scenarios import SCENARIOS as EXERCISES
from backfill_lab.plan import Plan
from grader import assign
from grader.assign import AssignError, exercise_notebook, main, strip_source
from tests.plans import PERFECT

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISE_DIR = ROOT / "exercises"
CONTRACT = {"ex1_december_backfill.ipynb": "ex1", "ex2_late_data.ipynb": "ex2",
            "mini_challenge.ipynb": "mini_challenge", "quick_test.ipynb": "quick_test"}


def _nb(cells: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"cells": cells, "metadata": {"backfill_lab": {"exercise": "ex1"}, **(meta or {})},
            "nbformat": 4, "nbformat_minor": 5}


def _code(source: str, cid: str = "c", tags: list[str] | None = None) -> dict[str, Any]:
    return {"cell_type": "code", "id": cid, "metadata": {"tags": tags} if tags else {},
            "source": source, "execution_count": 7,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}]}


def _md(source: str, cid: str = "m", tags: list[str] | None = None) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cid, "metadata": {"tags": tags} if tags else {},
            "source": source}


def _src(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# -- markers, on small in-memory notebooks ---------------------------------------------------
def test_docstring_examples():
    assert doctest.testmod(assign).failed == 0


def test_region_becomes_the_assignment_with_the_todo_text_from_its_begin_line():
    src = ('import x\n# BEGIN SOLUTION: write your plan (YAML text or a dict)\n'
           'plan = """\nbackfill:\n  start: 2024-12-01\n"""\n# END SOLUTION\nprint(plan)')
    assert strip_source(src) == ("import x\nplan = ...  # TODO: write your plan (YAML text or "
                                 "a dict)\nprint(plan)")


def test_region_with_several_assignments_keeps_each_name_and_its_indentation():
    src = ("if True:\n    # BEGIN SOLUTION\n    low = 1\n    high = low + 2\n    low = 0\n"
           "    # END SOLUTION\n    print(low, high)\n")
    assert strip_source(src) == ("if True:\n    low = ...  # TODO: your answer\n"
                                 "    high = ...  # TODO: your answer\n    print(low, high)\n")


def test_region_without_an_assignment_becomes_an_ellipsis_statement():
    src = "# BEGIN SOLUTION - make it pass\nanswers.update(q1='b')\n# END SOLUTION\n"
    out = strip_source(src)
    assert out == "...  # TODO: make it pass\n"
    ast.parse(out)  # still runs


def test_line_marked_solution_becomes_lhs_placeholder():
    src = "rows = 10\nlimit = rows * 2  # SOLUTION\nitems[0] = 5  # SOLUTION"
    assert strip_source(src) == "rows = 10\nlimit = ...  # TODO\nitems[0] = ...  # TODO"


@pytest.mark.parametrize(("source", "message"), [
    ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n# END SOLUTION\n", "without a '# BEGIN SOLUTION'"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "inside the region"),
    ("print(1)  # SOLUTION\n", "must assign one name"),
    ("# BEGIN SOLUTION\nx = (\n# END SOLUTION\n", "not valid Python"),
])
def test_broken_markers_are_errors_that_say_where_and_how_to_fix(source, message):
    with pytest.raises(AssignError, match=message) as info:
        strip_source(source, "demo.ipynb cell 3")
    assert "demo.ipynb cell 3" in str(info.value) and "\n" not in str(info.value)


def test_notebook_conversion_drops_solution_only_cells_key_and_outputs():
    nb = _nb([_md("# Title", "t"), _code("# BEGIN SOLUTION\nplan = {'a': 1}\n# END SOLUTION", "p"),
              _md("Model answer: ...", "s", ["solution-only"]),
              _code("assert plan", "a", ["solution-only", "other"]),
              _code("print(plan)", "r", ["keep-me"])],
             {"backfill_lab": {"exercise": "quick_test", "key": {"q1": {"answer": "b"}}}})
    out = exercise_notebook(nb, "quick_test.ipynb")
    assert [c["id"] for c in out["cells"]] == ["t", "p", "r"]
    assert out["metadata"]["backfill_lab"] == {"exercise": "quick_test"}
    assert "key" not in json.dumps(out["metadata"])
    code = [c for c in out["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert code[1]["metadata"] == {"tags": ["keep-me"]}
    assert _src(code[0]) == "plan = ...  # TODO: your answer"
    assert nb["cells"][1]["outputs"], "the solution itself is not modified"


def test_a_solution_without_an_exercise_id_is_refused():
    with pytest.raises(AssignError, match=r"backfill_lab\.exercise is missing"):
        exercise_notebook({"cells": [], "metadata": {}}, "x.ipynb")


# -- main() on a scratch project ---------------------------------------------------------------
def _scratch(tmp_path: Path) -> tuple[Path, Path]:
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nb = _nb([_md("# Ex · α", "t"), _code("# BEGIN SOLUTION\nplan = 1\n# END SOLUTION", "p")])
    (solutions / "ex1.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    return solutions, exercises


def test_main_writes_then_check_passes_and_regeneration_is_byte_identical(tmp_path, capsys):
    solutions, exercises = _scratch(tmp_path)
    assert main(solutions=solutions, exercises=exercises, check=True) == 1  # nothing yet
    assert main(solutions=solutions, exercises=exercises) == 0
    first = (exercises / "ex1.ipynb").read_bytes()
    assert "α" in first.decode() and first.endswith(b"}\n")
    assert main(solutions=solutions, exercises=exercises, check=True) == 0
    capsys.readouterr()
    assert main(solutions=solutions, exercises=exercises) == 0
    assert "wrote" not in capsys.readouterr().out  # fresh: nothing rewritten
    assert (exercises / "ex1.ipynb").read_bytes() == first


def test_check_lists_stale_and_orphaned_exercises(tmp_path, capsys):
    solutions, exercises = _scratch(tmp_path)
    main(solutions=solutions, exercises=exercises)
    nb = _read(solutions / "ex1.ipynb")
    nb["cells"][0]["source"] = "# Ex · renamed"
    (solutions / "ex1.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    (exercises / "old.ipynb").write_text("{}", encoding="utf-8")
    capsys.readouterr()
    assert main(solutions=solutions, exercises=exercises, check=True) == 1
    out = capsys.readouterr().out
    assert "stale: " in out and "ex1.ipynb" in out and "old.ipynb (no solution" in out
    assert main(solutions=solutions, exercises=exercises) == 0
    assert not (exercises / "old.ipynb").exists()
    assert main(solutions=solutions, exercises=exercises, check=True) == 0


def test_main_reports_bad_markers_and_a_missing_folder_as_usage_errors(tmp_path, capsys):
    solutions, exercises = _scratch(tmp_path)
    nb = _read(solutions / "ex1.ipynb")
    nb["cells"][1]["source"] = "# BEGIN SOLUTION\nplan = 1\n"
    (solutions / "ex1.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    assert main(solutions=solutions, exercises=exercises) == 2
    assert "ex1.ipynb cell 1, line 1: '# BEGIN SOLUTION' is never closed" in \
        capsys.readouterr().err
    assert not exercises.exists()
    assert main(solutions=tmp_path / "nope", exercises=exercises) == 2


# -- the real solutions and exercises ----------------------------------------------------------
def test_exercises_are_fresh():
    assert main(solutions=SOLUTIONS, exercises=EXERCISE_DIR, check=True) == 0, (
        "exercises/ is stale: run `backfill-grader assign` (never edit exercises/ by hand)")


def test_every_exercise_of_the_contract_exists_with_its_id():
    for name, exercise in CONTRACT.items():
        for folder in (SOLUTIONS, EXERCISE_DIR):
            nb = _read(folder / name)
            assert nb["metadata"]["backfill_lab"]["exercise"] == exercise, folder / name
            assert nb["metadata"]["kernelspec"]["name"] == "python3"
            assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
            ids = [c.get("id") for c in nb["cells"]]
            assert all(ids) and len(set(ids)) == len(ids)
            assert not any(c.get("outputs") or c.get("execution_count") is not None
                           for c in nb["cells"] if c["cell_type"] == "code")


def test_graded_exercises_have_the_cells_learners_rely_on():
    for name, exercise in CONTRACT.items():
        nb = _read(EXERCISE_DIR / name)
        first = _src(nb["cells"][0])
        assert first.startswith("# ") and "](../notebooks/00_index.ipynb)" in first
        code = [_src(c) for c in nb["cells"] if c["cell_type"] == "code"]
        variable = "answers" if exercise == "quick_test" else "plan"
        assert any(line.startswith(f"{variable} = ...  # TODO")
                   for cell in code for line in cell.splitlines()), name
        assert f'bl.check({variable}, exercise="{exercise}")' in code[-1], (
            "self-check is the last cell")
        if exercise != "quick_test":
            joined = "\n".join(code)
            for helper in ("show_incident", "hints", "run_and_show"):
                assert f'bl.exercises.{helper}(' in joined, (name, helper)


def _key_explanations() -> list[str]:
    key = _read(SOLUTIONS / "quick_test.ipynb")["metadata"]["backfill_lab"]["key"]
    return [entry["explanation"] for entry in key.values()]


def test_no_exercise_gives_a_solution_away():
    explanations = _key_explanations()
    assert explanations
    for path in sorted(EXERCISE_DIR.glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        nb = _read(path)
        assert "key" not in nb["metadata"].get("backfill_lab", {}), path.name
        for marker in ("# BEGIN SOLUTION", "# END SOLUTION", "solution-only", "Model answer"):
            assert marker not in text, (path.name, marker)
        for explanation in explanations:
            assert explanation not in text, (path.name, explanation)
        code = "\n".join(_src(c) for c in nb["cells"] if c["cell_type"] == "code")
        for exercise, perfect in PERFECT.items():
            lines = [ln.strip() for ln in perfect.splitlines()
                     if ln.strip() and not ln.strip().endswith(":")]
            shown = [ln for ln in lines if ln in code]
            assert not shown, f"{path.name} shows lines of the {exercise} model plan: {shown}"


# -- no notebook or exercise holds a plan that solves an exercise -------------------------------
def _plans_in(nb: dict[str, Any]) -> list[Any]:
    """Plan-like values (YAML strings, dict literals) in a notebook's code cells."""
    found: list[Any] = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = [ln for ln in _src(cell).splitlines() if not ln.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and "backfill" in node.value:
                found.append(node.value)
            elif isinstance(node, ast.Dict):
                try:
                    value = ast.literal_eval(node)
                except ValueError:
                    continue
                if "backfill" in value:
                    found.append(value)
    return found


def _solves(value: Any) -> list[str]:
    try:
        plan = Plan.load(value)
    except Exception:  # a template or a fragment: not a plan
        return []
    return [ex for ex, sc in EXERCISES.items() if all(r.passed for r in judge(plan, sc))]


def test_the_plan_finder_sees_a_perfect_plan():
    nb = {"cells": [_code(f"PLAN = '''{PERFECT['ex2']}'''")]}
    assert [_solves(p) for p in _plans_in(nb)] == [["ex2"]]


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb"))
                         + sorted(EXERCISE_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_no_teaching_notebook_or_exercise_holds_a_full_solution(path):
    solved = {ex for value in _plans_in(_read(path)) for ex in _solves(value)}
    assert not solved, f"{path.name} holds a plan passing every rule of {sorted(solved)}"


def test_the_solutions_do_hold_full_solutions():
    for name, exercise in CONTRACT.items():
        if exercise == "quick_test":
            continue
        solved = {ex for v in _plans_in(_read(SOLUTIONS / name)) for ex in _solves(v)}
        assert exercise in solved, name
