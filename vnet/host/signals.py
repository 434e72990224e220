"""Signal handlers for the length of a block: the previous ones come back however it ends."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

Handler = Callable[[int, FrameType | None], None]


@contextlib.contextmanager
def handling(handler: Handler, *signals: signal.Signals) -> Iterator[None]:
    """`handler` for `signals` while the block runs (main thread only, as signal.signal)."""
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
