"""Run one submission in this process and print what it produced, with this process's peak
memory, as one JSON line: how the sandbox tests watch a grading worker from outside.

Usage: python -m tests.sandbox_child NOTEBOOK [LIMITS_JSON]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

from grader.execute import Limits, isolation, run_submission


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str]) -> int:
    """Grade ``argv[0]`` with the limits in ``argv[1]`` (JSON) and print the outcome."""
    nb = nbformat.read(argv[0], as_version=4)
    limits = Limits(**json.loads(argv[1])) if len(argv) > 1 else Limits()
    sandbox = isolation()
    before = peak_rss_mb()
    run = run_submission(nb, limits, sandbox=sandbox)
    print(json.dumps({"status": run.status, "reason": run.reason, "data": run.data,
                      "failed_cells": run.failed_cells, "isolated": run.isolated,
                      "log": run.log[:2000], "truncated": run.output_truncated,
                      "seconds": run.seconds, "rss_before_mb": before,
                      "rss_peak_mb": peak_rss_mb()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
