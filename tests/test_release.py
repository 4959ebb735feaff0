"""The learners' bundle: everything to run the workbook, no solutions, no quiz key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from grader.release import CONTENTS, MARKER, leaks, main

ROOT = Path(__file__).resolve().parent.parent


def _explanations() -> list[str]:
    nb = json.loads((ROOT / "solutions" / "quick_test.ipynb").read_text(encoding="utf-8"))
    return [e["explanation"] for e in nb["metadata"]["backfill_lab"]["key"].values()]


def _grep(folder: Path, needle: str) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
            and needle in p.read_text(encoding="utf-8", errors="ignore")]


def test_bundle_has_the_workbook_and_gives_nothing_away(tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(out=out, root=ROOT) == 0
    assert "no solutions, no quiz key" in capsys.readouterr().out
    for name in CONTENTS:
        assert (out / name).exists(), name
    assert not (out / "solutions").exists() and not (out / "grader").exists()
    assert not (out / "tests").exists()
    assert sorted(p.name for p in (out / "exercises").glob("*.ipynb")) == sorted(
        p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    assert not list(out.rglob("__pycache__"))
    for needle in ("# BEGIN SOLUTION", "# END SOLUTION", "Model answer", *_explanations()):
        assert _grep(out, needle) == [], needle
    quiz = json.loads((out / "exercises" / "quick_test.ipynb").read_text(encoding="utf-8"))
    assert quiz["metadata"]["backfill_lab"] == {"exercise": "quick_test"}


def test_rebuilding_replaces_an_earlier_bundle_but_no_other_folder(tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(out=out, root=ROOT) == 0
    (out / "stray.txt").write_text("old", encoding="utf-8")
    assert main(out=out, root=ROOT) == 0
    assert not (out / "stray.txt").exists() and (out / MARKER).exists()
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep", encoding="utf-8")
    assert main(out=mine, root=ROOT) == 2
    assert "is not an earlier bundle" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep"


def _small_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for name in CONTENTS:
        if "." in name and name != ".ci":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(f"{name}\n", encoding="utf-8")
        else:
            (root / name).mkdir(parents=True)
    shutil.copytree(ROOT / "solutions", root / "solutions")
    shutil.copytree(ROOT / "exercises", root / "exercises", dirs_exist_ok=True)
    return root


def test_stale_exercises_or_a_leak_stop_the_build(tmp_path, capsys):
    root = _small_project(tmp_path)
    solution = root / "solutions" / "ex1_december_backfill.ipynb"
    solution.write_text(solution.read_text(encoding="utf-8").replace(
        "Exercise 1 ·", "Exercise one ·"), encoding="utf-8")
    assert main(out=tmp_path / "out", root=root) == 1
    assert "exercises/ is stale" in capsys.readouterr().err
    shutil.copy(ROOT / "solutions" / "ex1_december_backfill.ipynb", solution)
    (root / "notebooks" / "cheat.py").write_text("# BEGIN SOLUTION\n", encoding="utf-8")
    assert main(out=tmp_path / "out", root=root) == 1
    err = capsys.readouterr().err
    assert "leak: notebooks/cheat.py: contains '# BEGIN SOLUTION'" in err
    assert not (tmp_path / "out").exists()


def test_leaks_finds_markers_key_metadata_and_explanations(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "a.md").write_text("The reason: catchup reruns missed runs.", encoding="utf-8")
    nb = {"cells": [], "metadata": {"backfill_lab": {"exercise": "quick_test", "key": {}}}}
    (tmp_path / "q.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    found = leaks(tmp_path, ["catchup reruns missed runs"])
    assert found == ["solutions/: the solutions folder is in the bundle",
                     "a.md: contains a quiz key explanation ('catchup reruns missed runs'...)",
                     "q.ipynb: notebook metadata holds the quiz key"]
