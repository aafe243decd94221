"""Files that are either the old one or the whole new one: write beside, fsync, rename.

One place for what a checkpoint, an ONNX export and a picture all need: a run killed
mid-write, or a full disk, never leaves a torn file under the real name, and never a
temp file behind it. Callers turn the ``OSError`` into their own one-line error.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(f)`` into a temp file beside ``path``, fsync it, rename it over ``path``.

    The temp file is ``.<name>.<random>.tmp`` (what :data:`textrnn.checkpoint.TEMP_GLOB`
    finds after a kill) and gets the usual permissions, not mkstemp's private 0600.

    Raises:
        OSError: from making, writing or renaming the temp file (it is removed first);
            ``path`` is then as it was.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temp file behind
        with contextlib.suppress(OSError):  # its folder may be gone; the cause is what matters
            Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["write_file"]
