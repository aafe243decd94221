"""Sampling from a word language model: reproducible, stops at <eos>, --no-unk, streamed."""

from __future__ import annotations

import pytest

from textrnn.checkpoint import load
from textrnn.cli import main

# Words seen once become <unk> with --min-count 2, so <unk> is a common token here.
LINES = [f"the cat sat on mat number {i} today" for i in range(60)] * 3


@pytest.fixture(scope="module")
def word_lm(tmp_path_factory):
    root = tmp_path_factory.mktemp("wlm")
    (root / "text.txt").write_text("\n".join(LINES) + "\n")
    assert main(["train", "lm", "--data", str(root / "text.txt"), "--out", str(root / "run"),
                 "--level", "word", "--min-count", "4", "--hidden-size", "32",
                 "--embedding-size", "16", "--num-layers", "1", "--dropout", "0",
                 "--bptt", "16", "--batch-size", "8", "--lr", "0.01", "--max-steps", "120",
                 "--threads", "1", "--seed", "0"]) == 0
    return root / "run" / "best.pt"


def sample(capsys, checkpoint, *extra):
    assert main(["sample", "--checkpoint", str(checkpoint), "--prompt", "the cat",
                 "--max-tokens", "30", *extra]) == 0
    return capsys.readouterr().out


def test_same_seed_same_sample_and_stops_at_the_line_end(word_lm, capsys):
    a = sample(capsys, word_lm, "--seed", "3")
    b = sample(capsys, word_lm, "--seed", "3")
    assert a == b and a.startswith("the cat")
    assert a.rstrip("\n").count("\n") == 0  # one line: stopped at <eos>
    assert len(a.split()) < 2 + 30  # ...before the token limit


def test_no_unk_keeps_unk_out(word_lm, capsys):
    with_unk = "".join(sample(capsys, word_lm, "--seed", str(s), "--temperature", "1.5")
                       for s in range(8))
    assert "<unk>" in with_unk  # the model has learned that rare numbers are <unk>
    without = "".join(sample(capsys, word_lm, "--seed", str(s), "--temperature", "1.5",
                             "--no-unk") for s in range(8))
    assert "<unk>" not in without


def test_generate_yields_one_token_at_a_time(word_lm):
    bundle = load(word_lm)
    vocab = bundle.vocabs["tokens"]
    stream = bundle.model.generate(vocab.encode(["the", "cat"]), max_tokens=5, temperature=0)
    first = next(stream)  # available before the rest is computed
    rest = list(stream)
    assert 1 + len(rest) <= 5 and isinstance(first, int)
    assert bundle.model.sample(vocab.encode(["the", "cat"]), 5, temperature=0) == [first, *rest]
