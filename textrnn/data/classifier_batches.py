"""Labelled texts as classifier batches: words and labels to ids, length-bucketed batches.

The parsing is :mod:`textrnn.data.sentiment`; this module turns its
:class:`~textrnn.data.sentiment.LabeledText` records into tensors::

    text --word_tokenize(lower)--> tokens --head_tail(max_tokens, head_tokens)--> kept tokens
         --Vocab.encode--> ids;  label --label vocabulary--> class id

A long review keeps its first ``head_tokens`` tokens and the rest of ``max_tokens``
from its end, where reviews tend to give the verdict. The same encoding serves
training, ``eval`` and ``classify``: the arguments come from the checkpoint's config.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike

import torch

from textrnn.collate import pad_sequences
from textrnn.data.buckets import BucketBatches
from textrnn.data.sentiment import LabeledText, head_tail
from textrnn.errors import DataError
from textrnn.tokenize import word_tokenize
from textrnn.vocab import Vocab


def encode_text(text: str, vocab: Vocab, *, lower: bool = True, max_tokens: int = 400,
                head_tokens: int = 100) -> list[int]:
    """Tokenize, cut a long text to its head and tail, and map the words to ids.

    Args:
        text: one text.
        vocab: the word vocabulary (unknown words become ``<unk>``).
        lower: case-fold the words first.
        max_tokens: cut longer texts to this many tokens; 0 keeps all.
        head_tokens: of ``max_tokens``, how many come from the start (the rest from the end).

    >>> vocab = Vocab.from_tokens([["a", "fine", "film"]])
    >>> vocab.decode(encode_text("A fine, FINE film", vocab, max_tokens=3, head_tokens=1))
    ['a', 'fine', 'film']
    """
    tokens = word_tokenize(text, lower=lower)
    return vocab.encode(head_tail(tokens, max_tokens, head_tokens))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def label_vocab(labels: Iterable[str]) -> Vocab:
    """The classes seen in training, in numeric order when all are integers.

    >>> label_vocab(["10", "2", "1", "2"]).itos, label_vocab(["pos", "neg"]).itos
    (['1', '2', '10'], ['neg', 'pos'])
    """
    names = set(labels)
    numeric = all(_is_int(n) for n in names)
    return Vocab(sorted(names, key=int if numeric else str), specials=())


def is_ordinal(labels: Vocab) -> bool:
    """Ordered classes: more than two, all integers (ratings 1-5, not neg/pos).

    >>> is_ordinal(label_vocab("12345")), is_ordinal(label_vocab("01"))
    (True, False)
    """
    return len(labels) > 2 and all(_is_int(name) for name in labels.itos)


def select_sources(examples: list[LabeledText], sources: Sequence[str] | None,
                   path: str | PathLike[str] | None = None) -> list[LabeledText]:
    """The examples from ``sources`` (all when None or empty).

    Raises:
        DataError: naming ``path`` and the sources it holds, when none is left.
    """
    if not sources:
        return examples
    kept = [e for e in examples if e.source in sources]
    if not kept:
        found = sorted({e.source for e in examples})
        raise DataError(f"no texts from {', '.join(sources)} (sources here: "
                        f"{', '.join(found) or 'none'})", path=path)
    return kept


def make_batches(
    examples: list[LabeledText],
    words: Vocab,
    labels: Vocab,
    batch_size: int,
    path: str | PathLike[str] | None = None,
    *,
    lower: bool = True,
    max_tokens: int = 400,
    head_tokens: int = 100,
    shuffle: bool = False,
    seed: int = 0,
    max_batch_tokens: int | None = None,
) -> BucketBatches:
    """Length-bucketed batches of examples: ``{"ids" (B, T), "lengths" (B,), "label" (B,),
    "index" (B,)}`` (all long), where ``index`` gives each row's position in ``examples``.

    Args:
        examples: the labelled texts.
        words, labels: the vocabularies (from the training split).
        batch_size: the most texts in a batch.
        path: the file the examples came from, for errors.
        lower, max_tokens, head_tokens: how texts are encoded (:func:`encode_text`).
        shuffle, seed: a new, reproducible shuffle every epoch (``set_epoch``).
        max_batch_tokens: also cap rows x longest text per batch.

    Raises:
        DataError: naming the file and line of a label the model does not know.
    """
    ids = [encode_text(e.text, words, lower=lower, max_tokens=max_tokens,
                       head_tokens=head_tokens) for e in examples]
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
