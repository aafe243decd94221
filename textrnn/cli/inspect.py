"""``textrnn inspect gates``, ``inspect neurons`` and ``inspect memory``: pictures of a
model's insides, over :mod:`textrnn.gates`, :mod:`textrnn.neurons` and
:mod:`textrnn.memory_map`.

::

    textrnn inspect gates --checkpoint runs/lm/best.pt "ROMEO: 'Tis but thy name" \\
        --out gates.png
    textrnn inspect gates --checkpoint runs/ner/best.pt "Jules lives in Paris" --json
    textrnn inspect neurons --checkpoint runs/lm/best.pt --out neurons.png
    textrnn inspect memory --checkpoint runs/qa/best.pt --story story.txt \\
        --question "Where is Mary?" --out memory.png

Every picture is written atomically and named in the output; with ``--json`` the
numbers go to stdout as one JSON object and that line to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from textrnn.cli import common, flags
from textrnn.errors import TextrnnError

# textrnn.gates, .neurons and .memory_map import torch and matplotlib: imported where used.

JSON_DIGITS = 6  # decimals in --json: the gates agree with the layer to 1e-6


def _text(given: str | None) -> str:
    """The text argument, or all of standard input for ``-`` or none."""
    if given is not None and given != "-":
        return given
    text = sys.stdin.read()
    if not text.strip():
        raise TextrnnError("nothing to inspect: give some text or pipe it in")
    return text


def _emit(args: argparse.Namespace, line: str, numbers: dict) -> None:
    """The one-line summary (to stderr under --json), then the JSON if asked."""
    from textrnn.rounding import round_floats

    print(line, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(round_floats(numbers, JSON_DIGITS)))


def cmd_gates(args: argparse.Namespace) -> int:
    """``inspect gates``: heat maps of an LSTM's or GRU's gates over a text."""
    from textrnn import gates

    bundle = common.load(args)
    tokens, traces = gates.read(bundle, _text(args.text))
    out = Path(args.out)
    gates.plot(tokens, traces, out, units=args.units,
               title=f"{bundle.task} checkpoint {Path(args.checkpoint).name}")
    means = "  ".join(f"{g} {float(traces[0].gates[g].mean()):.2f}"
                      for g in gates.SHOWN[traces[0].cell] if g != "c")
    line = (f"wrote {out}: {len(traces)} x {traces[0].cell} ({traces[0].name}, "
            f"{traces[0].h.shape[1]} units) over {len(tokens)} tokens; mean gates of "
            f"{traces[0].title}: {means}")
    _emit(args, line, {"picture": str(out), "task": bundle.task,
                       **gates.to_json(tokens, traces, args.units)})
    return 0


def cmd_neurons(args: argparse.Namespace) -> int:
    """``inspect neurons``: the units of a char LM that track a property of the text."""
    from textrnn import neurons

    bundle = common.load(args, task="lm")
    text = Path(args.text).read_text(encoding="utf-8") if args.text else None
    found = neurons.find(bundle, text, max_chars=args.max_chars)
    out = Path(args.out)
    neurons.plot(found, out, chars=args.show_chars)
    lines = [f"wrote {out}"] + [
        f"{p.name}: unit {p.best_unit} of {p.layer} (correlation {p.correlation:+.2f}); "
        f"mean forget gate inside {p.forget_inside:.3f}, outside {p.forget_outside:.3f}; "
        f"unit {p.best_unit}'s own: inside {p.unit_forget_inside:.3f}, outside "
        f"{p.unit_forget_outside:.3f}"
        if p.forget_inside is not None else
        f"{p.name}: unit {p.best_unit} of {p.layer} (correlation {p.correlation:+.2f})"
        for p in found.properties] + [
        f"forget gate of {title}, inside / outside quotes: all {f.units} units "
        f"{f.inside:.3f} / {f.outside:.3f}; {f.differing} of {f.units} units differ by more "
        f"than {neurons.FORGET_DIFF}; most: "
        + ", ".join(f"unit {u.unit} {u.inside:.3f} / {u.outside:.3f}" for u in f.top)
        for title, f in found.forget_by_layer.items()]
    _emit(args, "\n".join(lines), {"picture": str(out), **neurons.to_json(found)})
    return 0


def cmd_memory(args: argparse.Namespace) -> int:
    """``inspect memory``: a QA model's attention over a story's sentences, per hop."""
    from textrnn import memory_map

    story = (memory_map.parse_story(sys.stdin.read().splitlines(), "<stdin>")
             if args.story == "-" else memory_map.read_story(args.story))
    bundle = common.load(args, task="qa")
    found = memory_map.read(bundle, story, args.question)
    out = Path(args.out)
    memory_map.plot(found, out)
    top = [max(range(len(row)), key=row.__getitem__) for row in found.weights if row]
    looked = ", ".join(f"{c}: sentence {found.dropped + i + 1} ({row[i]:.2f})"
                       for c, i, row in zip(found.columns, top, found.weights, strict=False))
    dropped = f"; {found.dropped} oldest not read" if found.dropped else ""
    line = (f"wrote {out}: {found.answer!r} (confidence {found.confidence:.2f}), "
            f"{found.arch} over {len(found.sentences)} sentences{dropped}; most attended: "
            f"{looked or 'none'}")
    _emit(args, line, {"picture": str(out), **memory_map.to_json(found)})
    return 0


def add_commands(commands) -> None:
    """``textrnn inspect gates``, ``inspect neurons`` and ``inspect memory``."""
    inspect = commands.add_parser(
        "inspect", help="pictures of a model's insides (gates, neurons, memory)",
        description="Pictures of what happens inside a trained model, and their numbers.")
    kinds = inspect.add_subparsers(dest="kind", required=True, metavar="WHAT",
                                   help="what to draw")

    g = kinds.add_parser(
        "gates", help="an LSTM's or GRU's gates over a text, as heat maps",
        description="Run a checkpoint (lm, tagger, classifier or seq2seq, with an LSTM or "
        "GRU layer) over a text and draw, for each layer and direction, its gates per token "
        "(LSTM i, f, o and the cell state c; GRU r, z) for its most active units. The "
        "numbers are recomputed from the layer's weights through the equation cells.")
    g.add_argument("--checkpoint", required=True, metavar="FILE", help="a .pt checkpoint")
    g.add_argument("text", nargs="?", help="the text to read (- or none: standard input)")
    g.add_argument("--out", default="gates.png", metavar="PNG",
                   help="the picture (default: %(default)s)")
    g.add_argument("--units", type=int, default=16,
                   help="units shown per map: those whose hidden state moves most over the "
                        "text (default: %(default)s)")
    g.add_argument("--json", action="store_true",
                   help="print every gate value of every unit as JSON")
    flags.add_device_flags(g)
    g.set_defaults(func=cmd_gates)

    n = kinds.add_parser(
        "neurons", help="the char-LM units that track quotes and line position",
        description="Find the units of a character language model whose activation best "
        "follows a property of the text (inside quotes; position in the line), after "
        "Karpathy, Johnson & Fei-Fei (2015), and draw the best one over a passage; for an "
        "LSTM also compare the forget gate inside and outside quotes.")
    n.add_argument("--checkpoint", required=True, metavar="FILE", help="a char lm checkpoint")
    n.add_argument("--text", metavar="FILE",
                   help="text to read (default: a passage with quotes, built in)")
    n.add_argument("--out", default="neurons.png", metavar="PNG",
                   help="the picture (default: %(default)s)")
    n.add_argument("--max-chars", type=int, default=20000,
                   help="read at most this many characters of --text (default: %(default)s)")
    n.add_argument("--show-chars", type=int, default=400,
                   help="characters drawn in the picture (default: %(default)s)")
    n.add_argument("--json", action="store_true", help="print the numbers as JSON")
    flags.add_device_flags(n)
    n.set_defaults(func=cmd_neurons)

    m = kinds.add_parser(
        "memory", help="a QA model's attention over a story, per hop, as a heat map",
        description="Answer a question about a story with a qa checkpoint and draw how much "
        "attention each sentence got: per hop (memn2n), per layer (qrn: each layer's share "
        "of the sentence in its final query), one column (lstm_reader), or for entnet "
        "the evidence and the gates of the 3 slots the question reads most. The story is "
        "read as the chat reads it.")
    m.add_argument("--checkpoint", required=True, metavar="FILE", help="a qa checkpoint")
    m.add_argument("--story", required=True, metavar="FILE",
                   help="one sentence a line (bAbI's numbered lines too); - for standard input")
    m.add_argument("--question", required=True, help='e.g. "Where is Mary?"')
    m.add_argument("--out", default="memory.png", metavar="PNG",
                   help="the picture (default: %(default)s)")
    m.add_argument("--json", action="store_true", help="print the weights as JSON")
    flags.add_device_flags(m)
    m.set_defaults(func=cmd_memory)
