"""Vocabulary: a two-way map between tokens and integer ids.

A :class:`Vocab` is built once, from the **training split only** (building it
from validation or test data leaks their words into the model), and is then
saved inside every checkpoint with :meth:`Vocab.to_dict`, so a trained model
never needs the raw data again to get its vocabulary back.

Named specials come first, so their ids are fixed::

    id:    0       1       2       3       4 ...
    token: <pad>   <unk>   <bos>   <eos>   most frequent word ...

``<pad>`` is id 0 whenever the vocabulary has one; padding code
(:mod:`textrnn.collate`) relies on that.

A label vocabulary (bAbI answers, NER tags, sentiment classes) is the same
class with ``specials=()`` (or ``("<pad>",)`` for padded tag sequences): then
encoding an unseen label is an error instead of a silent ``<unk>``.

>>> vocab = Vocab.from_tokens([["the", "cat"], ["the", "dog"]])
>>> vocab.itos
['<pad>', '<unk>', '<bos>', '<eos>', 'the', 'cat', 'dog']
>>> vocab.encode(["the", "bird"])
[4, 1]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar

# Bump when the layout of to_dict() changes; from_dict() rejects other values.
_FORMAT = 1


class Vocab:
    """Token <-> id map with named special tokens at the lowest ids.

    Args:
        itos: every token, indexed by id ("id to string"). The specials must
            come first, in the order given by ``specials``; tokens must be
            unique strings.
        specials: which leading entries of ``itos`` are special tokens. If
            ``"<pad>"`` is among them it must be the first, so it gets id 0.

    Attributes:
        itos: ``list[str]``, id -> token.
        stoi: ``dict[str, int]``, token -> id.
        specials: ``tuple[str, ...]``, the special tokens, in id order.

    Raises:
        ValueError: if ``itos`` has duplicates or non-strings, or does not
            start with ``specials``, or ``"<pad>"`` is a special but not id 0.

    >>> labels = Vocab(["bathroom", "garden"], specials=())
    >>> labels.encode(["garden"]), labels.pad_id, labels.unk_id
    ([1], None, None)
    """

    PAD: ClassVar[str] = "<pad>"
    UNK: ClassVar[str] = "<unk>"
    BOS: ClassVar[str] = "<bos>"
    EOS: ClassVar[str] = "<eos>"
    DEFAULT_SPECIALS: ClassVar[tuple[str, ...]] = (PAD, UNK, BOS, EOS)

    def __init__(self, itos: list[str], specials: tuple[str, ...] = DEFAULT_SPECIALS) -> None:
        itos = list(itos)
        specials = tuple(specials)
        for token in (*itos, *specials):
            if not isinstance(token, str):
                raise ValueError(f"tokens must be str, got {type(token).__name__}: {token!r}")
        if len(set(specials)) != len(specials):
            raise ValueError(f"duplicate special tokens: {specials!r}")
        if tuple(itos[: len(specials)]) != specials:
            raise ValueError(
                f"itos must start with the specials {specials!r}, "
                f"but starts with {itos[: len(specials)]!r}"
            )
        if self.PAD in specials and specials[0] != self.PAD:
            raise ValueError(f"{self.PAD!r} must be the first special (id 0), got {specials!r}")
        stoi = {token: i for i, token in enumerate(itos)}
        if len(stoi) != len(itos):
            duplicates = sorted(t for t, n in Counter(itos).items() if n > 1)
            raise ValueError(f"duplicate tokens in itos: {duplicates!r}")
        self.itos = itos
        self.stoi = stoi
        self.specials = specials

    @classmethod
    def from_tokens(
        cls,
        sequences: Iterable[Iterable[str]],
        min_count: int = 1,
        max_size: int | None = None,
        specials: tuple[str, ...] = DEFAULT_SPECIALS,
    ) -> Vocab:
        """Count tokens and build a vocabulary from them.

        Pass the **training split only**: whatever is counted here becomes
        known to the model, so counting validation or test text leaks them.

        Order is deterministic: specials first, then tokens by descending
        count, ties broken alphabetically (by code point). Tokens equal to a
        special are not added twice.

        Args:
            sequences: token sequences, e.g. one list of words per sentence.
                A ``str`` is a sequence of characters, which gives a
                character vocabulary.
            min_count: drop tokens seen fewer times than this (>= 1).
            max_size: keep at most this many **non-special** tokens, the most
                frequent ones; ``len(vocab)`` is then at most
                ``len(specials) + max_size``. ``None`` keeps all.
            specials: special tokens placed first; see :class:`Vocab`.

        Returns:
            The new :class:`Vocab`.

        Raises:
            ValueError: if ``min_count < 1`` or ``max_size < 0``.

        >>> Vocab.from_tokens([["b", "a", "c", "a"], ["b", "d"]], min_count=2).itos
        ['<pad>', '<unk>', '<bos>', '<eos>', 'a', 'b']
        >>> Vocab.from_tokens(["hello"], max_size=2, specials=("<pad>",)).itos
        ['<pad>', 'l', 'e']
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 or None, got {max_size}")
        counts: Counter[str] = Counter()
        for sequence in sequences:
            counts.update(sequence)
        special_set = set(specials)
        kept = [(t, n) for t, n in counts.items() if n >= min_count and t not in special_set]
        kept.sort(key=lambda item: (-item[1], item[0]))
        if max_size is not None:
            kept = kept[:max_size]
        return cls([*specials, *(t for t, _ in kept)], specials=specials)

    def _special_id(self, token: str) -> int | None:
        return self.stoi[token] if token in self.specials else None

    @property
    def pad_id(self) -> int | None:
        """Id of ``<pad>`` (always 0), or ``None`` if it is not a special."""
        return self._special_id(self.PAD)

    @property
    def unk_id(self) -> int | None:
        """Id of ``<unk>``, or ``None`` if it is not a special."""
        return self._special_id(self.UNK)

    @property
    def bos_id(self) -> int | None:
        """Id of ``<bos>``, or ``None`` if it is not a special."""
        return self._special_id(self.BOS)

    @property
    def eos_id(self) -> int | None:
        """Id of ``<eos>``, or ``None`` if it is not a special."""
        return self._special_id(self.EOS)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self.itos == other.itos and self.specials == other.specials

    # A Vocab is mutable (plain list/dict attributes), so it is not hashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={self.specials!r})"

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Map tokens to ids; unknown tokens map to ``<unk>``.

        Args:
            tokens: the tokens (a ``str`` is taken as its characters).

        Returns:
            One id per token.

        Raises:
            KeyError: on an unknown token when the vocabulary has no ``<unk>``
                (label vocabularies), naming the token.

        >>> v = Vocab.from_tokens([["a", "b"]])
        >>> v.encode(["b", "zzz", "a"])
        [5, 1, 4]
        >>> Vocab(["yes", "no"], specials=()).encode(["maybe"])
        Traceback (most recent call last):
        ...
        KeyError: "token 'maybe' is not in the vocabulary, and the vocabulary has no <unk>"
        """
        stoi, unk_id = self.stoi, self.unk_id
        ids = []
        for token in tokens:
            i = stoi.get(token, unk_id)
            if i is None:
                raise KeyError(
                    f"token {token!r} is not in the vocabulary, "
                    f"and the vocabulary has no {self.UNK}"
                )
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int], skip_specials: bool = False) -> list[str]:
        """Map ids back to tokens.

        Args:
            ids: token ids (ints, or anything ``int()`` accepts, such as the
                elements of a 1-D LongTensor).
            skip_specials: drop special tokens (padding, ``<bos>``, ...).

        Returns:
            One token per kept id.

        Raises:
            IndexError: on an id outside ``[0, len(self))``.

        >>> v = Vocab.from_tokens([["hello", "world"]])
        >>> v.decode([2, 4, 5, 3, 0])
        ['<bos>', 'hello', 'world', '<eos>', '<pad>']
        >>> v.decode([2, 4, 5, 3, 0], skip_specials=True)
        ['hello', 'world']
        """
        n_specials = len(self.specials)
        tokens = []
        for raw in ids:
            i = int(raw)
            # Guard explicitly: a negative id would silently wrap around in a list.
            if not 0 <= i < len(self.itos):
                raise IndexError(f"id {i} is out of range for a vocabulary of size {len(self)}")
            if skip_specials and i < n_specials:
                continue
            tokens.append(self.itos[i])
        return tokens

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for checkpoints (only str, int and list values).

        It survives ``torch.save`` then ``torch.load(..., weights_only=True)``.

        >>> Vocab(["<pad>", "x"], specials=("<pad>",)).to_dict()
        {'format': 1, 'itos': ['<pad>', 'x'], 'specials': ['<pad>']}
        """
        return {"format": _FORMAT, "itos": list(self.itos), "specials": list(self.specials)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        """Rebuild a vocabulary from :meth:`to_dict` output.

        Args:
            d: a dict with keys ``format``, ``itos`` and ``specials``.

        Returns:
            The equal :class:`Vocab`.

        Raises:
            ValueError: if ``d`` is malformed (not a dict, missing or extra
                keys, wrong types, unknown format, or an invalid vocabulary).

        >>> v = Vocab.from_tokens([["東京", "café", "😀"]])
        >>> Vocab.from_dict(v.to_dict()) == v
        True
        >>> Vocab.from_dict({"itos": ["a"]})
        Traceback (most recent call last):
        ...
        ValueError: malformed vocab dict: missing keys ['format', 'specials']
        """
        if not isinstance(d, dict):
            raise ValueError(f"malformed vocab dict: expected a dict, got {type(d).__name__}")
        expected = {"format", "itos", "specials"}
        missing, extra = sorted(expected - d.keys()), sorted(map(str, d.keys() - expected))
        if missing:
            raise ValueError(f"malformed vocab dict: missing keys {missing}")
        if extra:
            raise ValueError(f"malformed vocab dict: unexpected keys {extra}")
        if d["format"] != _FORMAT or isinstance(d["format"], bool):
            raise ValueError(
                f"malformed vocab dict: unsupported format {d['format']!r} (expected {_FORMAT})"
            )
        for key in ("itos", "specials"):
            value = d[key]
            if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
                raise ValueError(f"malformed vocab dict: {key!r} must be a list of str")
        try:
            return cls(list(d["itos"]), specials=tuple(d["specials"]))
        except ValueError as err:
            raise ValueError(f"malformed vocab dict: {err}") from err
