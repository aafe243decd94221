"""A lingering close for the web server's connections (RFC 9112, section 9.6).

uvicorn closes a connection as soon as a reply marked ``connection: close`` is written,
even while the client is still sending the request's body: a 413 for a chunked upload
past the size limit, say. Closing a socket with unread bytes in its receive buffer makes
the kernel reset the connection, and a client still sending may take that reset before it
reads the reply, which is then lost. The cure the RFC gives is used here: send the reply
and a FIN (a half-close), read and drop whatever else comes, and close once the client
closes its side or after :data:`LINGER_S`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# Long enough for a client that sends before it reads (a blocking upload) to get through its
# buffers and to the reply; short enough that one that never stops holds nothing for long.
LINGER_S = 2.0


class LingeringTransport:
    """A socket transport whose ``close`` lingers while the client may still be sending.

    Everything but ``close``, ``is_closing`` and ``pause_reading`` is the transport's own.
    Its protocol reads :attr:`lingering` and drops what it receives meanwhile, unparsed and
    unkept: memory stays flat whatever the client sends.

    Args:
        transport: the connection's transport, as ``connection_made`` gets it.
        still_sending: whether the client may have bytes on the way, unread; only then is
            there a reset to avoid (an idle keep-alive connection closes at once).
    """

    def __init__(self, transport: asyncio.Transport, still_sending: Callable[[], bool]) -> None:
        self.raw, self.still_sending = transport, still_sending
        self.closer: asyncio.TimerHandle | None = None  # the end of the linger, once begun

    def __getattr__(self, name: str):
        return getattr(self.raw, name)  # write, get_extra_info, resume_reading, ...

    @property
    def lingering(self) -> bool:
        return self.closer is not None

    def is_closing(self) -> bool:
        # uvicorn asks this before it would read, time out, or reply on: lingering is closing.
        return self.closer is not None or self.raw.is_closing()

    def close(self) -> None:
        if self.is_closing():
            return
        if not (self.still_sending() and self.raw.can_write_eof()):  # TLS cannot half-close
            return self.raw.close()
        self.raw.write_eof()  # once the reply is out
        self.raw.resume_reading()  # uvicorn pauses reading while a body waits to be read
        # A client that closes its side ends it sooner: uvicorn's eof_received closes.
        self.closer = asyncio.get_running_loop().call_later(LINGER_S, self.raw.close)

    def pause_reading(self) -> None:
        if self.closer is None:  # while lingering, reading is what keeps the reset away
            self.raw.pause_reading()

    def cancel_close(self) -> None:
        """Forget the pending close, for a connection already gone."""
        if self.closer is not None:
            self.closer.cancel()
