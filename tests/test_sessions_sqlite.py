"""Chat sessions in SQLite: they survive ``kill -9``, two servers share them, the limits hold.

The first two tests run ``textrnn serve`` in subprocesses on one sessions file, as a
restart or ``uvicorn --workers`` would; the rest run the store, and the app, in-process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from textrnn.chat import Answer, Answerer
from textrnn.cli import main
from textrnn.errors import DataError
from textrnn.rounding import round_floats
from textrnn.serve import create_app
from textrnn.session_db import SqliteSessionStore, open_store
from textrnn.sessions import SessionNotFound, SessionStore

STORY = ["Mary moved to the bathroom.", "John went to the hallway.",
         "Daniel went to the office.", "Mary went to the garden."]
REPO = Path(__file__).parent.parent


# ---- servers in subprocesses ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path  # its stdout and stderr


@pytest.fixture
def servers(qa_checkpoint, tmp_path):
    """Factory: ``start(sessions, n=1) -> [Server]``, each a ``textrnn serve`` subprocess,
    returned once it answers /api/health; all are killed at the end."""
    started: list[subprocess.Popen] = []

    def start(sessions: Path, n: int = 1) -> list[Server]:
        pending = []
        for _ in range(n):  # started together, so that they load the model together
            port, log = free_port(), tmp_path / f"server-{len(started)}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "textrnn", "serve", "--checkpoint",
                     str(qa_checkpoint), "--port", str(port), "--sessions", str(sessions),
                     "--device", "cpu", "--threads", "1"],
                    cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                    env={**os.environ, "OMP_NUM_THREADS": "1"})
            started.append(process)
            pending.append(Server(process, f"http://127.0.0.1:{port}", log))
        for server in pending:
            wait_until_up(server)
        return pending

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def wait_until_up(server: Server, timeout_s: float = 180.0) -> None:
    """Poll /api/health until it answers; fail with the server's log if it exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited ({server.process.returncode}): "
                        f"{server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not start in {timeout_s:g} s: {server.log.read_text()}")


def say(http: httpx.Client, session_id: str, text: str) -> dict:
    response = http.post(f"/api/sessions/{session_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


def test_story_survives_kill_9_of_the_server(servers, tmp_path):
    sessions = tmp_path / "sessions.sqlite"
    [first] = servers(sessions)
    with httpx.Client(base_url=first.url) as http:
        session_id = http.post("/api/sessions").json()["id"]
        assert say(http, session_id, STORY[0])["kind"] == "added"
    first.process.kill()  # SIGKILL: no shutdown, nothing written on the way out
    assert first.process.wait(timeout=30) == -9
    [second] = servers(sessions)
    with httpx.Client(base_url=second.url) as http:
        assert say(http, session_id, STORY[1])["story_length"] == 2
        reply = say(http, session_id, "Where is Mary?")
        assert reply["answer"]["answer"] == "bathroom"  # told to the server killed
        assert STORY[0] in [e["sentence"] for e in reply["answer"]["evidence"]]
        assert http.get(f"/api/sessions/{session_id}").json()["story"] == STORY[:2]


def test_two_servers_on_one_file_keep_every_statement_in_order(servers, tmp_path):
    a, b = servers(tmp_path / "sessions.sqlite", n=2)
    with httpx.Client(base_url=a.url) as http_a, httpx.Client(base_url=b.url) as http_b:
        session_id = http_a.post("/api/sessions").json()["id"]
        for i, text in enumerate(STORY):  # A, B, A, B
            assert say((http_a, http_b)[i % 2], session_id, text)["story_length"] == i + 1
        for http in (http_a, http_b):
            assert http.get(f"/api/sessions/{session_id}").json()["story"] == STORY
        assert say(http_a, session_id, "Where is Mary?")["answer"]["answer"] == "garden"  # B's
        assert say(http_b, session_id, "Where is Daniel?")["answer"]["answer"] == "office"  # A's

        # At once now: both processes append to the one story, and none is lost.
        more = [f"Sandra went to the kitchen {i}." for i in range(16)]
        start = threading.Barrier(len(more))

        def post(i: int) -> int:
            start.wait()
            return (http_a, http_b)[i % 2].post(f"/api/sessions/{session_id}/messages",
                                                json={"text": more[i]}).status_code

        with ThreadPoolExecutor(len(more)) as pool:
            assert set(pool.map(post, range(len(more)))) == {200}
        story = http_b.get(f"/api/sessions/{session_id}").json()["story"]
    assert story[: len(STORY)] == STORY and sorted(story[len(STORY):]) == sorted(more)


# ---- the limits, in memory and in SQLite -----------------------------------------------------


@dataclass
class Parrot:
    """What a ChatSession asks, without a model: the answer is the story's last sentence."""

    memory_size: int = 3
    entity_slots: int = 1  # no unknown-word notes

    def unknown(self, text: str) -> list[str]:
        return []

    def answer(self, story, question: str) -> Answer:
        return Answer(answer=story[-1], confidence=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request, tmp_path):
    """Factory: ``make(max_sessions=10, ttl_s=60, clock=None)`` -> the store of the param's kind
    (SQLite: always the same file, as a restarted server would open it)."""
    stores = []

    def make(max_sessions: int = 10, ttl_s: float = 60.0, clock: Clock | None = None):
        path = ":memory:" if request.param == "memory" else tmp_path / "sessions.sqlite"
        store = open_store(path, Parrot(), max_sessions, ttl_s, max_message_chars=40,
                           clock=clock)
        assert isinstance(store, SqliteSessionStore if request.param == "sqlite" else SessionStore)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def test_least_recently_used_session_is_evicted(make_store):
    store = make_store(max_sessions=2)
    first, _ = store.create()
    second, _ = store.create()
    store.get(first)  # now `second` is the least recently used
    third, _ = store.create()
    assert store.get(first) and store.get(third)
    with pytest.raises(SessionNotFound, match="never existed"):
        store.get(second)
    assert len(store) == 2


def test_idle_sessions_expire(make_store):
    clock = Clock()
    store = make_store(ttl_s=10.0, clock=clock)
    kept, _ = store.create()
    idle, _ = store.create()
    for _ in range(3):  # each use restarts its idle time
        clock.now += 8
        store.get(kept).send("Mary moved to the bathroom.")
    with pytest.raises(SessionNotFound, match="expired after 10 s"):
        store.get(idle)
    with pytest.raises(SessionNotFound, match="never existed"):  # and it is gone
        store.delete(idle)
    assert store.get(kept).story == ["Mary moved to the bathroom."] * 3
    clock.now += 11
    store.create()  # drops the expired
    assert len(store) == 1
    with pytest.raises(SessionNotFound, match="never existed"):
        store.get(kept)


def test_story_keeps_at_most_the_memory_size(make_store):
    store = make_store()
    session_id, session = store.create()
    lines = [f"Mary moved to room {i}." for i in range(5)]
    replies = [session.send(line) for line in lines]
    assert [s for r in replies for s in r.forgotten] == lines[:2]
    assert "forgot the oldest 1" in replies[-1].text
    assert session.send("x" * 41).kind == "error"  # too long: refused, not stored
    assert session.send("Where is Mary?").answer.answer == lines[-1]
    assert store.get(session_id).story == lines[-3:]
    if isinstance(store, SqliteSessionStore):  # and as a restarted server reads it
        assert make_store().get(session_id).story == lines[-3:]
    session.send("/reset")
    assert store.get(session_id).story == []
    store.delete(session_id)
    with pytest.raises(SessionNotFound):
        store.get(session_id)


def test_sqlite_limits_count_every_process_sessions(tmp_path):
    """Two stores on one file, as two server processes: one LRU order, one count."""
    path, clock = tmp_path / "sessions.sqlite", Clock()
    one = SqliteSessionStore(path, Parrot(), max_sessions=2, ttl_s=60.0, clock=clock)
    two = SqliteSessionStore(path, Parrot(), max_sessions=2, ttl_s=60.0, clock=clock)
    try:
        first, _ = one.create()
        second, _ = two.create()
        one.get(first)
        third, _ = two.create()  # evicts `second`, the least recently used by either
        assert len(one) == len(two) == 2
        with pytest.raises(SessionNotFound):
            one.get(second)
        two.get(first).send("Mary moved to the bathroom.")
        assert one.get(first).story == ["Mary moved to the bathroom."]
        assert two.get(third).story == []
    finally:
        one.close()
        two.close()


def test_a_bad_sessions_path_is_one_line(tmp_path):
    with pytest.raises(DataError, match="cannot open it as a sessions database"):
        SqliteSessionStore(tmp_path / "no such folder" / "s.sqlite", Parrot(), 10, 60.0)
    (tmp_path / "junk").write_bytes(b"not a database" * 100)
    with pytest.raises(DataError, match="junk: cannot open it as a sessions database"):
        SqliteSessionStore(tmp_path / "junk", Parrot(), 10, 60.0)


# ---- the app over a SQLite store --------------------------------------------------------------


@pytest.fixture
def answerer(qa_checkpoint) -> Answerer:
    return Answerer.from_checkpoint(str(qa_checkpoint))


def test_the_api_over_sqlite_and_a_restart(answerer, tmp_path):
    sessions = str(tmp_path / "sessions.sqlite")
    with TestClient(create_app(answerer, sessions=sessions, max_sessions=2)) as client:
        session_id = client.post("/api/sessions").json()["id"]
        url = f"/api/sessions/{session_id}/messages"
        for i in range(answerer.memory_size):
            client.post(url, json={"text": f"Mary moved to the office {i}."})
        reply = client.post(url, json={"text": STORY[0]}).json()
        assert reply["forgotten"] == ["Mary moved to the office 0."]
        assert reply["story_length"] == answerer.memory_size
        story = client.get(f"/api/sessions/{session_id}").json()["story"]
        assert story[-1] == STORY[0] and len(story) == answerer.memory_size
        asked = client.post(url, json={"text": "Where is Mary?"}).json()["answer"]
        expected = round_floats(answerer.answer(story, "Where is Mary?").to_dict())
        assert asked == expected  # the stored story's answer, as the API rounds it
        other = client.post("/api/sessions").json()["id"]
        client.post("/api/sessions")  # evicts `session_id`, the least recently used
        assert client.get(f"/api/sessions/{session_id}").status_code == 404
        client.post(f"/api/sessions/{other}/messages", json={"text": STORY[1]})
        assert client.get("/api/health").json()["sessions"] == 2
    with TestClient(create_app(answerer, sessions=sessions)) as client:  # restarted
        assert client.get(f"/api/sessions/{other}").json()["story"] == [STORY[1]]
        assert client.post(f"/api/sessions/{other}/reset").json()["story"] == []
        assert client.get(f"/api/sessions/{other}").json()["story"] == []
    with TestClient(create_app(answerer, sessions=sessions, session_ttl_s=0.2)) as client:
        session_id = client.post("/api/sessions").json()["id"]
        time.sleep(0.3)
        response = client.get(f"/api/sessions/{session_id}")
        assert response.status_code == 404 and "expired" in response.json()["detail"]


def test_sqlite_is_never_called_on_the_event_loop(answerer, tmp_path, monkeypatch):
    """A transaction may wait for another process's: never where it would stall every client."""
    called, on_loop = [], []
    for name in ("create", "get", "delete", "append", "__len__"):
        method = getattr(SqliteSessionStore, name)

        def watched(self, *args, _method=method, **kwargs):
            called.append(_method.__name__)
            try:
                asyncio.get_running_loop()
                on_loop.append(_method.__name__)
            except RuntimeError:  # no loop in this thread: a worker thread
                pass
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(SqliteSessionStore, name, watched)
    with TestClient(create_app(answerer, sessions=str(tmp_path / "sessions.sqlite"))) as client:
        session_id = client.post("/api/sessions").json()["id"]
        client.post(f"/api/sessions/{session_id}/messages", json={"text": STORY[0]})
        client.post(f"/api/sessions/{session_id}/messages", json={"text": "Where is Mary?"})
        client.post(f"/api/sessions/{session_id}/reset")
        client.get("/api/health")
        assert client.delete(f"/api/sessions/{session_id}").status_code == 204
    assert set(called) == {"create", "get", "delete", "append", "__len__"} and on_loop == []


# ---- the command line ---------------------------------------------------------------------------


def test_serve_keeps_sessions_beside_the_checkpoint_unless_told(qa_checkpoint, tmp_path,
                                                                 monkeypatch, capsys):
    import textrnn.serve

    checkpoint = tmp_path / "best.pt"
    shutil.copy(qa_checkpoint, checkpoint)
    apps = []
    monkeypatch.setattr(textrnn.serve, "run_server", lambda app, **kwargs: apps.append(app))
    argv = ["serve", "--checkpoint", str(checkpoint), "--device", "cpu", "--port", "0"]
    assert main(argv) == 0
    assert apps[-1].state.store.path == f"{checkpoint}.sessions.sqlite"
    assert (tmp_path / "best.pt.sessions.sqlite").is_file()
    assert main([*argv, "--sessions", str(tmp_path / "elsewhere.sqlite")]) == 0
    assert apps[-1].state.store.path == str(tmp_path / "elsewhere.sqlite")
    assert main([*argv, "--sessions", ":memory:"]) == 0
    assert isinstance(apps[-1].state.store, SessionStore)
    assert main([*argv, "--sessions", str(tmp_path / "nowhere" / "s.sqlite")]) == 2
    assert "cannot open it as a sessions database" in capsys.readouterr().err
    for app in apps:
        app.state.store.close()
