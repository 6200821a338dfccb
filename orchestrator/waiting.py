"""Waiting for a condition with a deadline: the one polling loop ktest has.

Used where no event exists to wait on (a sysfs value, an interface that
appears); every caller names what it waits for, so a timeout says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    """The condition did not hold before the deadline."""


def wait_until(check: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.1, max_interval: float = 1.0) -> T:
    """Call `check` until it returns a true value and return that value.

    The interval grows from `interval` to `max_interval`. After `timeout`
    seconds raise WaitTimeout("<what> within <timeout>s"); `check` is always
    called at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"{what}: not within {timeout:g}s")
        time.sleep(min(delay, left))
        delay = min(delay * 1.5, max_interval)
