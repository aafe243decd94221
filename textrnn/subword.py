"""Subword vocabularies: a sentencepiece model that is also a :class:`~textrnn.vocab.Vocab`.

A word vocabulary of a few thousand entries reads most of a Bible verse as ``<unk>``;
subword units (Sennrich et al. 2016; Kudo 2018) spell every word out of pieces, so
nothing is unknown and rare names are copied piece by piece::

    "Jonas se leva" --encode_text--> [▁Jon, as, ▁se, ▁leva] ids --decode_text--> "Jonas se leva"

:meth:`SubwordVocab.train` learns a unigram (or BPE) model from the **training
text only**, with the textrnn specials at their fixed ids (``<pad>=0``,
``<unk>=1``, ``<bos>=2``, ``<eos>=3``), so the id -> piece list is a plain
``Vocab`` whose ``itos`` are the pieces. The serialized model (a few hundred kB)
goes into the checkpoint as ``bytes`` in :meth:`SubwordVocab.to_dict`, which
``torch.load(..., weights_only=True)`` reads back: translating needs no side file.

:class:`TextCodec` gives word and subword vocabularies one interface
(``pieces``, ``encode_text``, ``decode_text``), so the seq2seq pipeline reads
checkpoints with either.

Kudo and Richardson (2018), "SentencePiece: A simple and language independent subword
tokenizer and detokenizer for Neural Text Processing".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from textrnn.vocab import Vocab

KIND = "sentencepiece"  # the "kind" key of SubwordVocab.to_dict(); word vocabs have none
MODEL_TYPES = ("unigram", "bpe")
VOCABS = ("subword", *MODEL_TYPES, "word")  # what train seq2seq --vocab takes; subword = unigram
_FORMAT = 1


def _processor(model_proto: bytes):
    import sentencepiece as spm  # only subword vocabularies need it

    return spm.SentencePieceProcessor(model_proto=model_proto)


class SubwordVocab(Vocab):
    """A sentencepiece model; ``itos`` is its list of pieces, specials first.

    Args:
        model_proto: a serialized sentencepiece model whose ids 0-3 are ``<pad>``,
            ``<unk>``, ``<bos>``, ``<eos>`` (what :meth:`train` makes).

    Raises:
        ValueError: if the model's first pieces are not the textrnn specials.
    """

    def __init__(self, model_proto: bytes) -> None:
        self.model_proto = bytes(model_proto)
        self.sp = _processor(self.model_proto)
        super().__init__([self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())])

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        model_type: str = "unigram",
        max_sentences: int = 200_000,
    ) -> SubwordVocab:
        """Learn a subword model from ``texts`` (the training split only).

        Args:
            texts: sentences, one string each.
            vocab_size: pieces wanted, specials included; fewer if the text is too small
                to make that many.
            model_type: ``"unigram"`` (Kudo 2018) or ``"bpe"`` (Sennrich et al. 2016).
            max_sentences: most sentences read (the first ones; they are not sampled, so the
                result depends on the text alone).

        Raises:
            ValueError: on an unknown ``model_type``, a ``vocab_size`` under 8, or no text.
        """
        import io

        import sentencepiece as spm

        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
        if vocab_size < 8:
            raise ValueError(f"vocab_size must be at least 8, got {vocab_size}")
        sentences = [t for t in texts if t.strip()][:max_sentences]
        if not sentences:
            raise ValueError("no text to learn a subword vocabulary from")
        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=proto,
            vocab_size=vocab_size,
            model_type=model_type,
            hard_vocab_limit=False,  # a small text gets fewer pieces, not an error
            character_coverage=1.0,  # keep every letter: accents, rare names
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,  # textrnn's fixed special ids
            pad_piece=Vocab.PAD,
            unk_piece=Vocab.UNK,
            bos_piece=Vocab.BOS,
            eos_piece=Vocab.EOS,
            num_threads=1,  # the same model on every machine
            shuffle_input_sentence=False,
            minloglevel=2,
        )
        return cls(proto.getvalue())

    def pieces(self, text: str) -> list[str]:
        """The pieces ``text`` splits into.

        >>> v = SubwordVocab.train(["low lower lowest"] * 20, vocab_size=20)
        >>> "".join(v.pieces("lowest low")).replace("▁", " ").strip()
        'lowest low'
        """
        return self.sp.encode(text, out_type=str)

    def encode_text(self, text: str) -> list[int]:
        """Piece ids of ``text``, without ``<bos>``/``<eos>``."""
        return self.sp.encode(text)

    def decode_text(self, ids: Sequence[int]) -> str:
        """Detokenised text of piece ids (specials dropped)."""
        return self.sp.decode([int(i) for i in ids if int(i) >= len(self.specials)])

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints: the serialized model as bytes (weights_only-safe)."""
        return {"format": _FORMAT, "kind": KIND, "model": self.model_proto}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubwordVocab:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: if ``d`` is not a subword vocabulary's dict.
        """
        if not isinstance(d, dict) or d.get("kind") != KIND or d.get("format") != _FORMAT:
            raise ValueError("malformed subword vocab dict")
        if not isinstance(d.get("model"), bytes):
            raise ValueError("malformed subword vocab dict: 'model' must be bytes")
        try:
            return cls(d["model"])
        except RuntimeError as err:  # sentencepiece's own parse error
            raise ValueError(f"malformed subword vocab dict: {err}") from err


def vocab_from_dict(d: dict[str, Any]) -> Vocab:
    """A word or subword vocabulary from its ``to_dict()`` form (what checkpoints hold)."""
    if isinstance(d, dict) and d.get("kind") == KIND:
        return SubwordVocab.from_dict(d)
    return Vocab.from_dict(d)


class TextCodec:
    """Text <-> ids through a word or a subword vocabulary, the same way for both.

    Args:
        vocab: a :class:`SubwordVocab`, or a word :class:`~textrnn.vocab.Vocab` (then
            text splits with :func:`textrnn.data.pairs.tokenize`).
        lower: lower-case text before encoding it.
    """

    def __init__(self, vocab: Vocab, lower: bool = False) -> None:
        self.vocab, self.lower = vocab, lower
        self.subword = isinstance(vocab, SubwordVocab)

    def pieces(self, text: str) -> list[str]:
        """The tokens the model reads for ``text``."""
        from textrnn.data.pairs import tokenize

        if self.subword:
            return self.vocab.pieces(text.lower() if self.lower else text)
        return tokenize(text, self.lower)

    def encode_text(self, text: str) -> list[int]:
        """Token ids of ``text``, without specials."""
        return self.vocab.encode(self.pieces(text))

    def decode_text(self, ids: Sequence[int]) -> str:
        """Detokenised text of ids."""
        from textrnn.data.pairs import detokenize

        if self.subword:
            return self.vocab.decode_text(ids)
        return detokenize(self.vocab.decode(ids))

    def unknown(self, text: str) -> list[str]:
        """The words of ``text`` read (in part, for subwords: a letter never seen in
        training) as ``<unk>``."""
        if self.subword:
            unk = self.vocab.unk_id
            return [w for w in text.split() if unk in self.encode_text(w)]
        return [t for t in self.pieces(text) if t not in self.vocab.stoi]


__all__ = ["MODEL_TYPES", "VOCABS", "SubwordVocab", "TextCodec", "vocab_from_dict"]
