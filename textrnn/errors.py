"""Errors that reach the user.

Everything a user can cause (a bad file, a missing download, a broken
checkpoint) raises a subclass of :class:`TextrnnError`; the CLI prints
``str(e)`` as one line and exits non-zero, so messages must say what went
wrong *and* where.
"""

from __future__ import annotations

from os import PathLike


class TextrnnError(Exception):
    """Base class for every user-facing textrnn error."""


class DataError(TextrnnError):
    """A data file or directory is missing or malformed.

    Args:
        message: what is wrong, e.g. ``"expected 3 tab-separated fields, got 2"``.
        path: the file or directory concerned, if known.
        line: the 1-based line number in ``path``, if known.

    ``str(e)`` is ``"{path}:{line}: {message}"``, leaving out the parts that
    are missing (a line number alone reads ``"line {line}: {message}"``).

    >>> str(DataError("bad id", path="qa1.txt", line=3))
    'qa1.txt:3: bad id'
    >>> str(DataError("no such file", path="qa1.txt"))
    'qa1.txt: no such file'
    >>> str(DataError("bad id", line=3))
    'line 3: bad id'
    """

    def __init__(
        self, message: str, path: str | PathLike[str] | None = None, line: int | None = None
    ) -> None:
        # Pass every argument up so that pickling (e.g. out of a DataLoader
        # worker) rebuilds the same error.
        super().__init__(message, path, line)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line

    def __str__(self) -> str:
        if self.path is not None and self.line is not None:
            return f"{self.path}:{self.line}: {self.message}"
        if self.path is not None:
            return f"{self.path}: {self.message}"
        if self.line is not None:
            return f"line {self.line}: {self.message}"
        return self.message


class CheckpointError(TextrnnError):
    """A checkpoint file cannot be read or does not match this version of textrnn."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written: a full disk, a missing or read-only folder.

    It is an OSError too, as the failure was before it got a one-line message, so
    code that caught OSError around a save still does; ``errno`` is the cause's
    (e.g. ``errno.ENOSPC``). ``str(e)`` is the message alone.

    >>> e = CheckpointWriteError("m.pt: could not write the checkpoint", errno=28)
    >>> str(e), e.errno, isinstance(e, OSError)
    ('m.pt: could not write the checkpoint', 28, True)
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        # One argument, so that str() is the message and not "[Errno 28] ...".
        super().__init__(message)
        self.errno = errno


def decode_utf8(
    data: bytes, path: str | PathLike[str] | None = None, what: str = "UTF-8 text"
) -> str:
    """Decode a whole file's bytes as UTF-8, or raise a DataError naming the bad byte's line.

    A reader that decodes while it streams learns only an offset into its current
    chunk, so the readers decode the whole file here instead: the offset is then the
    file's, and the line is the count of line ends (``\\n``, ``\\r\\n`` or a lone
    ``\\r``, as ``open()`` splits lines) before it, plus one.

    Args:
        data: the file's contents.
        path: the file, named in the error.
        what: what the file is not, in the message (a reader keeps its old wording).

    Raises:
        DataError: ``"{path}:{line}: not {what} (... at byte N)"``.

    >>> decode_utf8(b"caf\\xc3\\xa9")
    'café'
    >>> decode_utf8(b"one\\r\\ntwo\\n\\xff", path="x.txt")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: x.txt:3: not UTF-8 text (invalid start byte at byte 9)
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        at = err.start
        line_ends = data.count(b"\n", 0, at) + data.count(b"\r", 0, at) - data.count(b"\r\n", 0, at)
        raise DataError(
            f"not {what} ({err.reason} at byte {at})", path=path, line=line_ends + 1
        ) from None
