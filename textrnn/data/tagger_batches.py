"""Tagged sentences as tensors: the tagger's vocabularies, word keys and batches.

The encoding depends on a few settings besides the vocabularies (:data:`ENCODING`):
how words are keyed (``lowercase``, ``zero_digits``), how many characters of a
word are read (``max_word_chars``) and what one row of a batch holds
(``context``, ``max_context_tokens``). A model stores them in its config; here
they are plain arguments, so this module knows nothing about models::

    sentences ──context_units──> rows (one sentence, or a document's in a row)
       │ word_key / chars / casing, once
       ▼
    per row: word ids, char ids per word, casing ids, tag ids, sentence lengths
       │ each epoch: bucket_batches (seeded by epoch_generator(seed, epoch)),
       │ pad, and in training replace some words by <unk>
       ▼
    {"words", "chars", "case", "lengths", "tags", "splits", "index"[, "lm_targets"]}

Vocabularies come from the training sentences only (:func:`build_vocabs`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence

import torch

from textrnn.collate import bucket_batches, epoch_generator, pad_nested, pad_sequences
from textrnn.data.conll import TaggedSentence
from textrnn.errors import DataError
from textrnn.tokenize import casing
from textrnn.vocab import Vocab

# The settings that an encoding depends on besides the vocabularies: the keyword
# arguments of TaggerBatches of the same names (and fields of the model's config).
ENCODING = ("lowercase", "zero_digits", "max_word_chars", "context", "max_context_tokens")

_DIGIT_RE = re.compile(r"\d")


def word_key(token: str, lowercase: bool = True, zero_digits: bool = True) -> str:
    """The form of ``token`` that the word vocabulary sees (the characters keep the original).

    Lower-casing and mapping every digit to 0 shrink the vocabulary of rare
    forms ("1996-08-22" and "1997-01-30" become one word), as in Lample et al. 2016.

    >>> word_key("BRUSSELS"), word_key("1996-08-22"), word_key("EU", lowercase=False)
    ('brussels', '0000-00-00', 'EU')
    """
    if lowercase:
        token = token.lower()
    return _DIGIT_RE.sub("0", token) if zero_digits else token


def build_vocabs(train: Sequence[TaggedSentence], *, lowercase: bool, zero_digits: bool,
                 min_count: int = 1) -> dict[str, Vocab]:
    """Word, character and tag vocabularies from the training sentences only.

    Args:
        train: the training sentences.
        lowercase, zero_digits: how words are keyed (:func:`word_key`).
        min_count: words seen fewer times become ``<unk>``.

    Returns:
        ``{"words", "chars", "tags"}``; tags have no specials and ``O`` first.

    >>> v = build_vocabs([TaggedSentence(["EU", "rejects"], ["B-ORG", "O"])],
    ...                  lowercase=True, zero_digits=True)
    >>> v["words"].itos[-2:], v["tags"].itos
    (['eu', 'rejects'], ['O', 'B-ORG'])
    """
    keys = [[word_key(w, lowercase, zero_digits) for w in s.tokens] for s in train]
    words = Vocab.from_tokens(keys, min_count=min_count)
    chars = Vocab.from_tokens((c for w in s.tokens for c in w) for s in train)
    tags = sorted({t for s in train for t in s.tags}, key=lambda t: (t != "O", t[2:], t))
    return {"words": words, "chars": chars, "tags": Vocab(tags, specials=())}


def context_units(sentences: Sequence[TaggedSentence], context: str,
                  max_context_tokens: int) -> list[list[int]]:
    """Which sentences the BiLSTM reads as one sequence (a row of a batch).

    With ``context == "sentence"`` each sentence alone. With ``"document"`` the
    consecutive sentences of one document (the same ``doc``), cut at a sentence end
    before a piece passes ``max_context_tokens`` tokens.

    Returns:
        Lists of sentence indices, in file order; every sentence in exactly one.

    >>> s = [TaggedSentence(["a"] * n, [], doc=d) for n, d in ((3, 0), (2, 0), (2, 0), (1, 1))]
    >>> context_units(s, "document", 5), context_units(s, "sentence", 5)
    ([[0, 1], [2], [3]], [[0], [1], [2], [3]])
    """
    if context == "sentence":
        return [[i] for i in range(len(sentences))]
    if context != "document":
        raise ValueError(f"context must be 'sentence' or 'document', got {context!r}")
    units: list[list[int]] = []
    tokens = 0
    for i, s in enumerate(sentences):
        n = len(s.tokens)
        if (units and sentences[units[-1][-1]].doc == s.doc
                and tokens + n <= max_context_tokens):
            units[-1].append(i)
            tokens += n
        else:
            units.append([i])
            tokens = n
    return units


class TaggerBatches:
    """Length-bucketed batches of tagged sentences, as dicts of tensors.

    Each batch: ``words`` (B, T), ``chars`` (B, T, W), ``case`` (B, T),
    ``lengths`` (B,), ``tags`` (B, T), ``splits`` (B, S) (the lengths of the
    sentences in each row, 0-padded) and ``index`` (B,) (each row's place in
    ``units``), all long, padded with 0; with ``lm_vocab`` also ``lm_targets``
    (B, T). A row is one sentence, or with ``context="document"`` a document's
    sentences in a row (:func:`context_units`); ``batch_size`` counts rows. Rows
    of similar length share a batch (:func:`~textrnn.collate.bucket_batches`), so
    little is padded.

    Args:
        sentences: the sentences (tags may be absent: empty lists, for tagging).
        vocabs: from :func:`build_vocabs`.
        batch_size: rows per batch.
        lowercase, zero_digits: word keys (:func:`word_key`).
        max_word_chars: characters read per word (the first ones).
        context, max_context_tokens: what a row holds (:func:`context_units`).
        lm_vocab: if > 0, batches carry ``lm_targets``: the true words (before any
            replacement), ids of ``lm_vocab`` or more as ``<unk>``, for a language
            model objective over the most frequent words.
        shuffle: reshuffle every epoch (training), seeded by ``seed`` and the epoch
            (:func:`~textrnn.collate.epoch_generator`).
        unk_replace: in training, each occurrence of a word seen once in training
            becomes ``<unk>`` with this probability, so that ``<unk>`` is learned.
        word_dropout: in training, each occurrence of any word becomes ``<unk>`` with
            this probability, so that the characters and the context must do the work
            they will do for words never seen in training.
        seed: the shuffling and replacement seed.
        path: the sentences' file, for error messages.

    Raises:
        DataError: for a tag the tag vocabulary does not hold, naming the line.

    Attributes:
        units: for each row index, the indices of its sentences in ``sentences``.
    """

    def __init__(self, sentences: Sequence[TaggedSentence], vocabs: dict[str, Vocab],
                 batch_size: int, *, lowercase: bool, zero_digits: bool, max_word_chars: int,
                 context: str, max_context_tokens: int, lm_vocab: int = 0,
                 shuffle: bool = False, unk_replace: float = 0.0, word_dropout: float = 0.0,
                 seed: int = 0, path: str | None = None) -> None:
        words, chars, tags = vocabs["words"], vocabs["chars"], vocabs["tags"]
        for s in sentences:
            unknown = [t for t in s.tags if t not in tags]
            if unknown:
                raise DataError(f"tag {unknown[0]!r} does not occur in the training data",
                                path=path, line=s.line)
        self.units = context_units(sentences, context, max_context_tokens)
        self.words, self.chars, self.cases, self.tags, self.splits = [], [], [], [], []
        for unit in self.units:
            tokens = [w for i in unit for w in sentences[i].tokens]
            self.words.append(words.encode(word_key(w, lowercase, zero_digits) for w in tokens))
            self.chars.append([chars.encode(w[:max_word_chars]) for w in tokens])
            self.cases.append([casing(w) for w in tokens])
            self.tags.append(tags.encode(t for i in unit for t in sentences[i].tags))
            self.splits.append([len(sentences[i].tokens) for i in unit])
        self.batch_size, self.shuffle, self.unk_replace = batch_size, shuffle, unk_replace
        self.word_dropout, self.lm_vocab = word_dropout, lm_vocab
        self.seed, self.epoch = seed, 0
        counts = Counter(i for row in self.words for i in row) if unk_replace else Counter()
        singletons = [i for i, n in counts.items() if n == 1 and i >= len(words.specials)]
        self.singleton = torch.zeros(len(words), dtype=torch.bool)  # (V,)
        self.singleton[singletons] = True
        self.unk_id = words.unk_id

    def set_epoch(self, epoch: int) -> None:
        """Shuffle (and replace words) for ``epoch``: the same epoch gives the same batches."""
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.words) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for _, batch in self.shard(range(len(self))):
            yield batch

    def shard(self, keep: set[int] | range) -> Iterator[tuple[int, dict | None]]:
        """This epoch's batches as ``(rows, batch)``, building only the ``i``-th where
        ``i in keep``; the others come as ``(rows, None)``, their word replacements still
        drawn, so that a kept batch is the one :meth:`__iter__` gives. One rank's share of
        the epoch under DDP (:class:`~textrnn.distributed.RoundRobin`)."""
        # One stream per epoch: first the order, then the word replacements.
        generator = epoch_generator(self.seed, self.epoch)
        lengths = [len(w) for w in self.words]
        for i, idx in enumerate(bucket_batches(lengths, self.batch_size, self.shuffle,
                                               generator)):
            if i in keep:
                yield len(idx), self._collate(idx, generator)
                continue
            shape = (len(idx), max(lengths[j] for j in idx))  # (B, T) of the padded words
            for rate in (self.unk_replace, self.word_dropout):
                if rate:  # the draws _collate would make, to keep the stream in step
                    torch.rand(shape, generator=generator)
            yield len(idx), None

    def _collate(self, idx: list[int], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The batch of rows ``idx``, its word replacements drawn from ``generator``."""
        words, lengths = pad_sequences([self.words[i] for i in idx])  # (B, T), (B,)
        extra = {}
        if self.lm_vocab:  # the LM's targets: the true words, before any replacement
            extra["lm_targets"] = words.masked_fill(words >= self.lm_vocab,
                                                    self.unk_id)  # (B, T)
        if self.unk_replace:
            drop = torch.rand(words.shape, generator=generator) < self.unk_replace  # (B, T)
            words = words.masked_fill(drop & self.singleton[words], self.unk_id)  # (B, T)
        if self.word_dropout:
            drop = torch.rand(words.shape, generator=generator) < self.word_dropout  # (B, T)
            words = words.masked_fill(drop & (words != 0), self.unk_id)  # (B, T)
        chars, _ = pad_nested([self.chars[i] for i in idx])  # (B, T, W)
        return {
            "words": words,
            "chars": chars,
            "case": pad_sequences([self.cases[i] for i in idx])[0],  # (B, T)
            "lengths": lengths,
            "tags": pad_sequences([self.tags[i] for i in idx])[0],  # (B, T)
            "splits": pad_sequences([self.splits[i] for i in idx])[0],  # (B, S)
            "index": torch.tensor(idx),  # (B,) each row's place in `units`
            **extra,
        }
