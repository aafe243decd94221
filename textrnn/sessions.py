"""Chat for many people at once: live sessions by id, and questions answered in batches.

Plain objects with plain errors, so that :mod:`textrnn.serve` only maps HTTP onto
them (a :class:`SessionNotFound` becomes a 404 there) and they are tested without
a server.

- :class:`SessionStore` keeps the live :class:`~textrnn.chat.ChatSession` objects in
  this process (``--sessions :memory:``): the least recently used is evicted past
  ``max_sessions``, an idle one expires. :mod:`textrnn.session_db` keeps them in SQLite,
  with the same limits, for restarts and several server processes.
- :class:`MicroBatcher` collects the questions that arrive together and answers
  them with one ``Answerer.answer_batch`` call, so throughput grows with the
  number of concurrent clients.
- :class:`BatchedAnswerer` is what a session answers through: an
  :class:`~textrnn.chat.Answerer` whose questions go through the batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

from textrnn.chat import Answer, Answerer, ChatSession
from textrnn.errors import TextrnnError

T = TypeVar("T")


class SessionNotFound(TextrnnError):
    """No live session has this id (never created, deleted, evicted or expired)."""


def not_found(session_id: str) -> SessionNotFound:
    """The error for an id no store holds (every store says the same)."""
    return SessionNotFound(f"No session {session_id!r}: it never existed, was deleted, or "
                           "expired. Create one with POST /api/sessions.")


def expired(session_id: str, ttl_s: float) -> SessionNotFound:
    """The error for a session idle longer than ``ttl_s``."""
    return SessionNotFound(f"Session {session_id!r} expired after {ttl_s:g} s without use. "
                           "Create a new one with POST /api/sessions.")


# ---- batching ------------------------------------------------------------------------------


class MicroBatcher:
    """Collects questions for up to ``max_wait_s`` (or ``max_batch`` of them), answers together.

    One consumer task runs ``answer_batch`` in a worker thread, so the event loop keeps
    accepting requests during a forward pass; those requests form the next batch.

    Args:
        answer_batch: ``[(story, question)] -> [Answer]``, e.g. ``Answerer.answer_batch``.
        max_batch: most questions in one call.
        max_wait_s: how long to wait for more once the first question has arrived.
    """

    def __init__(self, answer_batch: Callable[[list], list[Answer]], max_batch: int = 64,
                 max_wait_s: float = 0.002) -> None:
        self.answer_batch = answer_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the consumer on the running loop (again, if the loop changed)."""
        loop = asyncio.get_running_loop()
        if self.loop is loop and self._task is not None and not self._task.done():
            return
        self.loop, self._queue = loop, asyncio.Queue()
        self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        """Cancel the consumer (at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, story: Sequence[str], question: str) -> Answer:
        """Queue one question and wait for its answer."""
        self.start()
        future = self.loop.create_future()
        self._queue.put_nowait(((list(story), question), future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = self.loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - self.loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                answers = await asyncio.to_thread(self.answer_batch, [item for item, _ in batch])
            except Exception as error:  # every waiter hears about it; the loop goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():  # its client may have gone away
                    future.set_result(answer)


class BatchedAnswerer:
    """What a :class:`ChatSession` needs of an Answerer, answering through the batcher.

    ``ChatSession.send`` called from a worker thread (never from the loop: it would wait
    on itself) asks through it, hopping onto the event loop, so that session questions
    share forward passes with everyone else's. The server's message route does not: it
    calls ``ChatSession.take`` and gives the question to the batcher itself, two thread
    hops fewer.
    """

    def __init__(self, answerer: Answerer, batcher: MicroBatcher) -> None:
        self.memory_size, self.entity_slots = answerer.memory_size, answerer.entity_slots
        self.unknown = answerer.unknown
        self._batcher = batcher

    def answer(self, story: Sequence[str], question: str) -> Answer:
        future = asyncio.run_coroutine_threadsafe(
            self._batcher.submit(story, question), self._batcher.loop)
        return future.result()


# ---- sessions ------------------------------------------------------------------------------


class SessionStore:
    """Live chat sessions by id: least recently used evicted past ``max_sessions``,
    idle ones expire after ``ttl_s``."""

    def __init__(self, make: Callable[[], ChatSession], max_sessions: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.make, self.max_sessions, self.ttl_s, self.clock = make, max_sessions, ttl_s, clock
        self._sessions: OrderedDict[str, tuple[ChatSession, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> tuple[str, ChatSession]:
        session_id, session = secrets.token_urlsafe(16), self.make()
        now = self.clock()
        with self._lock:
            for old_id in [i for i, (_, used) in self._sessions.items() if now - used > self.ttl_s]:
                del self._sessions[old_id]
            self._sessions[session_id] = (session, now)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str) -> ChatSession:
        """The session, marked as just used.

        Raises:
            SessionNotFound: if it is unknown, evicted or expired (the server says 404).
        """
        now = self.clock()
        with self._lock:
            if session_id not in self._sessions:
                raise not_found(session_id)
            session, used = self._sessions.pop(session_id)
            if now - used > self.ttl_s:
                raise expired(session_id, self.ttl_s)
            self._sessions[session_id] = (session, now)  # now the most recently used
            return session

    def delete(self, session_id: str) -> None:
        self.get(session_id)
        with self._lock:
            self._sessions.pop(session_id, None)

    async def call(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` for a route on the event loop: run here and now, since nothing in
        memory waits (the SQLite store runs it in its own thread)."""
        return fn(*args)

    def close(self) -> None:
        """Nothing to release (the SQLite store closes its connection here)."""
