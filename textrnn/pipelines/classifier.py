"""One label per text (sentiment, 1-5 ratings), by a bi-RNN or the MLP baseline, as typed Python.

::

    from textrnn import checkpoint
    from textrnn.pipelines import classifier

    run = classifier.build("data/reviews/train.csv", hidden_size=128, max_tokens=400)
    # ... textrnn.train.fit(run.model, run.train_data, run.val_data, cfg, "runs/reviews")
    bundle = checkpoint.load("runs/reviews/best.pt", task="classifier")
    classifier.classify(bundle, ["A total waste of time."])  # [("neg", {"neg": 0.98, ...})]

``data`` is any CSV/TSV of text and label (:mod:`textrnn.data.sentiment`).
Validation is ``valid``, else ``valid.csv`` beside ``data`` when it exists,
else a fixed 10% of ``data`` (chosen by a hash of each text). Labels that are
all integers (``1``..``5``) are ordered: classes sort numerically and, with
more than two, :func:`evaluate` adds the mean absolute error in classes. It puts
the majority-class baseline (the most frequent training label) on the same
file next to the model's figures, per source when the file names sources.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from os import PathLike
from typing import Any

import torch

from textrnn import models
from textrnn.checkpoint import Bundle
from textrnn.collate import pad_sequences
from textrnn.data.classifier_batches import (
    encode_text,
    is_ordinal,
    label_vocab,
    make_batches,
    select_sources,
)
from textrnn.data.sentiment import LabeledText, read_labeled, split_of
from textrnn.data.split import validation_file
from textrnn.device import to_device
from textrnn.errors import DataError, TextrnnError
from textrnn.models.classifier import ClassifierConfig
from textrnn.pipelines import Run
from textrnn.tokenize import word_tokenize
from textrnn.vocab import Vocab

HOLDOUT_SALT = "textrnn-classifier-holdout"  # split_of(text, salt) == "valid": 10% of data
VALID_BATCH_SIZE = 256  # validation batches (no gradients, so large)


def _encoding(config: ClassifierConfig) -> dict[str, Any]:
    """How ``config``'s model reads text: the batcher's encoding arguments."""
    return {"lower": config.lower, "max_tokens": config.max_tokens,
            "head_tokens": config.head_tokens}


def _validation(data, valid, sources, train: list[LabeledText]):
    """``(train, valid, valid_path)`` from ``valid``, a sibling valid.csv, or a 10% hold-out."""
    path = validation_file(data, valid, sibling="valid.csv")
    if path is not None:
        return train, select_sources(read_labeled(path), sources, path), path
    held = [e for e in train if split_of(e.text, HOLDOUT_SALT) == "valid"]
    train = [e for e in train if split_of(e.text, HOLDOUT_SALT) != "valid"]
    if not held or not train:
        raise DataError("too few texts to hold 10% out for validation (or pass --valid)",
                        path=data)
    return train, held, data


def build(
    data: str | PathLike[str],
    *,
    valid: str | PathLike[str] | None = None,
    sources: Sequence[str] | None = None,
    min_count: int = 2,
    max_vocab: int | None = 30000,
    max_batch_tokens: int | None = None,
    batch_size: int = 32,
    seed: int = 1234,
    **settings: Any,
) -> Run:
    """Read the files, build word and label vocabularies from training only, batch.

    Args:
        data: the training texts (CSV/TSV of text and label).
        valid: the validation texts; default: ``valid.csv`` beside ``data``, else a
            fixed 10% of ``data``.
        sources: train (and validate) only on texts from these sources (None = all).
        min_count: drop words seen fewer times in training.
        max_vocab: keep at most this many most frequent words (None = all).
        max_batch_tokens: also cap rows x longest text per training batch.
        batch_size: texts per training batch.
        seed: the initial weights and the shuffle of every epoch.
        settings: :class:`~textrnn.models.classifier.ClassifierConfig` fields (``model``,
            ``hidden_size``, ``pooling``, ``lower``, ``max_tokens``, ...); the vocabulary
            sizes, ``ordinal`` and ``label_counts`` come from the data.

    Raises:
        DataError: on a malformed file, fewer than two labels, or bad settings.
    """
    train = select_sources(read_labeled(data), sources, data)
    train, held, valid_path = _validation(data, valid, sources, train)
    try:
        config = ClassifierConfig(vocab_size=0, num_classes=0, **settings)
    except TypeError as err:  # a setting that is not a ClassifierConfig field
        raise TextrnnError(str(err)) from None
    try:
        words = Vocab.from_tokens((word_tokenize(e.text, lower=config.lower) for e in train),
                                  min_count=min_count, max_size=max_vocab)
    except ValueError as err:
        raise DataError(f"bad vocabulary settings: {err}") from None
    labels = label_vocab(e.label for e in train)
    if len(labels) < 2:
        raise DataError(f"need at least 2 labels to classify, found {labels.itos[:5]}", path=data)
    config.vocab_size, config.num_classes = len(words), len(labels)
    config.ordinal = is_ordinal(labels)
    counts = Counter(e.label for e in train)
    config.label_counts = [counts[name] for name in labels.itos]
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    try:
        model = models.build("classifier", config, {"words": words, "labels": labels})
    except ValueError as err:
        raise DataError(f"bad model settings: {err}") from None
    encoding = _encoding(config)
    train_data = make_batches(train, words, labels, batch_size, data, **encoding, shuffle=True,
                              seed=seed, max_batch_tokens=max_batch_tokens)
    val_data = make_batches(held, words, labels, VALID_BATCH_SIZE, valid_path, **encoding)
    return Run(model, train_data, val_data)


def _majority(config: ClassifierConfig, labels: Vocab) -> str | None:
    """The most frequent training label (the first on ties), or None if not recorded."""
    counts = config.label_counts
    return labels.itos[max(range(len(counts)), key=counts.__getitem__)] if counts else None


def evaluate(bundle: Bundle, data: str | PathLike[str], *, sources: Sequence[str] | None = None,
             batch_size: int = 32) -> dict:
    """Accuracy (and MAE for ordered labels) on ``data``, overall and per source, each next
    to the majority-class baseline: always the most frequent training label.

    Args:
        bundle: a ``classifier`` checkpoint.
        data: labelled texts (CSV/TSV).
        sources: evaluate only texts from these sources (None = all).
        batch_size: texts per batch.

    Returns:
        ``{"data", "model", "majority_label", "labels", "results"}``; ``results`` maps
        ``"all"`` (and each source, when there are several) to ``examples``,
        ``accuracy``, ``loss``, ``majority_accuracy`` and, if ordinal, ``mae`` and
        ``majority_mae``.

    Raises:
        DataError: naming the file and line of a label the model does not know.
    """
    examples = select_sources(read_labeled(data), sources, data)
    words, labels, config = bundle.vocabs["words"], bundle.vocabs["labels"], bundle.config
    majority = _majority(config, labels)
    gold = torch.tensor([labels.stoi.get(e.label, -1) for e in examples])  # (N,)
    probs = torch.zeros(len(examples), len(labels))  # (N, C)
    for batch in make_batches(examples, words, labels, batch_size, data, **_encoding(config)):
        predictions = bundle.model.predict(to_device(batch, bundle.device))
        probs[batch["index"]] = torch.tensor([p["probs"] for p in predictions])
    pred = probs.argmax(-1)  # (N,)
    nll = -probs.gather(1, gold.unsqueeze(1)).squeeze(1).clamp(min=1e-12).log()  # (N,)
    groups = {"all": list(range(len(examples)))}
    found = sorted({e.source for e in examples if e.source})
    if len(found) > 1:
        groups.update({s: [i for i, e in enumerate(examples) if e.source == s] for s in found})
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
    return {"data": str(data), "model": config.model, "majority_label": majority,
            "labels": list(labels.itos), "results": results}


def classify(bundle: Bundle, texts: Sequence[str]) -> list[tuple[str, dict[str, float]]]:
    """``(label, {label: probability})`` for each text, by ``bundle``'s model."""
    words, labels, config = bundle.vocabs["words"], bundle.vocabs["labels"], bundle.config
    ids, lengths = pad_sequences([encode_text(t, words, **_encoding(config)) for t in texts])
    predictions = bundle.model.predict(to_device({"ids": ids, "lengths": lengths},
                                                 bundle.device))
    return [(labels.itos[p["label_id"]], dict(zip(labels.itos, p["probs"], strict=True)))
            for p in predictions]


__all__ = ["build", "classify", "evaluate"]
