"""Installing bAbI: from a folder, a .tar.gz, and a download from a local HTTP server.

Every source is a small subset of the real data built in ``tmp_path``; no
test touches the network beyond 127.0.0.1.
"""

from __future__ import annotations

import http.server
import io
import re
import shlex
import shutil
import socket
import tarfile
import threading

import pytest
from babi_paths import real_babi_dir

from textrnn.data import install
from textrnn.data.install import DIRNAME, install_babi
from textrnn.errors import DataError, TextrnnError

SUBSET = [
    "README.txt",
    "en/qa1_single-supporting-fact_train.txt",
    "en/qa1_single-supporting-fact_test.txt",
    "en/qa6_yes-no-questions_test.txt",
    "en-10k/qa1_single-supporting-fact_test.txt",
]


def snapshot(root):
    """``{relative path: bytes}`` of every file under ``root``."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def source(tmp_path):
    """A folder ``src/`` holding a small ``tasks_1-20_v1-2/`` copied from the real data."""
    real = real_babi_dir()
    root = tmp_path / "src" / DIRNAME
    for name in SUBSET:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real / name, root / name)
    return root


@pytest.fixture
def archive(tmp_path, source):
    path = tmp_path / "tasks_1-20_v1-2.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=DIRNAME)
    return path


@pytest.fixture
def server(archive):
    """Serve the archive at ``{base}/tasks_1-20_v1-2.tar.gz`` on 127.0.0.1; yield ``base``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path != "/tasks_1-20_v1-2.tar.gz":
                self.send_error(404)
                return
            body = archive.read_bytes()  # read per request, so a test can corrupt it
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the test output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval makes shutdown() quick.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def assert_clean_failure(dest):
    """A failed install leaves neither the target nor a temporary folder."""
    assert not dest.exists() or list(dest.iterdir()) == []


def tar_with(path, members):
    """Write a .tar.gz of ``{name: bytes}`` (``bytes`` None: a symlink to /etc/passwd)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


QA1 = f"{DIRNAME}/en/qa1_single-supporting-fact_train.txt"
STORY = b"1 Mary moved to the bathroom.\n2 Where is Mary? \tbathroom\t1\n"


# -- success ------------------------------------------------------------------


@pytest.mark.parametrize("level", ["parent", "root"])
def test_install_from_folder(tmp_path, source, level):
    dest = tmp_path / "data"
    result = install_babi(source.parent if level == "parent" else source, dest, progress=False)
    assert result == dest / DIRNAME
    assert snapshot(result) == snapshot(source)
    assert list(dest.iterdir()) == [result]  # no temporary folder left


def test_install_from_archive(tmp_path, source, archive):
    dest = tmp_path / "data"
    result = install_babi(archive, dest, progress=False)
    assert (result / "en/qa1_single-supporting-fact_train.txt").is_file()
    assert snapshot(result) == snapshot(source)
    assert list(dest.iterdir()) == [result]


def test_install_is_idempotent(tmp_path, archive):
    dest = tmp_path / "data"
    result = install_babi(archive, dest, progress=False)
    (result / "marker").write_text("kept")
    # Installed already: the source is not even looked at, nothing is redone.
    assert install_babi(tmp_path / "gone.tar.gz", dest, progress=False) == result
    assert install_babi(None, dest, url="http://127.0.0.1:9/none", progress=False) == result
    assert (result / "marker").read_text() == "kept"


@pytest.mark.parametrize("progress", [False, True])
def test_download(tmp_path, source, server, progress, capsys):
    dest = tmp_path / "data"
    result = install_babi(None, dest, url=f"{server}/tasks_1-20_v1-2.tar.gz", progress=progress)
    assert snapshot(result) == snapshot(source)
    assert list(dest.iterdir()) == [result]
    assert ("bAbI v1.2" in capsys.readouterr().err) == progress


# -- failures -----------------------------------------------------------------


def test_download_http_error(tmp_path, server):
    dest = tmp_path / "data"
    with pytest.raises(TextrnnError, match="HTTP 404"):
        install_babi(None, dest, url=f"{server}/missing.tar.gz", progress=False)
    assert_clean_failure(dest)


def test_download_offline(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "data"
    with pytest.raises(TextrnnError, match="may be offline") as info:
        install_babi(None, dest, url=f"http://127.0.0.1:{port}/x.tar.gz", progress=False)
    # The hint names the command (with this --out), not a Python call.
    assert "install_babi" not in str(info.value)
    assert ("textrnn data babi --from tasks_1-20_v1-2.tar.gz --out "
            f"{shlex.quote(str(dest))}") in str(info.value)
    assert_clean_failure(dest)


def test_download_offline_default_folder(tmp_path, monkeypatch):
    """Into the default data/babi the hint is the bare command, with no --out."""
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TextrnnError, match="may be offline") as info:
        install_babi(None, "data/babi", url=f"http://127.0.0.1:{port}/x.tar.gz", progress=False)
    assert str(info.value).endswith("textrnn data babi --from tasks_1-20_v1-2.tar.gz")


def test_corrupt_archive(tmp_path, archive):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"truncated\.tar\.gz: corrupt or not a tar archive"):
        install_babi(truncated, dest, progress=False)
    assert not dest.exists()


def test_not_an_archive(tmp_path):
    text = tmp_path / "qa1.txt"
    text.write_bytes(STORY)
    with pytest.raises(DataError, match="corrupt or not a tar archive") as info:
        install_babi(text, tmp_path / "data", progress=False)
    assert "\n" not in str(info.value)  # the CLI prints errors as one line
    assert not (tmp_path / "data").exists()


def test_corrupt_download_names_the_url(tmp_path, archive, server):
    archive.write_bytes(b"not gzip")
    dest = tmp_path / "data"
    url = f"{server}/tasks_1-20_v1-2.tar.gz"
    with pytest.raises(DataError, match=rf"^{re.escape(url)}: corrupt or not a tar archive"):
        install_babi(None, dest, url=url, progress=False)
    assert not dest.exists()


def test_archive_without_babi(tmp_path):
    bad = tar_with(tmp_path / "other.tar.gz", {"other/qa1_x_train.txt": STORY})
    with pytest.raises(DataError, match=r"not a bAbI archive: it has no en/qa1_\*_train.txt"):
        install_babi(bad, tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()


def test_archive_with_babi_too_deep(tmp_path):
    deep = tar_with(tmp_path / "deep.tar.gz", {f"a/b/{QA1}": STORY})
    with pytest.raises(DataError, match="no tasks_1-20_v1-2/en/ folder"):
        install_babi(deep, tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "evil", ["../evil.txt", f"{DIRNAME}/../../evil.txt", "/tmp/textrnn-evil.txt"]
)
def test_unsafe_member_paths(tmp_path, evil):
    bad = tar_with(tmp_path / "unsafe.tar.gz", {QA1: STORY, evil: b"pwned"})
    dest = tmp_path / "a" / "data"
    with pytest.raises(DataError, match="unsafe member"):
        install_babi(bad, dest, progress=False)
    assert not dest.exists()
    assert not list(tmp_path.rglob("*evil*"))


def test_unsafe_symlink(tmp_path):
    bad = tar_with(tmp_path / "link.tar.gz", {QA1: STORY, f"{DIRNAME}/en/passwd": None})
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="unsafe member"):
        install_babi(bad, dest, progress=False)
    assert not dest.exists()


def test_interrupted_install_leaves_nothing(tmp_path, archive, monkeypatch):
    def interrupted(archive, into, name):
        (into / DIRNAME / "en").mkdir(parents=True)
        (into / DIRNAME / "en" / "qa1_half_train.txt").write_text("1 Mary")
        raise KeyboardInterrupt

    monkeypatch.setattr(install, "_extract", interrupted)
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(KeyboardInterrupt):
        install_babi(archive, dest, progress=False)
    assert list(dest.iterdir()) == []  # dest existed before, so it stays, empty


def test_missing_and_wrong_sources(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tar\.gz: no such file or directory"):
        install_babi(tmp_path / "nope.tar.gz", tmp_path / "data", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: not a bAbI folder"):
        install_babi(tmp_path / "empty", tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()


def test_target_exists_but_is_not_babi(tmp_path, archive):
    (tmp_path / "data" / DIRNAME).mkdir(parents=True)
    with pytest.raises(DataError, match="remove it and retry"):
        install_babi(archive, tmp_path / "data", progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="is not a directory"):
        install_babi(archive, tmp_path / "file", progress=False)
