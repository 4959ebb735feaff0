"""What does the kernel sandbox add to a kernel's start-up? (goal: at most +0.1 s)

Run from the project root, as root on Linux with bubblewrap installed, with the project's venv::

    python benchmarks/sandbox_overhead.py            # N=10 starts each way
    python benchmarks/sandbox_overhead.py -n 20

It starts and shuts down N kernels both ways, alternating (plain, sandboxed, plain, ...), so
load on the machine hits both alike: "plain" is the grader's kernel manager with the sandbox off
(the same ``ipc`` transport, output drain and capped sockets), "sandboxed" the same manager with
bubblewrap, the pids cgroup and the memory limit. Each start is timed from launch until the
kernel answers ``kernel_info`` (what nbclient waits for before the first cell). It prints the
medians and their difference, and exits 1 if the sandbox is not available here.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from grader.execute import Limits
from grader.kernel import OutputDrain, SandboxedKernelManager, capped_context
from grader.sandbox import ProcessCap, Sandbox, isolation, kernel_env


async def _start_stop(sandbox: Sandbox, limits: Limits) -> tuple[float, float]:
    """Seconds to launch (until the process runs the kernel) and to the first ``kernel_info``
    reply, for one fresh kernel."""
    workdir = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
    (workdir / "home").mkdir()
    cap_root = ProcessCap.root() if sandbox.isolated else None
    km = SandboxedKernelManager(kernel_name="python3", transport="ipc",
                                ip=str(workdir / "kernel"),
                                context=capped_context(limits.max_message))
    km.sandbox, km.workdir, km.memory_mb = sandbox, workdir, limits.memory_mb
    km.connection_file = str(workdir / f"kernel-{secrets.token_hex(4)}.json")
    km.drain = OutputDrain(limits.max_log)
    km.cap = ProcessCap.make(cap_root, limits.max_procs) if cap_root else None
    try:
        t0 = time.perf_counter()
        await km.start_kernel(cwd=str(workdir),
                              env=kernel_env(workdir / "home", isolated=sandbox.isolated))
        launched = time.perf_counter() - t0
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        seconds = time.perf_counter() - t0
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        return launched, seconds
    finally:
        km.drain.close()
        if km.cap is not None:
            km.cap.remove()
        km.context.destroy(linger=0)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Time N kernel starts each way and print the medians and the difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="kernel starts each way (10)")
    args = parser.parse_args(argv)
    sandbox = isolation()
    if not sandbox.isolated:
        print(f"sandbox_overhead: {sandbox.note}", file=sys.stderr)
        return 1
    limits = Limits()
    plain, boxed = Sandbox("none", ""), sandbox
    asyncio.run(_start_stop(plain, limits))  # warm the file cache for both
    times: dict[str, list[float]] = {"plain": [], "sandboxed": []}
    launches: dict[str, list[float]] = {"plain": [], "sandboxed": []}
    for _ in range(args.n):
        for name, box in (("plain", plain), ("sandboxed", boxed)):
            launched, ready = asyncio.run(_start_stop(box, limits))
            launches[name].append(launched)
            times[name].append(ready)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        print(f"{name:>10}: ready in median {med[name]:.3f}s  (min {min(values):.3f}s, "
              f"max {max(values):.3f}s, n={len(values)}); launch median "
              f"{statistics.median(launches[name]):.3f}s")
    diff = med["sandboxed"] - med["plain"]
    launch = statistics.median(launches["sandboxed"]) - statistics.median(launches["plain"])
    print(f"sandbox overhead per kernel start: {diff:+.3f}s (goal: at most +0.100s); "
          f"of which launching bwrap and the handshake: {launch:+.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
