"""A bounded queue in front of the model, so ``serve`` says "busy, retry in N s" instead of making waits grow.

At most ``max_queue`` photos are inside at once (waiting for the model or being served); one more is answered 503
at once. An exam of several photos takes a place for each, all or none: one that does not fit is refused whole. An
admitted request that has not reached the model ``max_wait_s`` seconds after it was admitted is answered 503 too,
rather than graded late. Both answers carry ``Retry-After``: the seconds the photos now inside need to be answered,
from the median model time of the recent photos.

Everything here runs on the event loop (no thread touches it), so the count needs no lock; the model itself is
taken in arrival order through an :class:`asyncio.Lock`, and waiting requests hold no worker thread, so the
page, ``/health`` and static files keep the thread pool.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

DEFAULT_MAX_QUEUE = 8  # with the ~5 s per photo of the released model on a 2-core CPU: waits up to ~40 s
DEFAULT_MAX_WAIT_S = 60.0  # what browsers and reverse proxies commonly wait before giving up
UNMEASURED_RETRY_S = 10  # Retry-After before any photo has been graded
RECENT = 20  # model times kept for the estimate


class Busy(Exception):
    """No room for a grading request now; the app answers it 503 with ``Retry-After: retry_after_s``."""

    def __init__(self, why: str, retry_after_s: int) -> None:
        super().__init__(f"busy: {why}; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class Admission:
    """Counts the grading requests inside, serialises the model, and times it for ``Retry-After``."""

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        if max_queue < 1 or max_wait_s <= 0:
            raise ValueError(f"max_queue must be >= 1 and max_wait_s > 0, got {max_queue} and {max_wait_s}")
        self.max_queue, self.max_wait_s = max_queue, max_wait_s
        self.inside = 0  # admitted and not yet answered: waiting for the model or being served
        self.model_s: deque[float] = deque(maxlen=RECENT)
        self._model = asyncio.Lock()

    def retry_after_s(self) -> int:
        """Seconds until the requests now inside are answered (at least 1), or a constant before any is timed."""
        if not self.model_s:
            return UNMEASURED_RETRY_S
        return max(1, math.ceil(self.inside * statistics.median(self.model_s)))

    @asynccontextmanager
    async def admit(self, photos: int = 1) -> AsyncIterator[float]:
        """Admit a grading request of ``photos`` photos, each taking a place; yields the ``time.monotonic()`` by
        which its first photo must reach the model.

        Raises:
            Busy: the places are not free (a request never takes some of them).
        """
        if self.inside + photos > self.max_queue:
            what = "" if photos == 1 else f"an exam of {photos} photos needs {photos} places; "
            why = f"{what}{self.inside} photos are waiting or being graded, of {self.max_queue} (serve --max-queue)"
            raise Busy(why, self.retry_after_s())
        self.inside += photos
        try:
            yield time.monotonic() + self.max_wait_s
        finally:
            self.inside -= photos

    @asynccontextmanager
    async def model(self, deadline: float) -> AsyncIterator[None]:
        """Hold the model, taken in arrival order, and time its use.

        Raises:
            Busy: the model is not free by ``deadline``.
        """
        try:
            await asyncio.wait_for(self._model.acquire(), timeout=max(deadline - time.monotonic(), 0.0))
        except asyncio.TimeoutError as err:  # the builtin TimeoutError from Python 3.11 on
            why = f"the model was not free within {self.max_wait_s:g} s (serve --max-wait)"
            raise Busy(why, self.retry_after_s()) from err
        start = time.monotonic()
        try:
            yield
        finally:
            self.model_s.append(time.monotonic() - start)
            self._model.release()
