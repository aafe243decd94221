"""Translation: an attention encoder-decoder on sentence pairs, as typed Python.

::

    from textrnn import checkpoint
    from textrnn.pipelines import seq2seq

    run = seq2seq.build("data/bible/en-bbe_fr-lsg_25/train.tsv", hidden_size=128, max_vocab=4000)
    # ... textrnn.train.fit(run.model, run.train_data, run.val_data, cfg, "runs/mt")
    bundle = checkpoint.load("runs/mt/best.pt", task="seq2seq")
    seq2seq.translate(bundle, ["And God said, Let there be light."], beam_size=5)[0].text

The data is any UTF-8 TSV of ``source<TAB>target`` lines
(:mod:`textrnn.data.pairs`). Validation comes from ``valid``, else from a
``valid.tsv`` beside a ``train.tsv``, else the last 5% of the lines. Each side
gets its own word vocabulary, from the training pairs only. :func:`evaluate`
reports corpus BLEU and chrF (sacrebleu, default settings, on detokenised text
against the raw references) for greedy search and for beam search.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from sacrebleu.metrics import BLEU, CHRF

from textrnn import models
from textrnn.checkpoint import Bundle
from textrnn.data.pairs import (
    PairBatches,
    build_vocabs,
    detokenize,
    encode_pairs,
    read_pairs,
    tokenize,
)
from textrnn.data.split import holdout, validation_file
from textrnn.decode import Hypothesis, translate_batches
from textrnn.errors import DataError, TextrnnError
from textrnn.models.seq2seq import Seq2SeqConfig
from textrnn.pipelines import Run
from textrnn.progress import Progress

log = logging.getLogger(__name__)
VALID_FRACTION = 0.05  # without a valid file, the last 5% of the training lines
VALID_BATCH_SIZE = 128  # teacher-forced validation batches (no search, so large)


@dataclass
class Translation:
    """One translated sentence.

    Attributes:
        text: the translation, detokenised.
        source: the source tokens as the model read them (unknown words included).
        tokens: the target tokens, without ``<bos>``/``<eos>``.
        hypothesis: the search's result (ids, log-probability, score, attention).
    """

    text: str
    source: list[str]
    tokens: list[str]
    hypothesis: Hypothesis


def build(
    data: str | PathLike[str],
    *,
    valid: str | PathLike[str] | None = None,
    min_count: int = 2,
    max_vocab: int = 16000,
    batch_size: int = 64,
    seed: int = 1234,
    **settings: Any,
) -> Run:
    """Read the pairs, build both vocabularies from the training pairs, batch, make the model.

    Args:
        data: the training pairs (TSV).
        valid: the validation pairs; default: ``valid.tsv`` beside a ``train.tsv``, else
            the last 5% of ``data``.
        min_count: drop words seen fewer times in training.
        max_vocab: most words kept per side, most frequent first.
        batch_size: training pairs per batch.
        seed: the initial weights and the shuffle of every epoch.
        settings: :class:`~textrnn.models.seq2seq.Seq2SeqConfig` fields (``attention``,
            ``hidden_size``, ``lower``, ...); the vocabulary sizes come from the data.

    Raises:
        DataError: on a malformed or too small data file.
        TextrnnError: on a bad setting.
    """
    if min_count < 1 or max_vocab < 0:
        raise TextrnnError(f"need min_count >= 1 and max_vocab >= 0, got {min_count} and "
                           f"{max_vocab}")
    data = Path(data)
    train = read_pairs(data)
    sibling = "valid.tsv" if data.name == "train.tsv" else None  # only beside a train.tsv
    valid_file = validation_file(data, valid, sibling=sibling)
    if valid_file is None:
        train, valid_pairs = holdout(train, data, VALID_FRACTION, what="pairs")
    else:
        valid_pairs = read_pairs(valid_file)
    lower = bool(settings.get("lower", False))
    vocabs = build_vocabs(train, lower, min_count=min_count, max_size=max_vocab)
    src_vocab, tgt_vocab = vocabs["source"], vocabs["target"]
    try:
        config = Seq2SeqConfig(src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab),
                               **settings)
    except TypeError as err:  # a setting that is not a Seq2SeqConfig field
        raise TextrnnError(str(err)) from None
    torch.manual_seed(seed)  # the initial weights depend on the seed only
    try:
        model = models.build("seq2seq", config, vocabs)
    except ValueError as err:  # an unknown cell or attention
        raise TextrnnError(str(err)) from None
    ids = dict(bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id)
    train_data = PairBatches(encode_pairs(train, src_vocab, tgt_vocab, lower), **ids,
                             batch_size=batch_size, shuffle=True, seed=seed)
    val_data = PairBatches(encode_pairs(valid_pairs, src_vocab, tgt_vocab, lower), **ids,
                           batch_size=VALID_BATCH_SIZE)
    return Run(model, train_data, val_data)


def _source_tokens(bundle: Bundle, sentences: list[str]) -> list[list[str]]:
    tokens = [tokenize(sentence, bundle.config.lower) for sentence in sentences]
    for i, sentence_tokens in enumerate(tokens):
        if not sentence_tokens:
            raise DataError("empty source sentence", path="input", line=i + 1)
    return tokens


def _search(bundle: Bundle, sources: list[list[str]], *, beam_size: int, batch_size: int,
            max_len: int | None, length_penalty: float, return_attention: bool,
            progress: bool) -> list[Translation]:
    """Decode tokenised sources; see :func:`translate`."""
    if beam_size < 1:
        raise TextrnnError(f"the beam size must be at least 1, got {beam_size}")
    src, tgt = bundle.vocabs["source"], bundle.vocabs["target"]
    bar = None
    if progress:
        desc = "greedy" if beam_size == 1 else f"beam {beam_size}"
        bar = Progress(-(-len(sources) // batch_size), desc=desc)
    with bar or contextlib.nullcontext():
        hyps = translate_batches(
            bundle.model, [src.encode(tokens) for tokens in sources], bos_id=tgt.bos_id,
            eos_id=tgt.eos_id, banned=(tgt.pad_id, tgt.bos_id), batch_size=batch_size,
            beam_size=beam_size, max_len=max_len, length_penalty=length_penalty,
            return_attention=return_attention, progress=bar)
    out = []
    for tokens, hyp in zip(sources, hyps, strict=True):
        words = tgt.decode(hyp.tokens)
        out.append(Translation(detokenize(words), tokens, words, hyp))
    return out


def translate(
    bundle: Bundle,
    sentences: list[str],
    *,
    beam_size: int = 5,
    batch_size: int = 32,
    max_len: int | None = None,
    length_penalty: float = 1.0,
    return_attention: bool = False,
    progress: bool = False,
) -> list[Translation]:
    """Translate sentences with a loaded seq2seq checkpoint.

    Words the source vocabulary lacks are read as ``<unk>``; a note names them.

    Args:
        bundle: from ``checkpoint.load(path, task="seq2seq")``.
        sentences: source-language text, one sentence each.
        beam_size: 1 = greedy search.
        batch_size: sentences decoded together.
        max_len: most output tokens; None = 2 x source length + 10 (see :mod:`textrnn.decode`).
        length_penalty: rank by log p / length ** this; 0 = raw log p.
        return_attention: keep each output token's attention weights (``hypothesis.attention``).
        progress: show a progress bar over the batches.

    Returns:
        One :class:`Translation` per sentence, in order.

    Raises:
        DataError: on an empty sentence. TextrnnError: on a beam size below 1.
    """
    sources = _source_tokens(bundle, sentences)
    vocab = bundle.vocabs["source"]
    unknown = sorted({t for tokens in sources for t in tokens if t not in vocab.stoi})
    if unknown:
        log.info("not in the source vocabulary (read as <unk>): %s", " ".join(unknown))
    return _search(bundle, sources, beam_size=beam_size, batch_size=batch_size, max_len=max_len,
                   length_penalty=length_penalty, return_attention=return_attention,
                   progress=progress)


def evaluate(
    bundle: Bundle,
    data: str | PathLike[str],
    *,
    beam_size: int = 5,
    batch_size: int = 32,
    max_len: int | None = None,
    length_penalty: float = 1.0,
    limit: int | None = None,
    progress: bool = False,
) -> dict:
    """Test loss, then BLEU and chrF of greedy and beam translations of ``data``.

    Args:
        data: a TSV of pairs. beam_size: the beam search's size; 1 = greedy only.
        limit: evaluate the first ``limit`` pairs only (None or 0 = all).
        Others: as :func:`translate`.

    Returns:
        ``pairs``, ``loss``, ``ppl``, ``data``, and per search (``greedy``, ``beam``)
        ``beam_size``, ``bleu``, ``chrf``, ``seconds`` and three ``examples``.
    """
    pairs = read_pairs(data)[: limit or None]
    src_vocab, tgt_vocab = bundle.vocabs["source"], bundle.vocabs["target"]
    lower = bundle.config.lower
    batches = PairBatches(encode_pairs(pairs, src_vocab, tgt_vocab, lower), tgt_vocab.bos_id,
                          tgt_vocab.eos_id, batch_size)
    metrics = bundle.evaluate(batches)
    refs = [p.tgt for p in pairs]
    results = {"pairs": len(pairs), "loss": metrics["val_loss"], "ppl": metrics["val_ppl"],
               "data": str(data)}
    sources = _source_tokens(bundle, [p.src for p in pairs])
    for name, beam in (("greedy", 1), ("beam", beam_size)):
        if name == "beam" and beam <= 1:
            continue
        start = time.monotonic()
        out = _search(bundle, sources, beam_size=beam, batch_size=batch_size, max_len=max_len,
                      length_penalty=length_penalty, return_attention=False, progress=progress)
        hyps = [t.text for t in out]
        results[name] = {
            "beam_size": beam,
            "bleu": BLEU().corpus_score(hyps, [refs]).score,
            "chrf": CHRF().corpus_score(hyps, [refs]).score,
            "seconds": round(time.monotonic() - start, 1),
            "examples": [{"source": p.src, "reference": p.tgt, "translation": h}
                         for p, h in list(zip(pairs, hyps, strict=True))[:3]],
        }
    return results


# The map's title shows the source sentence, cut to what fits above a short sentence's map.
_TITLE_CHARS = 60


def _shorten(text: str, limit: int = _TITLE_CHARS) -> str:
    """``text``, cut at a word to at most ``limit`` characters with "…" if it was longer.

    >>> _shorten("one two three", 9), _shorten("one two", 9)
    ('one two…', 'one two')
    """
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def attention_figure(translation: Translation):
    """A translation's attention weights as a heat map: output tokens down (``<eos>``
    last if the search ended with it), source tokens across, a colour bar for the
    weights and the source sentence as the title.

    Returns:
        A matplotlib ``Figure`` (not drawn on screen; :func:`save_attention` writes it).

    Raises:
        TextrnnError: if the translation holds no attention weights (empty, or not
            asked for with ``return_attention``).
    """
    weights = translation.hypothesis.attention  # (T, S)
    if weights is None:
        raise TextrnnError("the translation has no attention weights: no attention map to draw")
    target = list(translation.tokens)
    if len(weights) > len(target):
        target.append("<eos>")
    from textrnn import figures  # matplotlib: only the map needs it

    source = translation.source
    # Room for the tick labels, the title and the colour bar around 0.4 x 0.35 in cells.
    fig = figures.figure(2.6 + 0.4 * len(source), 1.8 + 0.35 * len(target))
    ax = fig.add_subplot()
    image = ax.imshow(weights.float().numpy(), cmap="Greys", vmin=0.0, vmax=1.0,
                      aspect="auto")
    ax.set_xticks(range(len(source)), [figures.token_label(t) for t in source], rotation=90)
    ax.set_yticks(range(len(target)), [figures.token_label(t) for t in target])
    ax.set_xlabel("source tokens")
    ax.set_ylabel("output tokens")
    ax.set_title(_shorten(" ".join(source)), fontsize="medium")
    fig.colorbar(image, ax=ax, label="attention weight", shrink=0.9)
    return fig


def save_attention(path: str | PathLike[str], translation: Translation) -> Path:
    """Write :func:`attention_figure` to ``path`` as a PNG, atomically.

    Returns:
        ``path`` as a Path.

    Raises:
        TextrnnError: if the translation holds no attention weights.
    """
    from textrnn import figures

    return figures.save_png(attention_figure(translation), path)


__all__ = ["Translation", "attention_figure", "build", "evaluate", "save_attention",
           "translate"]
