"""Install the bAbI v1.2 tasks (Weston et al. 2015) from a download or a local copy.

After ``install_babi(None, Path("data"))`` the tasks are in
``data/tasks_1-20_v1-2/en/qa1_single-supporting-fact_train.txt`` and so on
(``en/`` has 1k training questions per task, ``en-10k/`` 10k).

The install is:

- safe: archive members with absolute paths or ``..`` are refused, and the
  extraction uses tarfile's ``"data"`` filter (no links out, no devices); an
  archive that unpacks to more than :data:`MAX_UNPACKED_BYTES` or holds more
  than :data:`MAX_MEMBERS` members is refused as it unpacks (a decompression
  bomb is stopped by the bytes actually read, not by what its headers claim);
  a folder's symbolic links are followed only while they stay inside it;
- atomic: everything is unpacked into a temporary folder inside ``dest`` and
  renamed into place at the end, so an interrupted or failed install leaves
  nothing behind;
- idempotent: if the tasks are already installed it returns at once.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import http.client
import lzma
import os
import shlex
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from tqdm import tqdm

from textrnn.errors import DataError, TextrnnError

OFFICIAL_URL = "http://www.thespermwhale.com/jaseweston/babi/tasks_1-20_v1-2.tar.gz"
DIRNAME = "tasks_1-20_v1-2"  # the archive's top-level folder
_QA1 = "qa1_*_train.txt"  # every bAbI copy has it, under en/
_CHUNK = 1 << 16
# The official archive (15.7 MB) unpacks to about 155 MB in about 370 files and folders
# (8 task folders of 40 or 60 files); the limits leave room for a repacked copy, and
# stop a bomb long before it fills the disk. Read at call time, so a test can lower them.
MAX_UNPACKED_BYTES = 400 * 2**20
MAX_MEMBERS = 1000
# Questions per training file in each task folder, for describe_install(); the en-valid
# folders are left out, as they move a tenth of these into their valid files.
_FOLDER_SIZES = {"en": "1k", "en-10k": "10k", "hn": "1k", "hn-10k": "10k",
                 "shuffled": "1k", "shuffled-10k": "10k"}
# The magic bytes of the compressions tarfile's "r:*" reads, and how to open each.
_COMPRESSIONS = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))


def _is_babi_root(path: Path) -> bool:
    """Whether ``path`` holds ``en/qa1_*_train.txt`` (i.e. is a ``tasks_1-20_v1-2`` folder)."""
    return any((path / "en").glob(_QA1))


def _find_root(folder: Path) -> Path | None:
    """The bAbI root in ``folder``: ``folder/tasks_1-20_v1-2`` or ``folder`` itself."""
    for candidate in (folder / DIRNAME, folder):
        if _is_babi_root(candidate):
            return candidate
    return None


def _download(url: str, to: Path, progress: bool, dest: Path) -> None:
    """Stream ``url`` into the file ``to``, with a tqdm bar if ``progress``.

    ``dest`` is the folder being installed into, named in the offline hint.
    """
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
                        if out.tell() > MAX_UNPACKED_BYTES:  # compressed, so surely not bAbI
                            raise DataError(f"download is over {_mb(MAX_UNPACKED_BYTES)}; "
                                            "bAbI v1.2 is 15.7 MB", path=url)
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
            # The command, not the Python call: the user who sees this typed one.
            default = dest.resolve() == Path("data/babi").resolve()
            out = "" if default else f" --out {shlex.quote(str(dest))}"
            raise TextrnnError(
                f"could not download {url} ({reason}); this machine may be offline. "
                "Download tasks_1-20_v1-2.tar.gz elsewhere, then install it (or its "
                f"unpacked folder) with: textrnn data babi --from tasks_1-20_v1-2.tar.gz{out}"
            ) from None


def _mb(size: int) -> str:
    return f"{size / 2**20:g} MB"


class _Corrupt(Exception):
    """Reading the decompressed archive failed; :func:`_extract` says "corrupt"."""


class _Capped:
    """A read-only stream that counts what it passes on and stops past ``limit`` bytes.

    tarfile reads every byte of an archive through it (headers, long names, member
    data, padding), so the count is the real unpacked size whatever the headers say.
    """

    def __init__(self, stream: BinaryIO, limit: int, name: str) -> None:
        self.stream, self.limit, self.name_shown, self.count = stream, limit, name, 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.stream.read(size)
        # The decompressors' errors for bad data (or, rarely, a disk that fails to read it).
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise _Corrupt(e) from None
        self.count += len(data)
        if self.count > self.limit:
            raise DataError(f"archive unpacks to more than {_mb(self.limit)} (bAbI v1.2 is "
                            "about 155 MB): not bAbI, or a decompression bomb",
                            path=self.name_shown)
        return data


def _decompressed(archive: Path) -> BinaryIO:
    """``archive`` as a tar byte stream, decompressed by its magic bytes (gzip, bzip2, xz)."""
    with open(archive, "rb") as f:
        head = f.read(6)
    for magic, opener in _COMPRESSIONS:
        if head.startswith(magic):
            return opener(archive, "rb")
    return open(archive, "rb")  # a plain tar, or no archive at all: tarfile says which


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, into: Path, name: str) -> None:
    """Check one member's name and type, then write it under ``into``."""
    member_path = PurePosixPath(member.name)
    if member_path.is_absolute() or ".." in member_path.parts:
        raise DataError(f"unsafe member {member.name!r} in archive", path=name)
    if member.issparse():  # its holes would unpack to more than the bytes read
        raise DataError(f"unsupported sparse member {member.name!r} in archive", path=name)
    tar.extract(member, into, filter="data")  # raises FilterError for a link out, a device


def _extract(archive: Path, into: Path, name: str, max_bytes: int | None = None,
             max_members: int | None = None) -> None:
    """Check and unpack the bAbI tar archive ``archive`` into the folder ``into``, member by member.

    Args:
        name: stands for the archive in messages (the URL of a download).
        max_bytes, max_members: the limits; None means :data:`MAX_UNPACKED_BYTES` and
            :data:`MAX_MEMBERS`.

    Raises:
        DataError: an unsafe, corrupt or too large archive, or one without ``en/qa1``.
    """
    max_bytes = MAX_UNPACKED_BYTES if max_bytes is None else max_bytes
    max_members = MAX_MEMBERS if max_members is None else max_members
    files = []
    try:
        # Stream mode ("r|"): one pass, so nothing is read twice and every byte is counted.
        with _decompressed(archive) as raw, tarfile.open(
            fileobj=_Capped(raw, max_bytes, name), mode="r|"  # type: ignore[arg-type]
        ) as tar:
            for count, member in enumerate(tar, start=1):
                if count > max_members:
                    raise DataError(f"archive has more than {max_members} members (bAbI v1.2 "
                                    "has about 370): not bAbI, or an archive bomb", path=name)
                _unpack_member(tar, member, into, name)
                if member.isfile():
                    files.append(PurePosixPath(member.name))
    except tarfile.FilterError as e:  # a link out of the folder, a device file, ...
        raise DataError(f"unsafe member in archive ({e})", path=name) from None
    except (_Corrupt, tarfile.TarError, EOFError, zlib.error) as e:
        e = e.args[0] if isinstance(e, _Corrupt) else e
        # tarfile's messages can span lines; the CLI shows one.
        detail = (str(e).splitlines() or [type(e).__name__])[0].rstrip(":")
        raise DataError(f"corrupt or not a tar archive ({detail})", path=name) from None
    if not any(f.parent.name == "en" and f.match(_QA1) for f in files):
        raise DataError(f"not a bAbI archive: it has no en/{_QA1} file", path=name)


def _link_target(link: Path, top: Path, shown: Path, ancestors: frozenset[Path]) -> Path:
    """Where the symbolic link ``link`` (in the real folder ``top``) leads, if that is safe.

    Raises:
        DataError: naming the link as the user wrote it (under ``shown``), when it is
            broken or one of a loop of links, leads out of ``top``, or leads to a folder
            that holds it (copying that would never end).
    """
    where = shown / link.relative_to(top)
    target = Path(os.path.realpath(link))  # never raises: a loop of links comes back as is
    if not target.exists():
        raise DataError("a broken symbolic link, or a loop of links; remove it", path=where)
    if not target.is_relative_to(top):
        raise DataError(f"a symbolic link out of the bAbI folder (to {target}); copy the "
                        "file in or remove the link", path=where)
    if target in ancestors:
        raise DataError("a symbolic link to a folder that holds it (a loop); remove it",
                        path=where)
    return target


def _copy_dir(folder: Path, dest: Path, top: Path, shown: Path,
              ancestors: frozenset[Path]) -> None:
    """Copy the real folder ``folder`` to ``dest``; ``ancestors`` are the real folders above."""
    dest.mkdir()
    with os.scandir(folder) as entries:
        names = sorted((e.name, e.is_symlink()) for e in entries)
    for name, is_link in names:
        source = folder / name
        if is_link:
            source = _link_target(source, top, shown, ancestors)
        if source.is_dir():
            _copy_dir(source, dest / name, top, shown, ancestors | {source})
        elif source.is_file():
            shutil.copy2(source, dest / name)
        else:
            raise DataError("not a file or a folder (a pipe, socket or device)",
                            path=shown / (folder / name).relative_to(top))


def _copy_folder(root: Path, dest: Path) -> None:
    """Copy the bAbI folder ``root`` to ``dest``, following symbolic links only inside it.

    A link to a file or folder inside ``root`` is copied as what it leads to; a link
    out of ``root`` (it would copy someone else's files in), a broken link and a loop
    are refused in one line naming the link.
    """
    top = Path(os.path.realpath(root))  # `root` itself may be a link: the user chose it
    _copy_dir(top, dest, top, root, frozenset({top}))


def describe_install(root: str | Path) -> str:
    """What an installed ``root`` holds: each folder of task files, for the message after
    an install (a local copy may have fewer folders than the official archive).

    >>> with tempfile.TemporaryDirectory() as root:
    ...     (Path(root) / "en").mkdir()
    ...     (Path(root) / "en" / "qa1_x_train.txt").touch()
    ...     describe_install(root)
    'en/ (1 task file, 1k questions per training file)'
    """
    parts = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        count = len(list(folder.glob("qa*.txt")))
        if count:
            size = _FOLDER_SIZES.get(folder.name)
            note = f", {size} questions per training file" if size else ""
            parts.append(f"{folder.name}/ ({count} task file{'s' * (count != 1)}{note})")
    return ", ".join(parts) or "no task files"


def _unpack_source(src: Path | None, url: str, work: Path, progress: bool) -> Path:
    """Copy, unpack or download-and-unpack the source into ``work``; return the bAbI root."""
    if src is not None and src.is_dir():
        root = work / DIRNAME
        _copy_folder(_find_root(src), root)  # type: ignore[arg-type] (checked by the caller)
        return root
    archive = src
    if archive is None:
        archive = work / "download.tar.gz"
        _download(url, archive, progress, work.parent)
    name = url if src is None else str(src)
    _extract(archive, work / "unpacked", name)
    root = _find_root(work / "unpacked")
    if root is None:  # qa1 was in the archive, but not under <root>/en/
        raise DataError(f"archive has no {DIRNAME}/en/ folder", path=name)
    return root


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
        The installed root, ``dest/tasks_1-20_v1-2``; :func:`describe_install` says
        what it holds.

    Raises:
        DataError: ``source`` is missing, not bAbI, a corrupt or too large archive, a
            folder with a symbolic link out of it or a loop, or
            ``dest/tasks_1-20_v1-2`` exists but is not a bAbI install.
        TextrnnError: the download failed, or ``dest`` could not be written (a full disk).
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
        root = _unpack_source(src, url, work, progress)
        try:
            os.rename(root, target)
        except OSError:
            if not _is_babi_root(target):  # lost a race with another install: fine
                raise
        installed = True
    except OSError as e:  # writing dest: a full disk, no permission; reading src: no permission
        where = f" ({e.filename})" if e.filename else ""
        raise TextrnnError(
            f"could not install bAbI into {dest}: {e.strerror or e}{where}"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if created and not installed:
            with contextlib.suppress(OSError):  # not empty: someone else wrote there
                dest.rmdir()  # leave no trace of a failed install
    return target
