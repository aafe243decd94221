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

- WAL journal, ``synchronous=NORMAL``: a message is in the file once its reply is sent, so
  a crash or ``kill -9`` of the server loses nothing (a power cut may lose the last few
  commits; ``FULL`` would fsync at every message for that).
- Every write is ``BEGIN IMMEDIATE`` ... ``COMMIT``: it takes the write lock before it
  reads the story, so two processes appending to one session cannot both read the old
  story and lose a statement. A busy timeout makes the second writer wait, not fail.
- One connection per process behind a lock: the transactions last microseconds, and
  threads queueing on a Python lock hand over faster than SQLite's busy handler, which
  sleeps in steps of milliseconds. The server calls the store only from worker threads,
  never on the event loop.

>>> # store = open_store("runs/qa/best.pt.sessions.sqlite", answerer, 1000, 1800.0)
"""

from __future__ import annotations

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
from textrnn.sessions import SessionNotFound, SessionStore, expired, not_found

MEMORY = ":memory:"  # the sessions path that keeps them in this process, as before
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's transaction to end

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

    def __init__(self, store: SqliteSessionStore, session_id: str, story: list[str]) -> None:
        super().__init__(store.answerer, store.max_message_chars)
        self.store, self.id = store, session_id
        self.story = story[-self.answerer.memory_size :]  # a smaller model may serve it now

    def add(self, sentences: Sequence[str]) -> list[str]:
        """Append statements in one transaction; returns the oldest ones dropped."""
        story, forgotten = self.store.append(self.id, sentences, self.answerer.memory_size)
        with self._lock:
            self.story = story
        return forgotten

    def reset(self) -> None:
        """Forget the story, in the file too."""
        self.store.append(self.id, [], keep=0)
        with self._lock:
            self.story = []


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

    def _live(self, db: sqlite3.Connection, session_id: str, now: float) -> list[str]:
        """The session's story, the session marked as just used; inside :meth:`_write`.

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
        return json.loads(row[0])

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
        return session_id, StoredChatSession(self, session_id, [])

    def get(self, session_id: str) -> StoredChatSession:
        """The session as the file holds it now, marked as just used.

        Raises:
            SessionNotFound: if it is unknown, evicted or expired (the server says 404).
        """
        with self._write() as db:
            story = self._live(db, session_id, self.clock())
        return StoredChatSession(self, session_id, story)

    def delete(self, session_id: str) -> None:
        """End the session.

        Raises:
            SessionNotFound: if it is unknown, evicted or expired.
        """
        with self._write() as db:
            self._live(db, session_id, self.clock())
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def append(self, session_id: str, sentences: Sequence[str],
               keep: int) -> tuple[list[str], list[str]]:
        """Append ``sentences`` to the story, keeping its newest ``keep``; one transaction.

        Returns:
            The story now, and the oldest sentences dropped to stay within ``keep``.

        Raises:
            SessionNotFound: if it is unknown, evicted or expired.
        """
        with self._write() as db:
            story = [*self._live(db, session_id, self.clock()), *sentences]
            overflow = max(0, len(story) - keep)
            forgotten, story = story[:overflow], story[overflow:]
            db.execute("UPDATE sessions SET story = ? WHERE id = ?",
                       (json.dumps(story), session_id))
        return story, forgotten

    def close(self) -> None:
        """Close this process's connection (at shutdown); a later call opens a new one."""
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None
