"""Live counts as Server-Sent Events: one shared poll per petition, fanned out to its watchers.

However many pages watch a petition, a process reads its count once per refresh interval (from
the count cache), and wakes every watcher of that petition only when the count has changed. An
idle stream gets a comment every heartbeat so proxies keep it open, and so a watcher who left
is noticed: writing to a closed connection fails, and the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from paraphe_common.app import request_id_headers
from paraphe_common.resources import CleanupContext
from paraphe_common.security import secure_stream
from paraphe_counter.counts import COUNT_CACHE, Count, CountCache, CountUnavailable
from paraphe_counter.settings import CounterSettings

log = logging.getLogger(__name__)

STREAM_HEADERS: Final = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # nginx (and the Ingress) would otherwise hold events back in its buffer.
    "X-Accel-Buffering": "no",
}
HEARTBEAT: Final = b": heartbeat\n\n"


def count_event(count: Count) -> bytes:
    return b"event: count\ndata: " + count.body + b"\n\n"


class _Watch:
    """One petition's latest count, and an event set when it changes."""

    def __init__(self, petition_id: str) -> None:
        self.petition_id = petition_id
        self.count: Count | None = None
        self.event = b""
        self.version = 0
        self.watchers = 0
        self.poll: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def changed(self) -> asyncio.Event:
        """Set at the next change: take it *before* reading the count, so none is missed."""
        return self._changed

    def update(self, count: Count) -> None:
        if self.count is not None and self.count.signatures == count.signatures:
            return
        self.count = count
        self.event = count_event(count)
        self.version += 1
        self.wake()

    def wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class LiveCounts:
    def __init__(self, counts: CountCache, poll_interval: float, heartbeat: float) -> None:
        self._counts = counts
        self._poll_interval = poll_interval
        self._heartbeat = heartbeat
        self._watches: dict[str, _Watch] = {}
        self._polls: set[asyncio.Task[None]] = set()
        self._closing = False

    def watchers(self, petition_id: str) -> int:
        watch = self._watches.get(petition_id)
        return watch.watchers if watch is not None else 0

    async def stream(self, request: web.Request, petition_id: str) -> web.StreamResponse:
        """Send the petition's count now, then at each change, until either side leaves."""
        if self._closing:
            raise web.HTTPServiceUnavailable()
        watch = self._join(petition_id)
        try:
            if watch.count is None:
                watch.update(await self._counts.count(petition_id))
            response = web.StreamResponse(headers=STREAM_HEADERS | request_id_headers())
            secure_stream(request, response)
            await response.prepare(request)
            await self._follow(watch, response)
            return response
        finally:
            self._leave(watch)

    async def close(self) -> None:
        """End every stream now: shutdown must not wait for watchers to leave."""
        self._closing = True
        for watch in self._watches.values():
            watch.wake()
        polls = list(self._polls)
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)

    async def _follow(self, watch: _Watch, response: web.StreamResponse) -> None:
        sent = 0
        with contextlib.suppress(ConnectionResetError):  # the watcher left
            while not self._closing:
                changed = watch.changed
                if watch.version != sent:
                    sent = watch.version
                    await response.write(watch.event)
                    continue
                try:
                    async with asyncio.timeout(self._heartbeat):
                        await changed.wait()
                except TimeoutError:
                    await response.write(HEARTBEAT)

    def _join(self, petition_id: str) -> _Watch:
        watch = self._watches.get(petition_id)
        if watch is None:
            watch = self._watches[petition_id] = _Watch(petition_id)
        watch.watchers += 1
        if watch.poll is None:
            watch.poll = asyncio.create_task(self._poll(watch), name="poll-live-count")
            self._polls.add(watch.poll)
            watch.poll.add_done_callback(self._polls.discard)
        return watch

    def _leave(self, watch: _Watch) -> None:
        watch.watchers -= 1
        if watch.watchers == 0:
            # Nobody watches any more: stop reading its count.
            del self._watches[watch.petition_id]
            if watch.poll is not None:
                watch.poll.cancel()

    async def _poll(self, watch: _Watch) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                watch.update(await self._counts.count(watch.petition_id))
            except CountUnavailable:
                continue  # watchers keep the last count until the stores answer again
            except Exception:  # the watchers would wait for changes forever without the poll
                log.exception("could not read a live count")


LIVE_COUNTS = web.AppKey("live_counts", LiveCounts)


def live_counts(settings: CounterSettings) -> CleanupContext:
    """Live streams; needs the count cache before it."""

    async def stream_counts(app: web.Application) -> AsyncIterator[None]:
        live = LiveCounts(
            app[COUNT_CACHE], settings.count_refresh_interval, settings.count_stream_heartbeat
        )
        app[LIVE_COUNTS] = live
        try:
            yield
        finally:
            await live.close()

    return stream_counts


async def end_live_counts(app: web.Application) -> None:
    """on_shutdown: runs before aiohttp waits for the handlers still answering."""
    live = app.get(LIVE_COUNTS)
    if live is not None:
        await live.close()
