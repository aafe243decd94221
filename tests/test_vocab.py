"""Tests for textrnn.vocab.Vocab: specials, counting, encode/decode, serialisation."""

from __future__ import annotations

import io

import pytest
import torch

from textrnn.vocab import Vocab

TRAIN = [
    ["the", "cat", "sat", "on", "the", "mat"],
    ["the", "dog", "sat"],
    ["a", "cat", "ran"],
]
UNICODE = [["東京", "café", "😀", "naïve"], ["東京", "😀", "Ωmega"]]


def test_default_specials_have_fixed_ids() -> None:
    vocab = Vocab.from_tokens(TRAIN)
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert vocab.specials == Vocab.DEFAULT_SPECIALS == (Vocab.PAD, Vocab.UNK, Vocab.BOS, Vocab.EOS)


def test_order_is_count_desc_then_alphabetical() -> None:
    vocab = Vocab.from_tokens(TRAIN)
    # the:3; cat:2, sat:2; a, dog, mat, on, ran: 1 each.
    assert vocab.itos[4:] == ["the", "cat", "sat", "a", "dog", "mat", "on", "ran"]
    assert all(vocab.stoi[t] == i for i, t in enumerate(vocab.itos))


def test_order_does_not_depend_on_input_order() -> None:
    shuffled = [list(reversed(s)) for s in reversed(TRAIN)]
    assert Vocab.from_tokens(shuffled) == Vocab.from_tokens(TRAIN)


def test_min_count_drops_rare_tokens() -> None:
    vocab = Vocab.from_tokens(TRAIN, min_count=2)
    assert vocab.itos[4:] == ["the", "cat", "sat"]
    assert "dog" not in vocab
    assert vocab.encode(["dog"]) == [vocab.unk_id]


def test_max_size_counts_only_non_special_tokens() -> None:
    vocab = Vocab.from_tokens(TRAIN, max_size=2)
    assert len(vocab) == 4 + 2
    assert vocab.itos[4:] == ["the", "cat"]
    assert len(Vocab.from_tokens(TRAIN, max_size=0)) == 4


def test_max_size_tie_break_is_alphabetical() -> None:
    # "sat" and "cat" tie at 2; alphabetical order keeps "cat".
    vocab = Vocab.from_tokens(TRAIN, max_size=2, specials=())
    assert vocab.itos == ["the", "cat"]


@pytest.mark.parametrize("kwargs", [{"min_count": 0}, {"max_size": -1}])
def test_from_tokens_rejects_bad_limits(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Vocab.from_tokens(TRAIN, **kwargs)


def test_special_tokens_in_data_are_not_duplicated() -> None:
    vocab = Vocab.from_tokens([["<unk>", "x", "<pad>", "<unk>"]])
    assert vocab.itos == ["<pad>", "<unk>", "<bos>", "<eos>", "x"]


def test_encode_maps_unknown_to_unk_and_decode_inverts() -> None:
    vocab = Vocab.from_tokens(TRAIN)
    ids = vocab.encode(["the", "zebra", "cat"])
    assert ids == [4, 1, 5]
    assert vocab.decode(ids) == ["the", "<unk>", "cat"]
    known = ["a", "cat", "sat", "on", "the", "mat"]
    assert vocab.decode(vocab.encode(known)) == known


def test_decode_skip_specials_and_tensor_ids() -> None:
    vocab = Vocab.from_tokens(TRAIN)
    ids = torch.tensor([vocab.bos_id, 4, 5, vocab.eos_id, vocab.pad_id, vocab.pad_id])
    assert vocab.decode(ids, skip_specials=True) == ["the", "cat"]
    assert vocab.decode(ids)[0] == "<bos>"


@pytest.mark.parametrize("bad_id", [-1, 12, 100])
def test_decode_rejects_out_of_range_ids(bad_id: int) -> None:
    vocab = Vocab.from_tokens(TRAIN)
    assert len(vocab) == 12
    with pytest.raises(IndexError, match=str(bad_id)):
        vocab.decode([bad_id])


def test_unicode_tokens() -> None:
    vocab = Vocab.from_tokens(UNICODE)
    assert vocab.itos[4:6] == ["東京", "😀"]  # count 2 each; U+6771 < U+1F600
    assert set(vocab.itos[6:]) == {"café", "naïve", "Ωmega"}
    tokens = ["café", "😀", "東京", "naïve"]
    assert vocab.decode(vocab.encode(tokens)) == tokens
    assert "cafe" not in vocab


def test_char_vocab_from_strings() -> None:
    vocab = Vocab.from_tokens(["héé", "h"], specials=())
    assert vocab.itos == ["h", "é"]  # both count 2; "h" < "é" by code point
    assert vocab.encode("éh") == [1, 0]


def test_label_vocab_without_specials_raises_on_unknown() -> None:
    labels = Vocab.from_tokens([["kitchen", "garden", "kitchen"]], specials=())
    assert labels.itos == ["kitchen", "garden"]
    assert labels.pad_id is labels.unk_id is labels.bos_id is labels.eos_id is None
    assert labels.encode(["garden"]) == [1]
    assert labels.decode([0, 1], skip_specials=True) == ["kitchen", "garden"]
    with pytest.raises(KeyError, match=r"'bathroom'.*no <unk>"):
        labels.encode(["bathroom"])


def test_tag_vocab_with_pad_only() -> None:
    tags = Vocab.from_tokens([["O", "B-PER", "I-PER", "O"]], specials=(Vocab.PAD,))
    assert tags.pad_id == 0
    assert tags.unk_id is None
    assert tags.itos == ["<pad>", "O", "B-PER", "I-PER"]
    with pytest.raises(KeyError, match="B-LOC"):
        tags.encode(["B-LOC"])


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="start with the specials"):
        Vocab(["a", "<pad>"], specials=("<pad>",))
    with pytest.raises(ValueError, match="first special"):
        Vocab(["<unk>", "<pad>"], specials=("<unk>", "<pad>"))
    with pytest.raises(ValueError, match="duplicate tokens"):
        Vocab(["a", "b", "a"], specials=())
    with pytest.raises(ValueError, match="must be str"):
        Vocab(["a", 3], specials=())  # type: ignore[list-item]


def test_len_contains_eq() -> None:
    vocab = Vocab.from_tokens(TRAIN)
    assert len(vocab) == 12
    assert "cat" in vocab and "zebra" not in vocab and "<pad>" in vocab
    assert vocab == Vocab.from_tokens(TRAIN)
    assert vocab != Vocab.from_tokens(TRAIN, min_count=2)
    # Same tokens, different specials: not equal.
    assert Vocab(["<pad>", "a"], specials=("<pad>",)) != Vocab(["<pad>", "a"], specials=())
    assert vocab != vocab.to_dict()


def test_to_dict_round_trip() -> None:
    for vocab in (
        Vocab.from_tokens(TRAIN),
        Vocab.from_tokens(UNICODE),
        Vocab.from_tokens([["yes", "no"]], specials=()),
        Vocab.from_tokens([["O"]], specials=(Vocab.PAD,)),
    ):
        d = vocab.to_dict()
        restored = Vocab.from_dict(d)
        assert restored == vocab
        assert restored.stoi == vocab.stoi
        assert restored.specials == vocab.specials


def test_to_dict_survives_weights_only_torch_load() -> None:
    vocab = Vocab.from_tokens(UNICODE + TRAIN, specials=(Vocab.PAD, Vocab.UNK))
    buffer = io.BytesIO()
    torch.save({"vocab": vocab.to_dict()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    restored = Vocab.from_dict(loaded["vocab"])
    assert restored == vocab
    tokens = ["東京", "café", "😀", "??"]
    assert restored.encode(tokens) == vocab.encode(tokens)
    assert restored.unk_id == 1 and restored.bos_id is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["<pad>"], "expected a dict"),
        ({"itos": ["a"], "specials": []}, "missing keys"),
        ({"format": 1, "itos": ["a"], "specials": [], "extra": 0}, "unexpected keys"),
        ({"format": 2, "itos": ["a"], "specials": []}, "unsupported format"),
        ({"format": True, "itos": ["a"], "specials": []}, "unsupported format"),
        ({"format": 1, "itos": "abc", "specials": []}, "'itos' must be a list of str"),
        ({"format": 1, "itos": ["a", 1], "specials": []}, "'itos' must be a list of str"),
        ({"format": 1, "itos": ["a"], "specials": None}, "'specials' must be a list of str"),
        ({"format": 1, "itos": ["a", "a"], "specials": []}, "duplicate tokens"),
        ({"format": 1, "itos": ["a", "<pad>"], "specials": ["<pad>"]}, "start with the specials"),
    ],
)
def test_from_dict_rejects_malformed(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match="malformed vocab dict") as info:
        Vocab.from_dict(bad)  # type: ignore[arg-type]
    assert message in str(info.value)
