"""Word and character tokenisers that handle any Unicode text.

Both are pure functions on ``str``; they know nothing about ids or tensors
(that is :class:`textrnn.vocab.Vocab`'s job).

- :func:`word_tokenize` splits on Unicode word boundaries and keeps every
  punctuation mark as its own token, so ``"Where is Mary?"`` gives
  ``["where", "is", "mary", "?"]`` when lower-cased; URLs, e-mail addresses,
  ``@user``, ``#tag`` and ``U.S.`` stay whole.
- :func:`char_tokenize` returns grapheme-agnostic code points after NFC
  normalisation, so a composed "é" and "e" + combining accent give the same
  token.
- :func:`casing` names a word's shape (lower, UPPER, Title, digits, ...), one of
  :data:`CASINGS`: a feature the tagger learns an embedding for.
"""

from __future__ import annotations

import re
import unicodedata

# Tokens kept whole, tried first at each position (as CoNLL and tweets write them):
_WHOLE = (
    # a URL, without the punctuation that ends its sentence or closes its bracket
    r"(?i:https?://|www\.)\S*[\w/#=&%~+\-]",
    r"\w[\w.+\-]*@[\w\-]+(?:\.[\w\-]+)+",  # an e-mail address: a.b@c.org
    r"(?<!\w)@\w+",  # a user name: @user (not the "@" in "a@b")
    r"(?<!\w)#\w*[^\W\d_]\w*",  # a hashtag, with a letter: #tag, #NLP2024 (not C#, #1)
    r"(?:[^\W\d_]\.){2,}",  # single letters with periods: U.S., e.g., U.S.A.
)
# A word is a run of letters/digits/marks, optionally joined by an apostrophe or
# hyphen inside it ("don't", "well-known"); anything else that is not space is a
# token of its own ("?", ".", "—", "😀").
_WORD_RE = re.compile(
    "|".join([*_WHOLE, r"[^\W_](?:[\w\u0300-\u036f]|['’\-](?=[^\W_]))*", r"\S"]),
    re.UNICODE,
)


def normalize(text: str) -> str:
    """NFC-normalise ``text`` so equal-looking strings compare equal.

    >>> normalize("e\\u0301") == "\\u00e9"
    True
    """
    return unicodedata.normalize("NFC", text)


_ZWJ = "\u200d"  # zero-width joiner: 👨 + ZWJ + 👩 is one emoji


def _joins_previous(token: str, previous: str) -> bool:
    """Whether ``token``, found right after ``previous`` with no space between, belongs to
    the same word: it starts with a combining mark (Unicode M*: Devanagari and Thai vowel
    signs, variation selectors), an emoji skin-tone modifier or a joiner; or ``previous``
    ends with a mark or a joiner and ``token`` goes on with a letter or emoji."""
    first, last = token[0], previous[-1]
    skin_tone = "\U0001f3fb" <= first <= "\U0001f3ff"
    if unicodedata.category(first)[0] == "M" or first == _ZWJ or skin_tone:
        return True
    ends_joined = unicodedata.category(last)[0] == "M" or last == _ZWJ
    return ends_joined and unicodedata.category(first)[0] in "LNS"


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

    URLs, e-mail addresses, user names, hashtags and abbreviations written with
    periods stay whole; the punctuation after them does not join them:

    >>> word_tokenize("@ana: see https://example.org/a?b=1 (or www.example.org).")
    ['@ana', ':', 'see', 'https://example.org/a?b=1', '(', 'or', 'www.example.org', ')', '.']
    >>> word_tokenize("Mail jo.smith@mail.example.com, #NLP rocks in the U.S.")
    ['Mail', 'jo.smith@mail.example.com', ',', '#NLP', 'rocks', 'in', 'the', 'U.S.']
    >>> word_tokenize("a@b, C# and #1 as before; e.g. end.Then")
    ['a', '@', 'b', ',', 'C', '#', 'and', '#', '1', 'as', 'before', ';', 'e.g.', 'end', '.', 'Then']

    Vowel signs and other combining marks stay in their word, in any script; so do
    emoji modifiers and joined emoji:

    >>> word_tokenize("सीता रसोई में गई।")
    ['सीता', 'रसोई', 'में', 'गई', '।']
    >>> word_tokenize("ภาษาไทยง่าย")
    ['ภาษาไทยง่าย']
    >>> word_tokenize("مرحبا بالعالم! 你好，世界")
    ['مرحبا', 'بالعالم', '!', '你好', '，', '世界']
    >>> word_tokenize("👍🏽 👨\u200d👩\u200d👧!")
    ['👍🏽', '👨\u200d👩\u200d👧', '!']
    """
    text = normalize(text)
    tokens: list[str] = []
    end = -1  # where the previous token ended
    for match in _WORD_RE.finditer(text):
        token = match.group()
        # (ASCII never joins: the common case skips the Unicode lookups)
        if (tokens and match.start() == end and (token[0] > "\x7f" or tokens[-1][-1] > "\x7f")
                and _joins_previous(token, tokens[-1])):
            tokens[-1] += token
        else:
            tokens.append(token)
        end = match.end()
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
