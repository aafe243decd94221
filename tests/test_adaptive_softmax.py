"""The language model's adaptive softmax (``--softmax adaptive``): an exact distribution,
a loss that agrees with it, and the commands that read it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from textrnn import models
from textrnn.checkpoint import load
from textrnn.cli import main
from textrnn.models.lm import LanguageModel, LMConfig, default_cutoffs


def _model(**overrides) -> LanguageModel:
    torch.manual_seed(0)
    config = {"vocab_size": 40, "level": "word", "embedding_size": 8, "hidden_size": 16,
              "num_layers": 1, "dropout": 0.0, "softmax": "adaptive", "cutoffs": (5, 20)}
    return models.build("lm", LMConfig(**{**config, **overrides}), {}).double()


def test_scores_are_a_distribution_and_the_loss_is_their_cross_entropy():
    model = _model()
    x = torch.randint(0, 40, (3, 7))
    y = torch.randint(0, 40, (3, 7))
    # Every target cluster is hit, so the tails' projections are exercised too.
    y[0, :3] = torch.tensor([1, 10, 30])
    logp, _ = model(x)  # (B, T, V)
    assert logp.shape == (3, 7, 40)
    assert torch.allclose(logp.logsumexp(-1), torch.zeros(3, 7, dtype=torch.double), atol=1e-12)
    loss = model.loss({"x": x, "y": y, "reset": True})
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected = F.nll_loss(model(x)[0].flatten(0, 1), y.flatten())
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)
    for got, want in zip(grads, torch.autograd.grad(expected, list(model.parameters())),
                         strict=True):
        assert torch.allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"tie_weights": True, "hidden_size": 8}, "full softmax"),
     ({"cutoffs": (20, 5)}, "increasing"),
     ({"cutoffs": (5, 39)}, "between 1 and 38"),
     ({"softmax": "sampled"}, "'full' or 'adaptive'"),
     ({"cutoffs": (5, 10, 20)}, "too small for 3")],
)
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        _model(**overrides)


def test_train_score_and_sample_with_an_adaptive_softmax(tmp_path, capsys):
    corpus = ["we ate the apple and pear salad", "she wore a pair of shoes",
              "the pear tree is old", "a pair of socks", "he made an apple and pear salad"]
    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(corpus * 40) + "\n")
    run = tmp_path / "run"
    assert main(["train", "lm", "--data", str(data), "--out", str(run), "--level", "word",
                 "--softmax", "adaptive", "--hidden-size", "32", "--embedding-size", "16",
                 "--num-layers", "1", "--dropout", "0", "--bptt", "16", "--batch-size", "8",
                 "--lr", "0.01", "--max-steps", "150", "--threads", "1", "--seed", "0"]) == 0
    bundle = load(run / "best.pt")
    assert bundle.model.config.softmax == "adaptive"
    assert bundle.model.config.cutoffs == default_cutoffs(len(bundle.vocabs["tokens"])) == (4, 12)
    assert bundle.metrics["val_ppl"] < 3.0  # the corpus repeats: nearly every word is certain
    capsys.readouterr()
    good, bad = "we ate the apple and pear salad", "we ate the apple and pair salad"
    assert main(["score", "--checkpoint", str(run / "best.pt"), bad, good]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(good) and lines[1].endswith(bad)
    argv = ["sample", "--checkpoint", str(run / "best.pt"), "--prompt", "she wore",
            "--seed", "3", "--max-tokens", "10"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first and "pair" in first
