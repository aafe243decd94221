"""The language model: its side of the training contract, and its pipeline from Python."""

from __future__ import annotations

import pytest
import torch

from textrnn import checkpoint
from textrnn.data.text import read_text, tokenize_lines
from textrnn.errors import DataError, TextrnnError
from textrnn.models.lm import LanguageModel, default_cutoffs
from textrnn.pipelines import lm
from textrnn.train import TrainConfig, fit
from textrnn.vocab import Vocab

TINY = dict(hidden_size=16, embedding_size=8, num_layers=1, dropout=0.0)


def test_lm_carries_state_across_windows_and_resets(make_tiny_lm) -> None:
    model, _, train, _ = make_tiny_lm(dropout=0.0)
    first, second = list(train)[:2]
    model.loss(first)
    carried = model.state[0].clone()
    model.loss(second)
    assert not torch.equal(model.state[0], carried)  # moved on from the carried state
    assert not model.state[0].requires_grad  # detached: gradients stop at the window edge
    fresh = model.loss(first)
    model.state = None
    assert torch.equal(fresh, model.loss(first))  # reset=True ignores the carried state


def test_lm_evaluate_keys_and_bpc(make_tiny_lm) -> None:
    model, _, _, val = make_tiny_lm()
    metrics = model.evaluate(val)
    assert set(metrics) == {"val_loss", "val_ppl", "val_bpc"}
    assert metrics["val_bpc"] == pytest.approx(metrics["val_loss"] / 0.6931471805599453)
    assert model.training  # evaluate restores the mode


def test_lm_sample_is_reproducible_with_a_generator(make_tiny_lm) -> None:
    model, _, _, _ = make_tiny_lm()
    one = model.sample(
        [5, 6], 20, temperature=0.9, top_k=5, generator=torch.Generator().manual_seed(3)
    )
    two = model.sample(
        [5, 6], 20, temperature=0.9, top_k=5, generator=torch.Generator().manual_seed(3)
    )
    assert one == two and len(one) == 20
    assert model.sample([5], 10, temperature=0) == model.sample([5], 10, temperature=0)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_lm_trains_with_every_cell(make_tiny_lm, run_dir, cell: str) -> None:
    model, _, train, val = make_tiny_lm(cell=cell, num_layers=1)
    cfg = TrainConfig(epochs=50, lr=1e-2, max_steps=3, eval_every=5, device="cpu", seed=7)
    assert fit(model, train, val, cfg, run_dir)["step"] == 3


# --- the pipeline, as a Python user calls it ---------------------------------------------


def test_build_holds_out_the_last_lines_and_counts_only_the_rest(tiny_text) -> None:
    run = lm.build(tiny_text, bptt=8, batch_size=2, seed=0, level="char", **TINY)
    lines = read_text(tiny_text).splitlines(keepends=True)  # 14 lines: the last is held out
    train_tokens = tokenize_lines("".join(lines[:13]), "char")
    assert run.model.vocabs == {"tokens": Vocab.from_tokens([train_tokens])}
    assert isinstance(run.model, LanguageModel) and run.model.config.cutoffs == ()
    held = sum(b["y"].numel() for b in run.val_data)
    assert 0 < held <= len(lines[13])  # the validation windows read the last line only
    assert run.train_data.batch_size == 2 and run.train_data.bptt == 8


def test_cutoffs_default_for_the_adaptive_softmax_and_are_dropped_for_the_full_one(
    tiny_text,
) -> None:
    adaptive = lm.build(tiny_text, level="word", softmax="adaptive", batch_size=2, **TINY)
    size = len(adaptive.model.vocabs["tokens"])
    assert adaptive.model.config.cutoffs == default_cutoffs(size)
    full = lm.build(tiny_text, level="word", cutoffs=(3, 9), batch_size=2, **TINY)
    assert full.model.config.cutoffs == ()


def test_bad_settings_are_user_errors(tiny_text) -> None:
    with pytest.raises(DataError, match="bad model settings: cell must be one of"):
        lm.build(tiny_text, cell="transformer", batch_size=2)
    with pytest.raises(TextrnnError, match="hidden_width"):
        lm.build(tiny_text, hidden_width=8, batch_size=2)
    with pytest.raises(DataError, match=f"{tiny_text}: .* too few for batch size 500"):
        lm.build(tiny_text, batch_size=500, bptt=8)


def test_evaluate_sample_and_score_from_python(make_tiny_lm, tiny_text, tmp_path) -> None:
    model, _, _, _ = make_tiny_lm()
    bundle = checkpoint.load(checkpoint.save(tmp_path / "m.pt", model=model), task="lm")
    results = lm.evaluate(bundle, tiny_text, bptt=16, batch_size=4)
    assert set(results) == {"loss", "ppl", "bpc", "tokens"}
    assert results["tokens"] == len(read_text(tiny_text))  # one token per character
    pieces = list(lm.sample(bundle, "Shall", max_tokens=12, temperature=0.9, seed=3))
    assert pieces[0] == "Shall" and len(pieces) == 1 + 12
    assert "".join(lm.sample(bundle, "Shall", max_tokens=12, temperature=0.9, seed=3)) == \
        "".join(pieces)
    sentences = ["zzzz qqq", "Shall I compare thee"]
    ranked = lm.score(bundle, sentences)
    assert sorted(r.sentence for r in ranked) == sorted(sentences)
    assert ranked[0].logp >= ranked[1].logp and all(r.logp < 0 for r in ranked)
    assert all(r.tokens == len(r.sentence) + 1 for r in ranked)  # characters and line end
    unknown = {r.sentence: r.unknown for r in ranked}
    assert unknown["zzzz qqq"] == sum(c not in bundle.vocabs["tokens"].stoi for c in "zzzz qqq")
    assert unknown["Shall I compare thee"] == 0
