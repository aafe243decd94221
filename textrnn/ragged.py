"""Ragged batches on the fused kernels: exact, without packing, fast on CPU.

A layer of :mod:`textrnn.layers` with ``impl="fused"`` hands a batch with ragged
lengths to :func:`run_fused`. It avoids ``pack_padded_sequence`` (whose
step-by-step kernel runs 2.6-4.5x slower on CPU) and stays exact. The layer's
``ragged`` setting picks how (``RAGGED_PATHS``; "auto" chooses by device and
cell, :func:`ragged_path`):

- "rows" (CPU, GRU and RNN): only the real steps run, as a packed batch, in the
  time loop of :mod:`textrnn.live_rows` with its backward derived by hand. On
  CPU torch's GRU/RNN "fused" kernel is itself an ATen step loop, so this beats
  it; ``RowsPlan`` maps the padded batch to packed rows and back, the backward
  direction reading each sequence last step first.
- "segments" (CPU, LSTM, whose oneDNN kernel is hard to beat step by step): the
  batch sorted longest first runs in time segments, each over the sequences
  still going (:func:`segment_bounds` chooses the cuts).
- "one-call" (GPU): one padded call per layer and direction, as drawn here:

    forward direction      x:  a b c _ _        padding only ever follows real steps,
                                                 so real outputs are exact
    backward direction     x': c b a _ _        each sequence's valid part reversed,
                                                 run forwards, outputs reversed back

- outputs past the end are zeroed;
- the final ``h`` is gathered from the output at step ``length - 1``;
- the LSTM's final ``c`` is not in the output, so padded steps freeze it: the
  input gets one extra column, 1 at padded steps, whose weight adds ``+BIG``
  to the forget gate and ``-BIG`` to the input gate. Then ``f = σ(z + BIG)``
  is exactly 1.0 and ``i`` exactly 0.0 in floating point, so
  ``c_t = 1·c_{t-1} + 0·g = c_{t-1}`` bit for bit, and the gradient through
  those steps is exactly that of the frozen cell (σ' = 0 there).

From a zero start state (the usual case), the same column lets one
*bidirectional* fused call serve both directions, although its backward
direction meets the padding first: it stays exactly at zero there. For the
LSTM, ``c`` stays 0 and ``h = o ⊙ tanh(0) = 0``; for the GRU, ``+BIG`` on the
update gate gives ``z = 1`` and ``h' = (1 - z) ⊙ n + z ⊙ 0 = 0``. (From a
non-zero state the GRU kernel's ``n + z ⊙ (h - n)`` drifts by an ulp per
step, so a given state takes one call per direction.) The plain RNN has no
gate to freeze and always runs its directions separately.

The functions here read the layer's settings (``mode``, sizes, ``bias``,
``ragged``, ``segment_overhead``) and are handed its kernel (``fused_call``) and
its loop over layers and directions, so this module never imports the layers.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from textrnn.live_rows import gru_rows, packed_rows, rnn_rows

# The forget/input gate offset at padded steps. σ(±BIG + z) saturates to exactly
# 1.0/0.0 in float16/32/64 whenever |z| < BIG - 800, i.e. for any sane model;
# 1e4 is also representable in float16 and bfloat16 (autocast on GPU).
BIG = 1.0e4

# What one more time segment of a ragged CPU run costs (kernel call, slicing, padding,
# and their backward), in multiply-adds of the recurrence. Measured with
# bench/layers.py on 2 cores: segments pay off for hidden sizes of ~256 and up, while
# a small plain RNN stays one call.
SEGMENT_COST = 3.0e7

RAGGED_PATHS = ("auto", "rows", "segments", "one-call")
FREEZABLE = ("LSTM", "GRU")  # modes with a gate that can hold the state at padded steps


def check_ragged(ragged: str, is_lstm: bool) -> None:
    """Raise ValueError unless ``ragged`` is one of RAGGED_PATHS that this cell has."""
    if ragged not in RAGGED_PATHS:
        raise ValueError(f"ragged must be one of {RAGGED_PATHS}, got {ragged!r}")
    if ragged == "rows" and is_lstm:
        raise ValueError("ragged='rows' is for the GRU and RNN; the LSTM runs 'segments'")


def ragged_path(layer, x: Tensor) -> str:
    """Which of RAGGED_PATHS runs a ragged batch on ``x``'s device."""
    check_ragged(layer.ragged, layer.is_lstm)
    if layer.ragged != "auto":
        return layer.ragged
    if x.device.type != "cpu":
        return "one-call"
    return "segments" if layer.is_lstm else "rows"


def run_fused(layer, x: Tensor, lengths: Tensor, state, zero_start: bool, fused_call,
              per_direction):
    """Run a ragged batch through ``fused_call`` by the layer's path (:func:`ragged_path`).

    ``layer`` is read for its settings only; ``fused_call(x, hx, weights, num_layers,
    dropout, bidirectional) -> (output, state)`` is its kernel and ``per_direction(x,
    lengths, state, run_direction, run_both=None, reverses=False)`` its loop over layers
    and directions. ``x`` (B, T, I), ``lengths`` (B,) long (not all T), ``state`` and
    the result are those of the layer's ``forward``; ``zero_start``: the state is zeros
    by default, which lets one bidirectional call serve both directions.
    """
    path = ragged_path(layer, x)
    if path == "rows":
        plan = RowsPlan.of(lengths, x.shape[1])
        run = functools.partial(_rows_direction, layer, plan=plan)
        return per_direction(x, lengths, state, run, reverses=True)
    padded = functools.partial(_fused_padded, layer, fused_call)
    if path == "segments":
        bounds = _layer_segment_bounds(layer, lengths)
        if len(bounds) > 2 or layer.ragged == "segments":
            run = functools.partial(_fused_segments, layer, padded, bounds=bounds)
            return _run_sorted(layer, x, lengths, state,
                               functools.partial(per_direction, run_direction=run))
        # One segment is one padded call: the path below does that, with
        # both directions in one call where it can.
    joint = layer.bidirectional and zero_start and layer.mode in FREEZABLE
    return per_direction(
        x, lengths, state, functools.partial(_fused_direction, layer, padded),
        functools.partial(_fused_both_directions, layer, padded) if joint else None,
    )


def _pad_column(layer, x: Tensor) -> Tensor | None:
    """The weight column that freezes the state at padded steps, or None (plain RNN).

    Returns:
        (G*H, 1): ``-BIG`` on the LSTM's input gate and ``+BIG`` on its forget
        gate (rows i, f, g, o); ``+BIG`` on the GRU's update gate (rows r, z, n).
    """
    H = layer.hidden_size
    if layer.mode == "LSTM":
        col = x.new_zeros(4 * H, 1)
        col[:H] = -BIG
        col[H : 2 * H] = BIG
        return col
    if layer.mode == "GRU":
        col = x.new_zeros(3 * H, 1)
        col[H : 2 * H] = BIG
        return col
    return None


def _fused_padded(layer, fused_call, x, valid, hx, weights, bidirectional, freeze):
    """The fused kernel over a padded batch; ``freeze`` adds the pad column (see above)."""
    pad = (~valid).to(x.dtype).unsqueeze(-1)  # (B, T, 1): 1 at padded steps
    if freeze:
        col = _pad_column(layer, x)
        x = torch.cat([x, pad], -1)  # (B, T, I + 1)
        per_dir = len(weights) // (2 if bidirectional else 1)
        weights = [torch.cat([w, col], 1) if i % per_dir == 0 else w
                   for i, w in enumerate(weights)]
    with warnings.catch_warnings():
        # cuDNN notes that per-layer weights are not one flat buffer; expected here.
        warnings.filterwarnings("ignore", message="RNN module weights are not part")
        out, state = fused_call(x, hx, weights, 1, 0.0, bidirectional)
    return out * (1 - pad), state  # outputs zero past the end


def _fused_direction(layer, padded, x, valid, lengths, s0, weights):
    """One direction of one layer with the fused kernel on a padded, ragged batch."""
    hx = (s0[0].unsqueeze(0), s0[1].unsqueeze(0)) if layer.is_lstm else s0.unsqueeze(0)
    out, state = padded(x, valid, hx, weights, False, freeze=layer.is_lstm)
    h_last = _last_valid(out, lengths, s0[0] if layer.is_lstm else s0)  # (B, H)
    return out, ((h_last, state[1][0]) if layer.is_lstm else h_last)


def _fused_both_directions(layer, padded, x, valid, lengths, s0, weights):
    """Both directions of one layer in one bidirectional fused call, from a zero state.

    Returns:
        output (B, T, 2H) and the final state, each part (2, B, H).
    """
    out, state = padded(x, valid, s0, weights, True, freeze=True)
    h = state[0] if layer.is_lstm else state  # backward direction exact
    h0_fwd = s0[0][0] if layer.is_lstm else s0[0]
    h_fwd = _last_valid(out[..., : layer.hidden_size], lengths, h0_fwd)  # (B, H)
    h = torch.stack([h_fwd, h[1]])  # (2, B, H)
    return out, ((h, state[1]) if layer.is_lstm else h)  # LSTM: forward c frozen


def _layer_segment_bounds(layer, lengths: Tensor) -> list[int]:
    """:func:`segment_bounds` for this layer's price of a segment."""
    overhead = layer.segment_overhead
    if overhead is None:
        gates = {"LSTM": 4, "GRU": 3}.get(layer.mode, 1)
        overhead = SEGMENT_COST / (gates * layer.hidden_size * (layer.input_size
                                                                + layer.hidden_size))
    return segment_bounds(sorted(lengths.tolist(), reverse=True), overhead)


def _run_sorted(layer, x: Tensor, lengths: Tensor, state, run):
    """Ragged batch on CPU: sort by length, then ``run(x, lengths, state)`` on it.

    Sorting (longest first) makes the sequences still running at any step a
    prefix of the batch, which :func:`_fused_segments` relies on; the result is
    put back in the caller's order.
    """
    order = torch.argsort(lengths, descending=True, stable=True)  # (B,)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    lengths = lengths[order]
    sort = lambda s: s.index_select(1, order)  # noqa: E731  (L*D, B, H)
    state = (sort(state[0]), sort(state[1])) if layer.is_lstm else sort(state)
    out, state = run(x.index_select(0, order), lengths, state)
    unsort = lambda s: s.index_select(1, inverse)  # noqa: E731
    state = (unsort(state[0]), unsort(state[1])) if layer.is_lstm else unsort(state)
    return out.index_select(0, inverse), state


def _fused_segments(layer, padded, x, valid, lengths, s0, weights, bounds):
    """One direction of one layer over time segments, only running sequences in each.

    ``x`` is sorted by ``lengths``, longest first. Segment ``[a, b)`` runs the
    ``n`` sequences longer than ``a`` (a prefix) from the state they reached at
    ``a``. A sequence that ends inside a segment runs on over padding there; its
    outputs are zeroed and its final ``h`` is read from its last real output.
    Only the LSTM's ``c``, which is not an output, needs the freezing pad column
    (module docstring) in such a segment.

    Args:
        x: (B, T, I); valid: (B, T) bool; lengths: (B,) long, non-increasing;
        s0: ``h0`` (B, H) or ``(h0, c0)``; bounds: segment edges from
        :func:`segment_bounds`, ``0 = b_0 < ... < b_K = lengths[0]``.

    Returns:
        output (B, T, H), zero past each end, and the final ``h`` or ``(h, c)``.
    """
    B, T = x.shape[0], x.shape[1]
    is_lstm = layer.is_lstm
    h0 = s0[0] if is_lstm else s0  # (B, H)
    h, c = h0, (s0[1] if is_lstm else None)  # running state of the live prefix
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        n = int((lengths > a).sum())  # live sequences: a prefix, as sorted
        live_valid = valid[:n, a:b]  # (n, b - a)
        hx = (h[:n].unsqueeze(0), c[:n].unsqueeze(0)) if is_lstm else h[:n].unsqueeze(0)
        freeze = is_lstm and not bool(live_valid[:, -1].all())
        out, s = padded(x[:n, a:b], live_valid, hx, weights, False, freeze)
        pieces.append(F.pad(out, (0, 0, 0, 0, 0, B - n)))  # (B, b - a, H)
        h = torch.cat([(s[0] if is_lstm else s)[0], h[n:]])  # (B, H)
        if is_lstm:
            c = torch.cat([s[1][0], c[n:]])
    if bounds[-1] < T:
        pieces.append(x.new_zeros(B, T - bounds[-1], layer.hidden_size))
    out = torch.cat(pieces, 1) if pieces else x.new_zeros(B, T, layer.hidden_size)
    h_last = _last_valid(out, lengths, h0)  # (B, H)
    return out, ((h_last, c) if is_lstm else h_last)


def _rows_direction(layer, x, valid, lengths, s0, weights, reverse, plan):
    """One direction of one layer over the real steps only (GRU and RNN on CPU).

    The real steps are gathered time-major, longest sequence first (a packed
    batch, see :mod:`textrnn.live_rows`), projected with one matmul, run through
    the recurrence over the live rows, and scattered back into a zero-padded
    output. The backward direction gathers each sequence's steps last to first
    and scatters them back the same way, so nothing is reversed separately.

    Args:
        x: (B, T, I); s0: ``h0`` (B, H); reverse: the backward direction;
        plan: :class:`RowsPlan` of ``lengths`` (``valid`` is not needed).

    Returns:
        output (B, T, H), zero past each end, and the final ``h`` (B, H).
    """
    B, T = x.shape[0], x.shape[1]
    if not plan.live:
        return x.new_zeros(B, T, layer.hidden_size), s0
    rows = plan.backward_rows if reverse else plan.forward_rows  # (N,) into (B*T)
    x_rows = x.reshape(B * T, -1).index_select(0, rows)  # (N, I)
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if layer.bias else (None, None)
    gi = F.linear(x_rows, w_ih, b_ih)  # (N, G*H)
    h0 = s0.index_select(0, plan.seqs)  # (B_live, H), longest first
    if layer.mode == "GRU":
        h = gru_rows(gi, h0, w_hh, b_hh, plan.live)  # (N, H)
    else:
        h = rnn_rows(gi, h0, w_hh, b_hh, plan.live, layer.nonlinearity)
    out = x.new_zeros(B * T, layer.hidden_size).index_copy(0, rows, h).view(B, T, -1)
    # Either direction ends at the last packed row of each sequence.
    h_last = s0.index_copy(0, plan.seqs, h.index_select(0, plan.last_rows))  # (B, H)
    return out, h_last


def segment_bounds(lengths: list[int], overhead: float) -> list[int]:
    """Where to cut time so that a ragged batch costs little more than its real steps.

    With the batch sorted longest first, segment ``[a, b)`` costs about
    ``n(a) * (b - a) + overhead`` row-steps, where ``n(a)`` sequences are longer
    than ``a`` and ``overhead`` prices one more kernel call. Cuts are only worth
    making where a sequence ends, so a dynamic programme over the distinct
    lengths finds the cheapest cuts (O(P^2) for P distinct lengths, P <= B).

    Args:
        lengths: non-increasing, each >= 0.
        overhead: cost of one extra segment, in row-steps.

    Returns:
        ``[0, b_1, ..., lengths[0]]``; just ``[0]`` when every length is 0.

    >>> segment_bounds([10, 10, 2, 2], overhead=1.0)   # 4*2 + 2*8 + 2 calls
    [0, 2, 10]
    >>> segment_bounds([10, 10, 2, 2], overhead=100.0)  # one padded call is cheaper
    [0, 10]
    >>> segment_bounds([0, 0], overhead=1.0)
    [0]
    """
    points = sorted({0, *(n for n in lengths if n > 0)})  # candidate cuts
    if len(points) == 1:
        return [0]
    live = [sum(1 for n in lengths if n > p) for p in points]  # n(p)
    best = [0.0] + [float("inf")] * (len(points) - 1)  # cheapest cost to reach points[j]
    prev = [0] * len(points)
    for j in range(1, len(points)):
        for i in range(j):
            cost = best[i] + live[i] * (points[j] - points[i]) + overhead
            if cost < best[j]:
                best[j], prev[j] = cost, i
    cuts, j = [], len(points) - 1
    while j > 0:
        cuts.append(points[j])
        j = prev[j]
    return [0, *reversed(cuts)]


class RowsPlan(NamedTuple):
    """Where the real steps of a ragged batch go in a packed, time-major batch.

    Attributes:
        live: lengths of the non-empty sequences, longest first (list of int).
        seqs: (B_live,) long, which sequence of the batch each of them is.
        forward_rows: (N,) long, for each packed row (step ``t`` of sequence
            ``seqs[j]``, time-major) its index ``seq * T + t`` into x viewed as (B*T, I).
        backward_rows: the same with each sequence's steps last to first.
        last_rows: (B_live,) long, each sequence's last packed row.
    """

    live: list[int]
    seqs: Tensor
    forward_rows: Tensor
    backward_rows: Tensor
    last_rows: Tensor

    @classmethod
    def of(cls, lengths: Tensor, seq_len: int | None = None) -> RowsPlan:
        """The plan for (B,) ``lengths`` of sequences padded to ``seq_len`` (default: max).

        >>> RowsPlan.of(torch.tensor([1, 0, 3]), 3).forward_rows.tolist()
        [6, 0, 7, 8]
        >>> RowsPlan.of(torch.tensor([1, 0, 3]), 3).backward_rows.tolist()
        [8, 0, 7, 6]
        """
        T = int(lengths.max()) if seq_len is None else seq_len
        order = torch.argsort(lengths, descending=True, stable=True)  # (B,)
        live = [n for n in lengths[order].tolist() if n > 0]
        seqs = order[: len(live)]
        steps = torch.arange(T, device=lengths.device)
        lens = lengths[seqs]  # (B_live,)
        t, j = (steps[:, None] < lens[None, :]).nonzero(as_tuple=True)  # time-major
        seq = seqs[j]
        batch_sizes, offsets = packed_rows(live) if live else ([], [])
        last = torch.tensor([offsets[n - 1] for n in live], dtype=torch.long,
                            device=lengths.device)
        return cls(live, seqs, seq * T + t, seq * T + lens[j] - 1 - t,
                   last + torch.arange(len(live), device=lengths.device))


def _last_valid(out: Tensor, lengths: Tensor, h0: Tensor) -> Tensor:
    """``out[b, lengths[b] - 1]``, or ``h0[b]`` for an empty sequence. (B, T, H) -> (B, H)."""
    idx = (lengths - 1).clamp(min=0)  # (B,)
    h = out[torch.arange(out.shape[0], device=out.device), idx]  # (B, H)
    return torch.where((lengths > 0).unsqueeze(1), h, h0)
