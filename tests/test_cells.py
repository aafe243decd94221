"""Cells against torch.nn's cells: same weights, same outputs and gradients (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from textrnn.cells import GRUCell, LSTMCell, RNNCell

TOL = 1e-10
CASES = [
    (RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}),
    (RNNCell, nn.RNNCell, {"nonlinearity": "relu"}),
    (GRUCell, nn.GRUCell, {}),
    (LSTMCell, nn.LSTMCell, {}),
]


def _pair(ours_cls, torch_cls, kw, bias=True, input_size=5, hidden_size=7):
    torch.manual_seed(0)
    ref = torch_cls(input_size, hidden_size, bias=bias, **kw).double()
    ours = ours_cls(input_size, hidden_size, bias=bias, **kw).double()
    ours.load_state_dict(ref.state_dict())  # same names and shapes: loads directly
    return ours, ref


def _grads(module, *tensors):
    return [p.grad for p in module.parameters()] + [t.grad for t in tensors]


@pytest.mark.parametrize("ours_cls,torch_cls,kw", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch_outputs_and_gradients(ours_cls, torch_cls, kw, bias):
    ours, ref = _pair(ours_cls, torch_cls, kw, bias=bias)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    h = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    h2 = h.detach().clone().requires_grad_()
    if ours_cls is LSTMCell:
        c = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
        c2 = c.detach().clone().requires_grad_()
        out, ref_out = ours(x, (h, c)), ref(x2, (h2, c2))
        for a, b in zip(out, ref_out, strict=True):
            assert (a - b).abs().max() <= TOL
        (out[0].sin().sum() + out[1].cos().sum()).backward()
        (ref_out[0].sin().sum() + ref_out[1].cos().sum()).backward()
        ours_g, ref_g = _grads(ours, x, h, c), _grads(ref, x2, h2, c2)
    else:
        out, ref_out = ours(x, h), ref(x2, h2)
        assert (out - ref_out).abs().max() <= TOL
        out.sin().sum().backward()
        ref_out.sin().sum().backward()
        ours_g, ref_g = _grads(ours, x, h), _grads(ref, x2, h2)
    assert len(ours_g) == len(ref_g)
    for a, b in zip(ours_g, ref_g, strict=True):
        assert a is not None and (a - b).abs().max() <= TOL


@pytest.mark.parametrize("ours_cls,torch_cls,kw", CASES)
def test_state_dict_loads_both_ways(ours_cls, torch_cls, kw):
    ours, ref = _pair(ours_cls, torch_cls, kw)
    assert list(ours.state_dict()) == list(ref.state_dict())
    fresh = torch_cls(5, 7, **kw).double()
    fresh.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, dtype=torch.float64)
    a, b = ours(x), fresh(x)
    a, b = (a, b) if isinstance(a, torch.Tensor) else (a[0], b[0])
    assert (a - b).abs().max() <= TOL


@pytest.mark.parametrize("ours_cls,torch_cls,kw", CASES)
def test_gradcheck(ours_cls, torch_cls, kw):
    ours, _ = _pair(ours_cls, torch_cls, kw, input_size=3, hidden_size=4)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    if ours_cls is LSTMCell:
        c = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x, h, c: ours(x, (h, c)), (x, h, c))
    else:
        assert torch.autograd.gradcheck(lambda x, h: ours(x, h), (x, h))


def test_missing_state_starts_at_zero():
    ours, _ = _pair(LSTMCell, nn.LSTMCell, {})
    x = torch.randn(2, 5, dtype=torch.float64)
    zeros = torch.zeros(2, 7, dtype=torch.float64)
    assert torch.equal(ours(x)[0], ours(x, (zeros, zeros))[0])


def test_bad_input_shape_is_a_clear_error():
    cell = GRUCell(5, 7)
    with pytest.raises(ValueError, match=r"\(batch, 5\)"):
        cell(torch.randn(2, 4))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="sigmoid")
