"""The cache folder of built incidents (:mod:`backfill_lab.course.templates`): a learner's next
process takes the incident and its reference from it, and they are exactly what a build gives;
an entry is never used once anything it was built from changed, or once its file changed; a
folder that cannot be written changes nothing; and the grader never reads it, even when an
entry was planted there to look right.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_lab.course import scenarios, templates
from backfill_lab.course.drills import incident
from backfill_lab.course.scenarios import Scenario, scenario, truth
from backfill_lab.course.selfcheck import check
from backfill_lab.course.simulate import staged_copy
from backfill_lab.course.templates import build_key, cache_folder, file_digest, template

from .test_staging import _everything

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A cache folder of this test's own, and a process that has built nothing yet."""
    monkeypatch.setenv("BACKFILL_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(templates, "_TEMPLATES", {})
    monkeypatch.setattr(scenarios, "_TRUTHS", {})
    return tmp_path / "cache"


def _forget(monkeypatch) -> None:
    """As a new process: nothing built here (the cache folder stays)."""
    monkeypatch.setattr(templates, "_TEMPLATES", {})
    monkeypatch.setattr(scenarios, "_TRUTHS", {})


def _builds(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = Scenario.build
    monkeypatch.setattr(Scenario, "build", lambda sc: calls.append(sc.exercise) or real(sc))
    return calls


def test_a_cached_incident_and_truth_are_what_a_build_gives(folder, monkeypatch):
    sc = incident(3)
    built = _everything(staged_copy(sc))
    want = truth(sc)
    assert [p.name.split("-")[-2] for p in folder.glob("*.duckdb")] == [build_key(sc)]
    assert len(list(folder.glob("*.truth.json"))) == 1
    _forget(monkeypatch)
    calls = _builds(monkeypatch)
    monkeypatch.setattr(scenarios, "_compute_truth", lambda sc: pytest.fail("truth recomputed"))
    assert template(sc).exists() and ("incident", sc) in templates._FROM_CACHE and not calls
    assert _everything(staged_copy(sc)) == built
    assert truth(sc) == want


@pytest.mark.slow
def test_an_exercise_judged_on_a_cached_incident_gets_the_same_verdicts(folder, monkeypatch):
    from .plans import MISTAKES, PERFECT

    sc = scenario("ex1")
    # (not the plans above the warehouse's capacity: which of their writes fail is timing)
    plans = [PERFECT["ex1"], MISTAKES["append_on_rerun"][1],
             MISTAKES["downstream_before_upstream"][1]]
    fresh = [check(p, sc, record=False) for p in plans]
    _forget(monkeypatch)
    calls = _builds(monkeypatch)
    again = [check(p, sc, record=False) for p in plans]
    assert not calls
    for a, b in zip(fresh, again, strict=True):
        assert [(r.name, r.passed, r.points, r.message) for r in a.results] == \
               [(r.name, r.passed, r.points, r.message) for r in b.results]


def test_anything_the_build_depends_on_gives_another_key(monkeypatch):
    sc = incident(3)
    key = build_key(sc)
    assert build_key(incident(3)) == key
    assert build_key(dataclasses.replace(sc, seed=sc.seed + 1)) != key
    assert build_key(dataclasses.replace(sc, events_per_day=sc.events_per_day + 1)) != key
    monkeypatch.setattr(templates, "_CODE", "another version of backfill_lab")
    assert build_key(sc) != key


def test_a_changed_or_cut_file_is_never_used(folder, monkeypatch):
    sc = incident(3)
    first = template(sc)
    entry = next(folder.glob("*.duckdb"))
    entry.write_bytes(entry.read_bytes()[:4096])  # cut short: its name no longer says its hash
    _forget(monkeypatch)
    calls = _builds(monkeypatch)
    again = template(sc)
    assert calls == [sc.exercise] and again.parent != folder and first.exists()
    (rebuilt,) = folder.glob("*.duckdb")  # the cut file went; the new build took its place
    taken = templates._cached(sc)
    assert rebuilt.stat().st_size > 4096 and taken is not None
    assert file_digest(taken) == file_digest(rebuilt) and taken.parent != folder


@pytest.mark.parametrize("body", [
    {"raw": {"2024-12-01": "1:2"}},  # no hash
    {"sha256": "0" * 64, "checksums": {"raw": {"2024-12-01": "1:2"}}},  # the wrong hash
    {"sha256": "x", "checksums": {"raw": {"2024-12-01": 5}}},  # not checksums
    [1, 2], "text", None,
])
def test_a_truth_that_is_not_checksums_is_not_used(folder, monkeypatch, body):
    sc = incident(3)
    want = truth(sc)
    (path,) = folder.glob("*.truth.json")
    path.write_text(json.dumps(body))
    _forget(monkeypatch)
    assert truth(sc) == want


def test_off_or_unwritable_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(templates, "_TEMPLATES", {})
    monkeypatch.setenv("BACKFILL_LAB_CACHE", "off")
    assert cache_folder() is None
    sc = incident(3)
    assert template(sc).exists()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("BACKFILL_LAB_CACHE", str(blocked / "cache"))
    monkeypatch.setattr(templates, "_TEMPLATES", {})
    monkeypatch.setattr(scenarios, "_TRUTHS", {})
    assert template(sc).exists() and truth(sc)
    monkeypatch.delenv("BACKFILL_LAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_folder() == tmp_path / "xdg" / "safe-backfills" / "incidents"
    monkeypatch.delenv("XDG_CACHE_HOME")

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert cache_folder() is None  # a kernel with no home: no cache, no error


def test_the_grader_never_reads_a_planted_entry(folder, monkeypatch):
    """The attack: a file planted in the cache folder under ex1's key, named by its own hash
    (so the cache takes it), holding another incident, and a reference that says every plan is
    right. A learner's own process takes it (it is their own cache); the grader does not."""
    import grader.score as score

    from .plans import PERFECT

    sc = scenario("ex1")
    other = dataclasses.replace(incident(3), exercise="ex1")
    templates._store(sc, template(other))  # filed under ex1's key, with a matching hash
    templates.keep_truth(sc, {"raw": {}})  # well formed, and its hash matches
    _forget(monkeypatch)
    planted = templates._cached(sc)
    assert planted is not None and file_digest(planted) == file_digest(template(other))
    assert templates.cached_truth(sc) == {"raw": {}}
    staged_part = score.stage("ex1", "incident")
    assert staged_part["sha256"] != file_digest(planted)
    truth_part = score.stage("ex1", "truth")
    assert truth_part["truth"] != {"raw": {}} and "features" in truth_part["truth"]
    assert cache_folder() == folder  # as it was, after grading
    # a judge that was handed nothing builds both itself, too
    _forget(monkeypatch)
    score._judge_here.cache_clear()
    calls = _builds(monkeypatch)
    plan = json.dumps(PERFECT["ex1"])
    judged = score.judge("ex1", plan)
    assert calls == ["ex1"] and all(t.score == t.max_score for t in judged)
    assert file_digest(templates.built_template(sc)) != file_digest(planted)


@pytest.mark.slow
def test_the_cli_check_fills_the_cache_then_uses_it(tmp_path):
    plan = tmp_path / "plan.yaml"
    from .plans import PERFECT

    plan.write_text(PERFECT["mini_challenge"])
    env = {"BACKFILL_LAB_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "BACKFILL_LAB_PROGRESS": str(tmp_path / "progress.json")}
    command = [sys.executable, "-m", "backfill_lab.cli", "check", str(plan), "--exercise",
               "mini_challenge"]
    first = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert any(f.endswith(".duckdb") for f in files) and any(f.endswith(".json") for f in files)
    assert first.stdout == second.stdout
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == files


# -- found by a review ------------------------------------------------------------------
def test_a_deeply_nested_truth_file_does_not_crash_the_learner(folder, monkeypatch):
    # cached_truth catches OSError and ValueError; json.loads raises RecursionError here
    sc = incident(3)
    want = truth(sc)
    (path,) = folder.glob("*.truth.json")
    path.write_text("[" * 100_000 + "]" * 100_000)
    monkeypatch.setattr(scenarios, "_TRUTHS", {})
    assert truth(sc) == want


def test_a_failed_keep_truth_leaves_no_part_file(folder, monkeypatch):
    # os.replace fails (the name is taken by a folder): the .part file written aside stays,
    # one more each process (the pruning only looks at *.duckdb)
    sc = incident(3)
    folder.mkdir(parents=True)
    (folder / f"{sc.exercise}-{build_key(sc)}.truth.json").mkdir()
    templates.keep_truth(sc, {"raw": {"2024-12-01": "x"}})
    templates.keep_truth(sc, {"raw": {"2024-12-01": "x"}})
    assert not list(folder.glob(".*.part"))


def test_the_grader_in_a_process_that_used_the_cache_still_builds_its_own(folder, monkeypatch):
    """score.stage runs under no_disk_cache, but truth() and template() first look in this
    process's memo (_TRUTHS, _TEMPLATES), filled from the cache folder by any earlier
    learner-side call in the same process (an instructor's notebook calling check() and then
    grader.grade_notebook / score_plan): the planted entry is judged against."""
    import grader.score as score

    sc = scenario("ex1")
    other = dataclasses.replace(incident(3), exercise="ex1")
    templates._store(sc, templates.template(other))
    templates.keep_truth(sc, {"raw": {}})  # well formed, and its hash matches
    monkeypatch.setattr(templates, "_TEMPLATES", {})
    monkeypatch.setattr(scenarios, "_TRUTHS", {})
    truth(sc)  # a learner-side call in this process (the cache is theirs: fine)
    templates.template(sc)
    assert score.stage("ex1", "truth")["truth"] != {"raw": {}}
    staged_part = score.stage("ex1", "incident")
    assert staged_part["sha256"] != templates.file_digest(templates.template(other))
    assert templates.usable_here("incident", sc)  # the learner's process: theirs to use


_UNEDITABLE = (  # the editable install's finder would import the worktree's backfill_lab
    "import sys; sys.meta_path = [f for f in sys.meta_path "
    "if 'editable' not in getattr(f, '__module__', '') + getattr(f, '__name__', '')]\n")

_OLD_KERNEL = _UNEDITABLE + """
import pathlib, sys
import backfill_lab.demo.daily  # what this kernel runs: imported before the course update
from backfill_lab.course import templates
from backfill_lab.course.drills import incident
daily = pathlib.Path(sys.argv[1]) / "backfill_lab" / "demo" / "daily.py"
daily.write_text(daily.read_text().replace('"store")', '"shop")'))  # the update lands on disk
templates.template(incident(3))  # built with the old code, filed under the new code's key
"""

_NEW_KERNEL = _UNEDITABLE + """
import os, sys
sys.path.append(sys.argv[2])
from backfill_lab.course import templates
from backfill_lab.course.drills import incident
from backfill_lab.course.simulate import staged_copy
from tests.test_staging import _everything
sc = incident(3)
import backfill_lab
assert backfill_lab.__file__.startswith(sys.argv[1]), backfill_lab.__file__
cached = _everything(staged_copy(sc))
print("from cache:", ("incident", sc) in templates._FROM_CACHE)
os.environ["BACKFILL_LAB_CACHE"] = "off"
fresh = _everything(sc.build())
for d in (cached, fresh):
    d.pop("_bl_views")  # wall-clock times of the build
print("same as a fresh build:", cached == fresh)
"""


@pytest.mark.slow
def test_code_changed_on_disk_after_import_never_serves_an_old_build(tmp_path):
    """_code_fingerprint hashes backfill_lab's files on disk when build_key is first called,
    not the code this process imported: a kernel that imported the course, then saw the
    files change (a course update, an edit) before it first staged, files its old-code build
    under the new code's key; every new process then takes that stale incident."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    shutil.copytree(root / "backfill_lab", src / "backfill_lab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src),
           "BACKFILL_LAB_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    for script in (_OLD_KERNEL, _NEW_KERNEL):
        done = subprocess.run([sys.executable, "-c", script, str(src), str(root)], env=env,
                              cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    # the kernel that saw its code change on disk filed nothing: the next process builds
    assert "from cache: False" in done.stdout, done.stdout
    assert "same as a fresh build: True" in done.stdout, done.stdout
