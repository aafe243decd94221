"""Word and character tokenisers that handle any Unicode text.

Both are pure functions on ``str``; they know nothing about ids or tensors
(that is :class:`textrnn.vocab.Vocab`'s job).

- :func:`word_tokenize` splits on Unicode word boundaries and keeps every
  punctuation mark as its own token, so ``"Where is Mary?"`` gives
  ``["where", "is", "mary", "?"]`` when lower-cased.
- :func:`char_tokenize` returns grapheme-agnostic code points after NFC
  normalisation, so a composed "é" and "e" + combining accent give the same
  token.
- :func:`casing` names a word's shape (lower, UPPER, Title, digits, ...), one of
  :data:`CASINGS`: a feature the tagger learns an embedding for.
"""

from __future__ import annotations

import re
import unicodedata

# A word is a run of letters/digits/marks, optionally joined by an apostrophe or
# hyphen inside it ("don't", "well-known"); anything else that is not space is a
# token of its own ("?", ".", "—", "😀").
_WORD_RE = re.compile(r"[^\W_](?:[\w\u0300-\u036f]|['’\-](?=[^\W_]))*|\S", re.UNICODE)


def normalize(text: str) -> str:
    """NFC-normalise ``text`` so equal-looking strings compare equal.

    >>> normalize("e\\u0301") == "\\u00e9"
    True
    """
    return unicodedata.normalize("NFC", text)


def word_tokenize(text: str, lower: bool = False) -> list[str]:
    """Split ``text`` into words and punctuation marks.

    Args:
        text: any Unicode string.
        lower: lower-case the tokens (case-folded, so "Straße" matches "STRASSE").

    Returns:
        The tokens, in order; empty for blank text.

    >>> word_tokenize("Where is Mary?")
    ['Where', 'is', 'Mary', '?']
    >>> word_tokenize("Don't stop, well-known café!", lower=True)
    ["don't", 'stop', ',', 'well-known', 'café', '!']
    >>> word_tokenize("東京 is big. 😀")
    ['東京', 'is', 'big', '.', '😀']
    >>> word_tokenize("   ")
    []
    """
    text = normalize(text)
    tokens = _WORD_RE.findall(text)
    if lower:
        tokens = [t.casefold() for t in tokens]
    return tokens


def char_tokenize(text: str) -> list[str]:
    """Split ``text`` into characters (NFC code points), keeping spaces and newlines.

    >>> char_tokenize("Hé!")
    ['H', 'é', '!']
    >>> char_tokenize("a\\nb")
    ['a', '\\n', 'b']
    """
    return list(normalize(text))


TOKENIZERS = {"word": word_tokenize, "char": char_tokenize}

CASINGS = ("<pad>", "lower", "upper", "title", "mixed", "numeric", "has_digit", "other")


def casing(token: str) -> int:
    """The index in :data:`CASINGS` of ``token``'s shape (0 is reserved for padding).

    >>> [CASINGS[casing(w)] for w in ("the", "EU", "Peter", "McDonald", "1996", "G7", "-")]
    ['lower', 'upper', 'title', 'mixed', 'numeric', 'has_digit', 'other']
    """
    if token.isdigit():
        return 5
    if any(c.isdigit() for c in token):
        return 6
    if token.islower():
        return 1
    if token.isupper():
        return 2
    if token.istitle():
        return 3
    if any(c.isalpha() for c in token):
        return 4
    return 7
