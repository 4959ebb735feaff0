"""The kernel sandbox against a hostile learner: one test per attack class of issue 12.

Each attack is a fixture notebook in tests/submissions/, named by its expected outcome. It is
graded in a child process (tests/sandbox_child.py) that prints one JSON line and its own peak
memory, so a test also sees whatever would reach a grading worker's terminal. The attacks need
bubblewrap as root; without it these tests skip and say why.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from grader import sandbox as sandbox_module
from grader.execute import Limits, isolation

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "tests" / "submissions"
# attacks on the grading host itself (fork bomb, memory hog, leftovers, the grader's terminal):
# kept out of tests/submissions, which `make grade` and tests/test_grader.py grade as a batch
# even where no sandbox contains them
HOST_ATTACKS = ROOT / "tests" / "host_attacks"


def _fixture(name: str) -> Path:
    """The fixture notebook called ``name``, wherever it is kept."""
    host = HOST_ATTACKS / f"{name}.ipynb"
    return host if host.exists() else SUBMISSIONS / f"{name}.ipynb"
pytestmark = pytest.mark.slow
QUICK = {"cell_timeout": 10, "timeout": 60}


@pytest.fixture(scope="module")
def sandboxed() -> None:
    box = isolation()
    if not box.isolated:
        pytest.skip(f"the kernel sandbox is not available here: {box.note}")


def _start(name: str, limits: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sandbox_child", str(_fixture(name)),
         json.dumps(limits)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    lines = out.splitlines()
    # the child prints exactly one line: nothing the kernel wrote reached its stdout
    assert len(lines) == 1, out[:500]
    result: dict[str, Any] = json.loads(lines[0])
    result["child_stdout"], result["child_stderr"] = out, err
    return result


def _grade(name: str, **limits: Any) -> dict[str, Any]:
    return _finish(_start(name, {**QUICK, **limits}))


def test_a_kernel_cannot_reach_a_sibling_kernel(sandboxed):
    """Two submissions at once: the attacker looks for the other's connection file to give it
    a full-marks plan; it finds nothing, and the victim keeps its own (empty) plan."""
    victim = _start("ex1_sibling_victim_zero", QUICK)
    time.sleep(1.5)  # the victim's kernel is up and in its slow cell
    attacker = _start("ex1_reads_sibling_connection_no_gain", QUICK)
    hit, hurt = _finish(attacker), _finish(victim)
    assert hit["status"] == "graded" and hit["data"]["plan"]["hits"] == []
    assert hurt["status"] == "graded" and hurt["data"]["plan"] == {"__placeholder__": True}


def test_the_quiz_key_is_out_of_reach(sandboxed):
    """.git, tests/submissions/, solutions/ and other copies of the project are not there."""
    assert (ROOT / "tests" / "submissions" / "quick_test_all_right.ipynb").is_file()
    res = _grade("quick_test_reads_key_copies_zero")
    assert res["status"] == "graded" and res["data"]["answers"] == {}


def test_etc_shadow_is_not_there(sandboxed):
    res = _grade("ex1_reads_etc_shadow_no_gain")
    assert res["data"]["plan"]["shadow"] == "FileNotFoundError"


def test_nothing_a_kernel_writes_outlives_it(sandboxed):
    """/dev/shm, SysV shared memory, /dev and /tmp are the kernel's own; /sys is not there."""
    res = _grade("ex1_leaves_files_behind_nothing_left")
    done = res["data"]["plan"]["done"]
    assert done["cgroup"] == "FileNotFoundError"
    assert done["/dev/backfill-leak"] == "OSError"  # a read-only /dev (with a private shm)
    assert done["/dev/shm/backfill-leak"] == done["/tmp/backfill-leak"] == "written"
    for path in ("/dev/shm/backfill-leak", "/dev/backfill-leak", "/tmp/backfill-leak",
                 "/sys/fs/cgroup/backfill-leak"):
        assert not Path(path).exists(), path
    keys = [line.split()[0] for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
    assert str(0x0BF11EA4) not in keys


def test_the_kernel_runs_unprivileged(sandboxed):
    plan = _grade("ex1_runs_as_root_no_gain")["data"]["plan"]
    assert (plan["uid"], plan["euid"], plan["gid"], plan["groups"]) == (1000, 1000, 1000, [])
    assert int(plan["cap_eff"], 16) == 0 and int(plan["cap_bnd"], 16) == 0
    assert plan["ifaces"] == ["lo"]  # no network: the kernel talks over Unix sockets
    assert plan["no_new_privs"] == "1" and plan["tty"] == "OSError"  # no terminal to write to


def test_kernel_output_never_reaches_the_grader_terminal(sandboxed, tmp_path):
    """Forged progress lines and 100 MB on fd 1 and 2 go to the kernel's own capped log."""
    res = _grade("ex1_writes_grader_stdout_not_shown")
    assert res["status"] == "graded" and "FORGED-LINE" in res["log"]
    assert len(res["log"]) <= 2_000
    cli = subprocess.run(
        [sys.executable, "-m", "grader", "grade",
         str(_fixture("ex1_writes_grader_stdout_not_shown")), "--out",
         str(tmp_path / "out"), "--cell-timeout", "10", "--timeout", "60"],
        cwd=ROOT, capture_output=True, check=False, timeout=180)
    assert cli.returncode == 0, cli.stderr[-2000:]
    for stream in (cli.stdout, cli.stderr):
        assert b"FORGED-LINE" not in stream and len(stream) < 20_000


@pytest.mark.parametrize("name", ["ex1_huge_error_capped", "ex1_huge_output_metadata_capped",
                                  "ex1_huge_widget_messages_capped"])
def test_output_caps_keep_the_grading_worker_small(sandboxed, name):
    """A 300 MB error, 600 MB of output metadata or of widget messages: the worker grows by
    less than 60 MB (it grew by 0.6-2.2 GB before the caps)."""
    res = _grade(name, memory_mb=3072)
    assert res["status"] == "graded", res["reason"]
    assert res["rss_peak_mb"] - res["rss_before_mb"] < 60, res


def test_a_fork_bomb_stops_at_the_process_cap(sandboxed):
    res = _grade("ex1_fork_bomb_stopped", max_procs=64)
    plan = res["data"]["plan"]
    assert res["status"] == "graded" and plan["stopped"] == "BlockingIOError"
    assert plan["forked"] < 64


def test_a_memory_hog_stops_at_the_memory_cap(sandboxed):
    res = _grade("ex1_memory_hog_error", memory_mb=1024)
    assert res["status"] == "error"
    assert res["reason"] == "cell 2 ran out of memory: a kernel may use at most 1024 MB"


def test_without_bubblewrap_the_grader_says_it_is_not_isolated(monkeypatch):
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda tool: None)
    box = isolation()
    assert not box.isolated and box.note.startswith("not isolated: ")
    if sys.platform == "linux" and sandbox_module.os.geteuid() == 0:
        assert "bwrap and prlimit not found (apt-get install bubblewrap" in box.note


def test_the_kernel_root_holds_only_the_runtime(sandboxed):
    """No path of the project but the backfill_lab package is bound into the sandbox."""
    binds = isolation().binds
    sources = [binds[i + 1] for i, arg in enumerate(binds) if arg == "--ro-bind"]
    inside_project = [s for s in sources if s.startswith(str(ROOT) + "/")]
    assert all(s == str(ROOT / "backfill_lab") or s.startswith(str(ROOT / ".venv"))
               for s in inside_project), inside_project
    assert not any(s.startswith("/etc/shadow") or s.startswith("/etc/gshadow")
                   for s in sources)
    assert "--unshare-all" in binds and "--die-with-parent" in binds
    assert binds[binds.index("--uid") + 1] == "1000"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("memory_mb", 0, "'memory_mb' must be a whole number > 0 (got 0)"),
    ("max_procs", 8, "'max_procs' must be at least 16"),
    ("max_notebook_output", "1MB", "'max_notebook_output' must be a whole number > 0"),
])
def test_limits_name_what_is_wrong(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Limits(**{field: value})


def test_no_kernel_runs_when_its_pids_cgroup_cannot_be_made(monkeypatch, tmp_path):
    """Fail closed: the note promised a process cap, so without one no kernel starts."""
    import nbformat

    from grader import execute
    from grader.sandbox import ProcessCap, Sandbox

    def refuse(root: Path, max_procs: int) -> ProcessCap:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(execute.ProcessCap, "root", staticmethod(lambda: tmp_path))
    monkeypatch.setattr(execute.ProcessCap, "make", staticmethod(refuse))
    nb = nbformat.v4.new_notebook()
    run = execute.run_submission(nb, Limits(), sandbox=Sandbox("bubblewrap", "isolated"))
    assert (run.status, run.isolated) == ("error", True)
    assert run.reason == (f"the grader could not make the kernel's pids cgroup in {tmp_path} "
                          f"(Permission denied); check that it is writable")


def _stream(text: str) -> dict[str, Any]:
    return {"msg_type": "stream", "header": {"msg_type": "stream"}, "parent_header": {},
            "metadata": {}, "content": {"name": "stdout", "text": text}}


def test_every_message_counts_against_the_cell_and_notebook_caps():
    """Streams, errors and comm messages count; past the per-notebook cap nothing is kept,
    and an error past the caps keeps only its name and first line."""
    import nbformat

    from grader.capped_client import CappedClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("") for _ in range(30)]
    client = CappedClient(nb)
    client.reset_execution_trackers()
    client.clear_before_next_output = False  # set per cell by async_execute_cell
    client.max_output_bytes, client.max_notebook_bytes = 60_000, 1_000_000
    for index, cell in enumerate(nb.cells[:25]):
        client.process_message(_stream("x" * 50_000), cell, index)
    kept = sum(len(o.get("text", "")) for c in nb.cells for o in c.outputs
               if "truncated" not in o.get("text", ""))
    assert kept <= 1_000_000 and kept >= 900_000
    assert "of output in this notebook" in nb.cells[24].outputs[-1]["text"]
    error = {"msg_type": "error", "header": {"msg_type": "error"}, "parent_header": {},
             "metadata": {}, "content": {"ename": "ValueError", "evalue": "E" * 200_000
                                         + "\nsecond line", "traceback": ["T" * 100_000]}}
    client.process_message(error, nb.cells[26], 26)
    out = next(o for o in nb.cells[26].outputs if o["output_type"] == "error")
    assert out["ename"] == "ValueError" and len(out["evalue"]) == 300 and out["traceback"] == []
    comm = {"msg_type": "comm_msg", "header": {"msg_type": "comm_msg"}, "parent_header": {},
            "metadata": {}, "content": {"comm_id": "c", "data": {"state": {"k": "W" * 70_000}}}}
    client.process_message(comm, nb.cells[27], 27)
    assert client.widget_state == {} and 27 in client.truncated


def test_the_private_tmp_comes_before_the_binds_so_a_project_under_tmp_is_seen():
    """bwrap applies its arguments in order: a tmpfs on /tmp after the binds would hide a
    project (and its venv) cloned under /tmp, and every kernel would then run unisolated."""
    from grader.sandbox import _binds

    args = list(_binds())
    tmp = args.index("/tmp", args.index("--tmpfs", args.index("/dev/shm") + 1))
    binds = [i for i, a in enumerate(args) if a == "--ro-bind"]
    assert binds and tmp < min(binds)
