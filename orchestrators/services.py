"""Airflow 3 for ``make orchestrators``: a throw-away deployment on 127.0.0.1, started and stopped
around one backfill.

``airflow backfill create`` only queues runs; the api-server (the task runners report to its
execution API), the dag-processor (parses the DAG) and the scheduler (starts the runs and their
tasks, LocalExecutor) do the work. All three listen on loopback only or not at all: the
api-server is bound to 127.0.0.1, and the scheduler runs with ``--skip-serve-logs`` (Airflow's
log server binds every interface and has no setting for that; the logs are local files here).
Every wait is bounded, and the services are stopped whatever happens.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import backfill_lab as bl

START_TIMEOUT = 240.0  # seconds for the services to come up and parse the DAG
RUN_TIMEOUT = 900.0  # seconds for the backfill's runs to finish
DAG_ID = "daily_features"


class AirflowError(Exception):
    """Airflow did not come up, or the backfill did not finish in time (one line)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def airflow_env(env: Mapping[str, str], work: Path, project: Path, port: int) -> dict[str, str]:
    """Airflow's configuration, all in environment variables: SQLite, LocalExecutor, loopback."""
    home = work / "airflow_home"
    home.mkdir(exist_ok=True)
    return {**env, "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(project / "airflow" / "dags"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}


@contextmanager
def services(env: Mapping[str, str], cwd: Path, logs: Path) -> Iterator[set[int]]:
    """The api-server, dag-processor and scheduler, each in its own process group; all three
    are stopped (SIGTERM, then SIGKILL) on the way out. Yields their process group ids."""
    port = env["AIRFLOW__API__PORT"]
    commands = {"api-server": ["airflow", "api-server", "--host", "127.0.0.1", "--port", port],
                "dag-processor": ["airflow", "dag-processor"],
                "scheduler": ["airflow", "scheduler", "--skip-serve-logs"]}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in commands.items():
            with (logs / f"{name}.log").open("ab") as out:
                procs.append(subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=out,
                                              stderr=subprocess.STDOUT,
                                              start_new_session=True))
        yield {p.pid for p in procs}
    finally:
        for proc in procs:  # each service's own process group: it and the workers it forked
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with suppress(ProcessLookupError):  # whatever is left of that group
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def listening(pgids: set[int]) -> list[str]:
    """The TCP addresses processes of the groups ``pgids`` listen on (from /proc, Linux)."""
    inodes: dict[str, int] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if os.getpgid(int(fd_dir.parent.name)) not in pgids:
                continue
            for fd in fd_dir.iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = int(fd_dir.parent.name)
        except OSError:  # the process ended, or is not ours to read
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.append(_address(fields[1]))
    return found


def _address(hex_address: str) -> str:
    """``0100007F:1F91`` -> ``127.0.0.1:8081`` (IPv6 in full, for the loopback test)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]  # little-endian 32-bit words
    packed = b"".join(words)
    text = socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)
    return f"{text}:{int(port, 16)}"


def wait_for(what: str, ready: Callable[[], bool], timeout: float) -> None:
    """Poll ``ready`` every second until it is true; AirflowError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AirflowError(f"airflow: {what} not ready after {timeout:.0f} s")
        time.sleep(1)


def _query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or the database busy
        return []
    finally:
        con.close()


def _api_up(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health",
                                    timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def airflow_backfill(export: Callable[[Mapping[str, str]], int], plan: bl.Plan, work: Path,
                     env: Mapping[str, str], project: Path, log: Path) -> int:
    """Deploy the mirror DAG, run the exported commands (``export``), wait for the backfill's
    runs to finish (bounded); the number of commands run. ``export`` gets Airflow's
    environment. Raises AirflowError on trouble."""
    from run import run  # the same bounded command runner

    aenv = airflow_env(env, work, project, free_port())
    db = Path(aenv["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))
    cwd = project / "airflow"
    run(["airflow", "db", "migrate"], cwd=cwd, env=aenv, log=log)
    with services(aenv, cwd, work) as groups:
        wait_for("the api-server", lambda: _api_up(aenv["AIRFLOW__API__PORT"]), START_TIMEOUT)
        wait_for(f"DAG {DAG_ID}",
                 lambda: bool(_query(db, "SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID)),
                 START_TIMEOUT)
        run(["airflow", "dags", "unpause", DAG_ID], cwd=cwd, env=aenv, log=log)  # deployed
        n = export(aenv)
        days = len(plan.backfill.partitions)

        def finished() -> bool:
            rows = _query(db, "SELECT state, count(*) FROM dag_run WHERE dag_id = ? AND "
                          "run_type = 'backfill' GROUP BY state", DAG_ID)
            states = {str(state): int(str(n)) for state, n in rows}
            return sum(states.values()) >= days and set(states) <= {"success", "failed"}

        wait_for(f"the backfill of {days} runs", finished, RUN_TIMEOUT)
        exposed = [a for a in listening(groups) if not a.startswith(("127.0.0.1:", "::1:"))]
        if exposed:
            raise AirflowError(f"airflow listens beyond loopback: {', '.join(exposed)}")
        failed = _query(db, "SELECT logical_date FROM dag_run WHERE dag_id = ? AND "
                        "run_type = 'backfill' AND state = 'failed'", DAG_ID)
        if failed:
            raise AirflowError(f"airflow: {len(failed)} backfill runs failed (see {work})")
    return n
