"""textrnn.vanishing and ``textrnn demo vanishing``: the gradients are autograd's through
torch's own kernels, the known case decays as it must, and the demo writes its files."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from textrnn import vanishing
from textrnn.cli import build_parser, main
from textrnn.cli import lm as lm_cli
from textrnn.vanishing import CellResult, RecallNet, VanishingConfig

SMALL = VanishingConfig(hidden_size=6, embedding_size=4, distances=[3, 6], eval_examples=64,
                        grad_examples=5, batch_size=8)


def _batch(config: VanishingConfig, distance: int = 6):
    return vanishing.recall_batch(config, 5, distance, torch.Generator().manual_seed(3))


def test_recall_batch_asks_for_the_first_token() -> None:
    x, y = _batch(SMALL, distance=4)
    assert x.shape == (5, 6) and torch.equal(x[:, 0], y)
    assert (x[:, -1] == SMALL.vocab_size - 1).all()  # the query mark
    assert (x[:, 1:-1] < SMALL.vocab_size - 1).all()  # distractors: symbols and fillers


@pytest.mark.parametrize("cell", vanishing.CELLS)
def test_state_gradients_are_autograd_through_the_fused_layer(cell) -> None:
    """∂L/∂h_t from the cells loop equals the gradient of the layer's own (fused) forward
    over the rest of the sequence, started from (h_t, c_t), with respect to that start."""
    torch.manual_seed(0)
    model = RecallNet(cell, SMALL).double()
    x, y = _batch(SMALL)
    got = vanishing.state_gradients(model, x, y, with_cell=True)
    emb = model.embedding(x).detach()  # (B, T, E)
    for t in (0, 3, x.shape[1] - 2):
        h0 = got.h[t][None].clone().requires_grad_(True)  # (1, B, H)
        state = h0
        if cell == "lstm":
            c0 = got.c[t][None].clone().requires_grad_(True)
            state = (h0, c0)
        out, _ = model.rnn(emb[:, t + 1:], state=state)  # fused kernel
        loss = F.cross_entropy(model.head(out[:, -1]), y, reduction="sum")
        want = torch.autograd.grad(loss, [h0] + ([c0] if cell == "lstm" else []))
        torch.testing.assert_close(got.grads[t], want[0][0], atol=1e-10, rtol=1e-8)
        if cell == "lstm":  # ∂L/∂c_t also counts the path through h_t = o ⊙ tanh(c_t)
            H = SMALL.hidden_size
            pre = F.linear(emb[:, t], model.rnn.weight_ih_l0, model.rnn.bias_ih_l0) + F.linear(
                got.h[t - 1] if t else torch.zeros_like(got.h[0]), model.rnn.weight_hh_l0,
                model.rnn.bias_hh_l0)
            o = torch.sigmoid(pre[:, 3 * H:])
            through_h = want[0][0] * o * (1 - torch.tanh(got.c[t]) ** 2)
            torch.testing.assert_close(got.cell_grads[t], want[1][0] + through_h,
                                       atol=1e-10, rtol=1e-8)


def test_a_scaled_rotation_decays_by_its_scale_per_step() -> None:
    """With no input and W_hh = a·Q (Q orthogonal) the state stays 0, tanh' = 1, and each
    step back multiplies the gradient by a·Q: the ratio at k is exactly a^k."""
    a = 0.8
    torch.manual_seed(0)
    model = RecallNet("rnn", SMALL)
    q, _ = torch.linalg.qr(torch.randn(6, 6))
    with torch.no_grad():
        model.rnn.weight_ih_l0.zero_()
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
        model.rnn.weight_hh_l0.copy_(a * q)
    ratios = vanishing.gradient_ratios(model, SMALL, seed=0)["h"]
    assert len(ratios) == max(SMALL.distances) + 2
    k = torch.arange(len(ratios), dtype=torch.float64)
    torch.testing.assert_close(torch.tensor(ratios, dtype=torch.float64), a ** k,
                               atol=0, rtol=1e-5)  # Q is orthogonal to float32 precision


def test_at_init_the_plain_rnn_gradient_at_50_is_below_a_thousandth_of_the_lstms() -> None:
    """The issue's target, with the demo's own sizes and initialisation."""
    config = VanishingConfig()
    ratios = {}
    for cell in ("rnn", "lstm"):
        torch.manual_seed(config.seed)
        ratios[cell] = vanishing.gradient_ratios(RecallNet(cell, config), config, 0)["h"][50]
    assert ratios["rnn"] < 1e-3 * ratios["lstm"]


def _result(accuracy: dict[int, float]) -> CellResult:
    grads = {"h": [1.0, 0.5, 0.25, 1e-3], "c": [2.0, 1.0, 0.9, 0.8]}
    return CellResult(accuracy, grads, grads, dict.fromkeys(accuracy, 10), 1.0,
                      dict.fromkeys(accuracy, 0.1))


def test_the_reading_is_computed_from_the_numbers() -> None:
    config = VanishingConfig(distances=[2, 3], eval_examples=512)
    text = vanishing.reading({"rnn": _result({2: 1.0, 3: 0.13}),
                              "lstm": _result({2: 1.0, 3: 0.97})}, config)
    assert ("plain RNN stays at 95% or more up to T = 2 (100% there) and falls to chance "
            "by T = 3 (13%)") in text
    assert "At T = 3 the plain RNN guesses while the LSTM is right 97%" in text
    text = vanishing.reading({"rnn": _result({2: 1.0, 3: 0.5}),
                              "lstm": _result({2: 1.0, 3: 0.97})}, config)
    assert "No distance has the plain RNN at chance" in text


def test_demo_keeps_shakespeare_as_its_default() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo", "--out", "x"]).which == "shakespeare"
    assert lm_cli.DEMOS["shakespeare"] is lm_cli.demo_shakespeare
    assert parser.parse_args(["demo", "vanishing", "--minutes", "0.1"]).which == "vanishing"


def test_demo_vanishing_writes_its_pictures_and_numbers(tmp_path, capsys) -> None:
    out = tmp_path / "vanishing"
    assert main(["demo", "vanishing", "--out", str(out), "--max-steps", "2",
                 "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'accuracy.png'}, {out / 'gradients.png'}" in printed
    assert "Recalling a token after T distractors" in printed
    for name in ("accuracy.png", "gradients.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    numbers = json.loads((out / "vanishing.json").read_text())
    assert set(numbers) == {"config", "chance", "cells", "reading"}
    assert list(numbers["cells"]) == ["rnn", "gru", "lstm"]
    lstm = numbers["cells"]["lstm"]
    assert set(lstm) == {"accuracy", "grad_init", "grad_trained", "steps", "seconds",
                         "final_loss"}
    assert list(lstm["accuracy"]) == ["5", "10", "20", "50", "100"]
    assert set(lstm["steps"].values()) == {2}
    assert len(lstm["grad_init"]["h"]) == 102 and lstm["grad_init"]["h"][0] == 1.0
    assert "c" in lstm["grad_trained"] and "c" not in numbers["cells"]["rnn"]["grad_init"]
    assert not list(out.glob(".*.tmp"))
