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
