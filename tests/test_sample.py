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


def test_max_lines_samples_across_line_ends(word_lm, capsys):
    three = sample(capsys, word_lm, "--seed", "3", "--max-lines", "3", "--max-tokens", "80")
    one = sample(capsys, word_lm, "--seed", "3")
    assert three.startswith(one.rstrip("\n"))  # the same draw, carried on past the first line
    assert three.endswith("\n\n")  # stopped at a line end (then print's own)...
    assert three.rstrip("\n").count("\n") == 2  # ...the third one


def test_max_lines_zero_runs_to_max_tokens(word_lm):
    from textrnn.pipelines import lm

    bundle = load(word_lm)
    pieces = list(lm.sample(bundle, "the cat", max_tokens=40, max_lines=0, seed=3))
    assert len(pieces) == 1 + 40  # the prompt, then every token: <eos> stops nothing
    assert "".join(pieces).count("\n") >= 2
    assert len(list(lm.sample(bundle, "the cat", max_tokens=40, seed=3))) < 1 + 40


def test_max_lines_refused_for_tunes(word_lm, tmp_path, capsys):
    code = main(["sample", "--checkpoint", str(word_lm), "--abc", str(tmp_path / "t.abc"),
                 "--max-lines", "2"])
    assert code != 0 and "--max-lines is for text" in capsys.readouterr().err
    assert not (tmp_path / "t.abc").exists()
