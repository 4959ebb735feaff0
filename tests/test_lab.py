"""``make lab`` works on the first try: started for real, it serves the whole workbook."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, ConnectionError):
        return 0, b""  # not listening yet


@pytest.mark.slow
def test_make_lab_prints_one_url_and_serves_the_index_and_the_exercises():
    port = _free_port()
    # as a learner types it in a shell: not as a sub-make of the test run (``make -C dir test``
    # would hand it -w, and its first line would be "make[1]: Entering directory ...")
    outer = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    env = {**{k: v for k, v in os.environ.items() if k not in outer},
           "LAB_PORT": str(port), "LAB_BROWSER": "0"}
    proc = subprocess.Popen(["make", "-s", "lab"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Safe Backfills: open http://127.0.0.1:"), line
        url = line.split()[3]
        assert url.startswith(f"http://127.0.0.1:{port}/lab/tree/notebooks/00_index.ipynb?token=")
        token = url.split("token=")[1]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            status, _ = _get(f"{base}/api/status?token={token}")
            if status == 200:
                break
            assert proc.poll() is None, "JupyterLab exited (as root it needs --allow-root)"
            assert time.monotonic() < deadline, "JupyterLab did not answer within 90 s"
            time.sleep(0.5)
        status, page = _get(url)
        assert status == 200 and b"JupyterLab" in page
        for path in ("notebooks/00_index.ipynb", "exercises/ex1_december_backfill.ipynb"):
            status, body = _get(f"{base}/api/contents/{path}?token={token}")
            assert status == 200, f"{path} is not reachable through the server ({status})"
            assert json.loads(body)["type"] == "notebook"
        status, _ = _get(f"{base}/api/contents/notebooks/00_index.ipynb")
        assert status == 403, "without the token the server must refuse"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


def test_a_busy_port_is_refused_in_one_line():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        run = subprocess.run([".venv/bin/python", "tools/lab.py", "--port", str(port)],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and f"port {port} is in use" in run.stderr
