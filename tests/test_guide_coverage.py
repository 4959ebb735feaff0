"""Every part of the guide the workbook teaches is taught somewhere, under a heading.

The map below is the table of contents of the guide, part by part, each pointing at the notebook
and heading that teaches it (in the workbook's own words). The test fails when a heading it
names is missing, so renaming a section means updating this map on purpose.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GUIDE = {
    "mental model: the grid of boxes": ("notebooks/01_mental_model.ipynb", "The grid of boxes"),
    "mental model: a scheduler fills the newest box": (
        "notebooks/01_mental_model.ipynb", "A scheduler fills the newest box each period"),
    "mental model: broken boxes": ("notebooks/01_mental_model.ipynb", "When something breaks"),
    "key term: partition": ("notebooks/01_mental_model.ipynb", "The grid of boxes"),
    "key term: catchup": ("notebooks/01_mental_model.ipynb",
                          "Catchup: the scheduler runs what it missed"),
    "key term: backfill": ("notebooks/01_mental_model.ipynb",
                           "Backfill: refill the boxes you choose"),
    "key term: idempotency": ("notebooks/01_mental_model.ipynb",
                              "Idempotency: rerunning without side effects"),
    "key term: concurrency/rate limit": ("notebooks/01_mental_model.ipynb",
                                         "Concurrency and rate limits"),
    "key term: late data": ("notebooks/01_mental_model.ipynb", "Late data"),
    "worked example 1: daily backfill of a failed week": (
        "notebooks/02_daily_backfill.ipynb", "The incident"),
    "worked example 1: frozen code version": ("notebooks/02_daily_backfill.ipynb",
                                              "Step 2: freeze the code version"),
    "worked example 1: frozen configs (and runtime)": (
        "notebooks/02_daily_backfill.ipynb", "Freeze the config and the runtime too"),
    "worked example 1: concurrency 2 and the warehouse": (
        "notebooks/02_daily_backfill.ipynb", "What unlimited parallelism would have done"),
    "worked example 1: the configuration snippet": (
        "notebooks/02_daily_backfill.ipynb",
        "Write it down: the plan, and the same backfill in real orchestrators"),
    "worked example 2: versioned recompute after a logic change": (
        "notebooks/03_versioned_recompute.ipynb", "The change: feature definition v2"),
    "worked example 2: guardrails (row counts, null rates, drift)": (
        "notebooks/03_versioned_recompute.ipynb", "A failed check blocks the switch"),
    "worked example 2: downstream flips atomically after validation": (
        "notebooks/03_versioned_recompute.ipynb", "Switch atomically"),
    "worked example 3: late events and the watermark": ("notebooks/04_late_data.ipynb",
                                                        "Watermark"),
    "worked example 3: rolling reprocessing window": ("notebooks/04_late_data.ipynb",
                                                      "Rolling reprocessing window"),
    "worked example 3: merge, no double counting": ("notebooks/04_late_data.ipynb",
                                                   "Merge, not append"),
    "design step: exact range and order": ("notebooks/05_designing_safe_backfills.ipynb",
                                           "1. Range and order"),
    "design step: write mode": ("notebooks/05_designing_safe_backfills.ipynb", "2. Write mode"),
    "design step: concurrency from system limits": (
        "notebooks/05_designing_safe_backfills.ipynb", "3. Concurrency from system limits"),
    "design step: validation checks per partition": (
        "notebooks/05_designing_safe_backfills.ipynb", "4. Validations per partition"),
    "design step: run metadata and lineage": ("notebooks/05_designing_safe_backfills.ipynb",
                                              "5. Run metadata and lineage"),
    "checklist: row count within bounds": ("notebooks/05_designing_safe_backfills.ipynb",
                                           "Row count within expected bounds"),
    "checklist: no null spikes": ("notebooks/05_designing_safe_backfills.ipynb",
                                  "No unexpected null spikes"),
    "checklist: key uniqueness": ("notebooks/05_designing_safe_backfills.ipynb",
                                  "Key uniqueness maintained"),
    "checklist: drift thresholds": ("notebooks/05_designing_safe_backfills.ipynb",
                                    "Feature distribution within drift thresholds"),
    "checklist: downstream read test": ("notebooks/05_designing_safe_backfills.ipynb",
                                        "Downstream read test"),
    "mistake: unlimited parallelism": ("notebooks/05_designing_safe_backfills.ipynb",
                                       "Mistake: unlimited parallelism"),
    "mistake: non-idempotent writes": ("notebooks/05_designing_safe_backfills.ipynb",
                                       "Mistake: non-idempotent writes"),
    "mistake: ignoring dependencies": ("notebooks/05_designing_safe_backfills.ipynb",
                                       "Mistake: ignoring dependencies"),
    "mistake: no data validation": ("notebooks/05_designing_safe_backfills.ipynb",
                                    "Mistake: no data validation"),
    "mistake: mixing code versions": ("notebooks/05_designing_safe_backfills.ipynb",
                                      "Mistake: mixing code versions"),
    "self-check prompts": ("notebooks/05_designing_safe_backfills.ipynb",
                           "The three self-check questions"),
    "practical project: parameterized backfill job": (
        "notebooks/06_practical_projects.ipynb", "Project 1: a parameterized backfill job"),
    "practical project: versioned feature store with switchover": (
        "notebooks/06_practical_projects.ipynb",
        "Project 2: a versioned feature store with a controlled switchover"),
    "practical project: late-data policy and dashboard": (
        "notebooks/06_practical_projects.ipynb",
        "Project 3: a late-data policy with a metrics dashboard"),
    "next step: templates with safe defaults": ("notebooks/06_practical_projects.ipynb",
                                                "Templates with safe defaults"),
    "next step: audit tags on every write": ("notebooks/06_practical_projects.ipynb",
                                             "Audit tags on every write"),
    "next step: mock outages and timed drills": (
        "notebooks/06_practical_projects.ipynb", "Practice with mock outages and timed drills"),
    "who this is for": ("notebooks/00_index.ipynb", "Who this is for"),
    "prerequisites": ("notebooks/00_index.ipynb", "What you need before you start"),
    "learning path": ("notebooks/00_index.ipynb", "Learning path"),
}


def headings(path: str) -> set[str]:
    nb = json.loads((ROOT / path).read_text())
    return {line.lstrip("#").strip() for c in nb["cells"] if c["cell_type"] == "markdown"
            for line in "".join(c["source"]).splitlines() if line.startswith("#")}


@pytest.mark.parametrize("part", sorted(GUIDE))
def test_each_part_of_the_guide_is_taught(part):
    path, heading = GUIDE[part]
    assert heading in headings(path), f"{part}: no heading {heading!r} in {path}"


def test_exercises_mini_challenge_and_quick_test_exist():
    for name in ("ex1_december_backfill", "ex2_late_data", "mini_challenge", "quick_test"):
        for folder in ("exercises", "solutions"):
            assert (ROOT / folder / f"{name}.ipynb").exists()


def test_d_plus_n_has_one_meaning_everywhere():
    """"D+2" is a watermark (first processed by the first run at least 2 days after D closes),
    never a calendar day: the notebooks, exercises and quiz must not also use "02:00 on D+1" or
    "D+1 00:00" for a point in time, which would give "D+2" a second meaning a day earlier."""
    root = Path(__file__).resolve().parents[1]
    calendar = re.compile(r"\bon (?:day )?D\s?\+\s?\d|D\s?\+\s?\d+ \d\d:\d\d|D\s?\+\s?1\s?\+\s?K")
    texts = {}
    for folder in ("notebooks", "exercises", "solutions"):
        for path in sorted((root / folder).glob("*.ipynb")):
            cells = json.loads(path.read_text())["cells"]
            texts[str(path.relative_to(root))] = "\n".join("".join(c["source"]) for c in cells)
    for path in sorted((root / "backfill_lab" / "course").glob("*.py")):
        texts[str(path.relative_to(root))] = path.read_text()
    clashes = {name: calendar.findall(text) for name, text in texts.items()
               if calendar.search(text)}
    assert not clashes, f"'D+N' used as a calendar day: {clashes}"
    assert "D+N has one meaning" in texts["notebooks/04_late_data.ipynb"]
