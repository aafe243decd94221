"""The gates of an LSTM or GRU layer over a text, recomputed from its weights.

A fused kernel (cuDNN, oneDNN) returns only the hidden states; the gates stay
inside it. So :func:`trace_layer` runs the layer's own weights again through
the equations of :mod:`textrnn.cells`, one step at a time, for every layer and
direction, and keeps what the layer hides::

    LSTM   i, f, g, o = σ, σ, tanh, σ (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
           c_t = f ⊙ c_{t-1} + i ⊙ g        h_t = o ⊙ tanh(c_t)
    GRU    r, z = σ(...), n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
           h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

The state carried from step to step is the one :func:`~textrnn.cells.lstm_recurrence`
and :func:`~textrnn.cells.gru_recurrence` return, so the recomputed ``h`` equals the
layer's output (tests/test_gates.py holds them to 1e-6, and the gates to the state).

:func:`read` runs a checkpoint's model over a text, by the task's entry in
:data:`READERS`, and traces the layer that reads the tokens (the LM's ``rnn``, the
tagger's word BiLSTM, the classifier's encoder, the seq2seq encoder).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn.cells import gru_recurrence, lstm_recurrence
from textrnn.checkpoint import Bundle
from textrnn.errors import TextrnnError

CELLS = {"LSTM": "lstm", "GRU": "gru"}  # nn.RNNBase.mode -> our name; RNN_TANH has no gates
SHOWN = {"lstm": ("i", "f", "o", "c"), "gru": ("r", "z")}  # what the picture draws
NAMES = {"i": "input gate i", "f": "forget gate f", "o": "output gate o", "g": "candidate g",
         "c": "cell state c", "r": "reset gate r", "z": "update gate z", "n": "candidate n"}


@dataclass
class GateTrace:
    """One direction of one layer over one sequence.

    Attributes:
        name: the layer's attribute in its model (``rnn``, ``lstm``, ``encoder``).
        layer: index in the stack. direction: 0 forward, 1 backward.
        cell: "lstm" or "gru".
        gates: gate name -> (T, H) float, in token order (the backward direction's
            steps put back in reading order): ``i, f, g, o, c`` or ``r, z, n``.
        h: (T, H) the hidden state after each token.
        bidirectional: the layer has both directions (the title names this one).
    """

    name: str
    layer: int
    direction: int
    cell: str
    gates: dict[str, Tensor]
    h: Tensor
    bidirectional: bool = False

    @property
    def title(self) -> str:
        """E.g. ``rnn layer 0`` or ``lstm layer 1 backward``."""
        way = ("forward", "backward")[self.direction] if self.bidirectional else ""
        return f"{self.name} layer {self.layer} {way}".rstrip()

    def top_units(self, k: int) -> list[int]:
        """The ``k`` units whose hidden state moves most over the text (largest standard
        deviation of ``h`` across tokens), most active first."""
        spread = self.h.std(0, unbiased=False) if len(self.h) > 1 else self.h.abs()[0]  # (H,)
        return spread.argsort(descending=True)[:k].tolist()


def lstm_step(gi_t: Tensor, h_prev: Tensor, c_prev: Tensor, weight_hh: Tensor,
              bias_hh: Tensor | None) -> dict[str, Tensor]:
    """One LSTM step's gates and state. gi_t: (B, 4H); h_prev, c_prev: (B, H).

    Returns:
        ``i, f, g, o, c, h``: (B, H) each; ``c`` and ``h`` from the cells' own step.
    """
    pre = gi_t + F.linear(h_prev, weight_hh, bias_hh)  # (B, 4H), rows i, f, g, o
    i, f, g, o = pre.chunk(4, 1)  # (B, H) each
    h, c = lstm_recurrence(gi_t, h_prev, c_prev, weight_hh, bias_hh)  # (B, H) each
    return {"i": torch.sigmoid(i), "f": torch.sigmoid(f), "g": torch.tanh(g),
            "o": torch.sigmoid(o), "c": c, "h": h}


def gru_step(gi_t: Tensor, h_prev: Tensor, weight_hh: Tensor,
             bias_hh: Tensor | None) -> dict[str, Tensor]:
    """One GRU step's gates and state. gi_t: (B, 3H); h_prev: (B, H).

    Returns:
        ``r, z, n, h``: (B, H) each; ``h`` from the cells' own step.
    """
    gh = F.linear(h_prev, weight_hh, bias_hh)  # (B, 3H), rows r, z, n
    gi_r, gi_z, gi_n = gi_t.chunk(3, 1)  # (B, H) each
    gh_r, gh_z, gh_n = gh.chunk(3, 1)  # (B, H) each
    r = torch.sigmoid(gi_r + gh_r)  # (B, H)
    z = torch.sigmoid(gi_z + gh_z)  # (B, H)
    n = torch.tanh(gi_n + r * gh_n)  # (B, H): reset after the hidden matmul, as torch
    return {"r": r, "z": z, "n": n, "h": gru_recurrence(gi_t, h_prev, weight_hh, bias_hh)}


def _weights(layer: nn.RNNBase, index: int, direction: int) -> list[Tensor | None]:
    sfx = f"_l{index}" + ("_reverse" if direction == 1 else "")
    return [getattr(layer, name + sfx, None) for name in
            ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


@torch.no_grad()
def trace_layer(layer: nn.RNNBase, x: Tensor, state=None, name: str = "rnn"
                ) -> list[GateTrace]:
    """Every layer and direction of ``layer`` over one sequence, gates included.

    Args:
        layer: a :class:`textrnn.layers.LSTM` or ``GRU`` (or ``torch.nn.LSTM/GRU``,
            batch-first, same parameter names), in eval mode: no dropout between layers.
        x: (T, I) the layer's input for one sequence, without padding.
        state: the initial ``h`` (L*D, H), or ``(h, c)`` for the LSTM; zeros if None.
        name: what to call the layer in the traces.

    Returns:
        L*D traces, in torch's order (``layer * D + direction``).

    Raises:
        ValueError: for a plain RNN layer (it has no gates).
    """
    if layer.mode not in CELLS:
        raise ValueError(f"a {layer.mode} layer has no gates (only LSTM and GRU layers do)")
    cell, H = CELLS[layer.mode], layer.hidden_size
    D = 2 if layer.bidirectional else 1
    h0, c0 = state if isinstance(state, tuple) else (state, None)
    traces, inp = [], x  # inp: (T, I), then (T, D*H)
    for index in range(layer.num_layers):
        outputs = []
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh = _weights(layer, index, d)
            k = index * D + d
            h = x.new_zeros(1, H) if h0 is None else h0[k : k + 1]  # (1, H)
            c = x.new_zeros(1, H) if c0 is None else c0[k : k + 1]  # (1, H)
            seq = inp.flip(0) if d == 1 else inp  # the backward direction reads right to left
            gi = F.linear(seq, w_ih, b_ih)  # (T, G*H): the input part of every step at once
            steps = []
            for gi_t in gi.unbind(0):
                out = (lstm_step(gi_t[None], h, c, w_hh, b_hh) if cell == "lstm"
                       else gru_step(gi_t[None], h, w_hh, b_hh))
                h, c = out["h"], out.get("c", c)  # (1, H) each
                steps.append(out)
            gates = {g: torch.cat([s[g] for s in steps]) for g in steps[0]}  # (T, H) each
            if d == 1:
                gates = {g: v.flip(0) for g, v in gates.items()}  # back in token order
            h_all = gates.pop("h")  # (T, H)
            traces.append(GateTrace(name, index, d, cell, gates, h_all, D == 2))
            outputs.append(h_all)
        inp = torch.cat(outputs, -1)  # (T, D*H): the next layer's input
    return traces


@dataclass
class Call:
    """What one forward call of a recurrent layer received."""

    x: Tensor  # (B, T, I)
    lengths: Tensor | None  # (B,) or None
    state: object  # h (L*D, B, H), (h, c), or None


@contextlib.contextmanager
def record_calls(layer: nn.Module) -> Iterator[list[Call]]:
    """``with record_calls(model.rnn) as calls:`` collects the input of every forward of
    ``layer`` made inside the block (a forward pre-hook, removed on exit)."""
    calls: list[Call] = []

    def hook(module, args, kwargs):
        given = dict(zip(("x", "lengths", "state"), args, strict=False)) | kwargs
        calls.append(Call(given["x"], given.get("lengths"), given.get("state")))

    handle = layer.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def _first_row(call: Call):
    """Row 0 of a recorded call: x (T, I) without padding, and its initial state."""
    T = call.x.shape[1] if call.lengths is None else int(call.lengths[0])
    x = call.x[0, :T]  # (T, I)
    state = call.state
    if isinstance(state, tuple):
        state = tuple(s[:, 0] for s in state)  # (L*D, H) each
    elif state is not None:
        state = state[:, 0]  # (L*D, H)
    return x, state


@dataclass
class Reading:
    """How a task's model reads a text: its tokens, the layer that reads them, and a
    function that runs the model once over them."""

    tokens: list[str]
    name: str  # the layer's attribute path in the model
    layer: nn.Module
    run: Callable[[], object]


def _read_lm(bundle: Bundle, text: str) -> Reading:
    from textrnn.tokenize import TOKENIZERS

    tokens = TOKENIZERS[bundle.config.level](text)
    ids = torch.tensor([bundle.vocabs["tokens"].encode(tokens)], device=bundle.device)
    return Reading(tokens, "rnn", bundle.model.rnn, lambda: bundle.model(ids))


def _read_tagger(bundle: Bundle, text: str) -> Reading:
    from textrnn.pipelines.tagger import tag
    from textrnn.tokenize import word_tokenize

    tokens = word_tokenize(text)
    # The word BiLSTM; the character LSTM reads each distinct spelling, not the text.
    return Reading(tokens, "lstm", bundle.model.lstm, lambda: tag(bundle, [tokens]))


def _read_classifier(bundle: Bundle, text: str) -> Reading:
    from textrnn.data.sentiment import head_tail
    from textrnn.pipelines.classifier import classify
    from textrnn.tokenize import word_tokenize

    c = bundle.config
    if c.model != "rnn":
        raise TextrnnError(f"this classifier is a {c.model} (no recurrent layer to inspect)")
    tokens = head_tail(word_tokenize(text, lower=c.lower), c.max_tokens, c.head_tokens)
    return Reading(tokens, "net.rnn", bundle.model.net.rnn, lambda: classify(bundle, [text]))


def _read_seq2seq(bundle: Bundle, text: str) -> Reading:
    from textrnn.subword import TextCodec  # word or subword source vocabularies

    tokens = TextCodec(bundle.vocabs["source"], bundle.config.lower).pieces(text)
    src = torch.tensor([bundle.vocabs["source"].encode(tokens)], device=bundle.device)
    lengths = torch.tensor([len(tokens)], device=bundle.device)
    return Reading(tokens, "encoder", bundle.model.encoder,
                   lambda: bundle.model.start(src, lengths))


# task -> how its model reads a text. The QA models read stories sentence by sentence and
# have no reader here.
READERS = {"lm": _read_lm, "tagger": _read_tagger, "classifier": _read_classifier,
           "seq2seq": _read_seq2seq}


def read(bundle: Bundle, text: str) -> tuple[list[str], list[GateTrace]]:
    """Run ``bundle``'s model over ``text`` and trace the layer that reads its tokens.

    Returns:
        The tokens (T of them) and the layer's traces (``h`` and gates (T, H) each).

    Raises:
        TextrnnError: for a task without a reader, an empty text, or a layer
            without gates (a plain RNN).
    """
    if bundle.task not in READERS:
        raise TextrnnError(f"inspect gates reads {', '.join(sorted(READERS))} checkpoints, "
                           f"not {bundle.task}")
    reading = READERS[bundle.task](bundle, text)
    if not reading.tokens:
        raise TextrnnError("no tokens to inspect: give some text")
    if getattr(reading.layer, "mode", None) not in CELLS:
        raise TextrnnError(f"the model's {reading.name} layer is a plain RNN: it has no "
                           "gates to show (train with --cell lstm or gru)")
    model = bundle.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), record_calls(reading.layer) as calls:
            reading.run()
    finally:
        model.train(was_training)
    x, state = _first_row(calls[0])
    traces = trace_layer(reading.layer, x, state, reading.name)
    return reading.tokens, [_cpu(t) for t in traces]


def _cpu(trace: GateTrace) -> GateTrace:
    trace.gates = {g: v.cpu() for g, v in trace.gates.items()}
    trace.h = trace.h.cpu()
    return trace


def to_json(tokens: list[str], traces: list[GateTrace], units: int) -> dict:
    """The numbers behind the picture: every unit of every gate, per token.

    Returns:
        ``{"tokens": [...], "layers": [{"name", "layer", "direction", "cell",
        "top_units", "h": [[...H] * T], "gates": {"i": [[...H] * T], ...}}]}``.
    """
    return {"tokens": tokens, "layers": [
        {"name": t.name, "layer": t.layer, "direction": ("forward", "backward")[t.direction],
         "cell": t.cell, "top_units": t.top_units(units), "h": t.h.tolist(),
         "gates": {g: v.tolist() for g, v in t.gates.items()}} for t in traces]}


def plot(tokens: list[str], traces: list[GateTrace], path, units: int = 16,
         title: str = "") -> None:
    """Heat maps of the gates: one row per gate of each layer and direction, tokens
    along x, the ``units`` most active units along y; written atomically to ``path``."""
    from textrnn.figures import figure, save_png, token_label

    rows = [(t, g) for t in traces for g in SHOWN[t.cell]]
    k = min(units, traces[0].h.shape[1])
    width = min(60.0, 3.0 + 0.22 * len(tokens))
    fig = figure(width, sum(1.2 + 0.16 * k for _ in rows) + 0.5)
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    if title:
        fig.suptitle(title)
    for ax, (trace, gate) in zip(axes, rows, strict=True):
        top = trace.top_units(k)
        values = trace.gates[gate][:, top].T.numpy()  # (k, T)
        if gate == "c":  # unbounded, signed: a diverging map centred on 0
            vmax = max(float(abs(values).max()), 1e-6)
            image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                              interpolation="nearest")
        else:  # a gate is a fraction in (0, 1): 0 closed, 1 open
            image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0,
                              interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label=gate)
        ax.set_title(f"{trace.title}: {NAMES[gate]}", fontsize="medium", loc="left")
        ax.set_xticks(range(len(tokens)), [token_label(t) for t in tokens],
                      fontsize="small", rotation=0 if max(map(len, tokens)) == 1 else 90)
        ax.set_yticks(range(k), [str(u) for u in top], fontsize="x-small")
        ax.set_ylabel("unit")
    axes[-1].set_xlabel("token")
    save_png(fig, path)
