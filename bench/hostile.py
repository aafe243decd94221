"""Hostile HTTP requests for ``bench/serve.py --hostile``: the ones issue 22 probed with.

:func:`build` makes them (pure: bytes, no sockets), :func:`send` sends one on a fresh
connection and says how the server answered, and :func:`pelt` sends them at a given
rate, each on its own connection, while the good clients run. A server that holds its
limits answers each with a 4xx or closes the connection (slow headers); never a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass

BODY_LIMIT = 512 * 1024  # the server's default max_body_bytes


@dataclass(frozen=True)
class Hostile:
    """One hostile request: ``parts`` sent in turn, ``pause_s`` apart (a slow client)."""

    name: str
    parts: tuple[bytes, ...]
    pause_s: float = 0.0
    # what a server holding its limits does: "4xx", "closed", or "4xx|closed" (either)
    expect: str = "4xx"


def _head(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _json(path: str, body: bytes) -> tuple[bytes, ...]:
    return (_head(path, f"Content-Length: {len(body)}\r\n") + body,)


def build(path: str = "/api/answer", body_limit: int = BODY_LIMIT) -> list[Hostile]:
    """The hostile requests, for a route that reads ``{"story": [...], "question": ...}``.

    Args:
        path: the route they go to.
        body_limit: the server's body size limit, which the oversize ones exceed.
    """
    chunk = b"%x\r\n%s\r\n" % (0x10000, b" " * 0x10000)  # 64 KiB of a chunked body
    chunks = body_limit // 0x10000 + 2  # past the limit
    question = b'"Where is Mary?"'
    return [
        # No length declared: only counting the bytes as they come stops it (413). The
        # client is still sending when the 413 comes; the server half-closes and reads on
        # (a lingering close, RFC 9112 9.6), so no reset overtakes the reply: a 413 always.
        Hostile(
            "chunked oversize",
            (_head(path, "Transfer-Encoding: chunked\r\n"), *[chunk] * chunks, b"0\r\n\r\n"),
        ),
        Hostile("declared oversize", (_head(path, f"Content-Length: {100 * body_limit}\r\n"),)),
        # Shorter than declared, then nothing: the body timeout (408).
        Hostile("short body", (_head(path, "Content-Length: 200\r\n") + b'{"story": [',)),
        # A byte at a time, never done in time (408).
        Hostile("slow body", (_head(path, "Content-Length: 100\r\n"), *[b" "] * 100), pause_s=0.25),
        # Slowloris: a header line at a time; the connection is closed at the deadline.
        Hostile(
            "slow headers",
            (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\n", *[b"X-Pad: y\r\n"] * 100),
            pause_s=0.25,
            expect="closed",
        ),
        Hostile("bad json", _json(path, b'{"story": ["Mary went home."], "question": ')),
        Hostile(
            "lone surrogate", _json(path, b'{"story": ["\\ud800"], "question": %s}' % question)
        ),
        Hostile("nan", _json(path, b'{"story": ["Mary went home."], "question": NaN}')),
        Hostile(
            "huge field",
            _json(
                path,
                json.dumps(
                    {"story": ["Mary went home."], "question": "x" * (body_limit // 2)}
                ).encode(),
            ),
        ),
        Hostile(
            "many sentences",
            _json(
                path,
                json.dumps(
                    {"story": ["Mary went home."] * 20_000, "question": "Where is Mary?"}
                ).encode(),
            ),
        ),
        Hostile("deep nesting", _json(path, b"[" * 990 + b"]" * 990)),
        Hostile("not http", (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 junk\r\n\r\n",)),
    ]


async def send(host: str, port: int, request: Hostile, give_up_s: float) -> str:
    """Send ``request`` on a new connection; the reply's status ("413"), "closed" if the
    server closed it without a reply, or "pending" if neither came within ``give_up_s``."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as error:
        return f"connect failed ({type(error).__name__})"

    async def write() -> None:
        with contextlib.suppress(OSError):  # the server may reply and close mid-body
            for i, part in enumerate(request.parts):
                if i and request.pause_s:
                    await asyncio.sleep(request.pause_s)
                writer.write(part)
                await writer.drain()

    writing = asyncio.create_task(write())
    try:
        async with asyncio.timeout(give_up_s):
            line = await reader.readline()
        return line.split()[1].decode() if line.startswith(b"HTTP/1.1 ") else "closed"
    except TimeoutError:
        return "pending"
    except OSError:  # reset: the server closed with our bytes unread
        return "closed"
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await writing
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def pelt(
    host: str,
    port: int,
    requests: list[Hostile],
    rate_per_s: float,
    seconds: float,
    give_up_s: float,
) -> Counter:
    """Start one of ``requests`` (in turn) every ``1 / rate_per_s`` s for ``seconds``, each on
    its own connection; wait for the last ones (``give_up_s`` at most each).

    Returns:
        How each went: ``Counter({("slow body", "408"): 12, ...})``.
    """
    loop = asyncio.get_running_loop()
    start, tasks = loop.time(), []
    for n in range(max(1, int(rate_per_s * seconds))):
        await asyncio.sleep(max(0.0, start + n / rate_per_s - loop.time()))
        request = requests[n % len(requests)]
        tasks.append((request.name, asyncio.create_task(send(host, port, request, give_up_s))))
    return Counter([(name, await task) for name, task in tasks])


def verdict(outcomes: Counter, requests: list[Hostile]) -> list[str]:
    """The outcomes a server holding its limits would not give (a 5xx, a 2xx, "pending")."""
    expect = {r.name: r.expect for r in requests}
    bad = []
    for (name, outcome), count in sorted(outcomes.items()):
        allowed = expect[name].split("|")
        ok = ("closed" in allowed and outcome == "closed") or (
            "4xx" in allowed and outcome[:1] == "4")
        if not ok:
            bad.append(f"{name}: {outcome} x{count}")
    return bad
