"""Named-entity tagging of CoNLL column files (CoNLL-2003 English), as typed Python.

::

    from textrnn import checkpoint
    from textrnn.pipelines import tagger

    run = tagger.build("data/conll2003/train.txt", crf=True)
    # ... textrnn.train.fit(run.model, run.train_data, run.val_data, cfg, "runs/ner")
    bundle = checkpoint.load("runs/ner/best.pt", task="tagger")
    tagger.tag(bundle, [["Vincent", "and", "Jules", "take", "the", "place"]])

``data`` is any CoNLL column file (word first, BIO tag last; IOB1 files are
converted to BIO2 when read). Validation is ``valid``, else ``valid.txt``
beside ``data``, else the last 10% of its sentences. Vocabularies (words,
characters, tags) come from the training file only. ``best.pt`` is the step
with the best validation entity F1 (seqeval, conlleval's reading of the tags).
An ensemble (:func:`join_ensemble`) averages several taggers' scores, and
``agreement`` (:func:`document_agreement`) pulls a document's repeated words
towards one entity type.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import MISSING, fields, replace
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from textrnn import checkpoint, models
from textrnn.checkpoint import Bundle
from textrnn.data.conll import TaggedSentence, read_tagged
from textrnn.data.optional import require_seqeval
from textrnn.data.split import holdout, validation_file
from textrnn.data.tagger_batches import ENCODING, TaggerBatches, build_vocabs
from textrnn.device import eval_mode, to_device
from textrnn.errors import DataError, TextrnnError
from textrnn.models.tagger import TaggerBase, TaggerConfig, split_sizes, tag_types, tagging_scores
from textrnn.models.tagger_ensemble import TaggerEnsemble, VocabBridge
from textrnn.pipelines import Run
from textrnn.vocab import Vocab

log = logging.getLogger(__name__)
VALID_BATCH_SIZE = 128  # validation sentences per batch (no backward pass, so large)
# TaggerConfig fields read off the data, not settings.
_FROM_DATA = ("vocab_size", "num_chars", "tags")


def batches(sentences: Sequence[TaggedSentence], vocabs: dict[str, Vocab],
            config: TaggerConfig, batch_size: int, **kwargs: Any) -> TaggerBatches:
    """:class:`~textrnn.data.tagger_batches.TaggerBatches` encoded as the model of
    ``config`` reads them: its word keys, characters per word, context and LM targets.

    Args:
        sentences, vocabs, batch_size: as for ``TaggerBatches``.
        config: the model's settings.
        kwargs: ``TaggerBatches``' training arguments (``shuffle``, ``unk_replace``,
            ``word_dropout``, ``seed``, ``path``).
    """
    encoding = {name: getattr(config, name) for name in ENCODING}
    # With the LM objective (TaggerConfig.lm_weight) batches carry its targets.
    lm_vocab = config.lm_vocab if config.lm_weight else 0
    return TaggerBatches(sentences, vocabs, batch_size, **encoding, lm_vocab=lm_vocab, **kwargs)


def build(
    data: str | PathLike[str],
    *,
    valid: str | PathLike[str] | None = None,
    train_also: Sequence[str | PathLike[str]] = (),
    min_count: int = 1,
    unk_replace: float = 0.5,
    word_dropout: float = 0.0,
    batch_size: int = 32,
    seed: int = 1234,
    **settings: Any,
) -> Run:
    """Read the files, build vocabularies from the training split, batch, make the model.

    Args:
        data: the training sentences (a CoNLL file).
        valid: the validation file; default: ``valid.txt`` beside ``data`` if there,
            else the last 10% of ``data``'s sentences.
        train_also: more CoNLL files to train on as well, e.g. ``valid.txt`` for a
            final model trained on train+valid (then validation is not held out, and
            ``last.pt`` is the model to take: a note says so).
        min_count: words seen fewer times in training become ``<unk>``.
        unk_replace: the probability that a training singleton is read as ``<unk>``.
        word_dropout: the probability that any training word is read as ``<unk>``.
        batch_size: training rows (sentences, or document pieces) per batch.
        seed: the initial weights, the shuffle and the word replacements.
        settings: :class:`~textrnn.models.tagger.TaggerConfig` fields (``crf``,
            ``hidden_size``, ``context``, ...); the sizes and tags come from the data.

    Raises:
        DataError: on a malformed file, or a validation tag the training data lacks.
        TextrnnError: on a bad setting.
    """
    require_seqeval()  # validation scores need it: say so now, not after the first epoch
    for name, p in (("unk_replace", unk_replace), ("word_dropout", word_dropout)):
        if not 0.0 <= p <= 1.0:
            raise TextrnnError(f"--{name.replace('_', '-')} is a probability, in [0, 1]; "
                               f"got {p}")
    settable = {f.name for f in fields(TaggerConfig)} - set(_FROM_DATA)
    unknown = sorted(set(settings) - settable)
    if unknown:
        raise TypeError(f"unknown tagger settings: {', '.join(unknown)}")
    defaults = {f.name: f.default for f in fields(TaggerConfig) if f.default is not MISSING}
    train = read_tagged(data)
    valid_path = validation_file(data, valid, sibling="valid.txt")
    if valid_path is None:
        valid_path = Path(data)
        train, valid_sentences = holdout(train, data, what="sentences")
    else:
        valid_sentences = read_tagged(valid_path)
    for extra in train_also:
        # Number the extra file's documents after ours, so none joins the one before it.
        first = train[-1].doc + 1 if train else 0
        train = train + [replace(s, doc=first + s.doc) for s in read_tagged(extra)]
        if Path(extra).resolve() == valid_path.resolve():
            log.info("%s is both trained on and the validation file; its scores are not "
                     "held out, take last.pt", extra)
    word_keys = {name: settings.get(name, defaults[name]) for name in ("lowercase", "zero_digits")}
    vocabs = build_vocabs(train, **word_keys, min_count=min_count)
    try:
        config = TaggerConfig(vocab_size=len(vocabs["words"]), num_chars=len(vocabs["chars"]),
                              tags=list(vocabs["tags"].itos), **settings)
    except ValueError as err:
        raise TextrnnError(f"bad model settings: {err}") from None
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    model = models.build("tagger", config, vocabs)
    train_data = batches(train, vocabs, config, batch_size, shuffle=True,
                         unk_replace=unk_replace, word_dropout=word_dropout, seed=seed,
                         path=str(data))
    val_data = batches(valid_sentences, vocabs, config, VALID_BATCH_SIZE, path=str(valid_path))
    return Run(model, train_data, val_data)


def tag(bundle: Bundle, sentences: Sequence[Sequence[str]], *, batch_size: int = 64,
        docs: Sequence[int] | None = None, agreement: float = 0.0) -> list[list[str]]:
    """Tag tokenised sentences with a loaded tagger (or ensemble); one tag name per token.

    Args:
        bundle: a tagger checkpoint (``checkpoint.load(path, task="tagger")``), or an
            ensemble from :func:`join_ensemble`.
        sentences: the sentences' tokens (e.g. from
            :func:`textrnn.tokenize.word_tokenize`); none may be empty.
        batch_size: rows per batch.
        docs: each sentence's document number, for a model trained with document
            context and for ``agreement``; without it all the sentences are read as
            one document.
        agreement: beta of :func:`document_agreement`; 0 tags each sentence alone.

    Returns:
        For each sentence, its tags (``"O"``, ``"B-PER"``, ...), one per token.

    Raises:
        TextrnnError: on an empty sentence or a negative ``agreement``.
    """
    if agreement < 0:
        raise TextrnnError(f"--agreement is a weight >= 0; got {agreement}")
    if not all(sentences):
        raise TextrnnError("cannot tag an empty sentence")
    config, model = bundle.config, bundle.model
    docs = docs if docs is not None else [0] * len(sentences)
    records = [TaggedSentence(list(tokens), [], doc=doc)
               for tokens, doc in zip(sentences, docs, strict=True)]
    data = batches(records, bundle.vocabs, config, batch_size)
    scored = []  # (batch, P (B, T, K)) of every batch
    with eval_mode(model):
        for batch in data:
            batch = to_device(batch, bundle.device)
            scored.append((batch, model(batch).float()))
    if agreement:
        scored = document_agreement(model, scored, data, records, agreement)
    out: list[list[str]] = [[] for _ in records]
    for batch, emissions in scored:
        paths = model.decode(emissions, batch["lengths"])
        for u, path in zip(batch["index"].tolist(), paths, strict=True):
            unit = data.units[u]
            pieces = split_sizes([config.tags[t] for t in path], data.splits[u])
            for i, tags in zip(unit, pieces, strict=True):
                out[i] = tags
    return out


def document_agreement(model: TaggerBase, scored: list[tuple[dict, torch.Tensor]],
                       data: TaggerBatches, records: Sequence[TaggedSentence], beta: float
                       ) -> list[tuple[dict, torch.Tensor]]:
    """A second stage that pulls a document's repeated words towards one entity type.

    A name tends to keep its type within a story ("Tyson" late in a report is the
    "Mike Tyson" of its first line), which a model reading one sentence at a time
    cannot see. So each token's tag scores get ``beta`` times the mean type
    probabilities (:meth:`~textrnn.models.tagger.TaggerBase.type_probabilities`) of
    every occurrence of the same word, in any case, in its document: ``P'[t, k] =
    P[t, k] + beta * q(doc, lower(w_t))[type(k)]``. It is the prediction aggregation
    of Krishnan & Manning 2006 and Ratinov & Roth 2009, on a neural tagger's
    probabilities.

    Args:
        model: the tagger (or ensemble) that gave the scores.
        scored: ``(batch, P (B, T, K))`` for each batch of ``data``.
        data: the batches' :class:`~textrnn.data.tagger_batches.TaggerBatches`, for
            each row's sentences.
        records: the sentences, with their ``doc``.
        beta: the weight of the document's mean; 0 changes nothing.

    Returns:
        ``scored`` with each ``P`` replaced by ``P'``.
    """
    # The sums are small (a few floats a word): they are kept on the CPU.
    groups: dict[tuple[int, str], int] = {}  # (document, lower-cased word) -> group id
    group_ids = []  # per batch: (B, T) long, each token's group, -1 at padding
    real_ids, real_probs = [], []  # every real token's group and type probabilities
    for batch, emissions in scored:
        g = torch.full(emissions.shape[:2], -1, dtype=torch.long)  # (B, T)
        for r, u in enumerate(batch["index"].tolist()):
            unit = data.units[u]
            row = [groups.setdefault((records[unit[0]].doc, w.lower()), len(groups))
                   for i in unit for w in records[i].tokens]
            g[r, :len(row)] = torch.tensor(row)
        group_ids.append(g)
        probs = model.type_probabilities(emissions, batch["lengths"]).cpu()  # (B, T, C)
        real_ids.append(g[g >= 0])  # (N,)
        real_probs.append(probs[g >= 0])  # (N, C)
    if not groups:  # no tokens at all
        return scored
    ids, probs = torch.cat(real_ids), torch.cat(real_probs)  # (N,), (N, C)
    sums = probs.new_zeros(len(groups), probs.shape[1]).index_add_(0, ids, probs)  # (G, C)
    q = sums / torch.bincount(ids, minlength=len(groups)).unsqueeze(1)  # (G, C) group means
    _, column = tag_types(model.config.tags)
    out = []
    for (batch, emissions), g in zip(scored, group_ids, strict=True):
        bias = q[g.clamp_min(0)][..., column].to(emissions.device)  # (B, T, K)
        out.append((batch, emissions + beta * bias))  # padding's bias is never read
    return out


def join_ensemble(bundle: Bundle, paths: Sequence[str | PathLike[str]], *,
                  first: str | PathLike[str] = "the first checkpoint") -> Bundle:
    """``bundle`` with the taggers in ``paths`` joined to it as a
    :class:`~textrnn.models.tagger_ensemble.TaggerEnsemble`, on ``bundle``'s device.

    Every member must be a tagger with the same tags, output layer and encoding
    settings as ``bundle`` (the checkpoint ``first``, named in errors), and words and
    characters that ``bundle``'s vocabularies all hold (the same data, or less of it:
    a train-only member joins a train+valid ``first``, through a
    :class:`~textrnn.models.tagger_ensemble.VocabBridge`).

    Raises:
        TextrnnError: one line naming the file that differs, and how.
    """
    if not paths:
        return bundle
    device = bundle.device
    members = [bundle.model]
    for path in paths:
        other = checkpoint.load(path, map_location=device, task="tagger")
        differs = [name for name in ("words", "chars")
                   if not set(other.vocabs[name].itos) <= set(bundle.vocabs[name].itos)]
        differs += ["tags"] if other.vocabs["tags"].itos != bundle.vocabs["tags"].itos else []
        differs += [name for name in (*ENCODING, "crf")
                    if getattr(other.config, name) != getattr(bundle.config, name)]
        if differs:
            raise TextrnnError(f"{path}: cannot join {first} in an ensemble: its "
                               f"{', '.join(differs)} differ (train both on the same data "
                               "with the same word, context and output settings, or give "
                               "the one trained on more data as --checkpoint)")
        model = other.model
        if any(other.vocabs[n].itos != bundle.vocabs[n].itos for n in ("words", "chars")):
            word_map, char_map = (
                torch.tensor([other.vocabs[n].stoi.get(t, other.vocabs[n].unk_id)
                              for t in bundle.vocabs[n].itos], device=device)
                for n in ("words", "chars"))
            model = VocabBridge(model, word_map, char_map)
        members.append(model)
    joined = TaggerEnsemble(members).eval()
    return Bundle(task="tagger", model=joined, vocabs=bundle.vocabs, config=bundle.config,
                  metrics=bundle.metrics, step=bundle.step)


def ensemble(paths: Sequence[str | PathLike[str]], map_location: Any = "cpu") -> Bundle:
    """Load the tagger checkpoints ``paths`` as one ensemble (see :func:`join_ensemble`);
    the first must hold every word and character the others know."""
    if not paths:
        raise TextrnnError("an ensemble needs at least one checkpoint")
    bundle = checkpoint.load(paths[0], map_location=map_location, task="tagger")
    return join_ensemble(bundle, paths[1:], first=paths[0])


def evaluate(bundle: Bundle, data: str | PathLike[str], *, agreement: float = 0.0,
             batch_size: int = 32) -> dict:
    """Entity-level scores per type and overall, and token accuracy, on a CoNLL file.

    Args:
        bundle: a tagger checkpoint, or an ensemble (:func:`join_ensemble`).
        data: the CoNLL file; each ``-DOCSTART-`` document is one document for
            ``agreement`` and document context.
        agreement: beta of :func:`document_agreement`; 0 = off.
        batch_size: rows per batch.

    Returns:
        :func:`~textrnn.models.tagger.tagging_scores`' ``types``, ``precision``,
        ``recall``, ``f1``, ``support`` and ``token_accuracy``, then ``sentences``,
        ``tokens``, ``output`` (``"crf"`` or ``"softmax"``), ``models`` (1, or the
        ensemble's size) and ``data``.

    Raises:
        DataError: on a malformed file or tags the model does not know.
    """
    require_seqeval()
    sentences = read_tagged(data)
    gold = [s.tags for s in sentences]
    unknown = {t for tags in gold for t in tags} - set(bundle.config.tags)
    if unknown:
        raise DataError(f"tags not known to the model: {', '.join(sorted(unknown))}",
                        path=data)
    predicted = tag(bundle, [s.tokens for s in sentences], batch_size=batch_size,
                    docs=[s.doc for s in sentences], agreement=agreement)
    return {**tagging_scores(gold, predicted), "sentences": len(sentences),
            "tokens": sum(map(len, gold)), "output": "crf" if bundle.config.crf else "softmax",
            "models": (len(bundle.model.models) if isinstance(bundle.model, TaggerEnsemble)
                       else 1),
            "data": str(data)}


__all__ = ["batches", "build", "document_agreement", "ensemble", "evaluate", "join_ensemble",
           "tag"]
