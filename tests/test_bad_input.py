"""Bad input is refused up front: exit code 2, one line, no traceback, nothing written.

Table-driven over the ``backfill-lab`` command line (every command) and the plan loader. Each CLI
case runs against its own copy of a small demo warehouse, and the file must come out byte for
byte as it went in (or stay absent, for ``demo``).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_lab import Plan
from backfill_lab.cli.commands import main
from backfill_lab.errors import BackfillLabError

ROOT = Path(__file__).resolve().parent.parent
SMALL_DEMO = ["--history", "2024-11-25..2024-12-10", "--outage", "2024-12-01..2024-12-04",
              "--entities", "20", "--events-per-day", "60"]

GOOD_PLAN = """\
pipeline: daily_features
backfill:
  start: 2024-12-01
  end: 2024-12-03
  layers: [raw, staging, features]
"""


def _plan(**backfill: str) -> str:
    """A plan whose backfill section has these lines changed."""
    lines = {"start": "2024-12-01", "end": "2024-12-03", "layers": "[raw, staging, features]"}
    lines.update(backfill)
    body = "".join(f"  {k}: {v}\n" for k, v in lines.items() if v is not None)
    return f"pipeline: daily_features\nbackfill:\n{body}"


# -- plan texts that must be refused (by run, export, check and Plan.load alike) -------------------
BAD_PLANS: dict[str, str | bytes] = {
    "impossible-day": _plan(end="2024-02-30"),
    "impossible-month": _plan(start="2024-13-01"),
    "impossible-list-item": "backfill:\n  partitions: [2024-12-01, 2024-02-31]\n",
    "not-utf8": b"backfill:\n  start: 2024-12-01\n  end: \xff\xfe2024\n",
    "nul-bytes": b"backfill:\x00\n",
    "deep-20000": "a: " + "[" * 20000 + "]" * 20000 + "\n",
    "deep-mapping": "".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "x\n",
    "alias-bomb": 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\n',
    "too-big": "backfill:\n  start: 2024-12-01\n  end: 2024-12-03\n# " + "x" * 70_000 + "\n",
    "huge-value": "backfill:\n  target: " + "y" * 60_000 + "\n  start: 2024-12-01\n",
    "empty": "",
    "only-comment": "# nothing\n",
    "a-list": "- 1\n- 2\n",
    "a-string": "hello\n",
    "duplicate-backfill": GOOD_PLAN + "backfill:\n  start: 2024-12-01\n  end: 2024-12-01\n",
    "duplicate-start": "backfill:\n  start: 2024-12-01\n  start: 2024-12-02\n  end: 2024-12-03\n",
    "layers-empty": _plan(layers="[]"),
    "layers-unknown": _plan(layers="[raw, stagin]"),
    "schedule-pst": GOOD_PLAN + "schedule: 'daily 02:00 PST'\n",
    "schedule-nonsense": GOOD_PLAN + "schedule: 'sometimes'\n",
    "nan-null-rate": GOOD_PLAN + "validations:\n  null_rate: {max: .nan}\n",
    "nan-psi": GOOD_PLAN + "validations:\n  drift: {max_psi: .nan}\n",
    "inf-psi": GOOD_PLAN + "validations:\n  drift: {max_psi: .inf}\n",
    "fullwidth-start": _plan(start="'２０２４-１２-０１'"),
    "fullwidth-list": "backfill:\n  partitions: ['２０２４-１２-０１']\n",
    "reversed-range": _plan(start="2024-12-05", end="2024-12-01"),
    "one-sided": _plan(end=None),
    "start-not-date": _plan(start="yesterday"),
    "concurrency-zero": _plan(concurrency="0"),
    "concurrency-text": _plan(concurrency="many"),
    "retries-negative": _plan(retries="-1"),
    "mode-unknown": _plan(mode="upsert"),
    "merge-no-keys": _plan(mode="merge"),
    "batch-merge": _plan(mode="merge", merge_keys="[entity_id, date]", batch_size="2"),
    "unknown-top-key": GOOD_PLAN + "pipelin: x\n",
    "unknown-backfill-key": _plan(concurency="2"),
    "pipeline-unknown": GOOD_PLAN.replace("daily_features", "weekly_features"),
    "target-bad-name": _plan(target="'features v2'"),
    "tab-indent": "backfill:\n\tstart: 2024-12-01\n",
    "unclosed": "backfill: [2024-12-01\n",
    "over-cap-range": _plan(start="0001-01-01", end="2024-12-31"),
    "hourly-list-in-daily": "backfill:\n  partitions: ['2024-12-01T05', '2024-12-01T06']\n",
    "config-hash-bare-hex": GOOD_PLAN + "config_hash: 1a2b3c4d\n",
    "config-hash-short": GOOD_PLAN + "config_hash: sha256:1a2b\n",
    "config-hash-number": GOOD_PLAN + "config_hash: 12345678\n",
    "config-hash-typo-key": GOOD_PLAN + "config_hsh: sha256:1a2b3c4d\n",
    "runtime-typo-part": GOOD_PLAN + "runtime: pyhton 3.11 / duckdb 2.0.1\n",
    "runtime-no-version": GOOD_PLAN + "runtime: duckdb\n",
    "runtime-twice": GOOD_PLAN + "runtime: duckdb 2.0.1 / duckdb 2.0.0\n",
    "runtime-mapping": GOOD_PLAN + "runtime: {duckdb: 2.0.1}\n",
    "runtime-typo-key": GOOD_PLAN + "runtme: duckdb 2.0.1\n",
}

# plans that load, but that a run on the demo warehouse must refuse before writing anything
BAD_RUN_PLANS: dict[str, str] = {
    "code-version-mismatch": GOOD_PLAN + "code_version: v9.9.9\n",
    "config-hash-mismatch": GOOD_PLAN + "config_hash: sha256:00000000\n",
    "runtime-mismatch": GOOD_PLAN + "runtime: python 3.11 / duckdb 0.0.1\n",
    "target-ledger": _plan(target="_bl_ledger"),
    "target-tables": _plan(target="_bl_tables"),
    "target-meta": _plan(target="_bl_meta"),
    "target-other-layer": _plan(target="raw", layers="[raw, staging, features]"),
    "target-upstream-layer": _plan(target="staging"),
    "merge-key-unknown": _plan(mode="merge", merge_keys="[entity, date]",
                               layers="[features]"),
    "drift-baseline-unknown": GOOD_PLAN + "validations:\n  drift: {baseline: features_v0}\n",
    "drift-column-unknown": GOOD_PLAN + "validations:\n  drift: {columns: [amount_9d]}\n",
    "null-column-unknown": GOOD_PLAN + "validations:\n  null_rate: {columns: [nope]}\n",
    "unique-column-unknown": GOOD_PLAN + "validations:\n  unique_keys: [entity, date]\n",
    "future-days": _plan(start="2099-01-01", end="2099-01-03"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "lab.duckdb"
    assert main(["demo", "--db", str(path), *SMALL_DEMO]) == 0
    return path


def _digest(path: Path) -> str | None:
    if not path.exists():
        return None
    if path.is_dir():
        return "dir:" + ",".join(sorted(p.name for p in path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(argv: list[str], capsys, watch: list[Path]) -> str:
    """Run the CLI in-process; it must exit 2 with one line on stderr and change no file."""
    before = {p: _digest(p) for p in watch}
    capsys.readouterr()
    try:
        code = main(argv)
    except BaseException as exc:  # pragma: no cover - the failure being tested for
        pytest.fail(f"{argv[:1]} raised {type(exc).__name__}: {str(exc)[:200]}")
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert "Traceback" not in err
    assert len(lines[0]) < 600, lines[0][:300]
    for p in watch:
        assert _digest(p) == before[p], f"{p.name} changed"
        assert not Path(f"{p}.wal").exists()
    return lines[0]


# -- the command line --------------------------------------------------------------------------
def _bf(*extra: str) -> list[str]:
    return ["backfill", "--partitions", "2024-12-01..2024-12-03", *extra]


DB_CASES: dict[str, list[str]] = {
    # backfill: ranges and keys
    "bf-impossible-day": ["backfill", "--partitions", "2024-02-30"],
    "bf-impossible-month": ["backfill", "--partitions", "2024-13-01"],
    "bf-year-one": ["backfill", "--partitions", "1-01-01..2024-01-01"],
    "bf-three-dots": ["backfill", "--partitions", "2024-12-01...2024-12-31"],
    "bf-empty": ["backfill", "--partitions", ""],
    "bf-blank": ["backfill", "--partitions", "   "],
    "bf-comma-only": ["backfill", "--partitions", ","],
    "bf-fullwidth": ["backfill", "--partitions", "２０２４-１２-０１"],
    "bf-arabic-digits": ["backfill", "--partitions", "٢٠٢٤-١٢-٠١"],
    "bf-hourly-on-daily": ["backfill", "--partitions", "2024-12-01T05"],
    "bf-hourly-range": ["backfill", "--partitions", "2024-12-01T00..2024-12-01T05"],
    "bf-future": ["backfill", "--partitions", "2099-01-01..2099-01-03"],
    "bf-reversed": ["backfill", "--partitions", "2024-12-31..2024-12-01"],
    "bf-words": ["backfill", "--partitions", "december"],
    "bf-huge": ["backfill", "--partitions", "2024-12-01," * 20_000 + "x" * 100_000],
    "bf-over-cap": ["backfill", "--partitions", "1900-01-01..2024-12-31"],
    "bf-mixed-grain": ["backfill", "--partitions", "2024-12-01,2024-12-01T05"],
    # backfill: settings
    "bf-parallel-zero": _bf("--max-parallel", "0"),
    "bf-parallel-negative": _bf("--max-parallel", "-3"),
    "bf-parallel-text": _bf("--max-parallel", "lots"),
    "bf-parallel-float": _bf("--max-parallel", "1.5"),
    "bf-parallel-empty": _bf("--max-parallel", ""),
    "bf-retries-negative": _bf("--retries", "-1"),
    "bf-retries-text": _bf("--retries", "x"),
    "bf-batch-zero": _bf("--batch-size", "0"),
    "bf-batch-merge": _bf("--batch-size", "2", "--write-mode", "merge", "--merge-keys",
                          "entity_id,date"),
    "bf-mode-unknown": _bf("--write-mode", "upsert"),
    "bf-merge-no-keys": _bf("--write-mode", "merge"),
    "bf-merge-empty-keys": _bf("--write-mode", "merge", "--merge-keys", ""),
    "bf-merge-unknown-key": _bf("--write-mode", "merge", "--merge-keys", "entity,date"),
    "bf-merge-unknown-key-raw": _bf("--write-mode", "merge", "--merge-keys", "evnt_id,date",
                                    "--layers", "raw"),
    "bf-merge-bad-key-name": _bf("--write-mode", "merge", "--merge-keys", "a b"),
    "bf-layers-unknown": _bf("--layers", "stagin"),
    "bf-layers-empty": _bf("--layers", ""),
    "bf-layers-commas": _bf("--layers", ",,"),
    "bf-order-unknown": _bf("--order", "sideways"),
    "bf-target-ledger": _bf("--target", "_bl_ledger"),
    "bf-target-tables": _bf("--target", "_bl_tables"),
    "bf-target-meta": _bf("--target", "_bl_meta"),
    "bf-target-backfills": _bf("--target", "_bl_backfills"),
    "bf-target-built": _bf("--target", "_bl_built"),
    "bf-target-validations": _bf("--target", "_bl_validations"),
    "bf-target-raw": _bf("--target", "raw"),
    "bf-target-staging": _bf("--target", "staging"),
    "bf-target-raw-only": _bf("--target", "features", "--layers", "raw"),
    "bf-target-space": _bf("--target", "features v2"),
    "bf-target-empty": _bf("--target", ""),
    "bf-target-quote": _bf("--target", 'x"; DROP TABLE raw; --'),
    "bf-target-digit": _bf("--target", "2features"),
    "bf-code-version-empty": _bf("--code-version", ""),
    "bf-code-version-mismatch": _bf("--code-version", "v9.9.9"),
    "bf-config-hash-bad": _bf("--config-hash", "1a2b3c4d"),
    "bf-config-hash-empty": _bf("--config-hash", ""),
    "bf-config-hash-mismatch": _bf("--config-hash", "sha256:00000000"),
    "bf-runtime-typo": _bf("--runtime", "duck 2.0.1"),
    "bf-runtime-garbage": _bf("--runtime", "latest"),
    "bf-runtime-mismatch": _bf("--runtime", "duckdb 0.0.1"),
    "bf-feature-version": _bf("--feature-version", "v3"),
    "bf-id-empty": _bf("--backfill-id", ""),
    "bf-id-blank": _bf("--backfill-id", "   "),
    "bf-id-huge": _bf("--backfill-id", "b" * 5000),
    "bf-id-newline": _bf("--backfill-id", "a\nb"),
    "bf-tag-no-equals": _bf("--audit-tag", "ticket"),
    "bf-tag-no-key": _bf("--audit-tag", "=x"),
    "bf-drift-unknown": _bf("--validate", "--drift-baseline", "features_v0"),
    "bf-drift-internal": _bf("--validate", "--drift-baseline", "_bl_ledger"),
    "bf-drift-without-validate": _bf("--drift-baseline", "features"),
    "bf-unknown-option": _bf("--max-paralel", "2"),
    "bf-no-partitions": ["backfill"],
    # validate
    "va-table-unknown": ["validate", "--table", "featurs", "--partitions", "2024-12-05"],
    "va-table-internal": ["validate", "--table", "_bl_ledger", "--partitions", "2024-12-05"],
    "va-partitions-bad": ["validate", "--table", "features", "--partitions", "2024-02-30"],
    "va-partitions-hourly": ["validate", "--table", "features", "--partitions", "2024-12-05T01"],
    "va-null-max-big": ["validate", "--table", "features", "--partitions", "2024-12-05",
                        "--null-max", "2"],
    "va-null-max-nan": ["validate", "--table", "features", "--partitions", "2024-12-05",
                        "--null-max", "nan"],
    "va-psi-negative": ["validate", "--table", "features", "--partitions", "2024-12-05",
                        "--max-psi", "-1"],
    "va-psi-nan": ["validate", "--table", "features", "--partitions", "2024-12-05",
                   "--max-psi", "nan"],
    "va-psi-inf": ["validate", "--table", "features", "--partitions", "2024-12-05",
                   "--max-psi", "inf"],
    "va-row-min-negative": ["validate", "--table", "features", "--partitions", "2024-12-05",
                            "--row-min", "-1"],
    "va-row-bounds-crossed": ["validate", "--table", "features", "--partitions", "2024-12-05",
                              "--row-min", "10", "--row-max", "5"],
    "va-unique-unknown": ["validate", "--table", "features", "--partitions", "2024-12-05",
                          "--unique-keys", "entity,date"],
    "va-drift-unknown": ["validate", "--table", "features", "--partitions", "2024-12-05",
                         "--drift-baseline", "features_v0"],
    # switchover and rollback
    "sw-to-unknown": ["switchover", "--view", "features_live", "--to", "features_v9"],
    "sw-to-internal": ["switchover", "--view", "features_live", "--to", "_bl_ledger",
                       "--create"],
    "sw-create-unknown": ["switchover", "--view", "features_live", "--to", "nope", "--create"],
    "sw-view-is-table": ["switchover", "--view", "raw", "--to", "features", "--create"],
    "sw-view-bad-name": ["switchover", "--view", "a b", "--to", "features", "--create"],
    "sw-view-internal": ["switchover", "--view", "_bl_meta", "--to", "features", "--create"],
    "sw-no-view-yet": ["switchover", "--view", "features_live", "--to", "features"],
    "sw-psi-nan": ["switchover", "--view", "features_live", "--to", "features",
                   "--canary-max-psi", "nan"],
    "sw-partitions-bad": ["switchover", "--view", "features_live", "--to", "features",
                          "--partitions", "2024-02-30"],
    "rb-view-unknown": ["rollback", "--view", "features_live"],
    "rb-view-is-table": ["rollback", "--view", "raw"],
    "rb-snapshot-unknown": ["rollback", "--snapshot", "snap-1"],
    "rb-both": ["rollback", "--view", "v", "--snapshot", "s"],
    "rb-neither": ["rollback"],
    # schedule
    "sc-pst": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13",
               "--schedule", "daily 02:00 PST"],
    "sc-nonsense": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13",
                    "--schedule", "whenever"],
    "sc-hour-25": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13",
                   "--schedule", "daily 25:00 UTC"],
    "sc-start-bad": ["schedule", "--start", "2024-02-30", "--until", "2024-12-13"],
    "sc-until-bad": ["schedule", "--start", "2024-12-11", "--until", "soon"],
    "sc-until-impossible": ["schedule", "--start", "2024-12-11", "--until", "2024-12-32"],
    "sc-delay-bad": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13",
                     "--watermark-delay", "two days"],
    "sc-delay-negative": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13",
                          "--watermark-delay", "-1d"],
    "sc-parallel-zero": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13",
                         "--max-parallel", "0"],
    "sc-window-negative": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13",
                           "--reprocess-window", "-1"],
    "sc-mode-unknown": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13",
                        "--write-mode", "upsert"],
    "sc-future": ["schedule", "--start", "2099-01-01", "--until", "2099-01-03"],
    # status
    "st-partitions-bad": ["status", "--partitions", "2024-02-30"],
    "st-id-unknown": ["status", "--backfill-id", "bf-nope"],
    "st-partitions-fullwidth": ["status", "--partitions", "２０２４-１２-０１"],
}


@pytest.mark.parametrize("name", sorted(DB_CASES))
def test_the_cli_refuses_bad_arguments_and_leaves_the_warehouse_as_it_was(
        name, pristine, tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    shutil.copy(pristine, db)
    argv = DB_CASES[name]
    argv = [argv[0], "--db", str(db), *argv[1:]]
    _refused(argv, capsys, [db])


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["run", "export", "check"])
@pytest.mark.parametrize("name", sorted(BAD_PLANS))
def test_every_plan_command_refuses_a_bad_plan_file(name, command, pristine, tmp_path, capsys):
    plan = _write(tmp_path / "plan.yaml", BAD_PLANS[name])
    db = tmp_path / "lab.duckdb"
    shutil.copy(pristine, db)
    argv = {"run": ["run", str(plan), "--db", str(db)],
            "export": ["export", str(plan), "--to", "airflow"],
            "check": ["check", str(plan), "--no-simulate"]}[command]
    line = _refused(argv, capsys, [db, plan])
    assert "x" * 100 not in line and "y" * 100 not in line  # echoed values are shortened


@pytest.mark.parametrize("name", sorted(BAD_RUN_PLANS))
def test_a_plan_the_warehouse_cannot_run_is_refused_before_anything_is_written(
        name, pristine, tmp_path, capsys):
    plan = _write(tmp_path / "plan.yaml", BAD_RUN_PLANS[name])
    db = tmp_path / "lab.duckdb"
    shutil.copy(pristine, db)
    _refused(["run", str(plan), "--db", str(db)], capsys, [db, plan])


@pytest.mark.parametrize("name", sorted(BAD_PLANS))
def test_plan_load_refuses_a_bad_plan_in_one_short_line(name, tmp_path):
    content = BAD_PLANS[name]
    plan = _write(tmp_path / "plan.yaml", content)
    with pytest.raises(BackfillLabError) as info:
        Plan.load(plan)
    text = str(info.value)
    assert "\n" not in text and len(text) < 600, text[:300]
    if isinstance(content, str):
        with pytest.raises(BackfillLabError):
            Plan.from_yaml(content)


@pytest.mark.parametrize("name", ["dir", "missing-plan", "plan-is-db"])
def test_a_plan_path_that_is_no_plan_file(name, pristine, tmp_path, capsys):
    path = {"dir": tmp_path, "missing-plan": tmp_path / "nope.yaml", "plan-is-db": pristine}[name]
    for argv in (["check", str(path)], ["export", str(path), "--to", "dbt"]):
        line = _refused(argv, capsys, [pristine])
        assert str(path.name) in line or "plan" in line
    with pytest.raises(BackfillLabError):
        Plan.load(Path(path))


# -- --db that is not a warehouse --------------------------------------------------------------
def _foreign(path: Path) -> Path:
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers AS SELECT 1 AS id")
    con.close()
    return path


DB_FILES = {
    "random-bytes": lambda p: _write(p, bytes(range(256)) * 64),
    "empty-file": lambda p: _write(p, b""),
    "text-file": lambda p: _write(p, "hello\n"),
    "directory": lambda p: (p.mkdir(), p)[1],
    "foreign-duckdb": _foreign,
}
DB_COMMANDS = {
    "status": ["status"],
    "backfill": _bf(),
    "schedule": ["schedule", "--start", "2024-12-11", "--until", "2024-12-13"],
    "switchover": ["switchover", "--view", "v", "--to", "t", "--create"],
    "rollback": ["rollback", "--view", "v"],
    "validate": ["validate", "--table", "features", "--partitions", "2024-12-05"],
    "run": ["run", "PLAN"],
}


@pytest.mark.parametrize("command", sorted(DB_COMMANDS))
@pytest.mark.parametrize("kind", sorted(DB_FILES))
def test_a_db_that_is_not_a_warehouse_gets_the_right_advice(kind, command, tmp_path, capsys):
    db = DB_FILES[kind](tmp_path / "lab.duckdb")
    plan = _write(tmp_path / "plan.yaml", GOOD_PLAN)
    argv = [a if a != "PLAN" else str(plan) for a in DB_COMMANDS[command]]
    line = _refused([argv[0], "--db", str(db), *argv[1:]], capsys, [db])
    assert "close the other program" not in line
    if kind == "directory":
        assert "directory" in line
    elif kind == "foreign-duckdb":
        assert "not a backfill-lab warehouse" in line
    else:
        assert "not a DuckDB" in line or "empty" in line


@pytest.mark.parametrize("name", ["long-name", "long-dir", "nul"])
def test_a_db_path_the_system_refuses(name, tmp_path, capsys):
    path = {"long-name": str(tmp_path / ("d" * 300 + ".duckdb")),
            "long-dir": str(tmp_path / ("d" * 300) / "lab.duckdb"),
            "nul": str(tmp_path / "a") + "\x00b"}[name]
    for argv in (["demo", "--db", path], ["status", "--db", path], [*_bf()[:1], "--db", path,
                                                                   *_bf()[1:]]):
        _refused(argv, capsys, [])


# -- demo ------------------------------------------------------------------------------------------
DEMO_CASES = {
    "impossible-history": ["--history", "2024-02-30..2024-03-03"],
    "outage-outside-history": ["--history", "2024-12-01..2024-12-05", "--outage", "2025-01-01"],
    "outage-impossible": ["--history", "2024-12-01..2024-12-05", "--outage", "2024-12-32"],
    "future-history": ["--history", "2099-01-01..2099-01-05", "--outage", "none"],
    "hourly-history": ["--history", "2024-12-01T00..2024-12-01T05", "--outage", "none"],
    "seed-negative": ["--seed", "-1"],
    "entities-zero": ["--entities", "0"],
    "events-text": ["--events-per-day", "many"],
    "history-empty": ["--history", ""],
    "fullwidth-history": ["--history", "２０２４-１２-０１..２０２４-１２-０５"],
}


@pytest.mark.parametrize("name", sorted(DEMO_CASES))
def test_demo_refuses_before_creating_the_file(name, tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    _refused(["demo", "--db", str(db), *DEMO_CASES[name]], capsys, [db])
    assert not db.exists()


def test_demo_refuses_to_replace_a_file_without_force(pristine, tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    shutil.copy(pristine, db)
    _refused(["demo", "--db", str(db)], capsys, [db])
    _refused(["demo", "--db", str(db), "--force", "--history", "2024-02-30"], capsys, [db])


@pytest.mark.parametrize("argv", [[], ["nope"], ["--version-of-nothing"], ["backfil"],
                                  ["status"], ["check"], ["export", "p.yaml"]])
def test_top_level_mistakes(argv, capsys):
    _refused(argv, capsys, [])


def test_messages_quote_what_was_received(pristine, tmp_path, capsys):
    db = tmp_path / "lab.duckdb"
    shutil.copy(pristine, db)
    line = _refused(["backfill", "--db", str(db), "--partitions", "1-01-01..2024-01-01"],
                    capsys, [db])
    assert "'1-01-01..2024-01-01'" in line or "'1-01-01'" in line
    assert "(got '1-01-01')" not in line or "1-01-01.." in line
    line = _refused(["backfill", "--db", str(db), "--partitions", "2024-12-01...2024-12-31"],
                    capsys, [db])
    assert "'.2024-12-31'" not in line and "2024-12-01...2024-12-31" in line
    line = _refused(["backfill", "--db", str(db), "--partitions", "2024-12-01", "--target",
                     "_bl_ledger"], capsys, [db])
    assert "_bl_ledger" in line


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path):
    plan = _write(tmp_path / "plan.yaml", BAD_PLANS["deep-20000"])
    for argv in (["check", str(plan)], ["status", "--db", str(tmp_path)]):
        proc = subprocess.run([sys.executable, "-m", "backfill_lab.cli", *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# -- the Python API: the same checks, before the first write ---------------------------------------
@pytest.fixture
def demo_wh(pristine, tmp_path):
    from backfill_lab import Warehouse

    db = tmp_path / "lab.duckdb"
    shutil.copy(pristine, db)
    with Warehouse(db) as wh:
        yield wh


def _state(wh) -> tuple[object, ...]:
    from backfill_lab import Ledger

    return ({t: wh.checksums(t) for t in wh.tables()}, len(Ledger(wh).frame()),
            sorted(wh.sql("SELECT table_name FROM information_schema.tables").table_name))


API_CASES = {
    "target-ledger": {"target": "_bl_ledger"},
    "target-raw": {"target": "raw"},
    "target-staging-of-features": {"target": {"features": "staging"}},
    "hourly-keys": {"partitions": "2024-12-01T00..2024-12-01T03"},
    "future-days": {"partitions": "2099-01-01"},
    "unknown-merge-key": {"mode": "merge", "merge_keys": ["entity", "date"]},
    "unknown-drift-baseline": {"validations": {"drift": {"baseline": "features_v0"}}},
    "unknown-drift-column": {"validations": {"drift": {"columns": ["amount_9d"]}}},
    "code-version": {"code_version": "v9"},
    "config-hash": {"config_hash": "sha256:00000000"},
    "config-hash-bad": {"config_hash": "sha256"},
    "runtime": {"runtime": "python 2.7"},
    "runtime-bad": {"runtime": "pyhton 3.11"},
    "empty-id": {"backfill_id": ""},
    "nan-backoff": {"backoff": float("nan")},
}


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_run_backfill_refuses_before_anything_is_written(name, demo_wh):
    from backfill_lab import demo_pipeline, run_backfill

    settings = dict(API_CASES[name])
    partitions = settings.pop("partitions", "2024-12-01..2024-12-03")
    before = _state(demo_wh)
    with pytest.raises(BackfillLabError) as info:
        run_backfill(demo_pipeline(demo_wh), demo_wh, partitions, **settings)
    assert "\n" not in str(info.value)
    assert _state(demo_wh) == before


def test_run_plan_refuses_a_version_mismatch_before_taking_snapshots(demo_wh):
    from backfill_lab import run_plan

    plan = GOOD_PLAN + "code_version: v9.9.9\nrollback: {strategy: snapshot}\n"
    before = _state(demo_wh)
    with pytest.raises(BackfillLabError, match=r"v9\.9\.9"):
        run_plan(plan, demo_wh)
    assert _state(demo_wh) == before


def test_the_python_api_gives_the_right_advice_for_a_file_that_is_no_database(tmp_path):
    from backfill_lab import Warehouse

    path = _write(tmp_path / "noise.duckdb", bytes(range(256)) * 16)
    with pytest.raises(BackfillLabError) as info:
        Warehouse(path)
    assert "not a DuckDB database" in str(info.value)
    assert "close the other program" not in str(info.value)


def test_hourly_keys_into_a_daily_table_are_refused_before_writing():
    import datetime as dt

    import pandas as pd

    from backfill_lab import Layer, Pipeline, StepContext, Warehouse, run_backfill
    from backfill_lab.partitions import to_value

    def rows(ctx: StepContext) -> pd.DataFrame:
        value = to_value(ctx.partition)
        return pd.DataFrame({"date": [value], "n": [1]})

    pipe = Pipeline("any", [Layer("t", rows)])  # no partition_check of its own
    with Warehouse() as wh:
        assert run_backfill(pipe, wh, "2024-12-01").ok
        before = (wh.checksums("t"), len(wh.sql("SELECT * FROM _bl_ledger")))
        with pytest.raises(BackfillLabError, match="has daily partitions"):
            run_backfill(pipe, wh, "2024-12-02T05")
        assert (wh.checksums("t"), len(wh.sql("SELECT * FROM _bl_ledger"))) == before
        assert isinstance(to_value("2024-12-02"), dt.date)
