"""A judged plan's staged copy is put back and kept for the next plan (issue 15): the next
plan must see exactly what a new copy holds, whatever ran on the copy before, or get a new one.
"""

from __future__ import annotations

import json
import random

import duckdb
import pytest

from backfill_lab._db import run
from backfill_lab.course import copies
from backfill_lab.course.scenarios import Staged, scenario
from backfill_lab.course.selfcheck import check
from backfill_lab.course.simulate import simulate, staged, staged_copy
from backfill_lab.course.templates import template
from backfill_lab.plan import Plan
from tests.plans import MINI_IN_PLACE, PERFECT, edit
from tests.verdict_corpus import GOLDEN, corpus, verdict

PINNED = json.loads(GOLDEN.read_text())


def _everything(st: Staged) -> dict[str, object]:
    """Every table and view of the copy's own catalog, with a checksum of all its rows."""
    cur = st.warehouse.cursor()
    names = run(cur, "SELECT table_name, 'table' FROM duckdb_tables() WHERE database_name = "
                     "'memory' UNION ALL SELECT view_name, sql FROM duckdb_views() WHERE "
                     "database_name = 'memory' AND NOT internal ORDER BY 1")
    out: dict[str, object] = {}
    for name, kind in names:
        out[name] = (kind, run(cur, f'SELECT count(*), sum(hash(t)::HUGEINT) FROM "{name}" t'))
    return out


def _drain(sc: object) -> None:
    """Close the copies kept of ``sc`` (a test starts from none)."""
    copies.close_kept(sc)  # type: ignore[arg-type]


@pytest.mark.parametrize("exercise", ["ex1", "ex2", "mini_challenge"])
def test_a_copy_put_back_holds_what_a_new_copy_holds(exercise: str) -> None:
    sc = scenario(exercise)
    _drain(sc)
    simulate(Plan.load(PERFECT[exercise]), sc)
    assert copies.kept(sc) == 1
    found = copies.take(sc, Plan.load(PERFECT[exercise]), template(sc))
    assert found is not None and copies.kept(sc) == 0
    fresh = staged_copy(sc)
    try:
        mine = _everything(found[0])
        new = _everything(fresh)
        # a copy staged for a plan reads the tables the plan cannot write from the template
        assert {n: v for n, v in mine.items() if v[0] == "table"} == \
            {n: v for n, v in new.items() if n in mine and mine[n][0] == "table"}
        assert not {n for n in new if n not in mine}
        views = {n: v for n, v in new.items() if v[0] != "table"}
        assert {n: mine[n] for n in views} == views
    finally:
        fresh.warehouse.close()
        found[0].warehouse.close()


def test_plans_keep_their_verdicts_in_any_order_on_kept_copies() -> None:
    """The same verdict whatever was judged on the copy before (a seeded shuffle of the
    pinned plans: every exercise, every mistake, tables created, views switched)."""
    plans = corpus()
    names = [n for n in sorted(plans) if not n.startswith("throughput_")]
    random.Random(15).shuffle(names)
    for name in names:
        exercise, text = plans[name]
        got = json.loads(json.dumps(verdict(exercise, text), sort_keys=True))
        assert got == PINNED[name], f"{name}: another verdict on a kept copy"


def test_two_replays_at_once_never_share_a_copy() -> None:
    sc, plan = scenario("ex1"), Plan.load(PERFECT["ex1"])
    _drain(sc)
    simulate(plan, sc)
    assert copies.kept(sc) == 1
    with staged(sc, plan) as one, staged(sc, plan) as two:
        assert one.warehouse is not two.warehouse
        assert copies.kept(sc) == 0
    assert copies.kept(sc) == 0  # neither ran to the end: both were closed, none kept


# -- a learner who wants points: poison the copy the next classmate is judged on ----------------
POISON = edit(PERFECT["ex1"], "  downstream_read: true\n",
              "  downstream_read:\n    query: \"DELETE FROM staging WHERE date = DATE "
              "'2024-11-15' RETURNING *\"\n")


def test_a_plan_that_runs_its_own_sql_leaves_no_copy_for_the_next() -> None:
    sc = scenario("ex1")
    _drain(sc)
    before = copies.kept(sc)
    check(POISON, "ex1", record=False)
    assert copies.kept(sc) == before  # its copy was closed, not kept
    got = json.loads(json.dumps(verdict("ex1", PERFECT["ex1"]), sort_keys=True))
    assert got == PINNED["perfect_ex1"]


def test_a_copy_whose_table_changed_shape_is_closed() -> None:
    sc, plan = scenario("mini_challenge"), Plan.load(MINI_IN_PLACE)
    _drain(sc)
    simulate(plan, sc)
    found = copies.take(sc, plan, template(sc))
    assert found is not None
    st, layout = found
    run(st.warehouse.cursor(), "ALTER TABLE features_v1 ADD COLUMN sneaky INTEGER")
    state: dict[str, dict[str, str]] = {"features_v1": {}}
    assert copies.put_back(sc, st, layout, state, state)  # kept, to be put back when taken
    assert copies.take(sc, plan, template(sc)) is None
    assert copies.kept(sc) == 0
    with pytest.raises(duckdb.ConnectionException):  # closed
        st.warehouse.cursor().execute("SELECT 1")


def test_a_copy_that_does_not_check_out_after_the_put_back_is_closed(monkeypatch) -> None:
    sc, plan = scenario("ex1"), Plan.load(PERFECT["ex1"])
    _drain(sc)
    simulate(plan, sc)
    found = copies.take(sc, plan, template(sc))
    assert found is not None
    st, layout = found
    # the state before says 2024-11-15 of staging held other rows: putting it back from the
    # template cannot give those, so the check after the put-back fails
    before = {"staging": {"2024-11-15": "1:1"}}
    assert copies.put_back(sc, st, layout, before, {"staging": {"2024-11-15": "2:2"}})
    assert copies.take(sc, plan, template(sc)) is None
    assert copies.kept(sc) == 0
    with pytest.raises(duckdb.ConnectionException):  # closed
        st.warehouse.cursor().execute("SELECT 1")


def test_no_more_than_a_few_copies_are_kept_the_oldest_closed_first() -> None:
    sc = scenario("ex2")
    copies.close_kept()
    made = [staged_copy(sc) for _ in range(copies.KEPT + 1)]
    state: dict[str, dict[str, str]] = {}
    for st in made:
        copies.put_back(sc, st, copies.Layout.of(st, None, "unused"), state, state)
    assert copies.kept(sc) == copies.KEPT
    with pytest.raises(duckdb.ConnectionException):  # the oldest was closed
        made[0].warehouse.cursor().execute("SELECT 1")
    made[-1].warehouse.cursor().execute("SELECT 1")
    assert copies.close_kept() == copies.KEPT and copies.kept(sc) == 0


def test_a_copy_kept_from_another_template_is_not_taken():
    """A process whose template changed (the grader builds its own where a learner's check
    took one from the cache folder) never judges on a copy of the one before."""
    sc = scenario("ex1")
    copies.close_kept(sc)
    plan = Plan.load(PERFECT["ex1"])
    st = staged_copy(sc)
    assert copies.put_back(sc, st, copies.Layout.of(st, None, "/somewhere/else.duckdb"), {}, {})
    assert copies.kept(sc) == 1
    assert copies.take(sc, plan, template(sc)) is None
    copies.close_kept(sc)


def test_a_forked_child_never_takes_its_parents_copies():
    import os

    sc = scenario("ex1")
    plan = Plan.load(PERFECT["ex1"])
    check(plan, sc, record=False)  # leaves its copy kept
    assert copies.kept(sc) >= 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's copies are not its own
        try:
            seen = copies.kept(sc)
            found = copies.take(sc, plan, template(sc))
            os.write(write, f"{seen} {found is None}".encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    assert answer == "0 True"
    assert copies.kept(sc) >= 1  # still the parent's
    copies.close_kept(sc)
