"""Generate the learners' exercise notebooks from the solved ones: ``solutions/`` -> ``exercises/``.

The solutions are the single source. In a code cell:

* the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` become a placeholder that keeps
  the assignment: ``plan = ...  # TODO: <text>``, where ``<text>`` is whatever follows
  ``BEGIN SOLUTION`` on its line (``# BEGIN SOLUTION: write your plan``), or "your answer". A
  region without an assignment becomes ``...  # TODO: <text>``;
* a line ending in ``# SOLUTION`` (``x = compute()  # SOLUTION``) becomes ``x = ...  # TODO``;
* a cell tagged ``solution-only`` is dropped.

The quiz key (notebook metadata ``backfill_lab.key``) is removed; the exercise id is kept.
Outputs and execution counts are cleared. The output is deterministic (cell ids kept, JSON
written as nbformat writes it), so regenerating gives byte-identical files and ``--check``
can tell whether ``exercises/`` is stale.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["AssignError", "exercise_notebook", "main", "strip_source"]

BEGIN = re.compile(r"^(?P<indent>\s*)#\s*BEGIN SOLUTION\b[\s:\-]*(?P<todo>.*?)\s*$")
END = re.compile(r"^\s*#\s*END SOLUTION\s*$")
LINE = re.compile(r"^(?P<code>.*\S)\s+#\s*SOLUTION\s*$")
SOLUTION_ONLY = "solution-only"
DEFAULT_TODO = "your answer"


class AssignError(ValueError):
    """A solution notebook whose markers cannot be turned into an exercise."""


def _targets(code: str, where: str) -> list[str]:
    """The source text of each top-level assignment target in ``code``, in order."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise AssignError(f"{where}: the solution is not valid Python ({exc.msg}, line "
                          f"{exc.lineno}); fix it in the solution notebook") from None
    found: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else []
        for target in targets:
            text = ast.get_source_segment(code, target) or ""
            if text and text not in found:
                found.append(text)
    return found


def _placeholder(region: list[str], indent: str, todo: str, where: str) -> list[str]:
    code = textwrap.dedent("".join(region))
    names = _targets(code, where)
    if not names:
        return [f"{indent}...  # TODO: {todo}\n"]
    return [f"{indent}{name} = ...  # TODO: {todo}\n" for name in names]


def strip_source(source: str, where: str = "cell") -> str:
    """A code cell's source with its solution regions and ``# SOLUTION`` lines replaced.

    >>> print(strip_source("x = 1\\n# BEGIN SOLUTION: pick y\\ny = 2\\n# END SOLUTION\\n"
    ...                    "z = y * 2  # SOLUTION"))
    x = 1
    y = ...  # TODO: pick y
    z = ...  # TODO
    """
    out: list[str] = []
    region: list[str] | None = None
    indent, todo, opened = "", DEFAULT_TODO, 0
    lines = source.splitlines(keepends=True)
    for number, line in enumerate(lines, 1):
        text = line.rstrip("\n")
        begin = BEGIN.match(text)
        if begin:
            if region is not None:
                raise AssignError(f"{where}, line {number}: '# BEGIN SOLUTION' inside the region "
                                  f"opened on line {opened}; close it with '# END SOLUTION' "
                                  "first")
            region, opened = [], number
            indent, todo = begin["indent"], begin["todo"] or DEFAULT_TODO
            continue
        if END.match(text):
            if region is None:
                raise AssignError(f"{where}, line {number}: '# END SOLUTION' without a "
                                  "'# BEGIN SOLUTION' before it")
            out += _placeholder(region, indent, todo, f"{where}, lines {opened}-{number}")
            region = None
            continue
        if region is not None:
            region.append(line)
            continue
        marked = LINE.match(text)
        if marked:
            code = marked["code"]
            names = _targets(textwrap.dedent(code), f"{where}, line {number}")
            if len(names) != 1:
                raise AssignError(f"{where}, line {number}: a line marked '# SOLUTION' must "
                                  f"assign one name (got {code.strip()!r}); use a "
                                  "BEGIN/END SOLUTION region instead")
            lead = code[: len(code) - len(code.lstrip())]
            out.append(f"{lead}{names[0]} = ...  # TODO" + ("\n" if line.endswith("\n") else ""))
            continue
        out.append(line)
    if region is not None:
        raise AssignError(f"{where}, line {opened}: '# BEGIN SOLUTION' is never closed; add "
                          "'# END SOLUTION'")
    text = "".join(out)
    return text[:-1] if text.endswith("\n") and not source.endswith("\n") else text


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def exercise_notebook(nb: Mapping[str, Any], name: str = "notebook") -> dict[str, Any]:
    """The exercise version of a solution notebook (plain nbformat JSON in and out)."""
    meta = dict(nb.get("metadata", {}))
    lab = meta.get("backfill_lab")
    if not isinstance(lab, Mapping) or not lab.get("exercise"):
        raise AssignError(f"{name}: metadata backfill_lab.exercise is missing; set it to the "
                          "exercise id (e.g. {\"exercise\": \"ex1\"})")
    meta["backfill_lab"] = {"exercise": lab["exercise"]}  # the key and anything else stay home
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        cell_meta = dict(cell.get("metadata", {}))
        tags = list(cell_meta.get("tags", []))
        if SOLUTION_ONLY in tags:
            continue
        new = {k: v for k, v in cell.items() if k not in ("outputs", "execution_count")}
        new["metadata"] = cell_meta
        if cell.get("cell_type") == "code":
            text = strip_source(_source(cell), f"{name} cell {i}")
            new["source"] = text.splitlines(keepends=True)
            new["outputs"] = []
            new["execution_count"] = None
        cells.append(new)
    out = {k: v for k, v in nb.items() if k not in ("cells", "metadata")}
    out["cells"] = cells
    out["metadata"] = meta
    return out


def dumps(nb: Mapping[str, Any]) -> str:
    """JSON as nbformat writes it: indent 1, sorted keys, a final newline."""
    return json.dumps(nb, indent=1, sort_keys=True, separators=(",", ": "),
                      ensure_ascii=False) + "\n"


def _expected(solutions: Path) -> dict[str, str]:
    out = {}
    for path in sorted(solutions.glob("*.ipynb")):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AssignError(f"{path}: not valid notebook JSON ({exc.msg}, line {exc.lineno})"
                              ) from None
        out[path.name] = dumps(exercise_notebook(nb, path.name))
    return out


def main(*, solutions: Path, exercises: Path, check: bool = False) -> int:
    """Write ``exercises/`` from ``solutions/`` (0), or with ``check`` only compare: 1 and the
    list of stale files when they differ. 2 when a solution cannot be converted."""
    if not solutions.is_dir():
        print(f"error: no solutions folder at {solutions}", file=sys.stderr)
        return 2
    try:
        expected = _expected(solutions)
    except AssignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    existing = {p.name for p in exercises.glob("*.ipynb")} if exercises.is_dir() else set()
    stale = [name for name, text in expected.items()
             if not (exercises / name).is_file()
             or (exercises / name).read_text(encoding="utf-8") != text]
    extra = sorted(existing - set(expected))
    if check:
        for name in stale:
            print(f"stale: {exercises / name}")
        for name in extra:
            print(f"stale: {exercises / name} (no solution notebook of that name)")
        if stale or extra:
            print("run: backfill-grader assign", file=sys.stderr)
            return 1
        return 0
    exercises.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (exercises / name).write_text(expected[name], encoding="utf-8")
        print(f"wrote: {exercises / name}")
    for name in extra:
        (exercises / name).unlink()
        print(f"removed: {exercises / name} (no solution notebook of that name)")
    return 0
