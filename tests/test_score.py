"""Sentence scoring with a language model: which sentence is more likely?"""

from __future__ import annotations

import pytest
import torch

from textrnn import models
from textrnn.checkpoint import load
from textrnn.cli import main
from textrnn.models.lm import LMConfig

CORPUS = [
    "we ate the apple and pear salad",
    "she wore a pair of shoes",
    "the pear tree is old",
    "a pair of socks",
    "he made an apple and pear salad",
] * 40


def test_batched_scores_equal_one_at_a_time_and_a_manual_sum():
    torch.manual_seed(0)
    config = LMConfig(vocab_size=12, level="word", hidden_size=16, embedding_size=8,
                      num_layers=2, dropout=0.0)
    model = models.build("lm", config, {}).eval()
    seqs = [[3, 4, 5, 2], [6, 2], [7, 8, 9, 10, 11, 2]]
    batched = model.score(seqs, start_id=2)
    alone = [model.score([s], start_id=2)[0] for s in seqs]
    assert batched == pytest.approx(alone, abs=1e-5)
    s = seqs[0]
    logits, _ = model(torch.tensor([[2, *s[:-1]]]))
    manual = torch.log_softmax(logits[0], -1)[torch.arange(len(s)), torch.tensor(s)].sum()
    assert batched[0] == pytest.approx(manual.item(), abs=1e-5)
    assert all(v < 0 for v in batched)


def test_score_command_prefers_the_likely_sentence(tmp_path, capsys):
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(CORPUS) + "\n")
    run = tmp_path / "run"
    assert main(["train", "lm", "--data", str(data), "--out", str(run), "--level", "word",
                 "--hidden-size", "32", "--embedding-size", "16", "--num-layers", "1",
                 "--dropout", "0", "--bptt", "16", "--batch-size", "8", "--lr", "0.01",
                 "--max-steps", "150", "--threads", "1", "--seed", "0"]) == 0
    capsys.readouterr()
    good, bad = "we ate the apple and pear salad", "we ate the apple and pair salad"
    assert main(["score", "--checkpoint", str(run / "best.pt"), bad, good]) == 0
    captured = capsys.readouterr()
    assert "never saw" not in captured.err  # both sentences use known words only
    lines = captured.out.splitlines()
    assert lines[0].endswith(good) and lines[1].endswith(bad)  # best first
    first, second = (float(line.split()[0]) for line in lines)
    assert first > second
    assert main(["score", "--checkpoint", str(run / "best.pt"), good,
                 "we ate the xqzwork salad"]) == 0
    captured = capsys.readouterr()
    assert any(line.endswith("xqzwork salad  [1 unknown]") for line in captured.out.splitlines())
    assert "never saw" in captured.err and captured.err.count("\n") == 1


def test_score_refuses_non_lm_checkpoints(qa_checkpoint, capsys):
    assert main(["score", "--checkpoint", str(qa_checkpoint), "hello"]) == 2
    assert f"{qa_checkpoint}: a 'qa' checkpoint, not a 'lm' one" in capsys.readouterr().err
    assert load(qa_checkpoint).task == "qa"
