"""textrnn.neurons and ``textrnn inspect neurons``: correlations, the best unit, the forget
gate inside and outside quotes, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from textrnn import checkpoint, gates, neurons
from textrnn.cli import main
from textrnn.models import build
from textrnn.models.lm import LMConfig
from textrnn.vocab import Vocab


def test_correlations_are_pearsons() -> None:
    torch.manual_seed(0)
    h = torch.randn(50, 4)
    h[:, 3] = 0.5  # a unit that never moves
    y = h[:, 1] * 2 + 0.3 * torch.randn(50)
    r = neurons.correlations(h, y)
    want = [np.corrcoef(h[:, j].numpy(), y.numpy())[0, 1] for j in range(3)]
    np.testing.assert_allclose(r[:3].numpy(), want, atol=1e-6)
    assert r[3] == 0 and int(r.abs().argmax()) == 1


@pytest.fixture
def char_lm(tmp_path):
    """An untrained 2-layer char LM whose vocabulary holds the built-in passage."""
    def save(cell: str = "lstm", level: str = "char"):
        tokens = list(neurons.PASSAGE) if level == "char" else neurons.PASSAGE.split()
        vocab = Vocab.from_tokens([tokens])
        torch.manual_seed(0)
        model = build("lm", LMConfig(len(vocab), level=level, cell=cell, embedding_size=8,
                                     hidden_size=12, num_layers=2, dropout=0.0),
                      {"tokens": vocab})
        path = tmp_path / f"{cell}-{level}.pt"
        checkpoint.save(path, model=model)
        return path
    return save


def test_find_picks_the_best_correlated_unit(char_lm) -> None:
    bundle = checkpoint.load(char_lm(), task="lm")
    found = neurons.find(bundle)
    _, traces = gates.read(bundle, neurons.PASSAGE)
    quotes = torch.tensor(neurons.inside_quotes(neurons.PASSAGE))
    best = max(((t.title, j, float(neurons.correlations(t.h, quotes)[j]))
                for t in traces for j in range(12)), key=lambda c: abs(c[2]))
    tracked = found.properties[0]
    assert tracked.name == "inside quotes"
    assert (tracked.layer, tracked.best_unit) == best[:2]
    assert tracked.correlation == pytest.approx(best[2], abs=1e-6)
    layer = next(t for t in traces if t.title == tracked.layer)
    assert tracked.activation == pytest.approx(layer.h[:, tracked.best_unit].tolist())
    f = layer.gates["f"].mean(1)
    inside = quotes > 0
    assert tracked.forget_inside == pytest.approx(float(f[inside].mean()), abs=1e-6)
    assert tracked.forget_outside == pytest.approx(float(f[~inside].mean()), abs=1e-6)
    assert set(found.forget_by_layer) == {"rnn layer 0", "rnn layer 1"}


def test_cli_draws_the_passage_and_prints_the_numbers(char_lm, tmp_path, capsys) -> None:
    out = tmp_path / "neurons.png"
    argv = ["inspect", "neurons", "--checkpoint", str(char_lm()), "--out", str(out),
            "--json", "--device", "cpu", "--show-chars", "200"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"wrote {out}" in captured.err and "mean forget gate inside" in captured.err
    numbers = json.loads(captured.out)
    assert [p["name"] for p in numbers["properties"]] == ["inside quotes", "line position"]
    assert len(numbers["properties"][1]["activation"]) == len(neurons.PASSAGE)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_cli_reads_a_text_file_and_a_gru(char_lm, tmp_path, capsys) -> None:
    text = tmp_path / "t.txt"
    text.write_text('He said "no" and left.\nShe said "yes".\n', encoding="utf-8")
    out = tmp_path / "n.png"
    assert main(["inspect", "neurons", "--checkpoint", str(char_lm("gru")), "--text",
                 str(text), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "inside quotes: unit" in printed and "forget gate" not in printed  # a GRU has none
    assert out.exists()


def test_cli_refuses_a_word_model(char_lm, tmp_path, capsys) -> None:
    assert main(["inspect", "neurons", "--checkpoint", str(char_lm(level="word")),
                 "--out", str(tmp_path / "n.png")]) == 2
    assert "character language models" in capsys.readouterr().err
