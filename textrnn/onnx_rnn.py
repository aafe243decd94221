"""A recurrent layer as one ONNX ``LSTM``/``GRU``/``RNN`` node, with free lengths.

``torch.export`` cannot keep a recurrence's length free: the Python time loop of
:mod:`textrnn.layers` unrolls to the example's length, the ragged paths of
:mod:`textrnn.ragged` branch on the lengths' values, and the while-loop
decompositions it offers for ``aten.lstm`` know nothing of per-sequence lengths. ONNX
has the layer we need as one operator: ``LSTM(X, W, R, B, sequence_lens, initial_h,
initial_c)`` runs each sequence b for its own ``sequence_lens[b]`` steps (zero output
after), and its reverse direction starts at each sequence's own last step, which is
exactly the contract of a textrnn layer.

So an export sees the layer as one opaque operator, ``textrnn::rnn`` (a
``torch.library`` custom op: its shapes come from :func:`_rnn_shapes`, its eager
numbers from the textrnn layer itself), and :data:`TRANSLATION` writes it as one
ONNX node per stacked layer::

    x (B, T, I) ─ Transpose ─ (T, B, I) ─ LSTM(dir) ─ Y (T, D, B, H)
                                           │          ─ Transpose, Reshape ─ (T, B, D*H)
                 lengths (B,) ─ Cast int32 ┘            ─ ... next layer ... ─ (B, T, D*H)

The gates are reordered at export time: torch stacks the LSTM's rows as
``i, f, g, o`` and ONNX as ``i, o, f, c``; the GRU's ``r, z, n`` become ``z, r, h``,
and ``linear_before_reset=1`` is ONNX's name for torch's variant (the reset gate
multiplies ``W_hn h + b_hn``, after the matmul).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Row blocks of torch's stacked gate weights in the order ONNX wants them.
GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN_TANH": [0], "RNN_RELU": [0]}
ONNX_OP = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}


@torch.library.custom_op("textrnn::rnn", mutates_args=())
def rnn(x: Tensor, lengths: Tensor, h0: Tensor, c0: Tensor, weights: list[Tensor],
        mode: str, num_layers: int, bidirectional: bool) -> tuple[Tensor, Tensor, Tensor]:
    """A textrnn layer's forward as one operator (what an export records).

    Args:
        x: (B, T, I) float; lengths: (B,) long, each in [0, T].
        h0, c0: (L*D, B, H) start states (``c0`` is ignored but for the LSTM).
        weights: the layer's ``_flat_weights`` (per layer and direction: ``weight_ih``,
            ``weight_hh`` and, with bias, ``bias_ih``, ``bias_hh``).
        mode: the layer's ``mode``: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU".
        num_layers, bidirectional: as the layer's.

    Returns:
        output (B, T, D*H), zero past each end; h_n (L*D, B, H); c_n (L*D, B, H) (a
        copy of h_n but for the LSTM).
    """
    from textrnn.layers import LAYERS  # here: layers imports nothing of this module

    kind = "rnn" if mode.startswith("RNN") else mode.lower()
    extra = {"nonlinearity": mode[4:].lower()} if kind == "rnn" else {}
    D = 2 if bidirectional else 1
    layer = LAYERS[kind](x.shape[-1], h0.shape[-1], num_layers, bidirectional,
                         bias=len(weights) == 4 * num_layers * D, **extra).to(x.dtype)
    with torch.no_grad():
        for p, w in zip(layer._flat_weights, weights, strict=True):
            p.copy_(w)
    state = (h0, c0) if kind == "lstm" else h0
    out, state = layer.eval()(x, lengths=lengths, state=state)
    h_n, c_n = state if kind == "lstm" else (state, state.clone())
    return out, h_n, c_n


@rnn.register_fake
def _rnn_shapes(x, lengths, h0, c0, weights, mode, num_layers, bidirectional):
    D = 2 if bidirectional else 1
    B, T, H = x.shape[0], x.shape[1], h0.shape[-1]
    return x.new_empty(B, T, D * H), h0.new_empty(h0.shape), h0.new_empty(h0.shape)


def call(layer, x: Tensor, lengths: Tensor, state=None) -> tuple[Tensor, object]:
    """Run a textrnn layer through :func:`rnn`; returns ``(output, state)`` like the layer.

    Args:
        layer: a :class:`textrnn.layers.LSTM`, ``GRU`` or ``RNN`` (batch-first).
        x: (B, T, I); lengths: (B,) long; state: as the layer takes, zeros if None.
    """
    shape = (layer.num_layers * layer.num_directions, x.shape[0], layer.hidden_size)
    if state is None:
        h0 = c0 = x.new_zeros(shape)  # (L*D, B, H)
    else:
        h0, c0 = state if layer.is_lstm else (state, torch.zeros_like(state))
    out, h_n, c_n = rnn(x, lengths, h0, c0, list(layer._flat_weights), layer.mode,
                        layer.num_layers, layer.bidirectional)
    return out, ((h_n, c_n) if layer.is_lstm else h_n)


def _to_onnx(x, lengths, h0, c0, weights, mode, num_layers, bidirectional):
    """The ONNX graph of :func:`rnn` (called by the exporter with ONNX values)."""
    from onnxscript import opset18 as op  # the exporter's own dependency, only at export

    D = 2 if bidirectional else 1
    per_direction = len(weights) // (num_layers * D)  # 4 with biases, else 2
    H = weights[1].shape[1]  # weight_hh: (G*H, H)
    rows = [g * H + j for g in GATE_ORDER[mode] for j in range(H)]  # torch row -> ONNX row
    order = op.Constant(value_ints=rows)
    extra = {"linear_before_reset": 1} if mode == "GRU" else {}
    if mode.startswith("RNN_"):
        extra = {"activations": [mode[4:].capitalize()] * D}  # "Tanh" or "Relu"
    seq_lens = op.Cast(lengths, to=6)  # int32, as the operator wants
    layer_input = op.Transpose(x, perm=[1, 0, 2])  # (T, B, I)
    h_n, c_n = [], []
    for layer in range(num_layers):
        W, R, Bias = [], [], []
        for d in range(D):
            first = (layer * D + d) * per_direction
            w_ih, w_hh = weights[first], weights[first + 1]
            W.append(op.Unsqueeze(op.Gather(w_ih, order, axis=0), [0]))  # (1, G*H, I)
            R.append(op.Unsqueeze(op.Gather(w_hh, order, axis=0), [0]))  # (1, G*H, H)
            if per_direction == 4:
                b = [op.Gather(weights[first + k], order, axis=0) for k in (2, 3)]
                Bias.append(op.Unsqueeze(op.Concat(*b, axis=0), [0]))  # (1, 2*G*H)
        W, R = op.Concat(*W, axis=0), op.Concat(*R, axis=0)  # (D, G*H, I), (D, G*H, H)
        B = op.Concat(*Bias, axis=0) if Bias else None  # (D, 2*G*H)
        h_start = op.Slice(h0, [layer * D], [layer * D + D], [0])  # (D, B, H)
        common = {"hidden_size": H, "direction": "bidirectional" if D == 2 else "forward",
                  **extra}
        if mode == "LSTM":
            c_start = op.Slice(c0, [layer * D], [layer * D + D], [0])  # (D, B, H)
            Y, Y_h, Y_c = op.LSTM(layer_input, W, R, B, seq_lens, h_start, c_start, **common)
            c_n.append(Y_c)
        else:
            node = op.GRU if mode == "GRU" else op.RNN
            Y, Y_h = node(layer_input, W, R, B, seq_lens, h_start, **common)
        h_n.append(Y_h)  # (D, B, H)
        Y = op.Transpose(Y, perm=[0, 2, 1, 3])  # (T, B, D, H)
        layer_input = op.Reshape(Y, op.Constant(value_ints=[0, 0, D * H]))  # (T, B, D*H)
    output = op.Transpose(layer_input, perm=[1, 0, 2])  # (B, T, D*H)
    h_all = op.Concat(*h_n, axis=0) if num_layers > 1 else h_n[0]  # (L*D, B, H)
    if mode != "LSTM":
        return output, h_all, op.Identity(h_all)
    c_all = op.Concat(*c_n, axis=0) if num_layers > 1 else c_n[0]  # (L*D, B, H)
    return output, h_all, c_all


# What torch.onnx.export(..., custom_translation_table=TRANSLATION) needs for our op.
TRANSLATION = {torch.ops.textrnn.rnn.default: _to_onnx}
