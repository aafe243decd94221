"""Bad input to the data readers, the bAbI installer and checkpoint writes: one line, nothing lost.

Each test feeds one thing an audit found reaching the user as a traceback or a
misleading message: a full disk during a checkpoint write, symbolic links that
loop or lead out of a ``--from`` folder, archive bombs, a directory where a file
should be, and a byte that is not UTF-8.
"""

from __future__ import annotations

import errno
import io
import os
import re
import tarfile

import pytest
import torch

from textrnn import atomic, checkpoint
from textrnn.cli import main
from textrnn.data import install
from textrnn.data.babi import read_babi
from textrnn.data.conll import read_conll
from textrnn.data.install import DIRNAME, describe_install, install_babi
from textrnn.data.pairs import read_pairs
from textrnn.errors import CheckpointError, DataError, TextrnnError

QA1 = "en/qa1_single-supporting-fact_train.txt"
STORY = b"1 Mary moved to the bathroom.\n2 Where is Mary? \tbathroom\t1\n"


def one_line(err: BaseException) -> str:
    """``str(err)``, checked to be one line: the CLI prints errors as one."""
    text = str(err)
    assert "\n" not in text and text
    return text


# -- 11. a full disk during a checkpoint write ----------------------------------------


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def half_written_then_enospc(obj, f):
    f.write(b"PK\x03\x04 half a zip")  # the disk fills up half-way through the file
    enospc()


@pytest.mark.parametrize("where", ["torch.save", "fsync", "replace"])
def test_enospc_during_a_checkpoint_write_is_one_line_and_keeps_the_old_file(
    make_tiny_lm, tmp_path, monkeypatch, where
):
    model, _, _, _ = make_tiny_lm()
    path = checkpoint.save(tmp_path / "m.pt", model=model, step=2)
    target = {"torch.save": (torch, "save", half_written_then_enospc),
              "fsync": (atomic.os, "fsync", enospc),  # the writer checkpoint.save uses
              "replace": (atomic.os, "replace", enospc)}[where]
    monkeypatch.setattr(*target)
    with pytest.raises(CheckpointError) as info:
        checkpoint.save(path, model=model, step=3)
    monkeypatch.undo()
    assert one_line(info.value) == (
        f"{path}: could not write the checkpoint: No space left on device; "
        "the previous file is kept"
    )
    assert info.value.errno == errno.ENOSPC  # still an OSError, for code that caught those
    assert os.listdir(tmp_path) == ["m.pt"]  # no temp file left
    assert checkpoint.load(path).step == 2  # the old checkpoint is intact


def test_enospc_with_no_previous_checkpoint_says_none_was_written(make_tiny_lm, tmp_path,
                                                                 monkeypatch):
    model, _, _, _ = make_tiny_lm()
    monkeypatch.setattr(torch, "save", half_written_then_enospc)
    with pytest.raises(CheckpointError, match="; no checkpoint was written$"):
        checkpoint.save(tmp_path / "m.pt", model=model)
    assert os.listdir(tmp_path) == []


def test_enospc_while_training_is_one_line_from_the_cli(tiny_text, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch, "save", half_written_then_enospc)
    run = tmp_path / "run"
    code = main(["train", "lm", "--data", str(tiny_text), "--out", str(run), "--max-steps", "2",
                 "--hidden-size", "16", "--num-layers", "1", "--batch-size", "4", "--bptt", "16",
                 "--device", "cpu"])
    err = capsys.readouterr().err  # the training's progress lines, then the error
    assert code == 2 and "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("textrnn: error: ") and "No space left on device" in last
    assert not list(run.glob(checkpoint.TEMP_GLOB))


# -- 12. bAbI from a folder: symbolic links -------------------------------------------


@pytest.fixture
def babi_folder(tmp_path):
    """``src/tasks_1-20_v1-2/en/qa1_..._train.txt``: the smallest folder install accepts."""
    root = tmp_path / "src" / DIRNAME
    (root / "en").mkdir(parents=True)
    (root / QA1).write_bytes(STORY)
    return root


def assert_nothing_installed(dest):
    assert not dest.exists() or list(dest.iterdir()) == []


@pytest.mark.parametrize("link,to", [
    ("en/loop", ".."),  # a folder link back up: following it never ends
    ("en/self", "."),
    ("en/a/b", "../../en"),  # the loop goes through a real folder
    ("en/x", "x"),  # a link to itself: the OS says "too many levels of symbolic links"
])
def test_a_symlink_loop_in_the_source_folder_is_one_line(tmp_path, babi_folder, link, to):
    (babi_folder / link).parent.mkdir(parents=True, exist_ok=True)
    (babi_folder / link).symlink_to(to)
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="loop") as info:
        install_babi(babi_folder, dest, progress=False)
    assert one_line(info.value).startswith(f"{babi_folder / link}: ")
    assert_nothing_installed(dest)


def test_a_symlink_out_of_the_source_folder_is_refused_and_not_copied(tmp_path, babi_folder):
    secret = tmp_path / "home" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("private")
    (babi_folder / "en" / "qa2_x_train.txt").symlink_to(secret)
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="symbolic link out of the bAbI folder") as info:
        install_babi(babi_folder, dest, progress=False)
    assert str(secret) in one_line(info.value)
    assert_nothing_installed(dest)
    copies = [p for p in tmp_path.rglob("*") if not p.is_symlink() and p.is_file()
              and p.read_bytes() == b"private"]
    assert copies == [secret]  # no copy anywhere, not even in a temporary folder


def test_a_symlink_out_of_the_folder_via_a_linked_folder_is_refused(tmp_path, babi_folder):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "qa1_x_test.txt").write_bytes(STORY)
    (babi_folder / "en-10k").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="out of the bAbI folder"):
        install_babi(babi_folder, tmp_path / "data", progress=False)


def test_symlinks_inside_the_source_folder_are_copied_as_what_they_lead_to(tmp_path,
                                                                           babi_folder):
    (babi_folder / "en" / "qa1_single-supporting-fact_test.txt").symlink_to(babi_folder / QA1)
    (babi_folder / "en-10k").symlink_to("en", target_is_directory=True)  # relative, inside
    root = install_babi(babi_folder, tmp_path / "data", progress=False)
    test_file = root / "en" / "qa1_single-supporting-fact_test.txt"
    assert not test_file.is_symlink() and test_file.read_bytes() == STORY
    assert (root / "en-10k").is_dir() and not (root / "en-10k").is_symlink()
    assert (root / "en-10k" / "qa1_single-supporting-fact_test.txt").read_bytes() == STORY


def test_a_symlink_loop_from_the_cli_is_one_line(tmp_path, babi_folder, capsys):
    (babi_folder / "en" / "loop").symlink_to("..")
    code = main(["data", "babi", "--from", str(babi_folder), "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


# -- 12. bAbI from an archive: bombs ---------------------------------------------------


def write_tar(path, members):
    """A .tar.gz of ``[(name, size or bytes)]``; an int size means that many zero bytes."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, int):
                info.size = data
                tar.addfile(info, io.BytesIO(bytes(data)))
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_an_archive_that_unpacks_too_large_is_refused_as_it_unpacks(tmp_path, monkeypatch):
    # 1 MB, for a fast test. raising=False: where there is no limit, the test fails
    # because the install succeeds, not because the name is missing.
    monkeypatch.setattr(install, "MAX_UNPACKED_BYTES", 2**20, raising=False)
    zeros = [(f"{DIRNAME}/en/zeros{i}.txt", 2**20) for i in range(3)]  # 3 MB of zeros
    bomb = write_tar(tmp_path / "bomb.tar.gz", [(f"{DIRNAME}/{QA1}", STORY), *zeros])
    assert bomb.stat().st_size < 2**16  # small compressed: only unpacking shows the size
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"bomb\.tar\.gz: archive unpacks to more than 1 MB"):
        install_babi(bomb, dest, progress=False)
    assert_nothing_installed(dest)


def test_a_long_name_bomb_counts_bytes_not_member_sizes(tmp_path, monkeypatch):
    # A member of size 0 whose GNU long name is 2 MB: summing the headers' sizes says 0.
    monkeypatch.setattr(install, "MAX_UNPACKED_BYTES", 2**20, raising=False)
    bomb = write_tar(tmp_path / "names.tar.gz",
                     [(f"{DIRNAME}/{QA1}", STORY), ("n" * 2 * 2**20, b"")])
    with pytest.raises(DataError, match="archive unpacks to more than 1 MB"):
        install_babi(bomb, tmp_path / "data", progress=False)


def test_an_archive_with_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(install, "MAX_MEMBERS", 20, raising=False)
    tiny = [(f"{DIRNAME}/en/f{i}.txt", b"x") for i in range(50)]
    bomb = write_tar(tmp_path / "many.tar.gz", [(f"{DIRNAME}/{QA1}", STORY), *tiny])
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="many.tar.gz: archive has more than 20 members") as info:
        install_babi(bomb, dest, progress=False)
    one_line(info.value)
    assert_nothing_installed(dest)


def test_the_limits_leave_room_for_the_official_archive():
    # bAbI v1.2 unpacks to about 155 MB in about 370 files and folders.
    assert install.MAX_UNPACKED_BYTES >= 2 * 155 * 2**20 and install.MAX_MEMBERS >= 2 * 370


def test_an_archive_within_the_limits_installs(tmp_path, monkeypatch):
    monkeypatch.setattr(install, "MAX_MEMBERS", 2)  # exactly its two members
    archive = write_tar(tmp_path / "ok.tar.gz", [(f"{DIRNAME}/{QA1}", STORY),
                                                 (f"{DIRNAME}/README.txt", b"readme")])
    root = install_babi(archive, tmp_path / "data", progress=False)
    assert (root / QA1).read_bytes() == STORY and (root / "README.txt").read_bytes() == b"readme"


def test_the_install_message_says_what_was_installed(tmp_path):
    archive = write_tar(tmp_path / "en-only.tar.gz", [(f"{DIRNAME}/{QA1}", STORY)])
    root = install_babi(archive, tmp_path / "data", progress=False)
    described = describe_install(root)
    assert described == "en/ (1 task file, 1k questions per training file)"
    assert "en-10k" not in described


# -- 13. a directory where a file should be --------------------------------------------


@pytest.mark.parametrize("reader,what", [(read_conll, "CoNLL"), (read_pairs, "TSV")])
def test_a_directory_given_to_a_reader_says_so(tmp_path, reader, what):
    with pytest.raises(DataError, match=f"is a directory, expected a {what}") as info:
        reader(tmp_path)
    assert one_line(info.value).startswith(f"{tmp_path}: ")


# -- 13. a byte that is not UTF-8 names its line -----------------------------------------

BAD_LINE_3 = {
    "qa1_x_train.txt": b"1 Mary moved to the bathroom.\n2 John went to the hallway.\n"
                       b"3 Where is Mar\xff?\tbathroom\t1\n",
    "train.conll": b"EU B-ORG\nrejects O\nGerm\xe9n B-MISC\n",
    "pairs.tsv": b"Hello.\tBonjour.\nYes.\tOui.\nNo\xff.\tNon.\n",
}
READERS = {"qa1_x_train.txt": read_babi, "train.conll": read_conll, "pairs.tsv": read_pairs}


@pytest.mark.parametrize("name", list(BAD_LINE_3))
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_non_utf8_byte_on_line_3_names_line_3(tmp_path, name, newline):
    data = BAD_LINE_3[name].replace(b"\n", newline)
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        READERS[name](path)
    offset = next(i for i, b in enumerate(data) if b >= 0x80)
    where = re.escape(f"{path}:3: ")
    assert re.match(rf"{where}not (a )?UTF-8 text( file)? \(", one_line(info.value))
    assert str(info.value).endswith(f"at byte {offset})")


def test_the_offset_and_line_are_the_files_deep_in_a_big_file(tmp_path):
    # An offset from a streaming decoder would be into its current chunk, not the file.
    head = b"word O\n" * 5000
    path = tmp_path / "big.conll"
    path.write_bytes(head + b"b\xffd O\n")
    with pytest.raises(DataError, match=rf":5001: not UTF-8 text \(.* at byte {len(head) + 1}\)"):
        read_conll(path)


def test_data_errors_are_textrnn_errors():
    # The CLI prints every TextrnnError as one line and exits 2.
    assert issubclass(DataError, TextrnnError) and issubclass(CheckpointError, TextrnnError)
