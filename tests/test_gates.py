"""textrnn.gates and ``textrnn inspect gates``: the recomputed gates are the layer's own.

The layer (fused kernels) never shows its gates, so the checks are that what the
trace recomputes reproduces what the layer does show, to 1e-6: its output at every
step, its final state, and the state equations the gates must satisfy.
"""

from __future__ import annotations

import json

import pytest
import torch

from textrnn import checkpoint, gates
from textrnn.cli import main
from textrnn.layers import GRU, LSTM
from textrnn.models import build
from textrnn.vocab import Vocab

TOL = dict(atol=1e-6, rtol=0)


def _layer(cls, bidirectional: bool, num_layers: int = 2):
    torch.manual_seed(0)
    return cls(5, 7, num_layers=num_layers, bidirectional=bidirectional).eval()


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
def test_trace_reproduces_the_fused_layer(cls, bidirectional) -> None:
    layer = _layer(cls, bidirectional)
    x = torch.randn(1, 9, 5)
    D = 2 if bidirectional else 1
    shape = (2 * D, 1, 7)
    state = (torch.randn(shape), torch.randn(shape)) if cls is LSTM else torch.randn(shape)
    with torch.no_grad():
        out, final = layer(x, state=state)  # (1, T, D*H)
    row_state = tuple(s[:, 0] for s in state) if cls is LSTM else state[:, 0]
    traces = gates.trace_layer(layer, x[0], row_state)
    assert [(t.layer, t.direction) for t in traces] == [(i // D, i % D) for i in range(2 * D)]
    top = torch.cat([t.h for t in traces[-D:]], -1)  # (T, D*H) the last layer's output
    torch.testing.assert_close(top, out[0], **TOL)
    h_n = final[0] if cls is LSTM else final  # (L*D, 1, H)
    for k, t in enumerate(traces):
        last = -1 if t.direction == 0 else 0  # the backward direction ends at token 0
        torch.testing.assert_close(t.h[last], h_n[k, 0], **TOL)
        if cls is LSTM:
            torch.testing.assert_close(t.gates["c"][last], final[1][k, 0], **TOL)


def _previous(t: gates.GateTrace, values: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """values at the step before each token, in the direction's reading order."""
    if t.direction == 0:
        return torch.cat([initial[None], values[:-1]])
    return torch.cat([values[1:], initial[None]])


@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
def test_gates_satisfy_the_state_equations(cls) -> None:
    """c_t = f ⊙ c_{t-1} + i ⊙ g and h_t = o ⊙ tanh(c_t); h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}:
    the gates are the ones that made the state."""
    layer = _layer(cls, bidirectional=True)
    traces = gates.trace_layer(layer, torch.randn(8, 5))
    zero = torch.zeros(7)
    for t in traces:
        g = t.gates
        if cls is LSTM:
            assert set(g) == {"i", "f", "g", "o", "c"}
            c_prev = _previous(t, g["c"], zero)
            torch.testing.assert_close(g["f"] * c_prev + g["i"] * g["g"], g["c"], **TOL)
            torch.testing.assert_close(g["o"] * torch.tanh(g["c"]), t.h, **TOL)
            assert all(((g[k] > 0) & (g[k] < 1)).all() for k in "ifo")
        else:
            assert set(g) == {"r", "z", "n"}
            h_prev = _previous(t, t.h, zero)
            torch.testing.assert_close((1 - g["z"]) * g["n"] + g["z"] * h_prev, t.h, **TOL)


def test_gates_match_torch_lstm_cell_weights() -> None:
    """The forget gate recomputed by hand from torch.nn.LSTM's weights (rows i, f, g, o)."""
    torch.manual_seed(1)
    layer = torch.nn.LSTM(4, 3, batch_first=True).eval()
    x = torch.randn(6, 4)
    trace = gates.trace_layer(layer, x)[0]
    H = 3
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
    b = layer.bias_ih_l0 + layer.bias_hh_l0
    h_prev = torch.cat([torch.zeros(1, H), trace.h[:-1]])  # (T, H)
    with torch.no_grad():
        f = torch.sigmoid(x @ w_ih[H:2 * H].T + h_prev @ w_hh[H:2 * H].T + b[H:2 * H])
    torch.testing.assert_close(trace.gates["f"], f, **TOL)


def test_a_plain_rnn_layer_has_no_gates() -> None:
    from textrnn.layers import RNN

    with pytest.raises(ValueError, match="no gates"):
        gates.trace_layer(RNN(3, 4), torch.randn(2, 3))


def test_top_units_are_the_ones_that_move() -> None:
    h = torch.zeros(5, 4)
    h[:, 2] = torch.tensor([0.0, 1, 0, 1, 0])  # moves most
    h[:, 0] = torch.tensor([0.0, 0.1, 0, 0.1, 0])
    trace = gates.GateTrace("rnn", 0, 0, "gru", {}, h)
    assert trace.top_units(2) == [2, 0]


@pytest.fixture
def lm_checkpoint(make_tiny_lm, tmp_path):
    def save(cell: str = "lstm"):
        model, _, _, _ = make_tiny_lm(dropout=0.0, cell=cell)
        path = tmp_path / f"{cell}.pt"
        checkpoint.save(path, model=model)
        return path
    return save


def test_read_an_lm_checkpoint(lm_checkpoint) -> None:
    bundle = checkpoint.load(lm_checkpoint(), task="lm")
    tokens, traces = gates.read(bundle, "Shall I compare")
    assert tokens == list("Shall I compare")
    ids = torch.tensor([bundle.vocabs["tokens"].encode(tokens)])
    with torch.no_grad():
        out, _ = bundle.model.rnn(bundle.model.embedding(ids))  # (1, T, H)
    assert [t.title for t in traces] == ["rnn layer 0", "rnn layer 1"]
    torch.testing.assert_close(traces[-1].h, out[0], **TOL)


def test_read_a_bidirectional_classifier_and_a_seq2seq_encoder(tmp_path) -> None:
    from textrnn.models.classifier import ClassifierConfig
    from textrnn.models.seq2seq import Seq2SeqConfig

    words = Vocab.from_tokens([["a", "fine", "film", "dull"]])
    labels = Vocab.from_tokens([["pos", "neg"]], specials=())
    torch.manual_seed(0)
    model = build("classifier", ClassifierConfig(len(words), len(labels), cell="lstm",
                                                 hidden_size=6, embedding_size=4),
                  {"words": words, "labels": labels})
    checkpoint.save(tmp_path / "c.pt", model=model)
    tokens, traces = gates.read(checkpoint.load(tmp_path / "c.pt"), "A fine, dull film")
    assert tokens == ["a", "fine", ",", "dull", "film"]
    assert [t.title for t in traces] == ["net.rnn layer 0 forward", "net.rnn layer 0 backward"]

    src = Vocab.from_tokens([["le", "chat"]])
    model = build("seq2seq", Seq2SeqConfig(len(src), len(src), cell="gru", hidden_size=6,
                                           embedding_size=4), {"source": src, "target": src})
    checkpoint.save(tmp_path / "s.pt", model=model)
    tokens, traces = gates.read(checkpoint.load(tmp_path / "s.pt"), "le chat")
    assert tokens == ["le", "chat"] and traces[0].cell == "gru"
    assert set(traces[1].gates) == {"r", "z", "n"}


def test_cli_writes_the_picture_and_the_numbers(lm_checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "pics" / "gates.png"
    argv = ["inspect", "gates", "--checkpoint", str(lm_checkpoint("gru")), "Shall I",
            "--out", str(out), "--units", "5", "--json", "--device", "cpu"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"wrote {out}" in captured.err
    numbers = json.loads(captured.out)
    assert numbers["picture"] == str(out) and numbers["tokens"] == list("Shall I")
    first = numbers["layers"][0]
    assert first["cell"] == "gru" and len(first["top_units"]) == 5
    assert len(first["gates"]["z"]) == 7 and len(first["gates"]["z"][0]) == 32
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob(".*.tmp"))  # the temp file was renamed away


def test_cli_says_a_plain_rnn_has_no_gates(lm_checkpoint, tmp_path, capsys) -> None:
    argv = ["inspect", "gates", "--checkpoint", str(lm_checkpoint("rnn")), "Shall I",
            "--out", str(tmp_path / "g.png")]
    assert main(argv) == 2
    assert "plain RNN" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
