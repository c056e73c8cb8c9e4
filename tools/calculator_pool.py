"""The calculator in killable worker processes: bounds a thread cannot have.

A thread running sympy cannot be stopped — a huge integer product holds the GIL from start to
end — so a request could hold the service for minutes past its run's budget. Here each
calculation runs in a small pool of worker processes (pebble's ``ProcessPool``, started through
a forkserver that has sympy imported already), each with an address-space limit and Python's
int-to-str limit raised to what the calculator prints. A calculation that outlives its time is
cancelled and its worker killed and replaced; one that runs out of memory ends with a
:class:`~tools.calculator.CalculatorError` like any other refusal, and its worker is replaced
too: a heap that once filled up (sympy's caches included) can stay near the limit and fail the
next, small calculation.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import resource
import sys

from pebble import ProcessExpired, ProcessPool

from tools.calculator import (
    MAX_RESULT_DIGITS,
    CalculatorError,
    CalculatorOutOfMemory,
    CalculatorResult,
    calculate,
)

TIMEOUT_S = 10.0
"""Longest calculation; a run's remaining budget can make it shorter."""
MEMORY_BYTES = 1024 * 1024 * 1024
"""Address space of one worker (sympy included)."""
WORKERS = 2


class CalculatorPool:
    """Worker processes that evaluate :func:`~tools.calculator.calculate`, each call bounded."""

    def __init__(self, *, workers: int = WORKERS, memory_bytes: int = MEMORY_BYTES) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["tools.calculator"])
        self._pool = ProcessPool(
            max_workers=workers,
            initializer=_start_worker,
            initargs=(memory_bytes,),
            context=context,
        )

    async def evaluate(self, expression: str, *, timeout_s: float = TIMEOUT_S) -> CalculatorResult:
        """``calculate(expression)`` in a worker, given at most ``timeout_s`` including the wait
        for a free worker.

        Raises:
            CalculatorError: for every failure — the expression's own, the time limit, memory.
        """
        future = self._pool.schedule(_calculate_once, args=(expression,), timeout=timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.wrap_future(future)  # cancelling it kills the worker
        except TimeoutError:
            raise CalculatorError(
                f"the calculation did not finish within {timeout_s:g} s; split it into smaller "
                "steps or ask for less (a remainder, a number of digits)"
            ) from None
        except (ProcessExpired, MemoryError):
            raise CalculatorOutOfMemory() from None

    def close(self) -> None:
        """Stop the workers (tasks in flight are cancelled)."""
        self._pool.stop()
        self._pool.join()


@functools.cache
def shared_pool() -> CalculatorPool:
    """This process's pool, started on first use (so never inherited by a fork)."""
    return CalculatorPool()


OUT_OF_MEMORY_EXIT = 3
"""How a worker whose memory ran out ends itself (pebble then reports ``ProcessExpired``)."""


def _calculate_once(expression: str) -> CalculatorResult:
    """:func:`calculate` in a worker that does not outlive running out of memory."""
    try:
        return calculate(expression)
    except CalculatorOutOfMemory:
        os._exit(OUT_OF_MEMORY_EXIT)  # the pool starts a fresh worker; the caller is told why


def _start_worker(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    sys.set_int_max_str_digits(MAX_RESULT_DIGITS)
