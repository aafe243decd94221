"""Attention, the seq2seq model and its commands: train seq2seq, eval, translate."""

from __future__ import annotations

import io
import json
import random

import pytest
import torch

from textrnn import checkpoint
from textrnn.cli import build_parser, main
from textrnn.data.bible import tokenize
from textrnn.collate import pad_sequences
from textrnn.attention import Attention
from textrnn.models.seq2seq import ATTENTIONS, Seq2Seq, Seq2SeqConfig
from textrnn.tasks.seq2seq import Seq2SeqTask
from textrnn.train import TrainConfig, fit

WORDS = "zero one two three four five six seven eight nine".split()
MOTS = "zéro un deux trois quatre cinq six sept huit neuf".split()


def write_pairs(path, n, seed, reverse=True, min_len=2, max_len=7):
    """A toy translation: digits as English words -> French words, in reverse order."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(min_len, max_len))]
        out = digits[::-1] if reverse else digits
        lines.append(" ".join(WORDS[d] for d in digits) + " .\t"
                     + " ".join(MOTS[d] for d in out) + " .\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


# --- attention --------------------------------------------------------------------------
@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_attention_masks_padding_and_averages_values(score):
    torch.manual_seed(0)
    att = Attention(score, 6)
    query, keys = torch.randn(2, 3, 6), torch.randn(2, 5, 6)  # (B, T, H), (B, S, H)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])  # (B, S)
    context, weights = att(query, att.project_keys(keys), keys, mask)
    assert weights.shape == (2, 3, 5) and context.shape == (2, 3, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3))
    assert torch.all(weights[1, :, 2:] == 0)
    torch.testing.assert_close(context, weights @ keys)
    # Padding is invisible: the short row alone gives the same numbers.
    alone, w_alone = att(query[1:], att.project_keys(keys[1:, :2]), keys[1:, :2], mask[1:, :2])
    torch.testing.assert_close(alone, context[1:])
    torch.testing.assert_close(w_alone, weights[1:, :, :2])


def test_attention_scores_follow_their_equations():
    torch.manual_seed(1)
    h_t, h_s = torch.randn(1, 1, 4), torch.randn(1, 3, 4)  # one query, three keys
    dot = Attention("dot", 4)
    torch.testing.assert_close(dot.scores(h_t, dot.project_keys(h_s))[0, 0], h_s[0] @ h_t[0, 0])
    gen = Attention("general", 4)
    W = gen.W_a.weight  # (H, H)
    torch.testing.assert_close(gen.scores(h_t, gen.project_keys(h_s))[0, 0],
                               (h_s[0] @ W.T) @ h_t[0, 0])
    add = Attention("additive", 4, attention_size=5)
    manual = torch.stack([add.v_a(torch.tanh(add.W_a(h_t[0, 0]) + add.U_a(h_s[0, s])))[0]
                          for s in range(3)])
    torch.testing.assert_close(add.scores(h_t, add.project_keys(h_s))[0, 0], manual)
    with pytest.raises(ValueError, match="score must be one of"):
        Attention("cosine", 4)


# --- the model --------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stepwise_decoding_matches_teacher_forcing(attention, cell):
    torch.manual_seed(2)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=15, tgt_vocab_size=11, attention=attention,
                                  cell=cell, embedding_size=8, hidden_size=12,
                                  num_layers=2)).eval()
    src, lengths = pad_sequences([[4, 5, 6, 7], [8, 9]])  # (2, 4)
    tgt_in = torch.tensor([[2, 4, 5, 6], [2, 7, 8, 0]])  # (2, 4)
    with torch.no_grad():
        logits, weights = model(src, lengths, tgt_in)  # (2, 4, 11)
        state, steps = model.start(src, lengths), []
        for t in range(tgt_in.shape[1]):
            logp, state, w = model.step(tgt_in[:, t], state)
            steps.append(logp)
        alone, _ = model(src[1:, :2], lengths[1:], tgt_in[1:])
    torch.testing.assert_close(torch.stack(steps, 1), torch.log_softmax(logits, -1))
    torch.testing.assert_close(alone, logits[1:], atol=1e-6, rtol=1e-5)  # padding-independent
    assert (weights is None) == (attention == "none")
    if weights is not None:
        assert weights.shape == (2, 4, 4) and torch.all(weights[1, :, 2:] == 0)


def test_train_save_load_same_predictions(tmp_path):
    data = write_pairs(tmp_path / "train.tsv", 200, seed=0)
    args = build_parser().parse_args(
        ["train", "seq2seq", "--data", str(data), "--out", str(tmp_path / "run"),
         "--hidden-size", "32", "--embedding-size", "16", "--batch-size", "16", "--min-count",
         "1", "--dropout", "0"])
    model, vocabs, train_data, val_data = Seq2SeqTask().build(args)
    assert len(vocabs["source"]) == 4 + 11 and len(vocabs["target"]) == 4 + 11
    before = model.evaluate(val_data)["val_loss"]
    cfg = TrainConfig(max_steps=30, eval_every=30, threads=1, lr=1e-2, device="cpu")
    fit(model, train_data, val_data, cfg, tmp_path / "run", "seq2seq", vocabs)
    after = model.evaluate(val_data)["val_loss"]
    assert after < before - 0.5
    bundle = checkpoint.load(tmp_path / "run" / "last.pt")
    batch = next(iter(val_data))
    assert bundle.model.predict(batch) == model.eval().predict(batch)
    assert bundle.config == model.config


# --- the commands -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small general-attention model on the toy task, trained through the CLI."""
    root = tmp_path_factory.mktemp("s2s")
    write_pairs(root / "train.tsv", 600, seed=1)
    write_pairs(root / "valid.tsv", 40, seed=2)
    write_pairs(root / "test.tsv", 30, seed=3)
    assert main(["train", "seq2seq", "--data", str(root / "train.tsv"), "--out",
                 str(root / "run"), "--hidden-size", "32", "--embedding-size", "16",
                 "--batch-size", "16", "--max-steps", "60", "--eval-every", "30",
                 "--lr", "1e-2", "--threads", "1", "--dropout", "0"]) == 0
    return root


def test_train_writes_run_and_uses_sibling_valid(trained):
    text = (trained / "run" / "metrics.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["step"] for r in records] == [30, 60]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert {"val_loss", "val_ppl", "val_acc"} <= set(records[0])


def test_eval_prints_bleu_and_chrf_for_greedy_and_beam(trained, capsys):
    capsys.readouterr()
    ckpt, test = str(trained / "run" / "best.pt"), str(trained / "test.tsv")
    assert main(["eval", "--checkpoint", ckpt, "--data", test, "--json", "--beam", "3"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["pairs"] == 30 and results["beam"]["beam_size"] == 3
    for search in ("greedy", "beam"):
        assert 0 <= results[search]["bleu"] <= 100 and 0 <= results[search]["chrf"] <= 100
    assert results["greedy"]["chrf"] > 10  # 60 steps learn the words, if not yet the order
    assert main(["eval", "--checkpoint", ckpt, "--data", test, "--beam", "1"]) == 0
    table = capsys.readouterr().out
    assert "greedy  BLEU" in table and "beam" not in table.split("\n")[1]


def test_translate_prints_and_draws_attention(trained, capsys, monkeypatch):
    capsys.readouterr()
    ckpt, png = str(trained / "run" / "best.pt"), trained / "att.png"
    assert main(["translate", "--checkpoint", ckpt, "one two three .", "four five .",
                 "--beam", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(set(tokenize(line)) <= set(MOTS) | {"."} for line in lines)
    assert main(["translate", "--checkpoint", ckpt, "one two banana .",
                 "--show-attention", str(png)]) == 0
    captured = capsys.readouterr()
    assert "banana" in captured.err and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("six seven .\n\n"))
    assert main(["translate", "--checkpoint", ckpt, "--beam", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_user_errors_are_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("one .\tun .\ntwo .\n", encoding="utf-8")
    assert main(["train", "seq2seq", "--data", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"{bad}:2: expected 2 tab-separated fields (source, target), got 1")
    ckpt = str(trained / "run" / "best.pt")
    assert main(["translate", "--checkpoint", ckpt, "a .", "b .", "--show-attention",
                 str(tmp_path / "x.png")]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["translate", "--checkpoint", ckpt, "   "]) == 2
    assert "empty source sentence" in capsys.readouterr().err


@pytest.mark.slow
def test_attention_beats_no_attention_on_reversal(tmp_path):
    """Reversing 6-10 digits: attention gets most sentences exactly right, no attention not."""
    write_pairs(tmp_path / "train.tsv", 4000, seed=4, min_len=6, max_len=10)
    write_pairs(tmp_path / "valid.tsv", 100, seed=5, min_len=6, max_len=10)
    write_pairs(tmp_path / "test.tsv", 200, seed=6, min_len=6, max_len=10)
    bleu = {}
    for attention in ("general", "none"):
        run = tmp_path / attention
        assert main(["train", "seq2seq", "--data", str(tmp_path / "train.tsv"), "--out",
                     str(run), "--attention", attention, "--hidden-size", "64",
                     "--embedding-size", "32", "--max-steps", "1500", "--eval-every", "500",
                     "--lr", "3e-3", "--threads", "1", "--dropout", "0"]) == 0
        bundle = checkpoint.load(run / "best.pt")
        ns = build_parser().parse_args(["eval", "--checkpoint", str(run / "best.pt"), "--data",
                                        str(tmp_path / "test.tsv"), "--beam", "1"])
        bleu[attention] = Seq2SeqTask().evaluate(bundle, ns)["greedy"]["bleu"]
    assert bleu["general"] > 90 and bleu["general"] > bleu["none"] + 10
