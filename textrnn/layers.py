"""Recurrent layers: the time loop, ragged lengths, stacking and both directions.

``RNN``, ``GRU`` and ``LSTM`` take ``(input_size, hidden_size, num_layers=1,
bidirectional=False, dropout=0.0, impl="fused")``, are batch-first, and run
``forward(x, lengths=None, state=None) -> (output, state)``:

- ``x``: (B, T, I); ``lengths``: (B,) int, each in [0, T], or None (all T);
- ``output``: (B, T, D*H), zero past each sequence's end;
- ``state``: ``h`` (L*D, B, H) for RNN/GRU, ``(h, c)`` for LSTM, in torch's
  layout (index ``layer * D + direction``), taken at each sequence's own last
  step in the forward direction and at its first step in the backward one.

The parameters are those of ``torch.nn.LSTM/GRU/RNN`` (the classes subclass
``nn.RNNBase``), so a torch state_dict loads either way, and ``.cuda()``
flattens the weights for cuDNN as torch does.

Two implementations give the same numbers for the same weights:

``impl="fused"`` (default) runs PyTorch's fused kernels (cuDNN on GPU, oneDNN
or ATen on CPU). With equal lengths it is one call, exactly ``torch.nn.LSTM``.
With ragged lengths it avoids ``pack_padded_sequence`` (whose step-by-step
kernel runs 2.6-4.5x slower on CPU) and stays exact. ``layer.ragged`` picks how
(``RAGGED_PATHS``; "auto" chooses by device and cell):

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

``impl="cells"`` runs the cells of :mod:`textrnn.cells` in a Python loop over
``x.unbind(1)`` (indexing ``x[:, t]`` would make the backward pass quadratic
in T), with the input projection hoisted out of the loop. It is the readable
reference path, slower; ``bench/layers.py`` says by how much.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.cells import gru_recurrence, lstm_recurrence, rnn_recurrence
from textrnn.live_rows import gru_rows, packed_rows, rnn_rows

State = Tensor | tuple[Tensor, Tensor]

# The forget/input gate offset at padded steps. σ(±BIG + z) saturates to exactly
# 1.0/0.0 in float16/32/64 whenever |z| < BIG - 800, i.e. for any sane model;
# 1e4 is also representable in float16 and bfloat16 (autocast on GPU).
BIG = 1.0e4

# What one more time segment of a ragged CPU run costs (kernel call, slicing, padding,
# and their backward), in multiply-adds of the recurrence. Measured with
# bench/layers.py on 2 cores: segments pay off for hidden sizes of ~256 and up, while
# a small plain RNN stays one call.
SEGMENT_COST = 3.0e7

IMPLS = ("fused", "cells")
RAGGED_PATHS = ("auto", "rows", "segments", "one-call")
FREEZABLE = ("LSTM", "GRU")  # modes with a gate that can hold the state at padded steps
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Emit a UserWarning the first time ``message`` is seen in this process."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, UserWarning, stacklevel=3)


def detach_state(state: State | None) -> State | None:
    """Cut the autograd graph behind a carried state (truncated BPTT).

    Between two windows of a long stream the values flow on but the gradient
    stops, so memory and time per window stay constant.
    """
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def reverse_index(lengths: Tensor, seq_len: int) -> Tensor:
    """Index that reverses each sequence's valid part and leaves padding in place.

    ``idx[b, t] = lengths[b] - 1 - t`` for ``t < lengths[b]``, else ``t``. It is
    its own inverse, so the same gather maps outputs back.

    Args:
        lengths: (B,) long. seq_len: T.

    Returns:
        (B, T) long.
    """
    t = torch.arange(seq_len, device=lengths.device)  # (T,)
    rev = lengths[:, None] - 1 - t[None, :]  # (B, T)
    return torch.where(rev >= 0, rev, t.expand_as(rev))


def _time_gather(x: Tensor, idx: Tensor) -> Tensor:
    """``x[b, idx[b, t]]`` for (B, T, F) ``x`` and (B, T) ``idx``."""
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class _Recurrent(nn.RNNBase):
    """Shared time loop, masking and direction handling; subclasses name the cell."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        impl: str = "fused",
        bias: bool = True,
    ) -> None:
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        super().__init__(
            mode,
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=True,
            dropout=dropout,
            bidirectional=bidirectional,
        )
        self.impl = impl
        # How a ragged batch runs with impl="fused" (see RAGGED_PATHS): "auto" picks
        # "rows" on CPU for the GRU and RNN, "segments" on CPU for the LSTM, and
        # "one-call" on GPU, where each kernel call costs a launch.
        self.ragged = "auto"
        # The price of one more segment in row-steps (one sequence, one step), see
        # segment_bounds; None: SEGMENT_COST over the multiply-adds of a row-step.
        self.segment_overhead: float | None = None

    # --- what each cell type supplies -------------------------------------------------
    is_lstm = False

    def _fused_call(self, x: Tensor, hx: State, weights: list[Tensor], num_layers: int,
                    dropout: float, bidirectional: bool):
        raise NotImplementedError

    def _step(self, gi_t: Tensor, state: State, weight_hh: Tensor, bias_hh: Tensor | None):
        raise NotImplementedError

    # --- public -------------------------------------------------------------------------
    def forward(
        self, x: Tensor, lengths: Tensor | None = None, state: State | None = None
    ) -> tuple[Tensor, State]:
        """Run the layer over a batch.

        Args:
            x: (B, T, I) float.
            lengths: (B,) integer tensor of valid lengths in [0, T], or None.
            state: initial ``h`` (L*D, B, H), or ``(h, c)`` for the LSTM; zeros if None.

        Returns:
            output: (B, T, D*H), zero past each sequence's end.
            state: final ``h`` or ``(h, c)``, each (L*D, B, H).
        """
        lengths = self._check(x, lengths, state)
        zero_start = state is None
        if state is None:
            h0 = x.new_zeros(self.num_layers * self.num_directions, x.shape[0], self.hidden_size)
            state = (h0, h0.clone()) if self.is_lstm else h0
        if self.impl == "fused":
            try:
                if lengths is None:
                    return self._fused_call(
                        x, state, self._flat_weights, self.num_layers, self.dropout,
                        self.bidirectional,
                    )
                path = self._ragged_path(x)
                if path == "rows":
                    plan = RowsPlan.of(lengths, x.shape[1])
                    run = functools.partial(self._rows_direction, plan=plan)
                    return self._run_per_direction(x, lengths, state, run, reverses=True)
                if path == "segments":
                    bounds = self._segment_bounds(lengths)
                    if len(bounds) > 2 or self.ragged == "segments":
                        run = functools.partial(self._fused_segments, bounds=bounds)
                        return self._run_sorted(x, lengths, state, run)
                    # One segment is one padded call: the path below does that, with
                    # both directions in one call where it can.
                joint = self.bidirectional and zero_start and self.mode in FREEZABLE
                return self._run_per_direction(
                    x, lengths, state, self._fused_direction,
                    self._fused_both_directions if joint else None,
                )
            except (RuntimeError, NotImplementedError) as e:
                if "not implemented" not in str(e).lower() and "not supported" not in str(e):
                    raise
                warn_once(
                    f"{type(self).__name__}: the fused kernel does not support this "
                    f"configuration ({x.dtype} on {x.device.type}: {str(e).splitlines()[0]}); "
                    "running the cells loop instead, which is slower"
                )
        return self._run_per_direction(x, lengths, state, self._cells_direction)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def extra_repr(self) -> str:
        return super().extra_repr() + f", impl={self.impl!r}"

    # --- internals ----------------------------------------------------------------------
    def _ragged_path(self, x: Tensor) -> str:
        """Which of RAGGED_PATHS runs a ragged batch on ``x``'s device."""
        if self.ragged not in RAGGED_PATHS:
            raise ValueError(f"ragged must be one of {RAGGED_PATHS}, got {self.ragged!r}")
        if self.ragged == "rows" and self.is_lstm:
            raise ValueError("ragged='rows' is for the GRU and RNN; the LSTM runs 'segments'")
        if self.ragged != "auto":
            return self.ragged
        if x.device.type != "cpu":
            return "one-call"
        return "segments" if self.is_lstm else "rows"

    def _check(self, x: Tensor, lengths: Tensor | None, state: State | None) -> Tensor | None:
        name = type(self).__name__
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(
                f"{name} expects x of shape (batch, seq_len, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        B, T = x.shape[0], x.shape[1]
        if state is not None:
            parts = state if isinstance(state, tuple) else (state,)
            want = (self.num_layers * self.num_directions, B, self.hidden_size)
            n_parts = 2 if self.is_lstm else 1
            if len(parts) != n_parts or any(tuple(p.shape) != want for p in parts):
                kind = "(h, c)" if self.is_lstm else "h"
                got = [tuple(p.shape) for p in parts]
                raise ValueError(f"{name} expects state {kind} with shape {want} each, got {got}")
        if lengths is None:
            return None
        if lengths.shape != (B,) or lengths.dtype.is_floating_point:
            raise ValueError(f"{name} expects integer lengths of shape ({B},), got "
                             f"{lengths.dtype} {tuple(lengths.shape)}")
        lengths = lengths.to(device=x.device, dtype=torch.long)
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 0 or hi > T:
            raise ValueError(f"{name}: lengths must lie in [0, {T}], got min {lo} max {hi}")
        return None if lo == T else lengths  # all full: the plain fused call is exact

    def _weights(self, layer: int, direction: int) -> list[Tensor]:
        sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        return [getattr(self, n + sfx) for n in names]

    def _run_per_direction(self, x: Tensor, lengths: Tensor | None, state: State, run_direction,
                           run_both=None, reverses=False):
        """Loop over layers and directions; ``run_direction`` runs one of them forwards.

        ``run_both``, when given, runs both directions of a layer in one call instead.
        ``reverses``: ``run_direction`` takes ``reverse=`` and reverses the backward
        direction itself, so its input and output are not reversed here.
        """
        T = x.shape[1]
        valid = None if lengths is None else torch.arange(T, device=x.device) < lengths[:, None]
        rev = reverse_index(lengths, T) if lengths is not None and not reverses else None
        h0, c0 = state if self.is_lstm else (state, None)
        h_n, c_n = [], []
        layer_input = x  # (B, T, I) then (B, T, D*H)
        for layer in range(self.num_layers):
            outputs = []
            if run_both is not None:
                k = 2 * layer
                s0 = ((h0[k : k + 2], c0[k : k + 2]) if self.is_lstm else h0[k : k + 2])
                out, s = run_both(layer_input, valid, lengths, s0,
                                  self._weights(layer, 0) + self._weights(layer, 1))
                outputs.append(out)  # (B, T, 2H)
                h_n.extend(s[0].unbind(0) if self.is_lstm else s.unbind(0))
                if self.is_lstm:
                    c_n.extend(s[1].unbind(0))
            for d in range(self.num_directions if run_both is None else 0):
                k = layer * self.num_directions + d
                inp, flip = layer_input, d == 1 and not reverses
                if flip:
                    inp = layer_input.flip(1) if rev is None else _time_gather(layer_input, rev)
                s0 = (h0[k], c0[k]) if self.is_lstm else h0[k]
                kw = {"reverse": d == 1} if reverses else {}
                out, s = run_direction(inp, valid, lengths, s0, self._weights(layer, d), **kw)
                if flip:
                    out = out.flip(1) if rev is None else _time_gather(out, rev)
                outputs.append(out)  # (B, T, H)
                h_n.append(s[0] if self.is_lstm else s)
                if self.is_lstm:
                    c_n.append(s[1])
            layer_input = torch.cat(outputs, -1) if len(outputs) > 1 else outputs[0]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        h_n = torch.stack(h_n)  # (L*D, B, H)
        return layer_input, ((h_n, torch.stack(c_n)) if self.is_lstm else h_n)

    def _pad_column(self, x: Tensor) -> Tensor | None:
        """The weight column that freezes the state at padded steps, or None (plain RNN).

        Returns:
            (G*H, 1): ``-BIG`` on the LSTM's input gate and ``+BIG`` on its forget
            gate (rows i, f, g, o); ``+BIG`` on the GRU's update gate (rows r, z, n).
        """
        H = self.hidden_size
        if self.mode == "LSTM":
            col = x.new_zeros(4 * H, 1)
            col[:H] = -BIG
            col[H : 2 * H] = BIG
            return col
        if self.mode == "GRU":
            col = x.new_zeros(3 * H, 1)
            col[H : 2 * H] = BIG
            return col
        return None

    def _fused_padded(self, x, valid, hx, weights, bidirectional, freeze):
        """The fused kernel over a padded batch; ``freeze`` adds the pad column (see above)."""
        pad = (~valid).to(x.dtype).unsqueeze(-1)  # (B, T, 1): 1 at padded steps
        if freeze:
            col = self._pad_column(x)
            x = torch.cat([x, pad], -1)  # (B, T, I + 1)
            per_dir = len(weights) // (2 if bidirectional else 1)
            weights = [torch.cat([w, col], 1) if i % per_dir == 0 else w
                       for i, w in enumerate(weights)]
        with warnings.catch_warnings():
            # cuDNN notes that per-layer weights are not one flat buffer; expected here.
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            out, state = self._fused_call(x, hx, weights, 1, 0.0, bidirectional)
        return out * (1 - pad), state  # outputs zero past the end

    def _fused_direction(self, x, valid, lengths, s0, weights):
        """One direction of one layer with the fused kernel on a padded, ragged batch."""
        hx = (s0[0].unsqueeze(0), s0[1].unsqueeze(0)) if self.is_lstm else s0.unsqueeze(0)
        out, state = self._fused_padded(x, valid, hx, weights, False, freeze=self.is_lstm)
        h_last = _last_valid(out, lengths, s0[0] if self.is_lstm else s0)  # (B, H)
        return out, ((h_last, state[1][0]) if self.is_lstm else h_last)

    def _fused_both_directions(self, x, valid, lengths, s0, weights):
        """Both directions of one layer in one bidirectional fused call, from a zero state.

        Returns:
            output (B, T, 2H) and the final state, each part (2, B, H).
        """
        out, state = self._fused_padded(x, valid, s0, weights, True, freeze=True)
        h = state[0] if self.is_lstm else state  # backward direction exact
        h0_fwd = s0[0][0] if self.is_lstm else s0[0]
        h_fwd = _last_valid(out[..., : self.hidden_size], lengths, h0_fwd)  # (B, H)
        h = torch.stack([h_fwd, h[1]])  # (2, B, H)
        return out, ((h, state[1]) if self.is_lstm else h)  # LSTM: forward c frozen

    def _segment_bounds(self, lengths: Tensor) -> list[int]:
        """:func:`segment_bounds` for this layer's price of a segment."""
        overhead = self.segment_overhead
        if overhead is None:
            gates = {"LSTM": 4, "GRU": 3}.get(self.mode, 1)
            overhead = SEGMENT_COST / (gates * self.hidden_size * (self.input_size
                                                                   + self.hidden_size))
        return segment_bounds(sorted(lengths.tolist(), reverse=True), overhead)

    def _run_sorted(self, x: Tensor, lengths: Tensor, state: State, run_direction):
        """Ragged batch on CPU: sort by length, then run each direction with ``run_direction``.

        Sorting (longest first) makes the sequences still running at any step a
        prefix of the batch, which :meth:`_fused_segments` relies on; the result is
        put back in the caller's order.
        """
        order = torch.argsort(lengths, descending=True, stable=True)  # (B,)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        lengths = lengths[order]
        sort = lambda s: s.index_select(1, order)  # noqa: E731  (L*D, B, H)
        state = (sort(state[0]), sort(state[1])) if self.is_lstm else sort(state)
        out, state = self._run_per_direction(x.index_select(0, order), lengths, state,
                                             run_direction)
        unsort = lambda s: s.index_select(1, inverse)  # noqa: E731
        state = (unsort(state[0]), unsort(state[1])) if self.is_lstm else unsort(state)
        return out.index_select(0, inverse), state

    def _fused_segments(self, x, valid, lengths, s0, weights, bounds):
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
        h0 = s0[0] if self.is_lstm else s0  # (B, H)
        h, c = h0, (s0[1] if self.is_lstm else None)  # running state of the live prefix
        pieces = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            n = int((lengths > a).sum())  # live sequences: a prefix, as sorted
            live_valid = valid[:n, a:b]  # (n, b - a)
            hx = (h[:n].unsqueeze(0), c[:n].unsqueeze(0)) if self.is_lstm else h[:n].unsqueeze(0)
            freeze = self.is_lstm and not bool(live_valid[:, -1].all())
            out, s = self._fused_padded(x[:n, a:b], live_valid, hx, weights, False, freeze)
            pieces.append(F.pad(out, (0, 0, 0, 0, 0, B - n)))  # (B, b - a, H)
            h = torch.cat([(s[0] if self.is_lstm else s)[0], h[n:]])  # (B, H)
            if self.is_lstm:
                c = torch.cat([s[1][0], c[n:]])
        if bounds[-1] < T:
            pieces.append(x.new_zeros(B, T - bounds[-1], self.hidden_size))
        out = torch.cat(pieces, 1) if pieces else x.new_zeros(B, T, self.hidden_size)
        h_last = _last_valid(out, lengths, h0)  # (B, H)
        return out, ((h_last, c) if self.is_lstm else h_last)

    def _rows_direction(self, x, valid, lengths, s0, weights, reverse, plan):
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
            return x.new_zeros(B, T, self.hidden_size), s0
        rows = plan.backward_rows if reverse else plan.forward_rows  # (N,) into (B*T)
        x_rows = x.reshape(B * T, -1).index_select(0, rows)  # (N, I)
        w_ih, w_hh = weights[0], weights[1]
        b_ih, b_hh = (weights[2], weights[3]) if self.bias else (None, None)
        gi = F.linear(x_rows, w_ih, b_ih)  # (N, G*H)
        h0 = s0.index_select(0, plan.seqs)  # (B_live, H), longest first
        if self.mode == "GRU":
            h = gru_rows(gi, h0, w_hh, b_hh, plan.live)  # (N, H)
        else:
            h = rnn_rows(gi, h0, w_hh, b_hh, plan.live, self.nonlinearity)
        out = x.new_zeros(B * T, self.hidden_size).index_copy(0, rows, h).view(B, T, -1)
        # Either direction ends at the last packed row of each sequence.
        h_last = s0.index_copy(0, plan.seqs, h.index_select(0, plan.last_rows))  # (B, H)
        return out, h_last

    def _cells_direction(self, x, valid, lengths, s0, weights):
        """One direction of one layer, step by step with the cell's recurrence."""
        w_ih, w_hh = weights[0], weights[1]
        b_ih, b_hh = (weights[2], weights[3]) if self.bias else (None, None)
        gi = F.linear(x, w_ih, b_ih)  # (B, T, G*H): input part of every gate, hoisted
        state, outputs = s0, []
        steps = gi.unbind(1)
        masks = valid.unbind(1) if valid is not None else [None] * len(steps)
        for gi_t, m_t in zip(steps, masks, strict=True):
            new = self._step(gi_t, state, w_hh, b_hh)
            h_new = new[0] if self.is_lstm else new  # (B, H)
            if m_t is None:
                state = new
                outputs.append(h_new)
                continue
            m = m_t.unsqueeze(1)  # (B, 1): keep the old state past the end
            if self.is_lstm:
                state = (torch.where(m, new[0], state[0]), torch.where(m, new[1], state[1]))
            else:
                state = torch.where(m, new, state)
            outputs.append(torch.where(m, h_new, 0.0))
        if not outputs:
            return x.new_zeros(x.shape[0], 0, self.hidden_size), s0
        return torch.stack(outputs, 1), state  # (B, T, H)


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


class LSTM(_Recurrent):
    """Stacked, optionally bidirectional LSTM layer (cell: :class:`textrnn.LSTMCell`).

    Args:
        input_size: I. hidden_size: H. num_layers: L stacked layers.
        bidirectional: D = 2 directions when True, outputs concatenated (B, T, 2H).
        dropout: on the outputs of every layer but the last, in training.
        impl: "fused" (PyTorch's kernels) or "cells" (our cells in a loop).
        bias: learn ``b_ih`` and ``b_hh``.
    """

    is_lstm = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, impl: str = "fused",
                 bias: bool = True) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bidirectional, dropout,
                         impl, bias)

    def _fused_call(self, x, hx, weights, num_layers, dropout, bidirectional):
        out, h, c = torch.lstm(x, hx, weights, self.bias, num_layers, dropout, self.training,
                               bidirectional, True)
        return out, (h, c)

    def _step(self, gi_t, state, weight_hh, bias_hh):
        return lstm_recurrence(gi_t, state[0], state[1], weight_hh, bias_hh)


class GRU(_Recurrent):
    """Stacked, optionally bidirectional GRU layer (cell: :class:`textrnn.GRUCell`).

    Arguments as for :class:`LSTM`; the state is ``h`` alone.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, impl: str = "fused",
                 bias: bool = True) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bidirectional, dropout,
                         impl, bias)

    def _fused_call(self, x, hx, weights, num_layers, dropout, bidirectional):
        return torch.gru(x, hx, weights, self.bias, num_layers, dropout, self.training,
                         bidirectional, True)

    def _step(self, gi_t, state, weight_hh, bias_hh):
        return gru_recurrence(gi_t, state, weight_hh, bias_hh)


class RNN(_Recurrent):
    """Stacked, optionally bidirectional Elman RNN layer (cell: :class:`textrnn.RNNCell`).

    Arguments as for :class:`LSTM`, plus ``nonlinearity`` "tanh" or "relu".
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, impl: str = "fused",
                 nonlinearity: str = "tanh", bias: bool = True) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers,
                         bidirectional, dropout, impl, bias)

    def _fused_call(self, x, hx, weights, num_layers, dropout, bidirectional):
        kernel = torch.rnn_tanh if self.nonlinearity == "tanh" else torch.rnn_relu
        return kernel(x, hx, weights, self.bias, num_layers, dropout, self.training,
                      bidirectional, True)

    def _step(self, gi_t, state, weight_hh, bias_hh):
        return rnn_recurrence(gi_t, state, weight_hh, bias_hh, self.nonlinearity)


LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
