"""Melodies: parse the Essen ABC files, split by tune, sample a tune to .abc and .mid."""

from __future__ import annotations

import pytest

from textrnn.cli import main
from textrnn.data.melodies import Tune, find_corpus, parse_abc, split_of, split_tunes
from textrnn.data.music import end_of_tune, normalize_prompt, tune_from_text, write_midi
from textrnn.errors import DataError

ESSEN_LIKE = """\
X:1
T: Ich hab die Nacht getr\u00e4umet
N: T0003A
O: Irland
R: Liebeslied
M: 6/8
L: 1/16
K: E
B,2 | E4F2=G3FE2 | B6F4
 | =G3FE2D4E2 | F6z4

X:2
T: CUCA 1
M: 2/2]
L: 1/8
K: H
CCC | F2ACCC | F2A4-
A2 z2 |]
"""


def test_parse_keeps_what_a_model_needs_and_normalises_it():
    first, second = parse_abc(ESSEN_LIKE, path="essen.abc")
    assert first.text == "X:1\nM:6/8\nL:1/16\nK:E\nB,2 | E4F2=G3FE2 | B6F4\n| =G3FE2D4E2 | F6z4\n"
    assert (second.meter, second.unit, second.key) == ("2/2", "1/8", "B")  # "]" and German H
    assert second.body == ("CCC | F2ACCC | F2A4-", "A2 z2 |]")
    assert (first.line, second.line) == (1, 12)
    assert parse_abc(first.text + "\n" + second.text) == [
        Tune(first.meter, first.unit, first.key, first.body, 1),
        Tune(second.meter, second.unit, second.key, second.body, 8),
    ]  # the normalised text reads back as the same tunes


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("X:1\nM:2/4\nL:1/8\nK:G\nGA | B2\nG2 {g}A |\n", "bad.abc:6", "unexpected '{'"),
        ("X:1\nM:2/4\nL:1/8\nK:Q\nGA | B2\n", "bad.abc:4", "K: must be a key"),
        ("X:1\nM:2/4\nK:G\nGA | B2\n", "bad.abc:1", "no L: field"),
        ("X:1\nM:2/4\nL:1/8\nGA | B2\n", "bad.abc:4", "music before the K:"),
        ("\nX:1\nM:2/4\nL:1/8\nK:G\n\n", "bad.abc:6", "no music"),
        ("X:1\nM:2/4\nL:1/8\n", "bad.abc:4", "before its K:"),
    ],
)
def test_errors_name_the_file_and_line(text, where, what):
    with pytest.raises(DataError) as info:
        parse_abc(text, path="bad.abc")
    assert str(info.value).startswith(where + ":") and what in str(info.value)


def test_a_bad_tune_can_be_skipped_and_reported():
    text = "X:1\nM:2/4\nL:1/8\nK:G\n4GA | B2\nGG |\n\nX:2\nM:3/4\nL:1/8\nK:F\nF2A4\n"
    errors: list[DataError] = []
    tunes = parse_abc(text, path="mixed.abc", errors=errors)
    assert [t.key for t in tunes] == ["F"]
    assert [str(e) for e in errors] == ["mixed.abc:5: unexpected '4' in the music at column 1"]


def test_split_is_fixed_by_content_disjoint_and_about_90_5_5():
    tunes = [Tune("3/4", "1/8", "G", (f"G{i % 7 + 1}A{i // 7 + 1} |",)) for i in range(700)]
    splits = split_tunes([*tunes, *tunes[:50]])  # repeated tunes are kept once
    assert sum(map(len, splits.values())) == 700
    assert all(split_of(t) == name for name, part in splits.items() for t in part)
    reordered = split_tunes(reversed(tunes))
    assert {k: set(v) for k, v in splits.items()} == {k: set(v) for k, v in reordered.items()}
    assert 15 <= len(splits["valid"]) <= 60 and 15 <= len(splits["test"]) <= 60  # about 5% each


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    try:
        find_corpus()
    except DataError as err:
        pytest.skip(str(err))
    out = tmp_path_factory.mktemp("melodies")
    assert main(["data", "melodies", "--out", str(out)]) == 0
    return out


def test_data_melodies_writes_the_essen_tunes_split_by_tune(corpus_dir):
    splits = {name: parse_abc((corpus_dir / f"{name}.txt").read_text(), name)
              for name in ("train", "valid", "test")}
    sizes = {name: len(tunes) for name, tunes in splits.items()}
    assert sizes["train"] > 7000 and 300 < sizes["valid"] < 600 and 300 < sizes["test"] < 600
    texts = {name: {t.text for t in tunes} for name, tunes in splits.items()}
    assert all(len(texts[name]) == sizes[name] for name in texts)  # no repeats ...
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["valid"]  # no leaks
    train = (corpus_dir / "train.txt").read_text()
    assert train.startswith("X:1\nM:") and "\n\nX:1\nM:" in train and "T:" not in train


def test_prompt_and_end_of_tune():
    assert normalize_prompt(r"X:1\nM: 4/4\nL:1/8\nK:  G\nG") == "X:1\nM:4/4\nL:1/8\nK:G\nG"
    assert normalize_prompt("K:G\nG") == "X:1\nK:G\nG"
    text = "X:1\nK:G\nGA|B\n\nX:1\nK:D\n"
    assert text[: end_of_tune(text)] == "X:1\nK:G\nGA|B\n"
    assert end_of_tune("X:1\nK:G\nGA|B\n") is None
    with pytest.raises(DataError, match="expected one tune, found 0"):
        tune_from_text("no tune here")


def test_midi_holds_the_notes_of_the_abc(tmp_path):
    music21 = pytest.importorskip("music21")
    tune = tune_from_text("X:1\nM:3/4\nL:1/8\nK:F\nCDE | F2A4 | c2B2A2 | F6 |]\n")
    summary = write_midi(tune.text, tmp_path / "t.mid")
    assert summary.notes == 9 and summary.seconds == pytest.approx(5.25)  # 21 eighths, 120/min
    assert _notes(music21.converter.parse(tmp_path / "t.mid")) == [
        ("C4", 0.0, 0.5), ("D4", 0.5, 0.5), ("E4", 1.0, 0.5), ("F4", 1.5, 1.0), ("A4", 2.5, 2.0),
        ("C5", 4.5, 1.0), ("B-4", 5.5, 1.0), ("A4", 6.5, 1.0), ("F4", 7.5, 3.0),
    ]  # (pitch, onset, length) in quarter notes; K:F makes B a B flat


def test_midi_of_a_bar_longer_than_its_meter(tmp_path):
    music21 = pytest.importorskip("music21")
    text = "X:1\nM:4/4\nL:1/8\nK:G\nG2 | A2G2A6 | B2 |\n"  # 10 eighths in a 4/4 bar
    assert write_midi(text, tmp_path / "t.mid").notes == 5  # (a sample is refused before)
    assert _notes(music21.converter.parse(tmp_path / "t.mid")) == [
        ("G4", 0.0, 1.0), ("A4", 1.0, 1.0), ("G4", 2.0, 1.0), ("A4", 3.0, 3.0), ("B4", 6.0, 1.0),
    ]


@pytest.mark.parametrize("music, where, what", [
    ("G2AB c2BA | G42 |", 5, "the bar at column 13 lasts 21 quarter notes; M:4/4 holds 4"),
    ("G8 | G8 G8 G8 G8 z2 |", 5, "column 6 lasts 17 quarter notes"),  # 17 quarters in 4/4
    ("G8 | A4B4c4 z6 |", 5, "column 6 lasts 9 quarter notes"),  # just past twice the meter
    ("G8 | A17", 5, "column 6 lasts 8.5 quarter notes"),  # the last bar, with no bar line
    ("G8 |\nM:3/4\nA12 B2 |", 7, "lasts 7 quarter notes; M:3/4 holds 3"),  # a meter change
    ("G8 |\nL:1/4\nA8 B |", 7, "lasts 9 quarter notes; M:4/4 holds 4"),  # a unit change
    ("G8 | A0 |", 5, "a note of length 0 at column 6"),
])
def test_a_sampled_bar_far_longer_than_its_meter_is_refused(music, where, what):
    with pytest.raises(DataError, match=f"^the sampled tune:{where}: .*{what}"):
        tune_from_text(HEADER + music + "\n")


@pytest.mark.parametrize("music", [
    "G2 | A2G2 A4 | B8 |]",  # an upbeat, then full bars
    "G2AB c2BA :| G4 |",  # a bar split by a repeat sign, a short last bar
    "G3/2A/ B/c/d e4 |",  # broken lengths adding up to 4/4 exactly
    "G8 | A4B4c4 z4 |",  # a phrase's end with its rest: twice the meter, as Essen writes
    "G4 A4 B4\nc4 d4 e4 |",  # a line's end ends a bar: two bars of 6 quarters, not one of 12
    "M:none\nG16 A16 |",  # free meter: any length
])
def test_bars_within_their_meter_are_accepted(music):
    assert tune_from_text(HEADER + music + "\n").meter == "4/4"


def test_the_essen_tunes_pass_the_bar_check(corpus_dir):
    """The check refuses what a model writes past the corpus, not the corpus itself."""
    from textrnn.data.melodies import check_bars

    tunes = parse_abc((corpus_dir / "train.txt").read_text(encoding="utf-8"))
    refused = 0
    for tune in tunes:
        try:
            check_bars(tune)
        except DataError:
            refused += 1
    assert len(tunes) > 7000 and refused / len(tunes) < 0.005


def test_the_essen_corpus_is_read_as_it_is_written():
    """The bar check is for samples only: parse_abc does not refuse a long corpus bar."""
    assert parse_abc(HEADER + "G2 | A2G2A6 | B2 |\n")[0].body == ("G2 | A2G2A6 | B2 |",)


def _notes(score) -> list[tuple[str, float, float]]:
    """(pitch, onset, length) of every note, tied notes joined (MIDI files know no bars)."""
    return [(n.nameWithOctave, float(n.offset), float(n.quarterLength))
            for n in score.stripTies().flatten().notes]


# --- the sample command, on tiny models that learned one kind of tune by heart ---------------

HEADER = "X:1\nM:4/4\nL:1/8\nK:G\n"
GOOD = HEADER + "G2AB c2BA | G4 z4 |\nd2cB A2G2 | G8 |]\n"
BAD = HEADER + "G2(AB c2BA | G4 z4 |\n"  # "(" is not in the supported ABC


def _train(root, tunes: list[str]):
    root.mkdir()
    (root / "tunes.txt").write_text("\n".join(tunes * 60))
    argv = ["train", "lm", "--data", str(root / "tunes.txt"), "--out", str(root / "run"),
            "--level", "char", "--hidden-size", "64", "--embedding-size", "16",
            "--num-layers", "1", "--dropout", "0", "--bptt", "32", "--batch-size", "16",
            "--lr", "0.02", "--max-steps", "80", "--epochs", "100", "--eval-every", "80",
            "--threads", "1", "--seed", "0"]
    assert main(argv) == 0
    return root / "run" / "best.pt"


@pytest.fixture(scope="module")
def tune_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tunes")
    return {"good": _train(root / "good", [GOOD]), "mixed": _train(root / "mixed", [GOOD, BAD])}


PROMPT = r"X:1\nM:4/4\nL:1/8\nK:G\nG"  # as a shell passes "X:1\nM:4/4...": backslash, n


def _sample(checkpoint, out, *extra):
    return main(["sample", "--checkpoint", str(checkpoint), "--prompt", PROMPT, "--abc", str(out),
                 *extra])


def test_sample_continues_the_tune_stops_at_its_end_and_writes_abc_and_midi(
    tune_models, tmp_path, capsys
):
    music21 = pytest.importorskip("music21")
    assert _sample(tune_models["good"], tmp_path / "a.abc", "--temperature", "0") == 0
    out, err = capsys.readouterr()
    assert out == GOOD  # streamed: the prompt, the rest of the tune, nothing after its end
    assert "wrote" in err and "a.mid" in err
    written = (tmp_path / "a.abc").read_text()
    assert written.startswith("X:1\nT:") and parse_abc(written)[0].text == GOOD
    expected = _notes(music21.converter.parse(GOOD, format="abc"))
    assert _notes(music21.converter.parse(tmp_path / "a.mid")) == expected and len(expected) == 13


def test_sample_with_a_seed_is_reproducible(tune_models, tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        assert _sample(tune_models["good"], tmp_path / f"{name}.abc", "--temperature", "1.2",
                       "--seed", "7", "--abc-retries", "50") == 0
        runs.append((capsys.readouterr().out, (tmp_path / f"{name}.abc").read_text(),
                     (tmp_path / f"{name}.mid").read_bytes()))
    assert runs[0] == runs[1]


def test_an_invalid_tune_is_reported_and_the_next_seeds_tried_only_when_asked(
    tune_models, tmp_path, capsys
):
    target = tmp_path / "t.abc"
    failing = None
    for seed in range(20):  # the model writes GOOD or BAD after "G2", about half and half
        if _sample(tune_models["mixed"], target, "--seed", str(seed), "--temperature", "1") == 2:
            failing = seed
            break
    assert failing is not None
    err = capsys.readouterr().err
    assert "not valid ABC" in err and "unexpected '('" in err and "--abc-retries" in err
    assert not target.exists() and not target.with_suffix(".mid").exists()  # nothing written
    assert _sample(tune_models["mixed"], target, "--seed", str(failing), "--temperature", "1",
                   "--abc-retries", "30") == 0
    err = capsys.readouterr().err
    assert f"seed {failing}: not valid ABC" in err and f"trying seed {failing + 1}" in err
    assert parse_abc(target.read_text())[0].text == GOOD


def _prose_model(tmp_path, text: str, level: str):
    """A tiny LM of ``level`` trained two steps on ``text`` (no tunes in it)."""
    (tmp_path / "w.txt").write_text(text * 40)
    assert main(["train", "lm", "--data", str(tmp_path / "w.txt"), "--out", str(tmp_path / "r"),
                 "--level", level, "--hidden-size", "8", "--embedding-size", "8",
                 "--num-layers", "1", "--max-steps", "2", "--bptt", "8", "--batch-size", "4",
                 "--threads", "1"]) == 0
    return tmp_path / "r" / "best.pt"


def test_abc_needs_a_char_model(tmp_path, capsys):
    model = _prose_model(tmp_path, "the cat sat on the mat\n", "word")
    capsys.readouterr()
    assert _sample(model, tmp_path / "x.abc") == 2
    assert "need a char-level model" in capsys.readouterr().err


def test_abc_needs_a_model_trained_on_tunes_and_says_so_before_any_prose(tmp_path, capsys):
    model = _prose_model(tmp_path, "Shall I compare thee to a summer's day?\n", "char")
    capsys.readouterr()
    assert _sample(model, tmp_path / "x.abc") == 2
    captured = capsys.readouterr()
    assert "trained on ABC tunes" in captured.err and captured.err.count("\n") == 1
    assert captured.out.strip() == "" and not (tmp_path / "x.abc").exists()
