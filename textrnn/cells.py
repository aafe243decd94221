"""Recurrent cells written from their equations: one time step each.

A cell maps ``(x_t, state) -> state`` and owns no loop and no embedding
(the layer in :mod:`textrnn.layers` owns the time loop). Parameter names,
shapes and gate order are those of ``torch.nn.RNNCell``, ``GRUCell`` and
``LSTMCell``, so a ``state_dict`` loads either way and PyTorch serves as the
test oracle (``tests/test_cells.py`` checks outputs and gradients to 1e-10 in
float64).

Each cell is split in two so the layer can hoist the input projection out of
the time loop (one big matmul over all steps instead of ``T`` small ones):

    gi_t = W_ih x_t + b_ih                 input part, computable for all t at once
    state_t = recurrence(gi_t, state_{t-1}) the part that must run step by step

The ``*_recurrence`` functions below are that second part and are shared by
the cells and by ``impl="cells"`` layers.

References: Elman (1990) for the plain RNN; Cho et al. (2014) for the GRU, in
the cuDNN variant where the reset gate multiplies ``W_hn h + b_hn`` (after the
hidden matmul), as torch does; Hochreiter & Schmidhuber (1997) with the forget
gate of Gers et al. (2000) for the LSTM.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def rnn_recurrence(
    gi: Tensor, h_prev: Tensor, weight_hh: Tensor, bias_hh: Tensor | None, nonlinearity: str
) -> Tensor:
    """One step of the Elman RNN given the input part ``gi = W_ih x_t + b_ih``.

    ``h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, with ``f`` tanh or relu.

    Args:
        gi: (B, H) input projection of ``x_t``.
        h_prev: (B, H) previous hidden state.
        weight_hh: (H, H). bias_hh: (H,) or None.
        nonlinearity: "tanh" or "relu".

    Returns:
        h_t: (B, H).
    """
    f = ACTIVATIONS[nonlinearity]
    return f(gi + F.linear(h_prev, weight_hh, bias_hh))  # (B, H)


def gru_recurrence(
    gi: Tensor, h_prev: Tensor, weight_hh: Tensor, bias_hh: Tensor | None
) -> Tensor:
    """One GRU step given the input part ``gi = W_ih x_t + b_ih`` (gates r, z, n).

    ::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)          reset gate
        z = σ(W_iz x + b_iz + W_hz h + b_hz)          update gate
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))  candidate (reset after the matmul)
        h' = (1 - z) ⊙ n + z ⊙ h

    Args:
        gi: (B, 3H) input projection, gate order r, z, n.
        h_prev: (B, H). weight_hh: (3H, H). bias_hh: (3H,) or None.

    Returns:
        h_t: (B, H).
    """
    gh = F.linear(h_prev, weight_hh, bias_hh)  # (B, 3H)
    gi_r, gi_z, gi_n = gi.chunk(3, 1)  # (B, H) each
    gh_r, gh_z, gh_n = gh.chunk(3, 1)  # (B, H) each
    r = torch.sigmoid(gi_r + gh_r)  # (B, H)
    z = torch.sigmoid(gi_z + gh_z)  # (B, H)
    n = torch.tanh(gi_n + r * gh_n)  # (B, H)
    return (1 - z) * n + z * h_prev  # (B, H)


def lstm_recurrence(
    gi: Tensor, h_prev: Tensor, c_prev: Tensor, weight_hh: Tensor, bias_hh: Tensor | None
) -> tuple[Tensor, Tensor]:
    """One LSTM step given the input part ``gi = W_ih x_t + b_ih`` (gates i, f, g, o).

    ::

        i = σ(W_ii x + b_ii + W_hi h + b_hi)      input gate
        f = σ(W_if x + b_if + W_hf h + b_hf)      forget gate
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)   candidate cell
        o = σ(W_io x + b_io + W_ho h + b_ho)      output gate
        c' = f ⊙ c + i ⊙ g
        h' = o ⊙ tanh(c')

    Args:
        gi: (B, 4H) input projection, gate order i, f, g, o.
        h_prev, c_prev: (B, H). weight_hh: (4H, H). bias_hh: (4H,) or None.

    Returns:
        (h_t, c_t): (B, H) each.
    """
    gates = gi + F.linear(h_prev, weight_hh, bias_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, 1)  # (B, H) each
    i = torch.sigmoid(i)
    f = torch.sigmoid(f)
    g = torch.tanh(g)
    o = torch.sigmoid(o)
    c = f * c_prev + i * g  # (B, H)
    h = o * torch.tanh(c)  # (B, H)
    return h, c


class _CellBase(nn.Module):
    """Parameters shared by the three cells, named and initialised as in ``torch.nn``."""

    num_gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gh = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size))  # (G*H, I)
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size))  # (G*H, H)
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gh))  # (G*H,)
            self.bias_hh = nn.Parameter(torch.empty(gh))  # (G*H,)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/√H, 1/√H) for every weight and bias, as torch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _zeros(self, x_t: Tensor) -> Tensor:
        return x_t.new_zeros(x_t.shape[0], self.hidden_size)  # (B, H)

    def input_part(self, x_t: Tensor) -> Tensor:
        """``W_ih x_t + b_ih``: (B, I) -> (B, G*H)."""
        if x_t.dim() != 2 or x_t.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects x_t of shape (batch, {self.input_size}), "
                f"got {tuple(x_t.shape)}"
            )
        return F.linear(x_t, self.weight_ih, self.bias_ih)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class RNNCell(_CellBase):
    """Elman RNN cell: ``h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    The output layer ``o_t = g(V h_t)`` of the textbook RNN is the model's head,
    not part of the cell.

    Args:
        input_size: I. hidden_size: H. bias: use ``b_ih``, ``b_hh``.
        nonlinearity: "tanh" (default) or "relu".

    Shapes:
        ``cell(x_t (B, I), h_prev (B, H) | None) -> h_t (B, H)``; a missing
        state starts at zeros. Weights: ``weight_ih`` (H, I), ``weight_hh`` (H, H).
    """

    num_gates = 1

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def forward(self, x_t: Tensor, state: Tensor | None = None) -> Tensor:
        h_prev = self._zeros(x_t) if state is None else state  # (B, H)
        return rnn_recurrence(
            self.input_part(x_t), h_prev, self.weight_hh, self.bias_hh, self.nonlinearity
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"


class GRUCell(_CellBase):
    """Gated recurrent unit (gates r, z, n; reset applied after the hidden matmul).

    See :func:`gru_recurrence` for the equations.

    Shapes:
        ``cell(x_t (B, I), h_prev (B, H) | None) -> h_t (B, H)``.
        Weights: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), rows in order r, z, n.
    """

    num_gates = 3

    def forward(self, x_t: Tensor, state: Tensor | None = None) -> Tensor:
        h_prev = self._zeros(x_t) if state is None else state  # (B, H)
        return gru_recurrence(self.input_part(x_t), h_prev, self.weight_hh, self.bias_hh)


class LSTMCell(_CellBase):
    """Long short-term memory cell (gates i, f, g, o and cell state c).

    See :func:`lstm_recurrence` for the equations.

    Shapes:
        ``cell(x_t (B, I), (h_prev, c_prev) (B, H) each | None) -> (h_t, c_t)``.
        Weights: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), rows in order i, f, g, o.
    """

    num_gates = 4

    def forward(
        self, x_t: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        if state is None:
            state = (self._zeros(x_t), self._zeros(x_t))
        h_prev, c_prev = state  # (B, H) each
        return lstm_recurrence(self.input_part(x_t), h_prev, c_prev, self.weight_hh, self.bias_hh)
