"""Gate: every committed notebook (teaching, exercises, solutions) is committed without outputs.

A notebook saved with outputs leaks results (a solved exercise, a stale grid), bloats diffs and
makes nbval compare stale bytes; CI refuses it. Run "Clear All Outputs" before committing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for folder in ("notebooks", "exercises", "solutions")
                   for p in (ROOT / folder).glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 15


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_without_outputs_or_execution_counts(path):
    nb = json.loads(path.read_text())
    dirty = [i + 1 for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.relative_to(ROOT)}: cells {dirty} have outputs; clear them"
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"
