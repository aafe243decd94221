"""Translation: an attention encoder-decoder on sentence pairs, as typed Python.

::

    from textrnn import checkpoint
    from textrnn.pipelines import seq2seq

    run = seq2seq.build("data/bible/en-bbe_fr-lsg/train.tsv", vocab_size=4000, max_len=60)
    # ... textrnn.train.fit(run.model, run.train_data, run.val_data, cfg, "runs/mt")
    bundle = checkpoint.load("runs/mt/best.pt", task="seq2seq")
    seq2seq.translate(bundle, ["And God said, Let there be light."], beam_size=5)[0].text

The data is any UTF-8 TSV of ``source<TAB>target`` lines
(:mod:`textrnn.data.pairs`). Validation comes from ``valid``, else from a
``valid.tsv`` beside a ``train.tsv``, else the last 5% of the lines. Each side
gets its own vocabulary, from the training pairs only: a sentencepiece
subword model of ``vocab_size`` pieces (:mod:`textrnn.subword`, the default)
or words (``vocab="word"``). ``max_len`` leaves the longer training pairs out
(validation and test are never cut). :func:`evaluate` reports corpus BLEU and
chrF (sacrebleu, default settings, on detokenised text against the raw
references) for greedy search and for beam search.
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
from textrnn.data.pairs import Pair, PairBatches, build_vocabs, read_pairs
from textrnn.data.split import holdout, validation_file
from textrnn.decode import Hypothesis, translate_batches
from textrnn.errors import DataError, TextrnnError
from textrnn.models.seq2seq import Seq2SeqConfig
from textrnn.pipelines import Run
from textrnn.progress import Progress
from textrnn.subword import VOCABS, SubwordVocab, TextCodec
from textrnn.vocab import Vocab

log = logging.getLogger(__name__)
VALID_FRACTION = 0.05  # without a valid file, the last 5% of the training lines
VALID_BATCH_SIZE = 128  # teacher-forced validation batches (no search, so large)
# Searches never repeat a 4-gram of pieces (an under-trained model loops otherwise); chosen on
# the validation books.
NO_REPEAT_NGRAM = 4
COVERAGE_PENALTY = 0.0  # beam search's coverage term, off unless asked for


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


def build_vocabs_for(train: list[Pair], vocab: str, vocab_size: int, min_count: int,
                     max_vocab: int, lower: bool) -> dict[str, Vocab]:
    """``{"source": ..., "target": ...}`` from the training pairs: subword models of
    ``vocab_size`` pieces, or word vocabularies (``min_count``, ``max_vocab``)."""
    if vocab == "word":
        return build_vocabs(train, lower, min_count=min_count, max_size=max_vocab)
    model_type = "unigram" if vocab == "subword" else vocab
    case = str.lower if lower else str
    return {side: SubwordVocab.train((case(getattr(p, attr)) for p in train), vocab_size,
                                     model_type)
            for side, attr in (("source", "src"), ("target", "tgt"))}


def encode(pairs: list[Pair], vocabs: dict[str, Vocab],
           lower: bool) -> list[tuple[list[int], list[int]]]:
    """(source ids, target ids) of every pair, without specials."""
    src, tgt = TextCodec(vocabs["source"], lower), TextCodec(vocabs["target"], lower)
    return [(src.encode_text(p.src), tgt.encode_text(p.tgt)) for p in pairs]


def build(
    data: str | PathLike[str],
    *,
    valid: str | PathLike[str] | None = None,
    vocab: str = "subword",
    vocab_size: int = 4000,
    min_count: int = 2,
    max_vocab: int = 16000,
    max_len: int = 60,
    batch_size: int = 64,
    seed: int = 1234,
    **settings: Any,
) -> Run:
    """Read the pairs, build both vocabularies from the training pairs, batch, make the model.

    Args:
        data: the training pairs (TSV).
        valid: the validation pairs; default: ``valid.tsv`` beside a ``train.tsv``, else
            the last 5% of ``data``.
        vocab: ``subword`` (= ``unigram``) or ``bpe`` sentencepiece models, or ``word``.
        vocab_size: pieces per side of a subword vocabulary, specials included.
        min_count: word vocabularies: drop words seen fewer times in training.
        max_vocab: word vocabularies: most words kept per side, most frequent first.
        max_len: leave out training pairs with a side of more tokens than this
            (pieces or words); 0 = keep all. Validation pairs are all kept.
        batch_size: training pairs per batch.
        seed: the initial weights and the shuffle of every epoch.
        settings: :class:`~textrnn.models.seq2seq.Seq2SeqConfig` fields (``attention``,
            ``hidden_size``, ``lower``, ...); the vocabulary sizes come from the data.

    Raises:
        DataError: on a malformed or too small data file.
        TextrnnError: on a bad setting.
    """
    if vocab not in VOCABS:
        raise TextrnnError(f"vocab must be one of {VOCABS}, got {vocab!r}")
    if min_count < 1 or max_vocab < 0:
        raise TextrnnError(f"need min_count >= 1 and max_vocab >= 0, got {min_count} and "
                           f"{max_vocab}")
    if vocab != "word" and vocab_size < 8:
        raise TextrnnError(f"need a vocab size of at least 8, got {vocab_size}")
    if max_len < 0:
        raise TextrnnError(f"need max_len >= 0, got {max_len}")
    data = Path(data)
    train = read_pairs(data)
    sibling = "valid.tsv" if data.name == "train.tsv" else None  # only beside a train.tsv
    valid_file = validation_file(data, valid, sibling=sibling)
    if valid_file is None:
        train, valid_pairs = holdout(train, data, VALID_FRACTION, what="pairs")
    else:
        valid_pairs = read_pairs(valid_file)
    lower = bool(settings.get("lower", False))
    vocabs = build_vocabs_for(train, vocab, vocab_size, min_count, max_vocab, lower)
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
    train_ids = encode(train, vocabs, lower)
    if max_len:
        kept = [p for p in train_ids if max(len(p[0]), len(p[1])) <= max_len]
        log.info("max_len %d: %d of %d training pairs kept", max_len, len(kept), len(train_ids))
        train_ids = kept
    if not train_ids:
        raise DataError(f"no training pair is within max_len {max_len}", path=data)
    train_data = PairBatches(train_ids, **ids, batch_size=batch_size, shuffle=True, seed=seed)
    val_data = PairBatches(encode(valid_pairs, vocabs, lower), **ids,
                           batch_size=VALID_BATCH_SIZE)
    return Run(model, train_data, val_data)


def _codecs(bundle: Bundle) -> tuple[TextCodec, TextCodec]:
    """The source and target codecs of a loaded checkpoint (word or subword)."""
    lower = bundle.config.lower
    return TextCodec(bundle.vocabs["source"], lower), TextCodec(bundle.vocabs["target"], lower)


def _source_tokens(bundle: Bundle, sentences: list[str]) -> list[list[str]]:
    source, _ = _codecs(bundle)
    tokens = [source.pieces(sentence) for sentence in sentences]
    for i, sentence_tokens in enumerate(tokens):
        if not sentence_tokens:
            raise DataError("empty source sentence", path="input", line=i + 1)
    return tokens


def _search(bundle: Bundle, sources: list[list[str]], *, beam_size: int, batch_size: int,
            max_len: int | None, length_penalty: float, return_attention: bool,
            progress: bool, no_repeat_ngram: int = 0, min_len: int = 0,
            coverage_penalty: float = 0.0) -> list[Translation]:
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
            no_repeat_ngram=no_repeat_ngram, min_len=min_len, coverage_penalty=coverage_penalty,
            return_attention=return_attention, progress=bar)
    _, target = _codecs(bundle)
    return [Translation(target.decode_text(hyp.tokens), tokens, tgt.decode(hyp.tokens), hyp)
            for tokens, hyp in zip(sources, hyps, strict=True)]


def translate(
    bundle: Bundle,
    sentences: list[str],
    *,
    beam_size: int = 5,
    batch_size: int = 32,
    max_len: int | None = None,
    length_penalty: float = 1.0,
    no_repeat_ngram: int = NO_REPEAT_NGRAM,
    min_len: int = 1,
    coverage_penalty: float = COVERAGE_PENALTY,
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
        no_repeat_ngram: never repeat an n-gram of this many tokens in an output; 0 = off.
        min_len: no output shorter than this many tokens (1: none is empty).
        coverage_penalty: beam search: β of the coverage term (:mod:`textrnn.decode`);
            0 = off.
        return_attention: keep each output token's attention weights (``hypothesis.attention``).
        progress: show a progress bar over the batches.

    Returns:
        One :class:`Translation` per sentence, in order.

    Raises:
        DataError: on an empty sentence. TextrnnError: on a beam size below 1.
    """
    sources = _source_tokens(bundle, sentences)
    source, _ = _codecs(bundle)
    unknown = sorted({word for sentence in sentences for word in source.unknown(sentence)})
    if unknown:
        log.info("not in the source vocabulary (read as <unk>): %s", " ".join(unknown))
    return _search(bundle, sources, beam_size=beam_size, batch_size=batch_size, max_len=max_len,
                   length_penalty=length_penalty, return_attention=return_attention,
                   progress=progress, no_repeat_ngram=no_repeat_ngram, min_len=min_len,
                   coverage_penalty=coverage_penalty)


def evaluate(
    bundle: Bundle,
    data: str | PathLike[str],
    *,
    beam_size: int = 5,
    batch_size: int = 32,
    max_len: int | None = None,
    length_penalty: float = 1.0,
    no_repeat_ngram: int = NO_REPEAT_NGRAM,
    min_len: int = 1,
    coverage_penalty: float = COVERAGE_PENALTY,
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
        ``beam_size``, ``bleu``, ``chrf``, ``empty`` (outputs with no text), ``seconds``
        and three ``examples``.
    """
    pairs = read_pairs(data)[: limit or None]
    tgt_vocab = bundle.vocabs["target"]
    batches = PairBatches(encode(pairs, bundle.vocabs, bundle.config.lower), tgt_vocab.bos_id,
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
                      length_penalty=length_penalty, return_attention=False, progress=progress,
                      no_repeat_ngram=no_repeat_ngram, min_len=min_len,
                      coverage_penalty=coverage_penalty)
        hyps = [t.text for t in out]
        results[name] = {
            "beam_size": beam,
            "bleu": BLEU().corpus_score(hyps, [refs]).score,
            "chrf": CHRF().corpus_score(hyps, [refs]).score,
            "empty": sum(1 for h in hyps if not h.strip()),  # outputs with no text
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
