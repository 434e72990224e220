"""Proving that a call returns, without timing it.

A test that asserts "this took less than N seconds" fails on a busy or slow machine while vnet is
right. What such tests mean to prove is that the call gives up on its own (its timeout, an error)
instead of hanging. `returns` proves exactly that: the call runs in a thread and the test fails
only if it has not returned after a bound far above any machine's time (a hang, not slowness).
How long it takes is a figure for the benchmarks (bench/), not a test's pass or fail.

Importable as `hanglib` from every test directory: pytest puts tests/ on sys.path for
tests/conftest.py (the default `prepend` import mode).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

HANG = 120.0  # seconds: only a call that never returns takes this long


def returns(call: Callable[[], T], what: str, hang: float = HANG) -> T:
    """`call()`'s result, or its exception raised here; the test fails if it has not returned
    within `hang` seconds. The thread is a daemon: a hung call does not keep pytest from exiting."""
    result: list[T] = []
    raised: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed to the test's thread as it is
            raised.append(exc)

    thread = threading.Thread(target=run, name=f"returns: {what}", daemon=True)
    thread.start()
    thread.join(hang)
    if thread.is_alive():
        pytest.fail(f"{what} did not return within {hang:g} s: it hangs")
    if raised:
        raise raised[0]
    return result[0]
