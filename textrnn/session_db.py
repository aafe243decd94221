"""Chat sessions kept in SQLite, so that a restarted server and every server process share them.

:class:`SqliteSessionStore` has the interface and the limits of the in-process
:class:`textrnn.sessions.SessionStore` (the least recently used session is evicted past
``max_sessions``, an idle one expires after ``ttl_s``, a story keeps at most the model's
memory size), but a session is a row of one table in a file, not an object in one
process's memory::

    sessions(id TEXT PRIMARY KEY,
             story TEXT,      -- JSON list of the statements, oldest first
             used REAL,       -- wall-clock time of the last use (idle expiry)
             seq INTEGER)     -- order of the last use (LRU eviction; ties are impossible)

A session needs only its story to go on: :class:`~textrnn.chat.ChatSession` keeps no
other state between messages (the model and its settings come from the checkpoint). So
:meth:`SqliteSessionStore.get` hands out a :class:`StoredChatSession` loaded from the row,
whose ``add`` and ``reset`` each write the row back in one short transaction.

Durability and concurrency:

- WAL journal, ``synchronous=NORMAL``: each commit is appended to the WAL file before its
  call returns, so a message is in the file once its reply is sent, and a crash or
  ``kill -9`` of the server loses nothing (the OS still holds the pages); only a power cut
  or an OS crash may lose the last few commits, which ``FULL`` would keep by an fsync at
  every message. The file itself is never corrupted at either level.
- A message costs one statement per step, each its own transaction (SQLite's autocommit):
  ``get`` marks the session used and reads its story in one ``UPDATE ... RETURNING``, and
  ``add`` writes the new story with ``WHERE story = <the story read>``, a compare-and-swap:
  if another process changed the story in between, nothing is written and the append is
  done again in ``BEGIN IMMEDIATE`` ... ``COMMIT``, which takes the write lock before it
  reads the story, so two processes appending to one session cannot both read the old
  story and lose a statement. A busy timeout makes the second writer wait, not fail.
- Few statements matter more than their microseconds: the sqlite3 module lets go of the
  GIL at every step of a statement, and in a busy server getting it back means waiting for
  the event loop's thread and the forward pass (up to ``sys.getswitchinterval()``, 5 ms,
  each time). The first version took 9 statements (two transactions) a message, and
  ``bench/serve.py --route session`` served half the requests/s of ``:memory:``.
- One connection per process behind a lock: the transactions last microseconds, and
  threads queueing on a Python lock hand over faster than SQLite's busy handler, which
  sleeps in steps of milliseconds.
- The server never calls the store on the event loop (a write may wait for another
  process's), but through :meth:`SqliteSessionStore.call`, in the store's one thread: a
  statement lets go of the GIL while SQLite runs it, and a thread of a busy pool holding
  the lock meanwhile waits to get the GIL back with the others queued behind it on the
  lock. One thread, statements back to back, never waits on the lock.

>>> # store = open_store("runs/qa/best.pt.sessions.sqlite", answerer, 1000, 1800.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from textrnn.chat import MAX_MESSAGE_CHARS, Asks, ChatSession
from textrnn.errors import DataError
from textrnn.sessions import SessionNotFound, SessionStore, T, expired, not_found

MEMORY = ":memory:"  # the sessions path that keeps them in this process, as before
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's transaction to end
CHECKPOINT_EVERY_S = 0.5  # how often the WAL is copied into the file, off the writers' thread

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    story TEXT NOT NULL,
    used REAL NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_used ON sessions (used);
CREATE INDEX IF NOT EXISTS sessions_seq ON sessions (seq);
"""
# Marks a session as just used: the newest `seq` is the most recently used session.
_TOUCH = ("UPDATE sessions SET used = ?, seq = (SELECT max(seq) + 1 FROM sessions) "
          "WHERE id = ?")
# The same, for a live session only, giving its story: get() in one statement.
_TOUCH_LIVE = ("UPDATE sessions SET used = ?, seq = (SELECT max(seq) + 1 FROM sessions) "
               "WHERE id = ? AND used >= ? RETURNING story")
# A new story, written only over the one read (compare-and-swap), the session marked used.
_SWAP = ("UPDATE sessions SET story = ?, used = ?, seq = (SELECT max(seq) + 1 FROM sessions) "
         "WHERE id = ? AND story = ? AND used >= ?")


def open_store(path: str | Path, answerer: Asks, max_sessions: int, ttl_s: float,
               max_message_chars: int = MAX_MESSAGE_CHARS,
               clock: Callable[[], float] | None = None) -> SessionStore | SqliteSessionStore:
    """The session store for ``path``: in this process for ``":memory:"``, else SQLite.

    Args:
        path: a SQLite file (created if missing), or ``":memory:"``.
        answerer: what the sessions ask (its ``memory_size`` bounds each story).
        max_sessions: live sessions; past this the least recently used is evicted.
        ttl_s: a session idle this long expires.
        max_message_chars: longer messages are refused politely.
        clock: seconds; default ``time.monotonic`` in memory, ``time.time`` in SQLite (a
            file outlives the process, and other processes must agree on the time).

    Raises:
        DataError: if the file cannot be opened as a sessions database.
    """
    if str(path) == MEMORY:
        return SessionStore(lambda: ChatSession(answerer, max_message_chars), max_sessions,
                            ttl_s, clock or time.monotonic)
    return SqliteSessionStore(path, answerer, max_sessions, ttl_s, max_message_chars,
                              clock or time.time)


class StoredChatSession(ChatSession):
    """A :class:`~textrnn.chat.ChatSession` whose story is a row of a :class:`SqliteSessionStore`.

    ``ChatSession.send`` stores statements through :meth:`add` and forgets through
    :meth:`reset`; here each is one transaction on the row, after which ``story`` is what
    the row holds, so the question that follows is answered from the story as every
    process sees it, other processes' statements included.

    Raises (from ``add``, ``reset``, hence ``send``):
        SessionNotFound: if another process deleted the session, or it expired, meanwhile.
    """

    def __init__(self, store: SqliteSessionStore, session_id: str, stored: str) -> None:
        super().__init__(store.answerer, store.max_message_chars)
        self.store, self.id = store, session_id
        self.stored = stored  # the row's story as read: JSON text, what add() swaps out
        story = json.loads(stored)
        self.story = story[-self.answerer.memory_size :]  # a smaller model may serve it now

    def add(self, sentences: Sequence[str]) -> list[str]:
        """Append statements in one transaction; returns the oldest ones dropped."""
        with self._lock:
            seen = self.stored
        story, forgotten, stored = self.store.append(self.id, sentences,
                                                     self.answerer.memory_size, seen)
        with self._lock:
            self.story, self.stored = story, stored
        return forgotten

    def reset(self) -> None:
        """Forget the story, in the file too."""
        _, _, stored = self.store.append(self.id, [], keep=0)
        with self._lock:
            self.story, self.stored = [], stored


class SqliteSessionStore:
    """Chat sessions by id in a SQLite file; the interface and limits of ``SessionStore``.

    Args:
        path: the database file, created with its table if missing.
        answerer: what the sessions ask (its ``memory_size`` bounds each story).
        max_sessions: live sessions; past this the least recently used is evicted.
        ttl_s: a session idle this long expires (404).
        max_message_chars: longer messages are refused politely.
        clock: wall-clock seconds, shared by every process on the file.

    Raises:
        DataError: if ``path`` cannot be opened as a sessions database.
    """

    def __init__(self, path: str | Path, answerer: Asks, max_sessions: int, ttl_s: float,
                 max_message_chars: int = MAX_MESSAGE_CHARS,
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self.answerer = str(path), answerer
        self.max_sessions, self.ttl_s, self.clock = max_sessions, ttl_s, clock
        self.max_message_chars = max_message_chars
        self._lock = threading.Lock()  # one transaction at a time on the connection
        self._db: sqlite3.Connection | None = None
        self._pid = 0  # the process that opened _db
        self._thread: _Thread | None = None  # call()'s, started on first use
        self._checkpoints: _Checkpoints | None = None  # started with it
        with self._lock:
            self._connection()  # a bad path fails at startup, not at the first message

    def _connection(self) -> sqlite3.Connection:
        """This process's connection (the caller holds the lock), opened on first use.

        A forked worker opens its own: SQLite's locks are not safe across ``fork``.
        """
        if self._db is None or self._pid != os.getpid():
            try:
                # isolation_level=None: no implicit transactions; _write() says BEGIN itself.
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                     check_same_thread=False)  # the lock serialises threads
                db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
                db.execute("PRAGMA synchronous=NORMAL")  # see the module docstring
                db.executescript(_SCHEMA)
            except sqlite3.Error as error:
                raise DataError(f"cannot open it as a sessions database: {error}",
                                path=self.path) from None
            self._db, self._pid = db, os.getpid()
        return self._db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from its first read.

        A :class:`SessionNotFound` raised inside commits what was done (dropping an
        expired row) before it goes on to the caller; any other error rolls back.
        """
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except SessionNotFound:
                db.execute("COMMIT")
                raise
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _live(self, db: sqlite3.Connection, session_id: str, now: float) -> str:
        """The session's story (JSON text), the session marked as just used; inside
        :meth:`_write`.

        Raises:
            SessionNotFound: if it is unknown, evicted or expired (an expired one is dropped).
        """
        row = db.execute("SELECT story, used FROM sessions WHERE id = ?",
                         (session_id,)).fetchone()
        if row is None:
            raise not_found(session_id)
        if now - row[1] > self.ttl_s:
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            raise expired(session_id, self.ttl_s)
        db.execute(_TOUCH, (now, session_id))
        return row[0]

    def __len__(self) -> int:
        """Live sessions: those not idle for longer than ``ttl_s``."""
        with self._lock:
            (count,) = self._connection().execute(
                "SELECT count(*) FROM sessions WHERE used >= ?",
                (self.clock() - self.ttl_s,)).fetchone()
        return count

    def create(self) -> tuple[str, StoredChatSession]:
        """A new empty session; expired ones are dropped, and the least recently used
        beyond ``max_sessions``."""
        session_id, now = secrets.token_urlsafe(16), self.clock()
        with self._write() as db:
            db.execute("DELETE FROM sessions WHERE used < ?", (now - self.ttl_s,))
            db.execute("INSERT INTO sessions (id, story, used, seq) VALUES "
                       "(?, '[]', ?, (SELECT coalesce(max(seq), 0) + 1 FROM sessions))",
                       (session_id, now))
            # Every session older in use than the max_sessions most recent ones.
            db.execute("DELETE FROM sessions WHERE seq <= (SELECT seq FROM sessions "
                       "ORDER BY seq DESC LIMIT 1 OFFSET ?)", (self.max_sessions,))
        return session_id, StoredChatSession(self, session_id, "[]")

    def get(self, session_id: str) -> StoredChatSession:
        """The session as the file holds it now, marked as just used.

        Raises:
            SessionNotFound: if it is unknown, evicted or expired (the server says 404).
        """
        now = self.clock()
        with self._lock:  # one statement, the usual case: a live session
            rows = self._connection().execute(
                _TOUCH_LIVE, (now, session_id, now - self.ttl_s)).fetchall()
        if rows:
            return StoredChatSession(self, session_id, rows[0][0])
        with self._write() as db:  # unknown or expired: say which (and drop an expired one)
            stored = self._live(db, session_id, now)
        return StoredChatSession(self, session_id, stored)

    def delete(self, session_id: str) -> None:
        """End the session.

        Raises:
            SessionNotFound: if it is unknown, evicted or expired.
        """
        with self._write() as db:
            self._live(db, session_id, self.clock())
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def append(self, session_id: str, sentences: Sequence[str], keep: int,
               seen: str | None = None) -> tuple[list[str], list[str], str]:
        """Append ``sentences`` to the story, keeping its newest ``keep``; one transaction.

        Args:
            seen: the story as last read (JSON text), if known: then one statement writes
                the new story, unless the row no longer holds ``seen``.

        Returns:
            The story now, the oldest sentences dropped to stay within ``keep``, and the
            story as stored (JSON text).

        Raises:
            SessionNotFound: if it is unknown, evicted or expired.
        """

        def appended(stored: str) -> tuple[list[str], list[str], str]:
            story = [*json.loads(stored), *sentences]
            overflow = max(0, len(story) - keep)
            return story[overflow:], story[:overflow], json.dumps(story[overflow:])

        now = self.clock()
        if seen is not None:
            story, forgotten, stored = appended(seen)
            with self._lock:
                swapped = self._connection().execute(
                    _SWAP, (stored, now, session_id, seen, now - self.ttl_s)).rowcount
            if swapped:
                return story, forgotten, stored
        with self._write() as db:  # read and write under SQLite's write lock
            story, forgotten, stored = appended(self._live(db, session_id, now))
            db.execute("UPDATE sessions SET story = ? WHERE id = ?", (stored, session_id))
        return story, forgotten, stored

    async def call(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` for a route on the event loop, run in this store's own thread.

        With it starts a thread that checkpoints the WAL (copies it into the file, fsyncing
        both) every ``CHECKPOINT_EVERY_S``: SQLite would do that in the commit that fills
        1000 pages, which under load is one message in 250 waiting 5-30 ms for two fsyncs,
        and every message behind it in the store's thread waiting too.
        """
        if self._thread is None or self._thread.pid != os.getpid():
            self._thread = _Thread()
            self._checkpoints = _Checkpoints(self.path)
            with self._lock:
                self._connection().execute("PRAGMA wal_autocheckpoint=0")
        return await self._thread.submit(fn, *args)

    def close(self) -> None:
        """Close this process's connection (at shutdown); a later call opens a new one."""
        if self._thread is not None and self._thread.pid == os.getpid():
            self._thread.stop()
            self._checkpoints.stop()
        self._thread = None
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None


class _Thread:
    """One thread that runs the calls an event loop gives it, in batches.

    What queued while it ran the last batch it runs next, back to back, and the loop hears
    of a whole batch at once: a thread hop costs two context switches and a GIL hand-over
    (a ``ThreadPoolExecutor`` would take them per call), which, under 50 clients, cost more
    than the SQLite statements themselves.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()  # a forked child starts its own (threads do not survive fork)
        self._calls: list[tuple[asyncio.AbstractEventLoop, asyncio.Future, Callable, tuple]] = []
        self._stopped = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sessions", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args) -> asyncio.Future[T]:
        """Queue ``fn(*args)``; its future, on the running loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._wake:
            self._calls.append((loop, future, fn, args))
            if len(self._calls) == 1:  # else it is awake, or about to take the others
                self._wake.notify()
        return future

    def stop(self) -> None:
        """Run what is queued, then end the thread."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._calls and not self._stopped:
                    self._wake.wait()
                calls, self._calls = self._calls, []
            if not calls:
                return
            done: dict[asyncio.AbstractEventLoop, list] = {}
            for loop, future, fn, args in calls:
                try:
                    outcome = (future, fn(*args), None)
                except Exception as error:  # handed to its caller, as a to_thread would
                    outcome = (future, None, error)
                done.setdefault(loop, []).append(outcome)
            for loop, outcomes in done.items():
                with contextlib.suppress(RuntimeError):  # a loop closed meanwhile
                    loop.call_soon_threadsafe(_settle, outcomes)


def _settle(outcomes: list[tuple[asyncio.Future, object, Exception | None]]) -> None:
    """On the loop: each call's result or error to its future (unless it was cancelled)."""
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class _Checkpoints:
    """A thread checkpointing a WAL file every ``CHECKPOINT_EVERY_S`` on a connection of its
    own. ``PASSIVE``: it never makes a writer wait, and writers never make it fail (it
    copies what it can, the rest next time)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sessions-checkpoint",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        try:
            while not self._stopped.wait(CHECKPOINT_EVERY_S):
                with contextlib.suppress(sqlite3.Error):  # busy, or a disk error: next time
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            db.close()  # the last connection to close checkpoints what is left

    def stop(self) -> None:
        """End the thread, after its last checkpoint."""
        self._stopped.set()
        self._thread.join()
