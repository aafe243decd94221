"""Units of a character language model that track a property of the text.

After Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding
Recurrent Networks": a char LSTM trained on prose grows cells that switch on
inside quotes, or count the characters of a line. :func:`find` reads a passage
with the model (through :func:`textrnn.gates.read`, so the states are the layer's
own), correlates every unit's hidden state ``h_t`` with each property of
:data:`PROPERTIES`, and keeps the best unit per property. For an LSTM it also
measures the forget gate ``f`` inside and outside quoted text, per layer: the mean
over all units, the units whose own mean differs most between the two, and the
quote-tracking unit's own. A model that carries a quote across many characters
keeps more of its cell state there, in the few units that carry it: the mean over
all units can hide them.

The properties are of the text read so far (the state after token ``t`` has
seen characters ``0..t``), and are pure functions with doctests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike

import torch
from torch import Tensor

from textrnn import gates
from textrnn.checkpoint import Bundle
from textrnn.errors import TextrnnError

# A passage to read when none is given: dialogue (long and short quotes) and prose lines
# of different lengths. Written for textrnn; any text with double quotes does.
PASSAGE = """\
The ferry was late again, and the harbour master said so to anyone who would listen.
"It left the far shore at six," he told the woman with the bicycle, "and it is a
forty-minute crossing in any weather I have seen, so you may work out for yourself
what has happened to it." She said she could not, and asked him.
"Nothing has happened to it. The captain stops for bread."
The boy on the wall laughed. "He stops for bread every morning," he said.
"Then the timetable is wrong," said the woman, "and not the ferry."
Nobody answered that. The gulls went round the mast of the fishing boat, the tide
turned, and at twenty past seven the ferry came in with a loaf on the wheelhouse roof.
"Good morning," called the captain. "Has anyone been waiting long?"
"""


def inside_quotes(text: str) -> list[float]:
    """1.0 where an opening double quote has been read and its closing one not yet.

    >>> inside_quotes('a "bc" d')
    [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    """
    out, inside = [], False
    for ch in text:
        if ch == '"':
            inside = not inside
        out.append(float(inside))
    return out


def line_position(text: str) -> list[float]:
    """Characters read since the last line end (0 at a line's first character).

    >>> line_position("ab\\ncd")
    [0.0, 1.0, 2.0, 0.0, 1.0]
    """
    out, column = [], 0
    for ch in text:
        out.append(float(column))
        column = 0 if ch == "\n" else column + 1
    return out


PROPERTIES = {"inside quotes": inside_quotes, "line position": line_position}


def correlations(h: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation of every unit with a property over the text.

    Args:
        h: (T, H) hidden states. y: (T,) the property.

    Returns:
        (H,) in [-1, 1]; 0 for a unit (or a property) that never changes.
    """
    h = h.double() - h.double().mean(0)  # (T, H)
    y = y.double() - y.double().mean()  # (T,)
    denom = h.norm(dim=0) * y.norm()  # (H,)
    r = (h * y[:, None]).sum(0) / denom  # (H,)
    return torch.where(denom > 0, r, torch.zeros_like(r)).float()


TOP_UNITS = 5  # units listed per layer whose forget gate differs most inside/outside quotes
FORGET_DIFF = 0.1  # a unit's forget gate "differs" when its two means are further apart


@dataclass
class UnitForget:
    """One unit's mean forget gate on characters inside quotes and outside."""

    unit: int
    inside: float
    outside: float


@dataclass
class LayerForget:
    """An LSTM layer's forget gate ``f`` inside and outside quoted text.

    Attributes:
        inside, outside: the mean of ``f`` over all units and the characters inside
            (outside) quotes.
        units: the layer's width H. differing: how many units' own means differ by
            more than :data:`FORGET_DIFF`.
        top: the :data:`TOP_UNITS` units with the largest ``|inside - outside|``,
            largest first.
        per_unit: every unit's own means, (H,) each: inside, outside.
    """

    inside: float
    outside: float
    units: int
    differing: int
    top: list[UnitForget]
    per_unit: tuple[list[float], list[float]] = field(repr=False)

    def unit(self, j: int) -> UnitForget:
        """Unit ``j``'s own means."""
        return UnitForget(j, self.per_unit[0][j], self.per_unit[1][j])


def split_forget(f: Tensor, quoted: Tensor, top: int = TOP_UNITS) -> LayerForget:
    """The forget gate inside and outside quotes: over all units and per unit.

    Args:
        f: (T, H) the forget gate after each character. quoted: (T,) bool, True on
            the characters inside quotes; both values must occur.
        top: how many of the most differing units to keep.
    """
    f_in = f[quoted].double().mean(0)  # (H,)
    f_out = f[~quoted].double().mean(0)  # (H,)
    diff = (f_in - f_out).abs()  # (H,)
    order = diff.argsort(descending=True, stable=True)[:top].tolist()
    return LayerForget(
        float(f_in.mean()), float(f_out.mean()), f.shape[1],
        int((diff > FORGET_DIFF).sum()),
        [UnitForget(j, float(f_in[j]), float(f_out[j])) for j in order],
        (f_in.tolist(), f_out.tolist()))


@dataclass
class Tracked:
    """The unit that best tracks one property.

    Attributes:
        name: the property's key in :data:`PROPERTIES`.
        layer: the title of the trace holding the unit (``rnn layer 1``).
        best_unit: its index in that layer. correlation: its Pearson r.
        activation: (T,) its hidden state over the text.
        forget_inside, forget_outside: the LSTM's mean forget gate over all units of
            that layer, on characters with the (binary) property and without; None for a
            GRU or a graded property.
        unit_forget_inside, unit_forget_outside: the same for ``best_unit``'s own
            forget gate alone.
    """

    name: str
    layer: str
    best_unit: int
    correlation: float
    activation: list[float]
    forget_inside: float | None = None
    forget_outside: float | None = None
    unit_forget_inside: float | None = None
    unit_forget_outside: float | None = None


@dataclass
class Found:
    """What :func:`find` found: the text read and the best unit per property."""

    text: str
    properties: list[Tracked] = field(default_factory=list)
    # layer title -> its forget gate inside and outside quotes, every LSTM layer
    forget_by_layer: dict[str, LayerForget] = field(default_factory=dict)


def find(bundle: Bundle, text: str | None = None, max_chars: int = 20000) -> Found:
    """Read ``text`` (default :data:`PASSAGE`) with a char LM; the best unit per property.

    Raises:
        TextrnnError: for a word-level model, a model whose vocabulary has no double
            quote, or one with a plain RNN layer (see :func:`textrnn.gates.read`).
    """
    if bundle.task != "lm" or bundle.config.level != "char":
        raise TextrnnError("inspect neurons reads character language models "
                           "(train lm --level char)")
    if '"' not in bundle.vocabs["tokens"].stoi:
        raise TextrnnError('the model never saw a double quote (") in training: it cannot '
                           "track quotes")
    text = (PASSAGE if text is None else text)[:max_chars]
    tokens, traces = gates.read(bundle, text)
    found = Found(text)
    quoted = torch.tensor(inside_quotes(text)) > 0  # (T,) bool
    for t in traces:
        if "f" in t.gates and quoted.any() and (~quoted).any():
            found.forget_by_layer[t.title] = split_forget(t.gates["f"], quoted)
    for name, prop in PROPERTIES.items():
        y = torch.tensor(prop(text))  # (T,)
        best = max(((t, correlations(t.h, y)) for t in traces),
                   key=lambda pair: float(pair[1].abs().max()))
        trace, r = best
        unit = int(r.abs().argmax())
        tracked = Tracked(name, trace.title, unit, float(r[unit]), trace.h[:, unit].tolist())
        forget = found.forget_by_layer.get(trace.title) if name == "inside quotes" else None
        if forget:
            own = forget.unit(unit)
            tracked.forget_inside, tracked.forget_outside = forget.inside, forget.outside
            tracked.unit_forget_inside, tracked.unit_forget_outside = own.inside, own.outside
        found.properties.append(tracked)
    return found


def to_json(found: Found) -> dict:
    """The numbers: per property its best unit, correlation and activation per char;
    per LSTM layer the forget gate inside and outside quotes."""
    return {"text": found.text, "properties": [
        {"name": p.name, "layer": p.layer, "unit": p.best_unit,
         "correlation": p.correlation, "activation": p.activation,
         "forget_inside": p.forget_inside, "forget_outside": p.forget_outside,
         "unit_forget_inside": p.unit_forget_inside,
         "unit_forget_outside": p.unit_forget_outside}
        for p in found.properties],
        "forget_by_layer": {k: {
            "inside_quotes": f.inside, "outside": f.outside, "units": f.units,
            "differing": f.differing, "differing_by_more_than": FORGET_DIFF,
            "top_units": [{"unit": u.unit, "inside_quotes": u.inside, "outside": u.outside}
                          for u in f.top]}
            for k, f in found.forget_by_layer.items()}}


COLUMNS = 90  # characters per row of the text grid (the passage's lines fit)


def _grid(text: str) -> list[list[tuple[int, str]]]:
    """Lay ``text`` out in rows of at most :data:`COLUMNS`, breaking at line ends:
    rows of ``(index into text, char)``.

    >>> _grid("ab\\ncd")
    [[(0, 'a'), (1, 'b'), (2, '\\n')], [(3, 'c'), (4, 'd')]]
    """
    rows: list[list[tuple[int, str]]] = [[]]
    for i, ch in enumerate(text):
        if len(rows[-1]) == COLUMNS:
            rows.append([])
        rows[-1].append((i, ch))
        if ch == "\n":
            rows.append([])
    return [r for r in rows if r]


def _forget_rows(found: Found) -> list[tuple[str, UnitForget | LayerForget]]:
    """The forget panel's bars, top to bottom: per LSTM layer the mean over all units,
    the quote-tracking unit (if it is in that layer), then the most differing units."""
    tracker = next((p for p in found.properties if p.unit_forget_inside is not None), None)
    rows: list[tuple[str, UnitForget | LayerForget]] = []
    for title, f in found.forget_by_layer.items():
        rows.append((f"{title}: all {f.units} units", f))
        tracks = tracker.best_unit if tracker and tracker.layer == title else None
        if tracks is not None:
            rows.append((f"unit {tracks} (tracks quotes)", f.unit(tracks)))
        rows += [(f"unit {u.unit}", u) for u in f.top if u.unit != tracks]
    return rows


def plot(found: Found, path: str | PathLike[str], chars: int = 400) -> None:
    """The passage, one panel per property, each character on the colour of the best
    unit's ``h`` after reading it (Karpathy et al.'s picture); with an LSTM, a last
    panel of the forget gate inside and outside quotes: per layer the mean over all
    units, the quote-tracking unit's own, and the units that differ most. Written
    atomically."""
    import numpy as np

    from textrnn.figures import figure, save_png

    text = found.text[:chars]
    rows = _grid(text)
    bars = _forget_rows(found)
    heights = [0.8 + 0.22 * len(rows)] * len(found.properties) + (
        [0.9 + 0.42 * len(bars)] if bars else [])
    fig = figure(12.0, sum(heights) + 0.4)
    axes = fig.subplots(len(heights), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, p in zip(axes, found.properties, strict=False):
        grid = np.full((len(rows), COLUMNS), np.nan)
        for r, row in enumerate(rows):
            for c, (i, _) in enumerate(row):
                grid[r, c] = p.activation[i]
        image = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-1.0, vmax=1.0,
                          interpolation="nearest")
        for r, row in enumerate(rows):
            for c, (_, ch) in enumerate(row):
                if ch.strip():
                    ax.text(c, r, ch, ha="center", va="center", fontsize=7,
                            family="monospace")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{p.name}: unit {p.best_unit} of {p.layer} "
                     f"(correlation {p.correlation:+.2f} over {len(found.text)} characters)",
                     fontsize="medium", loc="left")
        fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label="h (tanh units)")
    if bars:
        ax = axes[-1]
        y = np.arange(len(bars))
        for shift, side, label in ((-0.2, "inside", "inside quotes"),
                                   (0.2, "outside", "outside quotes")):
            drawn = ax.barh(y + shift, [getattr(v, side) for _, v in bars], height=0.38,
                            label=label)
            ax.bar_label(drawn, fmt="%.3f", padding=3, fontsize="small")
        ax.set_yticks(y, [name for name, _ in bars])
        ax.invert_yaxis()  # layer 0's mean on top
        ax.set_xlim(0, 1.12)
        ax.set_xlabel("mean forget gate f over the characters (1 = keep the cell state)")
        differing = ", ".join(f"{f.differing} of {f.units} in {title}"
                              for title, f in found.forget_by_layer.items())
        ax.set_title(f"LSTM forget gate inside and outside quotes ({len(found.text)} "
                     f"characters): the mean over all units, the quote unit's own, the "
                     f"{TOP_UNITS} units that differ most\nunits whose means differ by more "
                     f"than {FORGET_DIFF}: {differing}", fontsize="medium", loc="left")
        ax.legend(loc="lower right", fontsize="small")
    save_png(fig, path)
