"""A softmax output layer and its cross-entropy in one pass, for large vocabularies on CPU.

A word-level language model spends most of a training step in its output layer:
``z = h Wᵀ + b`` is (N, V), N = batch x window tokens, V ~ 10,000 words, and the
plain route writes z, reads it back for ``log_softmax``, writes the log-probabilities,
and does the same again backwards: several passes over a tensor of N x V floats
(45 MB at N = 1,120) that is far larger than any CPU cache.

:func:`linear_cross_entropy` computes the same loss and the same gradients a block
of rows at a time, so each block's z stays in cache. For a block of rows r::

    z_r = h_r Wᵀ + b                          (R, V)
    loss += Σ_r logsumexp(z_r) - z_r[y_r]
    g_r = (softmax(z_r) - onehot(y_r)) / N     (R, V), ∂loss/∂z_r
    ∂h_r = g_r W        ∂W += g_rᵀ h_r        ∂b += Σ_r g_r

The gradients are computed in the forward pass (the loss is a scalar, so the
backward pass only scales them by the incoming gradient): the same three matrix
products as the plain route, and the (N, V) tensors never exist. bench/lm.py
measures the gain; tests check it against ``F.cross_entropy`` in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BLOCK_ROWS = 256  # rows per block: 256 x 10,000 floats = 10 MB, the fastest on our CPU


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``h Wᵀ + b`` against ``y``; gradients made in ``forward``."""

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor | None, y: Tensor,
                block_rows: int) -> Tensor:
        n = h.shape[0]
        grad_h = torch.empty_like(h)  # (N, H)
        grad_w = torch.zeros_like(weight)  # (V, H)
        grad_b = torch.zeros_like(bias) if bias is not None else None  # (V,)
        total = h.new_zeros(())
        for start in range(0, n, block_rows):
            h_r, y_r = h[start:start + block_rows], y[start:start + block_rows]  # (R, H), (R,)
            z = h_r @ weight.t() if bias is None else torch.addmm(bias, h_r, weight.t())  # (R, V)
            lse = torch.logsumexp(z, dim=1)  # (R,)
            total += (lse - z.gather(1, y_r.unsqueeze(1)).squeeze(1)).sum()
            g = z.sub_(lse.unsqueeze(1)).exp_()  # softmax, in place: z is not needed again
            g[torch.arange(len(y_r), device=g.device), y_r] -= 1.0  # softmax - onehot
            g.div_(n)  # (R, V): the mean over all N rows
            torch.mm(g, weight, out=grad_h[start:start + block_rows])
            grad_w.addmm_(g.t(), h_r)
            if grad_b is not None:
                grad_b.add_(g.sum(0))
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return total / n

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        scaled_b = grad_b * grad_loss if grad_b is not None else None
        return grad_h * grad_loss, grad_w * grad_loss, scaled_b, None, None


def linear_cross_entropy(h: Tensor, weight: Tensor, bias: Tensor | None, y: Tensor,
                         block_rows: int = BLOCK_ROWS) -> Tensor:
    """``F.cross_entropy(F.linear(h, weight, bias), y)``, a block of rows at a time.

    Args:
        h: (N, H) float, the inputs of the output layer.
        weight: (V, H), the output layer's weight (tied to an embedding or not).
        bias: (V,) or None.
        y: (N,) long targets in [0, V); no ignored positions.
        block_rows: rows per block (a speed setting; the result does not depend on it
            beyond float rounding).

    Returns:
        The mean loss, a scalar. Where no gradient is wanted (``torch.no_grad``,
        or inputs that need none), or on a GPU (where the plain route is fast and
        mixed precision wants it), it is computed the plain way.
    """
    wants_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    if not wants_grad or h.device.type != "cpu":
        return F.cross_entropy(F.linear(h, weight, bias), y)
    return _LinearCrossEntropy.apply(h, weight, bias, y, block_rows)
