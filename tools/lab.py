"""Start JupyterLab for the workbook: what ``make lab`` runs.

    python tools/lab.py [--port 8888] [--no-browser]

* It serves the workbook's root folder (``notebooks/``, ``exercises/`` and the rest are all
  reachable from the file browser and from the index's links) and opens
  ``notebooks/00_index.ipynb``.
* It runs for whoever starts it: as root (a course VM, a container) it passes ``--allow-root``,
  which JupyterLab otherwise demands and exits without.
* It listens on 127.0.0.1 only, with a fresh random token, and prints exactly one line to open,
  the URL with that token, before JupyterLab's own log starts. A port already in use is an
  error (it does not silently move to another port, which would make the printed URL wrong).

Stop it with Ctrl+C in its terminal (JupyterLab asks to confirm; press Ctrl+C twice to skip).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = "notebooks/00_index.ipynb"


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def command(port: int, token: str, *, browser: bool, root: Path = ROOT) -> list[str]:
    """The ``jupyter lab`` command line for ``root``, listening on ``127.0.0.1:port``."""
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    start = START if (root / START).exists() else ""
    cmd = [
        jupyter, "lab", f"--ServerApp.root_dir={root}", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--LabApp.default_url=/lab/tree/{start}" if start else "--LabApp.default_url=/lab",
    ]
    if not browser:
        cmd.append("--no-browser")
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def main(argv: list[str] | None = None) -> int:
    """Print the URL to open, then replace this process with JupyterLab."""
    parser = argparse.ArgumentParser(prog="make lab", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LAB_PORT", "8888")))
    parser.add_argument("--no-browser", action="store_true",
                        default=os.environ.get("LAB_BROWSER", "1") == "0")
    args = parser.parse_args(argv)
    if not _free(args.port):
        print(f"make lab: port {args.port} is in use (another JupyterLab?); stop it, or pick "
              f"another port: make lab LAB_PORT={args.port + 1}", file=sys.stderr)
        return 2
    token = secrets.token_hex(16)
    cmd = command(args.port, token, browser=not args.no_browser)
    url = f"http://127.0.0.1:{args.port}/lab/tree/{START}?token={token}"
    print(f"Safe Backfills: open {url}  (Ctrl+C to stop)", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    raise SystemExit(main())
