"""``make orchestrators``: prove the lab's exports on the real tools.

For each tool (dbt, SQLMesh, Dagster, Airflow) this builds a venv in a cache folder outside the
repository (pinned versions, reused when present), stages the demo's outage on a small copy of
the demo, runs ``plan.export(tool)`` exactly as printed against the tool's mirror project
(``orchestrators/<tool>``), and compares raw, staging and features table for table with
``backfill_lab`` running the same plan. It prints one line per tool and exits 1 on any
difference (or failure), 2 on a usage error.

The staged outage: the demo's history (``2024-11-01..2025-01-31``; 50 customers, ~200 events a
day) loaded by the lab's nightly scheduler with the source down from 1 to 7 December, so raw
and staging miss those days and features miss 1 to 13 December (their 7-day windows read the
hole). dbt, Dagster and Airflow start from the lab's tables (the tools keep no state about the
outage that the exports depend on); SQLMesh keeps its own record of the intervals it built, so
its first ``plan`` loads the history itself, with the source down on the same days. Then the
source is back and the plan below (1-13 December, every layer) runs.

Usage: ``python orchestrators/run.py [TOOL ...] [--work DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

import backfill_lab as bl
from backfill_lab.demo.daily import DEMO_HISTORY, EventSource

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "safe-backfills" \
    / "orchestrators"
TABLES = ("raw", "staging", "features")
KEYS = {"raw": ("date", "event_id"), "staging": ("date", "event_id"),
        "features": ("date", "entity_id")}
ENTITIES, EVENTS_PER_DAY, OUTAGE = 50, 200, "2024-12-01..2024-12-07"  # the small demo
PLAN = """\
pipeline: daily_features
code_version: v1.4.2
backfill:
  start: 2024-12-01
  end: 2024-12-13
  order: ascending
  layers: [raw, staging, features]
  concurrency: 2
  retries: 2
  mode: overwrite
"""
#: SQLMesh runs on DuckDB 1.x, whose round() breaks ties unlike DuckDB 2.0: a rounded average
#: may differ by one unit of its last (4th) decimal; every count and sum must still be exact.
SQLMESH_TOLERANCE = {"features": {"avg_amount_1d": 1e-4 + 1e-9}}
STEP_TIMEOUT = 900  # seconds for any one command


@dataclass(frozen=True)
class Tool:
    """One orchestrator: its pinned packages and how its mirror project is laid out."""

    name: str
    version: str
    requirements: tuple[str, ...]
    project: str  # folder of orchestrators/ the exported commands run from
    schema: str = "main"  # where the tool leaves raw, staging, features
    tolerance: Mapping[str, Mapping[str, float]] | None = None

    @property
    def venv(self) -> Path:
        return CACHE / f"{self.name}-{self.version}"


TOOLS = {t.name: t for t in (
    Tool("dbt", "1.11", ("dbt-core==1.11.16", "dbt-duckdb==1.11.1", "duckdb==2.0.1"), "dbt"),
    Tool("sqlmesh", "0.236", ("sqlmesh==0.236.4", "duckdb==1.5.6"), "sqlmesh",
         schema="daily_features", tolerance=SQLMESH_TOLERANCE),
    Tool("dagster", "1.13", ("dagster==1.13.29", "duckdb==2.0.1"), "dagster"),
    Tool("airflow", "3.3", ("apache-airflow==3.3.2", "duckdb==2.0.1"), "airflow"),
)}


class Failed(Exception):
    """A step of a tool's proof failed; the message is one line."""


def ensure_venv(tool: Tool) -> str:
    """The tool's venv, built (sequentially, pinned) unless a matching one is cached."""
    stamp = tool.venv / ".requirements"
    wanted = "\n".join(tool.requirements) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return "venv cached"
    started = time.monotonic()
    shutil.rmtree(tool.venv, ignore_errors=True)
    tool.venv.parent.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "venv", str(tool.venv)], cwd=CACHE, env=dict(os.environ))
    run([str(tool.venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         *tool.requirements], cwd=CACHE, env=dict(os.environ))
    stamp.write_text(wanted)
    return f"venv built in {time.monotonic() - started:.0f} s"


def run(argv: list[str], *, cwd: Path, env: Mapping[str, str], log: Path | None = None,
        timeout: float = STEP_TIMEOUT) -> None:
    """Run one command to completion (bounded); its output goes to ``log``."""
    out = log.open("ab") if log else subprocess.DEVNULL
    try:
        proc = subprocess.run(argv, cwd=cwd, env=dict(env), stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise Failed(f"{shlex.join(argv)!r} took more than {timeout:.0f} s") from err
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if proc.returncode:
        where = f" (see {log})" if log else ""
        raise Failed(f"{shlex.join(argv)!r} exited {proc.returncode}{where}")


# -- the lab's side ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Lab:
    """The staged outage (``staged``), the lab after the plan (``expected``), the source files."""

    staged: Path
    expected: Path
    source: Path  # every day of the history: the source is back
    source_down: Path  # without the outage days: what the nightly runs saw


def stage_lab(work: Path) -> Lab:
    """Build the small demo with its outage, then run the plan on a copy, in the lab."""
    work.mkdir(parents=True, exist_ok=True)
    lab = Lab(work / "staged.duckdb", work / "expected.duckdb", work / "source.parquet",
              work / "source_down.parquet")
    warehouse = bl.Warehouse(str(lab.staged))
    bl.build_demo(warehouse, entities=ENTITIES, events_per_day=EVENTS_PER_DAY, outage=OUTAGE)
    warehouse.close()
    shutil.copyfile(lab.staged, lab.expected)
    warehouse = bl.Warehouse(str(lab.expected))
    result = bl.run_plan(PLAN, warehouse)
    warehouse.close()
    if not result.ok:
        raise Failed(f"backfill_lab could not run the plan: {result}")
    source = EventSource(7, ENTITIES, EVENTS_PER_DAY)
    events = [source.events(day) for day in bl.parse_partitions(DEMO_HISTORY)]
    outage = set(bl.parse_partitions(OUTAGE))
    con = duckdb.connect()
    for path, frames in ((lab.source, events),
                         (lab.source_down, [e for e in events
                                            if e["date"].iloc[0].isoformat() not in outage])):
        con.register("events", pd.concat(frames, ignore_index=True))
        con.execute(f"COPY (SELECT * FROM events ORDER BY date, event_id) TO '{path}'")
        con.unregister("events")
    con.close()
    return lab


def seed(lab: Lab, warehouse: Path) -> None:
    """Start a tool's warehouse from the lab's staged outage: the same three tables."""
    con = duckdb.connect(str(warehouse))
    con.execute(f"ATTACH '{lab.staged}' AS lab (READ_ONLY)")
    for table in TABLES:
        con.execute(f"CREATE TABLE main.{table} AS SELECT * FROM lab.main.{table}")
    con.close()


# -- comparing ---------------------------------------------------------------------------------
def compare(tool: Tool, expected: Path, warehouse: Path) -> tuple[list[str], str]:
    """Differences between the lab's tables and the tool's (empty when they agree), and a note
    on what the tolerance allowed."""
    con = duckdb.connect(str(expected), read_only=True)
    con.execute(f"ATTACH '{warehouse}' AS {warehouse.stem} (READ_ONLY)")
    problems, notes = [], []
    for table in TABLES:
        lab, theirs = f"main.{table}", f"{warehouse.stem}.{tool.schema}.{table}"
        tolerance = (tool.tolerance or {}).get(table, {})
        cols = [r[0] for r in con.execute(f"DESCRIBE {lab}").fetchall()]
        exact = ", ".join(c for c in cols if c not in tolerance)
        for a, b, who in ((lab, theirs, "backfill_lab"), (theirs, lab, tool.name)):
            (n,) = con.execute(f"SELECT count(*) FROM (SELECT {exact} FROM {a} "
                               f"EXCEPT ALL SELECT {exact} FROM {b})").fetchone() or (0,)
            if n:
                problems.append(f"{table}: {n} rows only in {who}")
        on = " AND ".join(f"l.{k} = t.{k}" for k in KEYS[table])
        for col, limit in tolerance.items():
            worst, ties = con.execute(
                f"SELECT max(abs(l.{col} - t.{col})), count(*) FILTER (WHERE l.{col} <> t.{col}) "
                f"FROM {lab} l JOIN {theirs} t ON {on}").fetchone() or (0, 0)
            if worst is not None and worst > limit:
                problems.append(f"{table}.{col}: off by {worst:.2g} (> {limit:.0e})")
            elif ties:
                notes.append(f"{table}.{col} within {limit:.0e} on {ties} rows (rounding ties)")
    counts = ", ".join(f"{t} {con.execute(f'SELECT count(*) FROM main.{t}').fetchone()[0]}"  # type: ignore[index]
                       for t in TABLES)
    con.close()
    return problems, f"{counts} rows" + (f"; {'; '.join(notes)}" if notes else "")


# -- running a tool ----------------------------------------------------------------------------
def tool_env(tool: Tool, work: Path, warehouse: Path, source: Path) -> dict[str, str]:
    """A small, explicit environment: the tool's venv first on PATH, no telemetry."""
    env = {"PATH": f"{tool.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(work),
           "LANG": "C.UTF-8", "TZ": "UTC", "BACKFILL_WAREHOUSE": str(warehouse),
           "BACKFILL_SOURCE": str(source), "DO_NOT_TRACK": "1",
           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_TARGET_PATH": str(work / "target"),
           "DBT_LOG_PATH": str(work / "logs"), "SQLMESH__DISABLE_ANONYMIZED_ANALYTICS": "1",
           "DAGSTER_HOME": str(work / "dagster_home")}
    (work / "dagster_home").mkdir(exist_ok=True)
    (work / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return env


def run_exports(tool: Tool, plan: bl.Plan, cwd: Path, env: Mapping[str, str], log: Path) -> int:
    """Run every command of ``plan.export(tool)`` as printed (comments are not commands)."""
    commands = [line for line in plan.export(tool.name) if not line.startswith("#")]
    for line in commands:
        argv = shlex.split(line)
        if shutil.which(argv[0], path=env["PATH"]) != str(tool.venv / "bin" / argv[0]):
            raise Failed(f"{argv[0]!r} is not {tool.name}'s command")
        with log.open("a") as f:
            f.write(f"$ {line}\n")
        run(argv, cwd=cwd, env=env, log=log)
    return len(commands)


def prove(tool: Tool, lab: Lab, work: Path) -> str:
    """Stage, run the exports, compare: the tool's one-line verdict (raises Failed)."""
    shutil.rmtree(work, ignore_errors=True)
    project = work / "orchestrators"
    shutil.copytree(HERE, project, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    warehouse, source, log = work / "warehouse.duckdb", work / "source.parquet", work / "log.txt"
    env = tool_env(tool, work, warehouse, source)
    cwd = project / tool.project
    plan = bl.load_plan(PLAN)
    if tool.name == "sqlmesh":  # SQLMesh loads the history itself, the source down
        shutil.copyfile(lab.source_down, source)
        run(["sqlmesh", "plan", "--auto-apply"], cwd=cwd, env=env, log=log)
    else:
        seed(lab, warehouse)
    shutil.copyfile(lab.source, source)  # the source is back
    if tool.name == "airflow":
        from services import airflow_backfill  # the scheduler and friends, started and stopped

        n = airflow_backfill(lambda aenv: run_exports(tool, plan, cwd, aenv, log), plan, work,
                             env, project, log)
    else:
        n = run_exports(tool, plan, cwd, env, log)
    problems, summary = compare(tool, lab.expected, warehouse)
    if problems:
        raise Failed("DIFFERENT: " + "; ".join(problems))
    return f"identical to backfill_lab ({summary}; {n} exported command{'s' * (n > 1)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("tools", nargs="*", default=list(TOOLS), metavar="TOOL",
                        help=f"any of {', '.join(TOOLS)} (default: all)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "orchestrators",
                        help="scratch folder (default: build/orchestrators)")
    args = parser.parse_args(argv)
    unknown = [t for t in args.tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tool {unknown[0]!r}; choose from {', '.join(TOOLS)}")
    started = time.monotonic()
    lab = stage_lab(args.work / "lab")
    failures = 0
    for name in args.tools:
        tool, t0 = TOOLS[name], time.monotonic()
        try:
            venv = ensure_venv(tool)
            verdict = prove(tool, lab, args.work / name)
        except Exception as err:  # every failure is that tool's one line
            failures += 1
            venv, verdict = "", f"FAILED: {str(err).splitlines()[0] if str(err) else err!r}"
        took = time.monotonic() - t0
        print(f"{name} {tool.version}: {verdict} [{took:.0f} s{', ' + venv if venv else ''}]",
              flush=True)
    print(f"orchestrators: {len(args.tools) - failures}/{len(args.tools)} proven in "
          f"{time.monotonic() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

