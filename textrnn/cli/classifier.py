"""``train classifier``, its ``eval`` flags and ``classify``: flags and output over
:mod:`textrnn.pipelines.classifier`.

::

    textrnn data reviews --out data/reviews        # IMDB + Rotten Tomatoes, neg/pos
    textrnn data ratings --out data/ratings        # VADER's rated sentences, classes 1-5
    textrnn train classifier --data data/reviews/train.csv --out runs/reviews --threads 1
    textrnn eval --checkpoint runs/reviews/best.pt --data data/reviews/test.csv
    textrnn classify --checkpoint runs/reviews/best.pt "A total waste of time."
"""

from __future__ import annotations

import argparse
import json
import typing

from textrnn.cli import common, flags
from textrnn.rounding import round_floats

# The model, layer and pipeline modules import torch: each function below imports what it
# uses, so that building the parser (textrnn --help) does not.
if typing.TYPE_CHECKING:
    from textrnn.checkpoint import Bundle

TASK = "classifier"
HELP = "text classification (sentiment, 1-5 ratings): bi-RNN + pooling, or --model mlp"
# Read off the training data (ordinal, label_counts) or given by a flag of its own.
_SKIP = ("ordinal", "label_counts", "mlp_hidden", "lower")


def _parse_widths(text: str) -> list[int]:
    """``"256,64"`` -> [256, 64]; ``""`` or ``"0"`` -> [] (the perceptron)."""
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected widths like 256 or 256,64, got {text!r}") from None
    if any(w < 0 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be >= 0, got {text!r}")
    return [w for w in widths if w > 0]


def _parse_sources(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The data and model flags of ``train classifier``."""
    from textrnn.layers import IMPLS, LAYERS
    from textrnn.models.classifier import BAG_WEIGHTS, NETS, POOLINGS, ClassifierConfig

    choices = {"model": sorted(NETS), "cell": sorted(LAYERS), "pooling": sorted(POOLINGS),
               "impl": IMPLS, "bag": BAG_WEIGHTS}
    add = parser.add_argument
    add("--valid", metavar="FILE",
        help="validation file (default: valid.csv beside --data, else 10%% of --data)")
    add("--sources", type=_parse_sources, default=None, metavar="LIST",
        help="train only on texts from these sources, e.g. imdb (default: all)")
    flags.add_config_flags(parser, ClassifierConfig, skip=_SKIP, choices=choices)
    add("--mlp-hidden", type=_parse_widths, default=[256], metavar="WIDTHS",
        help=flags.field_comments(ClassifierConfig)["mlp_hidden"] + " (default: 256)")
    add("--cased", dest="lower", action="store_false",
        help="keep case (default: lower-case the words)")
    add("--min-count", type=int, default=2,
        help="drop words seen fewer times in training (default: %(default)s)")
    add("--max-vocab", type=int, default=30000,
        help="keep at most this many most frequent words (default: %(default)s)")
    add("--max-batch-tokens", type=int, default=None, metavar="N",
        help="also cap rows x longest text per batch (default: no cap)")
    parser.set_defaults(epochs=6, eval_every=0)


def train(args: argparse.Namespace) -> int:
    """``train classifier``: build the run through the pipeline, then fit it."""
    from textrnn.models.classifier import ClassifierConfig
    from textrnn.pipelines import classifier

    run = classifier.build(args.data, valid=args.valid, sources=args.sources,
                           min_count=args.min_count, max_vocab=args.max_vocab,
                           max_batch_tokens=args.max_batch_tokens, batch_size=args.batch_size,
                           seed=args.seed, **flags.config_kwargs(ClassifierConfig, args))
    return common.train(args, run)


def add_eval_flags(group: argparse._ArgumentGroup) -> None:
    """The ``eval`` flags for classifier checkpoints."""
    group.add_argument("--sources", type=_parse_sources, default=None, metavar="LIST",
                       help="classifier: evaluate only texts from these sources, e.g. imdb")


def evaluate(bundle: Bundle, args: argparse.Namespace) -> dict:
    """Accuracy (and MAE) on ``args.data``, overall and per source, with the majority
    baseline."""
    from textrnn.pipelines import classifier

    return classifier.evaluate(bundle, args.data, sources=args.sources,
                               batch_size=args.batch_size)


def format_eval(results: dict) -> str:
    """A table: per source, examples, accuracy (and MAE), and the majority baseline."""
    ordinal = "mae" in results["results"]["all"]
    head = f"{'source':<16} {'texts':>6} {'accuracy':>9}"
    head += f" {'MAE':>6}" if ordinal else ""
    head += f" | majority ({results['majority_label']})  {'accuracy':>8}"
    head += f" {'MAE':>6}" if ordinal else ""
    lines = [head]
    for name, r in results["results"].items():
        line = f"{name:<16} {r['examples']:>6} {r['accuracy']:>9.2%}"
        line += f" {r['mae']:>6.3f}" if ordinal else ""
        if "majority_accuracy" in r:
            pad = " " * (len(f" | majority ({results['majority_label']})  ") - 2)
            line += f" |{pad}{r['majority_accuracy']:>8.2%}"
            line += f" {r['majority_mae']:>6.3f}" if ordinal else ""
        lines.append(line)
    return "\n".join(lines)


def cmd_classify(args: argparse.Namespace) -> int:
    """``classify``: each text's label and every class's probability."""
    from textrnn.pipelines import classifier

    bundle = common.load(args, task=TASK)
    texts = common.texts_or_stdin(args.texts, "classify")
    for text, (label, probs) in zip(texts, classifier.classify(bundle, texts), strict=True):
        if args.json:
            print(json.dumps({"text": text, "label": label, "probs": round_floats(probs)}))
        else:
            shown = "  ".join(f"{name} {p:.3f}" for name, p in probs.items())
            print(f"{label}\t{shown}\t{text}")
    return 0


def add_commands(commands) -> None:
    """``textrnn classify --checkpoint FILE "text" ...``."""
    p = commands.add_parser(
        "classify", help="label texts with a classifier checkpoint",
        description="Print each text's label and the probability of every class. "
                    "With no texts (or '-'), read one text per line from standard input.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="a classifier checkpoint")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    p.add_argument("--json", action="store_true", help="one JSON object per text")
    flags.add_device_flags(p)
    p.set_defaults(func=cmd_classify)


__all__ = ["HELP", "TASK", "add_commands", "add_eval_flags", "add_train_flags", "evaluate",
           "format_eval", "train"]
