"""The chatbot as a web service: a JSON API and a chat page, over :mod:`textrnn.chat`.

A thin adapter (STYLE.md, principle 14): :class:`textrnn.chat.Answerer` and
:class:`textrnn.chat.ChatSession` hold all the logic; the routes here only map
JSON to their methods. It binds 127.0.0.1 unless told otherwise.

Routes (the schema, with every length limit, is at ``/openapi.json``)::

    GET    /                              the chat page
    GET    /api/health                    status, task, vocabulary size, accuracy
    GET    /api/info                      the model's info and the server's limits
    POST   /api/answer                    {"story": [...], "question": "..."} -> answer (stateless)
    POST   /api/sessions                  -> {"id", "story", ...}
    GET    /api/sessions/{id}             the session's story
    POST   /api/sessions/{id}/messages    {"text": "..."} -> the bot's reply
    POST   /api/sessions/{id}/reset       forget the story
    DELETE /api/sessions/{id}             end the session
    GET    /docs, /redoc                  the API's pages, offline (:mod:`textrnn.serve_docs`)

Questions that arrive together share one forward pass: a
:class:`textrnn.sessions.MicroBatcher` collects them for a couple of milliseconds
and calls ``Answerer.answer_batch`` once, so throughput grows with the number of
concurrent clients. Sessions live in a SQLite file (:mod:`textrnn.session_db`), shared by a
restarted server and by every server process on it, or with ``sessions=":memory:"`` in
this process only (:class:`textrnn.sessions.SessionStore`).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime,
# and the request models are local to create_app (their bounds come from its limits).
import asyncio
import contextlib
import functools
import gc
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import h11
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from uvicorn.protocols.http.h11_impl import H11Protocol

from textrnn.chat import NO_STORY, Answer, Answerer, ChatSession, Question, Reply
from textrnn.rounding import round_floats
from textrnn.serve_docs import add_docs
from textrnn.serve_errors import invalid_request
from textrnn.serve_linger import LingeringTransport
from textrnn.session_db import MEMORY, open_store
from textrnn.sessions import BatchedAnswerer, MicroBatcher, SessionNotFound

INDEX_HTML = Path(__file__).parent / "static" / "index.html"
SessionId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Shown = Annotated[float, PlainSerializer(round_floats, return_type=float)]  # 0.9905, no noise


@dataclass
class Limits:
    """What keeps the server alive under load and bad input; ``run_server(**limits)`` sets them."""

    max_message_chars: int = 1000  # a chat message, a question or a story sentence
    max_story_sentences: int = 200  # per /api/answer; only the model's memory size are read
    max_sessions: int = 1000  # live sessions; past this the least recently used is evicted
    session_ttl_s: float = 1800.0  # a session idle this long expires (404)
    max_body_bytes: int = 512 * 1024  # larger request bodies get 413 before they are parsed
    body_timeout_s: float = 10.0  # a request body must arrive whole within this, or 408
    header_timeout_s: float = 10.0  # so must a request's line and headers, or it is closed
    max_batch: int = 64  # questions sharing one forward pass
    batch_wait_s: float = 0.002  # how long a batch waits for more questions once one arrives


# ---- JSON shapes ---------------------------------------------------------------------------


class EvidenceOut(BaseModel):
    index: int = Field(ge=0, description="position in the story as sent, 0-based")
    sentence: str
    weight: Shown = Field(ge=0, le=1, description="attention weight")


class AnswerOut(BaseModel):
    answer: str
    confidence: Shown = Field(ge=0, le=1)
    evidence: list[EvidenceOut]
    unknown_words: list[str] = Field(description="words the model never saw")
    dropped: int = Field(ge=0, description="oldest story sentences beyond the memory, not read")
    sure: bool = Field(description="confidence at or above the threshold chosen on validation")
    hops: list[list[Shown]] = Field(
        default_factory=list,
        description="attention per hop (MemN2N) or layer (QRN; one row for EntNet and the "
        "LSTM reader): hops[k][i] is the weight of story sentence dropped + i")

    @classmethod
    def of(cls, answer: Answer) -> "AnswerOut":
        return cls.model_validate(answer.to_dict())


class ReplyOut(BaseModel):
    kind: Literal["added", "answer", "info", "error"]
    text: str = Field(description="the reply as a person reads it")
    answer: AnswerOut | None
    added: list[str] = Field(description="statements stored by this message")
    forgotten: list[str] = Field(description="oldest statements dropped to stay within memory")
    story_length: int = Field(ge=0)


class SessionOut(BaseModel):
    id: str
    story: list[str]
    memory_size: int = Field(description="the story keeps at most this many sentences")
    idle_timeout_s: float = Field(description="the session expires after this long unused")


class HealthOut(BaseModel):
    status: Literal["ok"]
    task: str
    vocab_size: int
    accuracy: Shown | None = Field(description="test_acc or val_acc from the checkpoint")
    sessions: int = Field(description="live sessions")


class InfoOut(BaseModel):
    task: str
    arch: str
    vocab_size: int
    num_answers: int
    memory_size: int
    step: int
    metrics: dict[str, Shown]
    limits: dict[str, int | float]  # as Limits types them: counts stay ints


def _request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """Request bodies, built from ``limits`` so that the schema states the real bounds."""
    Text = Annotated[str, Field(min_length=1, max_length=limits.max_message_chars)]

    class AnswerIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        story: list[Text] = Field(
            max_length=limits.max_story_sentences,
            description="sentences, oldest first; only the most recent memory_size are read",
        )
        question: Text

    class MessageIn(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: Text = Field(description="statements, a question, or /reset, /story, /help")

    return AnswerIn, MessageIn


class _Body:
    """One request's ``receive``, counting its body against a size and a time limit.

    Both limits are raised as ``HTTPException``: FastAPI lets those out of its body parsing
    (any other error there becomes a 400), and its handler turns them into the reply.
    """

    def __init__(self, receive, max_bytes: int, timeout_s: float, complete: bool) -> None:
        self.raw_receive, self.max_bytes, self.timeout_s = receive, max_bytes, timeout_s
        self.deadline = asyncio.get_running_loop().time() + timeout_s  # for the whole body
        self.size = 0  # bytes received so far
        self.complete = complete  # the last body message is in (or there is no body)

    async def receive(self) -> dict:
        if self.complete:  # what remains is http.disconnect, which may wait for ever
            return await self.raw_receive()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self.raw_receive()
        except TimeoutError:
            # A body shorter than its Content-Length, or one trickled in, held the connection.
            raise HTTPException(408, f"Request body not received in {self.timeout_s} s.") from None
        if message["type"] == "http.request":
            # Counted as it arrives: a chunked upload declares no length to check beforehand.
            self.size += len(message.get("body", b""))
            if self.size > self.max_bytes:
                raise HTTPException(413, f"Request body over {self.max_bytes} bytes.")
            self.complete = not message.get("more_body", False)
        return message


class _LimitBody:
    """ASGI middleware: 413 for a body over ``max_bytes``, 408 for one slower than ``timeout_s``.

    A declared Content-Length is checked before anything is read; the bytes themselves as
    they arrive (:class:`_Body`). Any reply sent before the body is all in closes the
    connection, or uvicorn would go on reading the rest of it, to its end, after the reply;
    the close lingers (:mod:`textrnn.serve_linger`), so the reply is not lost to a reset.
    Plain ASGI rather than ``@app.middleware("http")``, which costs a task per request.
    """

    def __init__(self, app, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        size = headers.get(b"content-length", b"0")
        if not size.isdigit() or int(size) > self.max_bytes:
            response = JSONResponse({"detail": f"Request body over {self.max_bytes} bytes."},
                                    status_code=413, headers={"connection": "close"})
            return await response(scope, receive, send)
        has_body = b"transfer-encoding" in headers or int(size) > 0  # h11 knows only chunked
        body = _Body(receive, self.max_bytes, self.timeout_s, complete=not has_body)

        async def send_closing(message) -> None:
            if message["type"] == "http.response.start" and not body.complete:
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"connection", b"close")]}
            await send(message)

        await self.app(scope, body.receive, send_closing)


class _H11WithHeaderTimeout(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request's line and headers, and a
    lingering close (:mod:`textrnn.serve_linger`).

    uvicorn has no such deadline: it times out only an idle keep-alive connection, and
    cancels even that at the first byte of the next request; h11 bounds the headers' size
    (16 KiB), not their time. So a client trickling headers (slowloris), or connecting and
    sending nothing, would hold its connection for ever. The deadline starts at the
    connection and after each reply.
    """

    def __init__(self, *args, header_timeout_s: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        # Mid-body (a reply before the body is all in) or mid-garbage (the 400 for a request
        # h11 cannot parse), the client may still be sending: then a close lingers.
        super().connection_made(LingeringTransport(
            transport, lambda: self.conn.their_state in (h11.SEND_BODY, h11.ERROR)))
        self._start_header_deadline()

    def data_received(self, data: bytes) -> None:
        if not self.transport.lingering:  # else the rest of a request already answered: drop
            super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._start_header_deadline()  # for the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
        self.transport.cancel_close()
        super().connection_lost(exc)

    def _start_header_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
        self.header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_overdue)

    def _headers_overdue(self) -> None:
        # h11 leaves IDLE once a request's headers are complete; then _Body's deadline applies.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


# ---- error replies -------------------------------------------------------------------------

def create_app(answerer: Answerer, sessions: str = MEMORY, **limits) -> FastAPI:
    """The web app over ``answerer``; ``sessions`` is a SQLite file or ``":memory:"`` (see
    :func:`textrnn.session_db.open_store`); ``limits`` are :class:`Limits` fields."""
    lim = Limits(**limits)
    batcher = MicroBatcher(answerer.answer_batch, lim.max_batch, lim.batch_wait_s)
    batched = BatchedAnswerer(answerer, batcher)
    store = open_store(sessions, batched, lim.max_sessions, lim.session_ttl_s,
                       lim.max_message_chars)
    info = answerer.info()
    metrics = {k: float(v) for k, v in (info["metrics"] or {}).items()
               if isinstance(v, int | float)}
    accuracy = metrics.get("test_acc", metrics.get("val_acc"))
    AnswerIn, MessageIn = _request_models(lim)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()
        store.close()

    app = FastAPI(title="textrnn chat", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None)  # add_docs serves them without a CDN
    add_docs(app)
    app.state.store, app.state.batcher, app.state.limits = store, batcher, lim

    app.add_middleware(_LimitBody, max_bytes=lim.max_body_bytes, timeout_s=lim.body_timeout_s)
    app.add_exception_handler(RequestValidationError, invalid_request)

    @app.exception_handler(SessionNotFound)
    async def session_not_found(request: Request, error: SessionNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    def session_out(session_id: str, session: ChatSession) -> SessionOut:
        return SessionOut(id=session_id, story=list(session.story),
                          memory_size=answerer.memory_size, idle_timeout_s=lim.session_ttl_s)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(INDEX_HTML.read_text(encoding="utf-8"))

    # Every route reaches the store through store.call: at once on the event loop in memory,
    # in the SQLite store's own thread (a write may wait for another process's).
    @app.get("/api/health")
    async def health() -> HealthOut:
        return HealthOut(status="ok", task=info["task"], vocab_size=info["vocab_size"],
                         accuracy=accuracy, sessions=await store.call(len, store))

    @app.get("/api/info")
    def get_info() -> InfoOut:
        return InfoOut(**{**info, "metrics": metrics}, limits=asdict(lim))

    @app.post("/api/answer", response_model=AnswerOut)
    async def answer(body: AnswerIn) -> dict:
        if not body.story:  # what the chat says too, not a guess from an empty memory
            raise HTTPException(status_code=422, detail=NO_STORY)
        return (await batcher.submit(body.story, body.question)).to_dict()

    @app.post("/api/sessions", status_code=201)
    async def create_session() -> SessionOut:
        return session_out(*await store.call(store.create))

    @app.get("/api/sessions/{session_id}")
    async def get_session(session_id: SessionId) -> SessionOut:
        return session_out(session_id, await store.call(store.get, session_id))

    @app.post("/api/sessions/{session_id}/messages")
    async def send(session_id: SessionId, body: MessageIn) -> ReplyOut:
        def take() -> tuple[Reply | Question, int]:
            session = store.get(session_id)
            return session.take(body.text), len(session.story)

        # The statements stored where the sessions live, then the question straight to the
        # batcher from here: ChatSession.send in a worker thread would wait there for the
        # batcher on this loop, two more thread hops a question.
        step, story_length = await store.call(take)
        reply = step.reply(await batcher.submit(step.story, step.question)) \
            if isinstance(step, Question) else step
        return ReplyOut(kind=reply.kind, text=reply.text,
                        answer=AnswerOut.of(reply.answer) if reply.answer else None,
                        added=reply.added, forgotten=reply.forgotten,
                        story_length=story_length)

    @app.post("/api/sessions/{session_id}/reset")
    async def reset(session_id: SessionId) -> SessionOut:
        def get_and_reset() -> ChatSession:
            session = store.get(session_id)
            session.reset()
            return session

        return session_out(session_id, await store.call(get_and_reset))

    @app.delete("/api/sessions/{session_id}", status_code=204)
    async def delete_session(session_id: SessionId) -> Response:
        await store.call(store.delete, session_id)
        return Response(status_code=204)

    return app


def _uvicorn_server(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Server:
    # ws="none": the app has no websockets, so none of their libraries is imported. http: h11
    # (uvicorn's own choice unless httptools is installed) with a deadline for headers.
    http = functools.partial(_H11WithHeaderTimeout,
                             header_timeout_s=app.state.limits.header_timeout_s)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws="none",
                            lifespan="on", http=http)
    return uvicorn.Server(config)


def freeze_startup_heap() -> None:
    """Take everything allocated so far out of the garbage collector's scans.

    torch, the model and FastAPI's schemas leave a large heap of long-lived
    objects; without this, every full collection walks all of it and stalls
    the event loop. ``bench/serve.py`` (50 clients): p99 120-140 ms -> 32-39 ms.
    """
    gc.collect()
    gc.freeze()


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000,
               sock: socket.socket | None = None) -> None:
    """Serve ``app`` (from :func:`create_app`) until interrupted; on ``sock`` if given."""
    freeze_startup_heap()
    _uvicorn_server(app, host, port, "warning").run(sockets=[sock] if sock else None)


@contextlib.contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                      log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` from a thread (tests, the benchmark); yields its base URL."""
    server = _uvicorn_server(app, host, port, log_level)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
