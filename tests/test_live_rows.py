"""The hand-written backward of the ragged GRU/RNN rows path, checked by gradcheck.

The layer-level parity with torch.nn (outputs, states and gradients, 1-3 layers,
both directions, ragged lengths) runs in tests/test_layers.py, where ``impl="fused"``
takes this path for the GRU and RNN on CPU.
"""

from __future__ import annotations

import pytest
import torch

from textrnn.live_rows import _GRURows, _RNNRows, gru_rows, packed_rows

LENGTHS = [6, 6, 4, 2, 1]
H = 3


def _inputs(gates, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    N, B = sum(LENGTHS), len(LENGTHS)
    make = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()  # noqa: E731
    return (make(N, gates * H), make(B, H), make(gates * H, H),
            make(gates * H) if bias else None)


@pytest.mark.parametrize("bias", [True, False])
def test_gru_rows_gradcheck(bias):
    batch_sizes, offsets = packed_rows(LENGTHS)
    inputs = _inputs(3, bias)
    fn = lambda gi, h0, w, b: _GRURows.apply(gi, h0, w, b, batch_sizes, offsets)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
def test_rnn_rows_gradcheck(nonlinearity, bias):
    batch_sizes, offsets = packed_rows(LENGTHS)
    inputs = _inputs(1, bias, seed=1)
    fn = lambda gi, h0, w, b: _RNNRows.apply(  # noqa: E731
        gi, h0, w, b, batch_sizes, offsets, nonlinearity)
    assert torch.autograd.gradcheck(fn, inputs)


def test_rows_follow_the_recurrence_step_by_step():
    """Row r of step t is the GRU cell applied to row r of step t-1 (or h0)."""
    gi, h0, w, b = _inputs(3)
    with torch.no_grad():
        h = gru_rows(gi, h0, w, b, LENGTHS)
        batch_sizes, offsets = packed_rows(LENGTHS)
        h_prev = h0
        for bs, row in zip(batch_sizes, offsets, strict=True):
            gh = h_prev[:bs] @ w.t() + b
            r = torch.sigmoid(gi[row:row + bs, :H] + gh[:, :H])
            z = torch.sigmoid(gi[row:row + bs, H:2 * H] + gh[:, H:2 * H])
            n = torch.tanh(gi[row:row + bs, 2 * H:] + r * gh[:, 2 * H:])
            want = (1 - z) * n + z * h_prev[:bs]
            assert torch.allclose(h[row:row + bs], want, atol=1e-12)
            h_prev = want
