"""Sentence pairs for translation: the TSV reader, the tokeniser, vocabularies and batches.

Any UTF-8 file of ``source<TAB>target`` lines is a pair file (``textrnn data
bible`` writes them, see :mod:`textrnn.data.bible`)::

    lines --parse_pairs--> [Pair(src, tgt)] --TextCodec.encode_text--> [(src ids, tgt ids)]
          --PairBatches--> {"src", "src_lengths", "tgt_in", "tgt_out"} batches

Each side gets its own vocabulary, from the training pairs only: subword
pieces (:mod:`textrnn.subword`, what ``train seq2seq`` uses by default) or
words (:func:`build_vocabs`). Words split as
:func:`textrnn.tokenize.word_tokenize` does, and French elisions come off
their word (``l'`` + ``Éternel``), so a word has one vocabulary entry instead
of one per article it follows.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from textrnn.collate import pad_sequences
from textrnn.data.buckets import BucketBatches
from textrnn.errors import DataError, decode_utf8
from textrnn.tokenize import word_tokenize
from textrnn.vocab import Vocab

_ELISION = re.compile(r"^([^\W\d_]+['’])([^\W_].*)$")  # l'Éternel -> l' + Éternel
_NO_SPACE_BEFORE = set(",.;:!?)]}»…%")
_NO_SPACE_AFTER = set("([{«'’")


@dataclass(frozen=True)
class Pair:
    """One aligned sentence pair; ``ref`` is where it came from (e.g. ``"41:1:1"``)."""

    src: str
    tgt: str
    ref: str = ""


def tokenize(text: str, lower: bool = False) -> list[str]:
    """Words and punctuation marks, with French elisions split off their word.

    >>> tokenize("L'Éternel dit: Qu'il vienne!")
    ["L'", 'Éternel', 'dit', ':', "Qu'", 'il', 'vienne', '!']
    >>> tokenize("God's love", lower=True)
    ["god'", 's', 'love']
    """
    tokens = []
    for token in word_tokenize(text, lower=lower):
        match = _ELISION.match(token)
        tokens.extend(match.groups() if match else (token,))
    return tokens


def detokenize(tokens: Iterable[str]) -> str:
    """Join tokens into text: no space before closing punctuation or after an elision.

    >>> detokenize(["L'", "Éternel", "dit", ":", "Qu'", "il", "vienne", "!"])
    "L'Éternel dit: Qu'il vienne!"
    >>> detokenize(["(", "and", "he", "said", ")", ",", "yes", "."])
    '(and he said), yes.'
    """
    text = ""
    for token in tokens:
        if text and token[0] not in _NO_SPACE_BEFORE and text[-1] not in _NO_SPACE_AFTER:
            text += " "
        text += token
    return text


def parse_pairs(lines: Iterable[str], path: str | None = None) -> list[Pair]:
    """Parse ``source<TAB>target`` lines; blank lines are skipped.

    Args:
        lines: the file's lines (with or without their newlines).
        path: the file name, for error messages.

    Raises:
        DataError: naming the file and the 1-based line of a line that has no tab,
            more than one, or an empty side.

    >>> parse_pairs(["Hello.\\tBonjour.\\n", "\\n", "Yes.\\tOui."])
    [Pair(src='Hello.', tgt='Bonjour.', ref='1'), Pair(src='Yes.', tgt='Oui.', ref='3')]
    >>> parse_pairs(["Hello.\\tBonjour.", "no tab here"], path="p.tsv")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: p.tsv:2: expected 2 tab-separated fields (source, target), got 1
    >>> parse_pairs(["Hello.\\t  "], path="p.tsv")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: p.tsv:1: empty target sentence
    """
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"expected 2 tab-separated fields (source, target), got {len(fields)}",
                            path=path, line=number)
        src, tgt = fields[0].strip(), fields[1].strip()
        for side, text in (("source", src), ("target", tgt)):
            if not text:
                raise DataError(f"empty {side} sentence", path=path, line=number)
        pairs.append(Pair(src, tgt, str(number)))
    return pairs


def read_pairs(path: str | PathLike[str]) -> list[Pair]:
    """Read a UTF-8 TSV file of sentence pairs (see :func:`parse_pairs`).

    Raises:
        DataError: if the file is missing, a directory, unreadable, not UTF-8 (naming
            the line of the first bad byte), malformed, or holds no pairs.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError("is a directory, expected a TSV file of sentence pairs", path=path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    try:
        data = path.read_bytes()
    except OSError as err:  # unreadable (permissions, I/O error): one line, not a traceback
        raise DataError(f"cannot read: {err.strerror or err}", path=path) from None
    # Decoded whole so that a bad byte's error names its line; StringIO splits lines
    # as open() does (\n, \r\n, \r), so line numbers match the file's.
    text = decode_utf8(data, path, what="a UTF-8 text file")
    pairs = parse_pairs(io.StringIO(text, newline=None), str(path))
    if not pairs:
        raise DataError("no sentence pairs in the file", path=path)
    return pairs


def build_vocabs(pairs: Sequence[Pair], lower: bool = False, min_count: int = 2,
                 max_size: int | None = 16000) -> dict[str, Vocab]:
    """One word vocabulary per side, ``{"source": ..., "target": ...}``, from ``pairs``
    (the training pairs only), with the default specials.

    Args:
        min_count: drop words seen fewer times. max_size: most words kept per side,
            most frequent first.

    >>> vocabs = build_vocabs([Pair("a b", "x"), Pair("a", "x y")], min_count=2)
    >>> vocabs["source"].itos[4:], vocabs["target"].itos[4:]
    (['a'], ['x'])
    """
    return {
        side: Vocab.from_tokens((tokenize(getattr(p, attr), lower) for p in pairs),
                                min_count=min_count, max_size=max_size)
        for side, attr in (("source", "src"), ("target", "tgt"))
    }


class PairBatches(BucketBatches):
    """Re-iterable batches of id pairs, bucketed by source length (:class:`BucketBatches`).

    Each batch: ``src`` (B, S), ``src_lengths`` (B,), ``tgt_in`` = ``<bos>`` y (B, T)
    and ``tgt_out`` = y ``<eos>`` (B, T), all long, padded with 0.

    Args:
        pairs: (source ids, target ids) per example; target ids without specials.
        bos_id, eos_id: the target vocabulary's ids.
        batch_size: pairs per batch. shuffle: reshuffle each epoch (training).
        seed: with ``set_epoch``, makes each epoch's order reproducible.

    >>> batch = next(iter(PairBatches([([5, 6], [7]), ([8], [9, 9])], 2, 3, batch_size=2)))
    >>> batch["src"].tolist(), batch["tgt_in"].tolist(), batch["tgt_out"].tolist()
    ([[5, 6], [8, 0]], [[2, 7, 0], [2, 9, 9]], [[7, 3, 0], [9, 9, 3]])
    """

    def __init__(self, pairs: Sequence[tuple[list[int], list[int]]], bos_id: int, eos_id: int,
                 batch_size: int, shuffle: bool = False, seed: int = 0) -> None:
        self.pairs, self.bos_id, self.eos_id = list(pairs), bos_id, eos_id
        super().__init__([len(src) for src, _ in self.pairs], self._collate, batch_size,
                         shuffle=shuffle, seed=seed)

    def _collate(self, index: list[int]) -> dict:
        src, src_lengths = pad_sequences([self.pairs[i][0] for i in index])  # (B, S), (B,)
        tgt_in, _ = pad_sequences([[self.bos_id, *self.pairs[i][1]] for i in index])  # (B, T)
        tgt_out, _ = pad_sequences([[*self.pairs[i][1], self.eos_id] for i in index])  # (B, T)
        return {"src": src, "src_lengths": src_lengths, "tgt_in": tgt_in, "tgt_out": tgt_out}
