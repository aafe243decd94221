"""linear_cross_entropy against F.cross_entropy(F.linear(...)) in float64: loss and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from textrnn.losses import linear_cross_entropy


def _inputs(n: int, bias: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 7, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(13, 7, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(13, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    y = torch.randint(0, 13, (n,), generator=g)
    return h, weight, b, y


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n, block_rows", [(1, 4), (10, 4), (12, 4), (12, 100)])
def test_matches_the_plain_route_with_its_gradients(n, block_rows, bias):
    h, weight, b, y = _inputs(n, bias)
    params = [t for t in (h, weight, b) if t is not None]
    expected = F.cross_entropy(F.linear(h, weight, b), y)
    want = torch.autograd.grad(expected * 3.0, params)  # a non-unit upstream gradient
    loss = linear_cross_entropy(h, weight, b, y, block_rows=block_rows)
    got = torch.autograd.grad(loss * 3.0, params)
    assert abs(loss.item() - expected.item()) <= 1e-12
    for a, e in zip(got, want, strict=True):
        assert (a - e).abs().max().item() <= 1e-12


def test_tied_weight_gets_both_gradients():
    h, weight, b, y = _inputs(9, True)
    ids = torch.randint(0, 13, (9,))
    # The same matrix is the input embedding and the output layer.
    expected = F.cross_entropy(F.linear(h + F.embedding(ids, weight), weight, b), y)
    (want,) = torch.autograd.grad(expected, [weight])
    loss = linear_cross_entropy(h + F.embedding(ids, weight), weight, b, y, 4)
    (got,) = torch.autograd.grad(loss, [weight])
    assert (got - want).abs().max().item() <= 1e-12


def test_without_gradients_it_is_the_plain_loss():
    h, weight, b, y = _inputs(5, True)
    with torch.no_grad():
        loss = linear_cross_entropy(h, weight, b, y)
    assert loss.grad_fn is None
    assert loss.item() == pytest.approx(F.cross_entropy(F.linear(h, weight, b), y).item())
