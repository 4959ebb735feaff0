"""Judging a plan under limits: a wall-clock limit and a memory limit, enforced by the OS.

What left a learner's kernel is plain data, but judging it runs the engine: a plan can still ask
for work without end (a range of a century) or memory without end. So each plan is judged in a
child process forked from the one that asks (it inherits the staged incident and the reference
truth, so a fork costs milliseconds): the child's address space is capped with ``RLIMIT_AS``,
and it is killed when it runs past the wall-clock limit. Whatever happens to the child (it
raised, ran out of memory, was killed, crashed), the caller gets one :class:`Judged` back:
the tests, or the reason there are none. The process that asked is never harmed.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import score
from .score import TestResult

__all__ = ["JudgeLimits", "Judged", "judge_limited", "run_limited"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class JudgeLimits:
    """The limits of judging one plan: wall-clock ``seconds`` and ``memory_mb`` of memory the
    judge may take on top of what its process already holds."""

    seconds: float = 120.0
    memory_mb: int = 2048

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, int | float) or isinstance(self.seconds, bool) \
                or self.seconds <= 0:
            raise ValueError(f"'judge_seconds' must be a number of seconds > 0 "
                             f"(got {self.seconds!r})")
        if not isinstance(self.memory_mb, int) or isinstance(self.memory_mb, bool) \
                or self.memory_mb < 64:
            raise ValueError(f"'judge_memory_mb' must be an integer >= 64 "
                             f"(got {self.memory_mb!r})")


@dataclass(frozen=True)
class Judged:
    """What judging one plan gave: ``tests``, or none and the ``error`` that stopped it; and
    the ``picture`` of the replay (the grid it left), when the plan was replayed."""

    tests: tuple[TestResult, ...]
    seconds: float
    error: str = ""
    picture: dict[str, Any] | None = None


def _address_space() -> int:
    """The bytes of address space this process maps now (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the one that forked it dies (no orphan judge runs
    on unwatched); elsewhere the parent's kill on time-out is all there is."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], memory: int) -> None:
    """In the forked child: cap the memory, run ``fn``, send back ``("ok", value)`` or
    ``("error", why)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    _die_with_parent()
    try:
        limit = _address_space() + memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        conn.send(("ok", fn(*args)))
    except MemoryError:
        conn.send(("memory", ""))
    except BaseException as exc:  # report anything: the parent records it
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        conn.send(("error", last[:300]))
    finally:
        conn.close()


def run_limited(fn: Callable[..., Any], args: tuple[Any, ...], limits: JudgeLimits
                ) -> tuple[str, Any]:
    """``fn(*args)`` in a forked child under ``limits``: ``("ok", value)``, or ``("error",
    why)`` when it raised, ran past the time or memory limit, or died. ``fn``'s value must
    pickle. Never raises for what ``fn`` does."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, fn, args, limits.memory_mb << 20),
                        daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(limits.seconds):
            child.kill()
            return "error", (f"judging this plan took longer than {limits.seconds:g}s and was "
                             f"stopped")
        try:
            kind, value = receive.recv()
        except (EOFError, OSError):
            child.join(5)
            code = child.exitcode
            how = (f"killed by signal {-code}" if code is not None and code < 0 else
                   f"exit code {code}")
            return "error", (f"the process judging this plan died ({how}); it may have needed "
                             f"more than {limits.memory_mb} MB")
        if kind == "memory":
            return "error", f"judging this plan needed more than {limits.memory_mb} MB"
        return kind, value
    finally:
        receive.close()
        with contextlib.suppress(OSError):
            child.kill()
        child.join(5)


def judge_limited(exercise: str, plan_json: str, limits: JudgeLimits | None = None,
                  **options: Any) -> Judged:
    """:func:`grader.score.judge` of one plan under ``limits`` (``options`` go to it)."""
    limits = limits or JudgeLimits()
    t0 = time.perf_counter()
    kind, value = run_limited(_judge_tuple, (exercise, plan_json, options), limits)
    seconds = time.perf_counter() - t0
    if kind == "ok":
        tests, picture = value
        return Judged(tuple(tests), seconds, picture=picture)
    return Judged((), seconds, str(value))


def _judge_tuple(exercise: str, plan_json: str, options: dict[str, Any]
                 ) -> tuple[tuple[TestResult, ...], dict[str, Any] | None]:
    tests = tuple(score.judge(exercise, plan_json, **options))  # looked up when called
    return tests, score.picture(exercise, plan_json)
