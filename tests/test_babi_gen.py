"""Generated bAbI-style stories: deterministic, parseable, and answered correctly.

The answers are checked by a second, independent simulation that reads the
generated sentences back as text, so a bug in the generator's world model
cannot hide behind the same bug in the check.
"""

from __future__ import annotations

import collections
import re

import pytest
from babi_paths import real_babi_dir

from textrnn.data.babi import answer_tokens, find_task_files, parse_babi, read_babi
from textrnn.data.babi_gen import KINDS, generate_stories, write_generated

MOVE = re.compile(r"(\w+) (?:moved to|went to|journeyed to|travelled to|went back to) the (\w+)\.")
GET = re.compile(r"(\w+) (?:got|picked up|grabbed|took) the (\w+) there\.")
DROP = re.compile(r"(\w+) (?:dropped|discarded|put down|left) the (\w+)(?: there)?\.")
WHERE = re.compile(r"Where is (\w+)\?")
YESNO = re.compile(r"Is (\w+) in the (\w+)\?")
COUNT = re.compile(r"How many objects is (\w+) carrying\?")
CARRYING = re.compile(r"What is (\w+) carrying\?")
NUMBERS = ["none", "one", "two", "three"]


def check_answers(lines):
    """Replay the story text and check every answer and supporting id; return kind counts."""
    kinds = collections.Counter()
    for line in lines:
        line_id, text = line.split(" ", 1)
        line_id = int(line_id)
        if line_id == 1:
            place, holding, lying, last_move, events = {}, {}, {}, {}, {}
            statements = {}
        if "\t" not in text:
            statements[line_id] = text
            if m := MOVE.fullmatch(text):
                person, where = m.groups()
                assert place.get(person) != where, line  # a move goes somewhere new
                place[person], last_move[person] = where, line_id
            elif m := GET.fullmatch(text):
                person, obj = m.groups()
                assert person in place, line  # "there" needs a place
                assert not any(obj in held for held in holding.values()), line
                assert lying.get(obj, place[person]) == place[person], line
                holding.setdefault(person, []).append(obj)
                lying.pop(obj, None)
                events.setdefault(person, []).append(line_id)
            elif m := DROP.fullmatch(text):
                person, obj = m.groups()
                holding[person].remove(obj)  # raises if not held
                lying[obj] = place[person]
                events[person].append(line_id)
            else:
                raise AssertionError(f"unexpected statement {line!r}")
            continue
        question, answer, support = text.split("\t")
        question = question.rstrip()
        support = [int(i) for i in support.split()]
        if m := WHERE.fullmatch(question):
            kind, person = "where", m.group(1)
            assert answer == place[person] and support == [last_move[person]], line
        elif m := YESNO.fullmatch(question):
            kind, (person, where) = "yesno", m.groups()
            expected = "yes" if place[person] == where else "no"
            assert answer == expected and support == [last_move[person]], line
        elif m := COUNT.fullmatch(question):
            kind, person = "count", m.group(1)
            assert answer == NUMBERS[len(holding.get(person, []))], line
            assert support == events[person], line
        elif m := CARRYING.fullmatch(question):
            kind, person = "carrying", m.group(1)
            expected = sorted(holding.get(person, [])) or ["nothing"]
            assert sorted(answer_tokens(answer)) == expected, line
            assert support == events[person], line
        else:
            raise AssertionError(f"unexpected question {line!r}")
        assert all(person in statements[i] for i in support), line
        kinds[kind] += 1
    return kinds


def test_deterministic_per_seed():
    assert generate_stories(50, seed=3) == generate_stories(50, seed=3)
    assert generate_stories(50, seed=3) != generate_stories(50, seed=4)


@pytest.mark.parametrize("num_questions", [0, 1, 7, 300])
def test_exact_question_count_and_parses(num_questions):
    lines = generate_stories(num_questions, seed=1)
    examples = parse_babi(lines, path="generated")
    assert len(examples) == num_questions
    assert all(e.support and e.task is None for e in examples)


def test_answers_match_a_replay_of_the_story():
    kinds = check_answers(generate_stories(2000, seed=0))
    assert set(kinds) == set(KINDS)
    # kinds are drawn evenly
    assert min(kinds.values()) > 2000 / len(KINDS) * 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_single_kind(kind):
    lines = generate_stories(100, kinds=[kind], seed=2)
    assert check_answers(lines) == {kind: 100}


def test_answers_cover_what_bAbI_asks():
    answers = {e.answer for e in parse_babi(generate_stories(3000, seed=5))}
    assert {"yes", "no", "none", "one", "two", "nothing"} <= answers
    assert any("," in a for a in answers)  # multi-object lists, as in task 8


def test_bad_arguments():
    with pytest.raises(ValueError, match="kinds"):
        generate_stories(5, kinds=["where", "why"])
    with pytest.raises(ValueError, match="kinds"):
        generate_stories(5, kinds=[])
    with pytest.raises(ValueError, match="num_questions"):
        generate_stories(-1)


def test_vocabulary_is_real_babi_vocabulary():
    en = real_babi_dir() / "en"
    real = set()
    for path in find_task_files(en, [1, 6, 7, 8]).values():
        for e in read_babi(path):
            real.update(w for s in e.story for w in s)
            real.update(e.question)
            real.update(answer_tokens(e.answer))
    generated = set()
    for e in parse_babi(generate_stories(3000, seed=0)):
        generated.update(w for s in e.story for w in s)
        generated.update(e.question)
        generated.update(answer_tokens(e.answer))
    assert generated <= real, generated - real


def test_write_generated_labels_the_data(tmp_path):
    paths = write_generated(tmp_path / "gen", num_train=40, num_test=20, seed=0)
    assert set(paths) == {"train", "test", "readme"}
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == [
        "README.txt",
        "generated_qa_test.txt",
        "generated_qa_train.txt",
    ]
    readme = paths["readme"].read_text()
    assert "GENERATED" in readme and "not the real bAbI" in readme
    train, test = read_babi(paths["train"]), read_babi(paths["test"])
    assert len(train) == 40 and len(test) == 20
    assert train[:20] != test  # different seeds per split
    assert paths["train"].read_text().splitlines() == generate_stories(40, seed=0)
    check_answers(paths["test"].read_text().splitlines())
