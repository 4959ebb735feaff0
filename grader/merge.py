"""``backfill-grader merge``: one gradebook from the result folders of several grading jobs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from backfill_lab.cli.parse import UsageError

from .classreport import write_class_report
from .report import GradeResult, format_gradebook, write_gradebook

__all__ = ["main"]


def main(*, dirs: Sequence[str], out: str | Path) -> int:
    """Read every result (``*.json``, in subfolders too) of ``dirs`` back through
    :meth:`GradeResult.from_json` and write one ``gradebook.csv`` and one class report
    (``report.html``, linking to each result's feedback where it is) into ``out``; files that
    are not results are skipped. 0, or a usage error when a folder is missing or holds none."""
    rows = []
    for d in dirs:
        folder = Path(d)
        if not folder.is_dir():
            raise UsageError(f"no such folder: {d!r}")
        for f in sorted(folder.rglob("*.json")):
            try:
                data = json.loads(f.read_text())
                if not isinstance(data, dict) or "submission" not in data:
                    continue
                rows.append(GradeResult.from_json(data).row())
            except (OSError, ValueError):
                continue
    if not rows:
        raise UsageError(f"no result files (*.json) in {', '.join(map(repr, dirs))}")
    path = write_gradebook(rows, Path(out))
    print(format_gradebook(path))
    print(f"class report: {write_class_report([Path(d) for d in dirs], Path(out))}")
    return 0
