"""Install the bAbI v1.2 tasks (Weston et al. 2015) from a download or a local copy.

After ``install_babi(None, Path("data"))`` the tasks are in
``data/tasks_1-20_v1-2/en/qa1_single-supporting-fact_train.txt`` and so on
(``en/`` has 1k training questions per task, ``en-10k/`` 10k).

The install is:

- safe: archive members with absolute paths or ``..`` are refused, and the
  extraction uses tarfile's ``"data"`` filter (no links out, no devices);
- atomic: everything is unpacked into a temporary folder inside ``dest`` and
  renamed into place at the end, so an interrupted or failed install leaves
  nothing behind;
- idempotent: if the tasks are already installed it returns at once.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from textrnn.errors import DataError, TextrnnError

OFFICIAL_URL = "http://www.thespermwhale.com/jaseweston/babi/tasks_1-20_v1-2.tar.gz"
DIRNAME = "tasks_1-20_v1-2"  # the archive's top-level folder
_QA1 = "qa1_*_train.txt"  # every bAbI copy has it, under en/
_CHUNK = 1 << 16


def _is_babi_root(path: Path) -> bool:
    """Whether ``path`` holds ``en/qa1_*_train.txt`` (i.e. is a ``tasks_1-20_v1-2`` folder)."""
    return any((path / "en").glob(_QA1))


def _find_root(folder: Path) -> Path | None:
    """The bAbI root in ``folder``: ``folder/tasks_1-20_v1-2`` or ``folder`` itself."""
    for candidate in (folder / DIRNAME, folder):
        if _is_babi_root(candidate):
            return candidate
    return None


def _download(url: str, to: Path, progress: bool) -> None:
    """Stream ``url`` into the file ``to``, with a tqdm bar if ``progress``."""
    with open(to, "wb") as out:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                bar = tqdm(
                    total=total, unit="B", unit_scale=True, desc="bAbI v1.2", disable=not progress
                )
                with bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as e:
            e.close()  # it holds the response open
            raise TextrnnError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
        # Network errors only: a full disk while writing is not "offline".
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            TimeoutError,
            ConnectionError,
        ) as e:
            reason = getattr(e, "reason", None) or e
            raise TextrnnError(
                f"could not download {url} ({reason}); this machine may be offline. "
                "Download tasks_1-20_v1-2.tar.gz elsewhere and pass it (or its unpacked "
                "folder) as the source, e.g. install_babi('tasks_1-20_v1-2.tar.gz', dest)"
            ) from None


def _extract(archive: Path, into: Path, name: str) -> None:
    """Check then unpack the bAbI tar archive ``archive`` into the folder ``into``.

    ``name`` stands for the archive in messages (the URL of a download).
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()  # reads the whole archive: corruption shows here
            for member in members:
                member_path = PurePosixPath(member.name)
                if member_path.is_absolute() or ".." in member_path.parts:
                    raise DataError(f"unsafe member {member.name!r} in archive", path=name)
            files = [PurePosixPath(m.name) for m in members if m.isfile()]
            if not any(f.parent.name == "en" and f.match(_QA1) for f in files):
                raise DataError(f"not a bAbI archive: it has no en/{_QA1} file", path=name)
            tar.extractall(into, filter="data")
    except tarfile.FilterError as e:  # a link out of the folder, a device file, ...
        raise DataError(f"unsafe member in archive ({e})", path=name) from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        # tarfile's messages can span lines; the CLI shows one.
        detail = (str(e).splitlines() or [type(e).__name__])[0].rstrip(":")
        raise DataError(f"corrupt or not a tar archive ({detail})", path=name) from None


def install_babi(
    source: str | Path | None,
    dest: str | Path,
    url: str = OFFICIAL_URL,
    progress: bool = True,
) -> Path:
    """Install bAbI v1.2 so that ``dest/tasks_1-20_v1-2/en/`` exists.

    Args:
        source: a local folder (one holding ``tasks_1-20_v1-2/``, or that
            folder itself, i.e. one holding ``en/``), a local ``.tar.gz``, or
            ``None`` to download ``url``.
        dest: the folder to install into (created if needed).
        url: the archive to download when ``source`` is ``None``; the default
            is the official v1.2 archive.
        progress: show a tqdm progress bar while downloading.

    Returns:
        The installed root, ``dest/tasks_1-20_v1-2``.

    Raises:
        DataError: ``source`` is missing, not bAbI, or a corrupt archive, or
            ``dest/tasks_1-20_v1-2`` exists but is not a bAbI install.
        TextrnnError: the download failed.
    """
    dest = Path(dest)
    target = dest / DIRNAME
    if _is_babi_root(target):
        return target
    if target.exists():
        raise DataError("exists but holds no en/qa1 file; remove it and retry", path=target)
    src = None if source is None else Path(source)
    if src is not None and not src.exists():
        raise DataError("no such file or directory (expected a bAbI folder or .tar.gz)", path=src)
    if src is not None and src.is_dir() and _find_root(src) is None:
        raise DataError(f"not a bAbI folder: no en/{_QA1} in it or in {DIRNAME}/", path=src)

    if dest.exists() and not dest.is_dir():
        raise DataError("is not a directory (expected the folder to install into)", path=dest)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    # The work folder lives inside dest so the final rename stays on one file
    # system (and so is atomic); it is removed whatever happens.
    work = Path(tempfile.mkdtemp(prefix=f".{DIRNAME}.partial-", dir=dest))
    installed = False
    try:
        if src is not None and src.is_dir():
            root = work / DIRNAME
            shutil.copytree(_find_root(src), root)
        else:
            archive = src
            if archive is None:
                archive = work / "download.tar.gz"
                _download(url, archive, progress)
            name = url if src is None else str(src)
            _extract(archive, work / "unpacked", name)
            root = _find_root(work / "unpacked")
            if root is None:  # qa1 was in the archive, but not under <root>/en/
                raise DataError(f"archive has no {DIRNAME}/en/ folder", path=name)
        try:
            os.rename(root, target)
        except OSError:
            if not _is_babi_root(target):  # lost a race with another install: fine
                raise
        installed = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if created and not installed:
            with contextlib.suppress(OSError):  # not empty: someone else wrote there
                dest.rmdir()  # leave no trace of a failed install
    return target
