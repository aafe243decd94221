"""Ragged GRU and plain RNN on CPU: a time loop over the live rows, backward by hand.

A ragged batch sorted longest first is a *packed* batch: at step ``t`` only the
first ``bs_t`` sequences are still going, and their rows of step ``t`` sit
together (time-major, as in ``torch.nn.utils.rnn.PackedSequence``):

    lengths 3, 2, 1   ->   rows  a0 b0 c0 | a1 b1 | a2        batch_sizes 3, 2, 1

On CPU torch's GRU and RNN kernels are ATen step loops that record every small op
for autograd, and its packed variant also projects the input step by step, so a
packed run costs 1.2-1.6x the padded one although it does 62% of the work
(bench/layers.py). Here the work is only the real steps and the per-step price is
a handful of ops:

- the input projection ``gi = W_ih x + b_ih`` is one matmul over the packed rows
  (outside, under autograd);
- the recurrence runs in :class:`torch.autograd.Function` s whose backward is
  derived below, so no graph is recorded step by step;
- everything in the backward pass that does not depend on the carried gradient
  is computed once for all rows, which leaves per step one elementwise product
  for the gates' gradients and one matmul for ``dh_{t-1}``; the weight
  gradients are two matmuls over all rows at the end.

Both functions take the packed input projection and give the packed outputs:

    gi: (N, G*H) with N = sum(batch_sizes)   h0: (B, H) with B = batch_sizes[0]
    returns h: (N, H), row r = the new state of that (sequence, step)

``tests/test_live_rows.py`` checks them against ``torch.nn`` (float64, outputs
and gradients) and with ``gradcheck``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def packed_rows(lengths: list[int]) -> tuple[list[int], list[int]]:
    """Batch size and first row of each step of a packed batch.

    Args:
        lengths: non-increasing, each >= 1.

    Returns:
        ``batch_sizes`` and ``offsets``, one per step ``t < lengths[0]``.

    >>> packed_rows([3, 2, 1])
    ([3, 2, 1], [0, 3, 5])
    """
    batch_sizes, offsets, row = [], [], 0
    live = len(lengths)
    for t in range(lengths[0]):
        while lengths[live - 1] <= t:
            live -= 1
        batch_sizes.append(live)
        offsets.append(row)
        row += live
    return batch_sizes, offsets


def _previous_rows(h: Tensor, h0: Tensor, batch_sizes: list[int], offsets: list[int]) -> Tensor:
    """``h_{t-1}`` for every packed row: (N, H), from outputs ``h`` (N, H) and ``h0`` (B, H).

    Row ``j`` of step ``t >= 1`` follows row ``j`` of step ``t - 1``; one gather
    (rather than a cat of T slices) collects them.
    """
    B = batch_sizes[0]
    sizes = torch.tensor(batch_sizes)
    step = torch.repeat_interleave(torch.arange(len(batch_sizes)), sizes)  # (N,)
    starts = torch.tensor(offsets)
    rank = torch.arange(h.shape[0]) - starts[step]  # (N,): j
    prev = (starts[(step - 1).clamp(min=0)] + rank + B)[B:]  # rows of step t-1, after h0
    return torch.cat([h0[:B], h]).index_select(0, torch.cat([torch.arange(B), prev]).to(h.device))


class _GRURows(torch.autograd.Function):
    """The GRU recurrence over packed rows (gate order r, z, n; reset after the matmul).

    Forward, per step, for the ``bs`` live rows::

        gh = W_hh h_prev + b_hh                        (bs, 3H)
        r  = σ(gi_r + gh_r),  z = σ(gi_z + gh_z)
        n  = tanh(gi_n + r ⊙ gh_n)
        h  = n + z ⊙ (h_prev - n)                      = (1 - z) ⊙ n + z ⊙ h_prev

    Backward, with ``dh`` the gradient reaching ``h`` (from the output and from the
    next step)::

        dgi_n = dh ⊙ (1 - z) ⊙ (1 - n²)                 =: dh ⊙ a
        dgh_n = dh ⊙ a ⊙ r
        dgi_r = dgh_r = dh ⊙ a ⊙ gh_n ⊙ r (1 - r)
        dgi_z = dgh_z = dh ⊙ (h_prev - n) ⊙ z (1 - z)
        dh_prev = dh ⊙ z + dgh W_hh

    Every factor after ``dh`` is known once the forward pass is done, so ``dgh`` is
    ``dh`` (repeated three times) times one precomputed (N, 3H) tensor ``C``.
    """

    @staticmethod
    def forward(ctx, gi, h0, weight_hh, bias_hh, batch_sizes, offsets):
        N, H = gi.shape[0], h0.shape[1]
        # g starts as [gi_r + b_hr, gi_z + b_hz, b_hn] for all rows at once; one in-place
        # addmm per step then makes it the gates' pre-activations and gh_n = W_hn h + b_hn.
        g = gi.new_empty(N, 3 * H)  # (N, 3H)
        if bias_hh is None:
            g[:, : 2 * H] = gi[:, : 2 * H]
            g[:, 2 * H :] = 0
        else:
            torch.add(gi[:, : 2 * H], bias_hh[: 2 * H], out=g[:, : 2 * H])
            g[:, 2 * H :] = bias_hh[2 * H :]
        rz = gi.new_empty(N, 2 * H)  # r | z
        n = gi.new_empty(N, H)
        h = gi.new_empty(N, H)  # outputs, packed
        w_t = weight_hh.t().contiguous()  # (H, 3H); a plain layout multiplies faster
        # Per-step views made by one split each, not by slicing in the loop: at small
        # sizes the loop's cost is mostly the number of tensor ops it makes.
        steps = zip(batch_sizes, gi[:, 2 * H :].split(batch_sizes), g.split(batch_sizes),
                    rz.split(batch_sizes), n.split(batch_sizes), h.split(batch_sizes),
                    strict=True)
        h_prev = h0  # (B, H)
        for bs, gi_n, g_t, rz_t, n_t, h_t in steps:
            h_prev = h_prev[:bs]  # (bs, H): the live rows
            g_t.addmm_(h_prev, w_t)  # (bs, 3H)
            torch.sigmoid(g_t[:, : 2 * H], out=rz_t)  # r | z
            torch.addcmul(gi_n, rz_t[:, :H], g_t[:, 2 * H :], out=n_t).tanh_()  # n
            torch.lerp(n_t, h_prev, rz_t[:, H:], out=h_t)  # n + z (h_prev - n)
            h_prev = h_t
        ctx.save_for_backward(h, h0, weight_hh, g[:, 2 * H :], rz, n)
        ctx.batch_sizes, ctx.offsets, ctx.has_bias = batch_sizes, offsets, bias_hh is not None
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_out):
        h, h0, weight_hh, gh_n, rz, n = ctx.saved_tensors
        batch_sizes, offsets = ctx.batch_sizes, ctx.offsets
        N, H = h.shape
        r, z = rz[:, :H], rz[:, H:]
        h_prev_all = _previous_rows(h, h0, batch_sizes, offsets)  # (N, H)
        a = (1 - z) * (1 - n * n)  # (N, H)
        # Per row, the factors that turn dh into [dgh_r, dgh_z, dgh_n]: one product per
        # step then gives all three gates' gradients.
        C = h.new_empty(N, 3, H)
        torch.mul(a, r, out=C[:, 2])  # a r
        torch.mul(C[:, 2], gh_n, out=C[:, 0]).mul_(1 - r)  # a gh_n r (1 - r)
        torch.sub(h_prev_all, n, out=C[:, 1]).mul_(z * (1 - z))  # (h_prev - n) z (1 - z)
        dgh = torch.empty_like(C)  # (N, 3, H): gradient of gh
        dh_total = torch.empty_like(h)  # (N, H): all the gradient reaching each h
        dh_carry = h.new_zeros(h0.shape)  # (B, H): gradient into h_t from step t+1
        steps = zip(batch_sizes, dh_out.split(batch_sizes), dh_total.split(batch_sizes),
                    C.split(batch_sizes), dgh.split(batch_sizes), z.split(batch_sizes),
                    strict=True)
        for bs, dh_out_t, dh_t, C_t, dgh_t, z_t in reversed(list(steps)):
            carry = dh_carry[:bs]  # (bs, H)
            torch.add(dh_out_t, carry, out=dh_t)  # dh
            torch.mul(C_t, dh_t.unsqueeze(1), out=dgh_t)  # (bs, 3, H)
            torch.mul(dh_t, z_t, out=carry)
            carry.addmm_(dgh_t.view(bs, 3 * H), weight_hh)  # dh_prev = dh z + dgh W_hh
        dgh = dgh.view(N, 3 * H)
        dW = dgh.t().mm(h_prev_all)  # (3H, H)
        db = dgh.sum(0) if ctx.has_bias else None
        dgi = dgh  # the same for r and z; the candidate's input part skips r:
        torch.mul(dh_total, a, out=dgi[:, 2 * H :])
        return dgi, dh_carry, dW, db, None, None


class _RNNRows(torch.autograd.Function):
    """The Elman recurrence over packed rows: ``h = f(gi + W_hh h_prev + b_hh)``.

    Backward: ``da = dh ⊙ f'(a)`` with ``f' = 1 - h²`` (tanh) or ``[h > 0]`` (relu),
    ``dh_prev = da W_hh``; ``f'`` is precomputed for all rows.
    """

    @staticmethod
    def forward(ctx, gi, h0, weight_hh, bias_hh, batch_sizes, offsets, nonlinearity):
        # h starts as gi + b_hh (added once, not per step); each step adds W_hh h_prev in place.
        h = gi.clone() if bias_hh is None else gi + bias_hh  # (N, H)
        w_t = weight_hh.t().contiguous()  # (H, H); a plain layout multiplies faster
        activate = torch.Tensor.tanh_ if nonlinearity == "tanh" else torch.Tensor.relu_
        h_prev = h0  # (B, H)
        for bs, h_t in zip(batch_sizes, h.split(batch_sizes), strict=True):
            h_prev = h_prev[:bs]  # (bs, H): the live rows
            activate(h_t.addmm_(h_prev, w_t))
            h_prev = h_t
        ctx.save_for_backward(h, h0, weight_hh)
        ctx.batch_sizes, ctx.offsets, ctx.has_bias = batch_sizes, offsets, bias_hh is not None
        ctx.nonlinearity = nonlinearity
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, dh_out):
        h, h0, weight_hh = ctx.saved_tensors
        batch_sizes, offsets = ctx.batch_sizes, ctx.offsets
        slope = 1 - h * h if ctx.nonlinearity == "tanh" else (h > 0).to(h.dtype)  # f'(a)
        da = torch.empty_like(h)  # (N, H): gradient of the pre-activation
        dh_carry = h.new_zeros(h0.shape)  # (B, H): gradient into h_t from step t+1
        steps = zip(batch_sizes, dh_out.split(batch_sizes), da.split(batch_sizes),
                    slope.split(batch_sizes), strict=True)
        for bs, dh_out_t, da_t, slope_t in reversed(list(steps)):
            carry = dh_carry[:bs]  # (bs, H)
            torch.add(dh_out_t, carry, out=da_t).mul_(slope_t)  # da = dh f'(a)
            torch.mm(da_t, weight_hh, out=carry)  # dh_prev = da W_hh
        dW = da.t().mm(_previous_rows(h, h0, batch_sizes, offsets))  # (H, H)
        db = da.sum(0) if ctx.has_bias else None
        return da, dh_carry, dW, db, None, None, None


def gru_rows(gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
             lengths: list[int]) -> Tensor:
    """GRU over a packed batch. gi: (N, 3H); h0: (B, H); lengths non-increasing, >= 1.

    Returns:
        h: (N, H), packed like ``gi``.
    """
    batch_sizes, offsets = packed_rows(lengths)
    return _GRURows.apply(gi, h0, weight_hh, bias_hh, batch_sizes, offsets)


def rnn_rows(gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
             lengths: list[int], nonlinearity: str) -> Tensor:
    """Elman RNN over a packed batch. gi: (N, H); h0: (B, H); lengths as for gru_rows.

    Returns:
        h: (N, H), packed like ``gi``.
    """
    batch_sizes, offsets = packed_rows(lengths)
    return _RNNRows.apply(gi, h0, weight_hh, bias_hh, batch_sizes, offsets, nonlinearity)
