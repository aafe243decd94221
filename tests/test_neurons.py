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
    layer_f = found.forget_by_layer[tracked.layer]
    own = layer.gates["f"][:, tracked.best_unit]
    assert tracked.unit_forget_inside == pytest.approx(float(own[inside].mean()), abs=1e-6)
    assert tracked.unit_forget_outside == pytest.approx(float(own[~inside].mean()), abs=1e-6)
    assert layer_f.inside == pytest.approx(tracked.forget_inside, abs=1e-9)


# A text whose quoted stretches hold only "a" and the rest only "b", so that a forget gate
# that reads the character alone is high inside quotes and low outside.
QUOTED = 'bb"aaa"bbb"aa"b'


@pytest.fixture
def quote_lstm(tmp_path):
    """A 1-layer char LSTM of 3 units with set weights (no recurrent ones): unit 0's
    forget gate is σ(4) on "a", σ(-4) on "b", unit 1's σ(±1), unit 2's σ(±0.1); units
    0 and 1 write nothing (g = 0, so h = 0), unit 2 writes +1 on "a", -1 on "b"."""
    vocab = Vocab.from_tokens([list(QUOTED)])
    model = build("lm", LMConfig(len(vocab), cell="lstm", embedding_size=3, hidden_size=3,
                                 num_layers=1, dropout=0.0), {"tokens": vocab})
    quote, a, b = (vocab.stoi[ch] for ch in '"ab')
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embedding.weight[[quote, a, b], [0, 1, 2]] = 1.0  # one-hot: ", a, b
        w, bias = model.rnn.weight_ih_l0, model.rnn.bias_ih_l0  # rows i, f, g, o
        bias[0:3] = 10.0  # i ≈ 1
        bias[9:12] = 10.0  # o ≈ 1
        for unit, k in enumerate((4.0, 1.0, 0.1)):
            w[3 + unit, 1], w[3 + unit, 2] = k, -k  # f = σ(k) on a, σ(-k) on b, ½ on "
        w[8, 1], w[8, 2] = 5.0, -5.0  # unit 2: g = tanh(±5)
    path = tmp_path / "quotes.pt"
    checkpoint.save(path, model=model)
    return path


def _mean_f(k: float) -> tuple[float, float]:
    """Mean of σ(k on a, -k on b, 0 on a quote) inside and outside QUOTED's quotes:
    inside are 2 opening quotes and 5 a's, outside 6 b's and 2 closing quotes."""
    s = torch.sigmoid
    return ((2 * 0.5 + 5 * float(s(torch.tensor(k)))) / 7,
            (2 * 0.5 + 6 * float(s(torch.tensor(-k)))) / 8)


def test_find_reports_the_units_whose_forget_gate_differs(quote_lstm) -> None:
    found = neurons.find(checkpoint.load(quote_lstm, task="lm"), QUOTED)
    layer = found.forget_by_layer["rnn layer 0"]
    want = [_mean_f(k) for k in (4.0, 1.0, 0.1)]
    assert [u.unit for u in layer.top] == [0, 1, 2]
    for u, (inside, outside) in zip(layer.top, want, strict=True):
        assert (u.inside, u.outside) == pytest.approx((inside, outside), abs=1e-6)
    assert layer.top[0].inside > 0.8 and layer.top[0].outside < 0.2
    assert layer.inside == pytest.approx(sum(i for i, _ in want) / 3, abs=1e-6)
    assert layer.outside == pytest.approx(sum(o for _, o in want) / 3, abs=1e-6)
    assert (layer.units, layer.differing) == (3, 2)  # unit 2's 0.52 / 0.48 is under 0.1
    tracked = found.properties[0]
    assert (tracked.name, tracked.best_unit, tracked.layer) == ("inside quotes", 2,
                                                                "rnn layer 0")
    assert tracked.correlation > 0.5
    assert (tracked.unit_forget_inside, tracked.unit_forget_outside) == pytest.approx(
        want[2], abs=1e-6)
    assert found.properties[1].unit_forget_inside is None  # line position: no binary split


def test_cli_prints_and_draws_the_differing_units(quote_lstm, tmp_path, capsys) -> None:
    text = tmp_path / "q.txt"
    text.write_text(QUOTED, encoding="utf-8")
    out = tmp_path / "q.png"
    assert main(["inspect", "neurons", "--checkpoint", str(quote_lstm), "--text", str(text),
                 "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    inside, outside = _mean_f(4.0)
    assert (f"2 of 3 units differ by more than 0.1; most: unit 0 {inside:.3f} / {outside:.3f}"
            in captured.err)
    assert "unit 2's own: inside" in captured.err
    numbers = json.loads(captured.out)
    layer = numbers["forget_by_layer"]["rnn layer 0"]
    assert [u["unit"] for u in layer["top_units"]] == [0, 1, 2]
    assert layer["top_units"][0]["inside_quotes"] == pytest.approx(inside, abs=1e-6)
    assert layer["differing"] == 2 and layer["units"] == 3
    tracked = numbers["properties"][0]
    assert tracked["unit"] == 2
    assert tracked["unit_forget_outside"] == pytest.approx(_mean_f(0.1)[1], abs=1e-6)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [name for name, _ in neurons._forget_rows(neurons.find(
        checkpoint.load(quote_lstm, task="lm"), QUOTED))] == [
        "rnn layer 0: all 3 units", "unit 2 (tracks quotes)", "unit 0", "unit 1"]


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
