"""Recurrent layers: the time loop, ragged lengths, stacking and both directions.

``RNN``, ``GRU`` and ``LSTM`` take ``(input_size, hidden_size, num_layers=1,
bidirectional=False, dropout=0.0, impl="fused", *, ragged="auto",
segment_overhead=None)``, are batch-first, and run
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
With ragged lengths it stays exact without packing, by one of the paths of
:mod:`textrnn.ragged` (which says how each stays exact, and what it saves);
``ragged`` picks one of ``RAGGED_PATHS``, and "auto" chooses by device and cell:

    ragged=      "auto" takes it on     what runs
    "rows"       CPU, GRU and RNN       only the real steps, as packed rows
    "segments"   CPU, LSTM              time segments, each over the sequences still going
    "one-call"   GPU                    one padded call per layer and direction

``impl="cells"`` runs the cells of :mod:`textrnn.cells` in a Python loop over
``x.unbind(1)`` (indexing ``x[:, t]`` would make the backward pass quadratic
in T), with the input projection hoisted out of the loop. It is the readable
reference path, slower; ``bench/layers.py`` says by how much.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.cells import gru_recurrence, lstm_recurrence, rnn_recurrence
from textrnn.ragged import RAGGED_PATHS as RAGGED_PATHS  # re-exported (lived here)
from textrnn.ragged import check_ragged, run_fused
from textrnn.ragged import segment_bounds as segment_bounds  # re-exported (lived here)

State = Tensor | tuple[Tensor, Tensor]

IMPLS = ("fused", "cells")
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
        *,
        ragged: str = "auto",
        segment_overhead: float | None = None,
    ) -> None:
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        check_ragged(ragged, self.is_lstm)
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
        # "one-call" on GPU, where each kernel call costs a launch. Both settings may
        # also be changed on the layer later; forward reads them each time.
        self.ragged = ragged
        # The price of one more segment in row-steps (one sequence, one step), see
        # segment_bounds; None: SEGMENT_COST over the multiply-adds of a row-step.
        self.segment_overhead = segment_overhead

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
                # Ragged: the fast paths of textrnn.ragged, over this layer's kernel.
                return run_fused(self, x, lengths, state, zero_start, self._fused_call,
                                 self._run_per_direction)
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


class LSTM(_Recurrent):
    """Stacked, optionally bidirectional LSTM layer (cell: :class:`textrnn.LSTMCell`).

    Args:
        input_size: I. hidden_size: H. num_layers: L stacked layers.
        bidirectional: D = 2 directions when True, outputs concatenated (B, T, 2H).
        dropout: on the outputs of every layer but the last, in training.
        impl: "fused" (PyTorch's kernels) or "cells" (our cells in a loop).
        bias: learn ``b_ih`` and ``b_hh``.
        ragged: how "fused" runs ragged lengths, one of ``RAGGED_PATHS``
            (:mod:`textrnn.ragged`); "auto" chooses by device and cell.
        segment_overhead: the price of one more time segment ("segments"), in
            row-steps; None derives it from ``SEGMENT_COST`` and the sizes.
    """

    is_lstm = True

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, impl: str = "fused",
                 bias: bool = True, *, ragged: str = "auto",
                 segment_overhead: float | None = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bidirectional, dropout,
                         impl, bias, ragged=ragged, segment_overhead=segment_overhead)

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
                 bias: bool = True, *, ragged: str = "auto",
                 segment_overhead: float | None = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bidirectional, dropout,
                         impl, bias, ragged=ragged, segment_overhead=segment_overhead)

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
                 nonlinearity: str = "tanh", bias: bool = True, *, ragged: str = "auto",
                 segment_overhead: float | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers,
                         bidirectional, dropout, impl, bias, ragged=ragged,
                         segment_overhead=segment_overhead)

    def _fused_call(self, x, hx, weights, num_layers, dropout, bidirectional):
        kernel = torch.rnn_tanh if self.nonlinearity == "tanh" else torch.rnn_relu
        return kernel(x, hx, weights, self.bias, num_layers, dropout, self.training,
                      bidirectional, True)

    def _step(self, gi_t, state, weight_hh, bias_hh):
        return rnn_recurrence(gi_t, state, weight_hh, bias_hh, self.nonlinearity)


LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
