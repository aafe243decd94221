"""The bAbI parser: tiny inline stories, malformed lines, and the real v1.2 files."""

from __future__ import annotations

import pickle
import re

import pytest
from babi_paths import real_babi_dir

from textrnn.data.babi import (
    QAExample,
    answer_tokens,
    find_task_files,
    parse_babi,
    read_babi,
    task_of_filename,
)
from textrnn.errors import DataError, TextrnnError

STORY = [
    "1 Mary moved to the bathroom.",
    "2 John went to the hallway.",
    "3 Where is Mary? \tbathroom\t1",
    "4 Daniel went back to the hallway.",
    "5 Where is Daniel?\thallway\t4",
    "6 What is John carrying?\tapple,football\t2 4",
    "1 Sandra got the milk there.",
    "2 Where is Sandra?\tkitchen\t1",
]


@pytest.fixture(scope="module")
def en():
    return real_babi_dir() / "en"


def count_questions(path):
    with open(path, encoding="utf-8") as f:
        return sum("\t" in line for line in f)


# -- tiny inline stories -------------------------------------------------------


def test_parse_stories_questions_and_support():
    examples = parse_babi(STORY, task=1)
    assert [e.answer for e in examples] == ["bathroom", "hallway", "apple,football", "kitchen"]
    first, second, third, fourth = examples
    assert first == QAExample(
        story=[
            ["mary", "moved", "to", "the", "bathroom"],
            ["john", "went", "to", "the", "hallway"],
        ],
        question=["where", "is", "mary"],
        answer="bathroom",
        support=[0],
        task=1,
    )
    # Questions are not story sentences, so id 4 is story position 2 ...
    assert len(second.story) == 3 and second.support == [2]
    assert second.story[2] == ["daniel", "went", "back", "to", "the", "hallway"]
    # ... and a later question does not see the earlier questions either.
    assert len(third.story) == 3 and third.support == [1, 2]
    # Ids restart at 1: a new story with nothing from the old one.
    assert fourth.story == [["sandra", "got", "the", "milk", "there"]] and fourth.support == [0]


def test_story_is_a_snapshot():
    first, second, *_ = parse_babi(STORY)
    assert len(first.story) == 2 and len(second.story) == 3


def test_crlf_trailing_whitespace_and_blank_lines():
    lines = [line + "  \r\n" for line in STORY[:3]]
    lines.insert(1, "\r\n")
    lines.insert(0, "   \n")
    assert parse_babi(lines) == parse_babi(STORY[:3])


def test_support_order_is_kept():
    lines = ["1 Mary went to the office.", "2 Mary went to the school.", "3 Where?\toffice\t2 1"]
    assert parse_babi(lines)[0].support == [1, 0]


def test_no_lines_no_examples():
    assert parse_babi([]) == []


def test_examples_pickle():
    example = parse_babi(STORY)[0]
    assert pickle.loads(pickle.dumps(example)) == example


@pytest.mark.parametrize(
    "lines, line, message",
    [
        (["Mary moved to the bathroom."], 1, "numeric id"),
        (["1 Mary moved.", "", "x2 Where is Mary?\tbathroom\t1"], 3, "numeric id"),
        (["1 Mary moved.", "2"], 2, "no text"),
        (["1 Mary moved.", "2 Where is Mary?\tbathroom"], 2, "ids), got 2"),
        (["1 Mary moved.", "2 Where is Mary?\tbathroom\t1\t1"], 2, "got 4"),
        (["1 Mary moved.", "2 Where is Mary?\t\t1"], 2, "answer is empty"),
        (["1 Mary moved.", "2 ?\tbathroom\t1"], 2, "question has no words"),
        (["1 Mary moved.", "2 Where is Mary?\tbathroom\tone"], 2, "'one' is not a number"),
        (["1 Mary moved.", "2 Where is Mary?\tbathroom\t3"], 2, "names no earlier statement"),
        # a supporting id may not name a question ...
        (["1 M moved.", "2 Where?\tx\t1", "3 Where?\tx\t2"], 3, "supporting id 2 names no"),
        # ... nor a statement of the previous story
        (["1 A.", "2 B.", "3 C.", "1 D.", "2 Where?\tx\t3"], 5, "supporting id 3 names no"),
        (["1 Mary moved.", "2 John moved.", "2 Sandra moved."], 3, "id 2 after id 2"),
        (["1 Mary moved.", "3 John moved.", "2 Sandra moved."], 3, "ids must increase"),
        (["2 Mary moved."], 1, "must start at id 1"),
        (["1 Mary moved.", "2 ..."], 2, "statement 2 has no words"),
    ],
)
def test_malformed_lines_name_path_and_line(lines, line, message):
    with pytest.raises(DataError) as info:
        parse_babi(lines, path="story.txt")
    assert str(info.value).startswith(f"story.txt:{line}: ")
    assert message in str(info.value)
    assert info.value.line == line and info.value.path == "story.txt"
    assert isinstance(info.value, TextrnnError)


def test_read_babi_error_names_file_and_line(tmp_path):
    path = tmp_path / "qa1_single-supporting-fact_train.txt"
    path.write_text("1 Mary moved to the bathroom.\n\nWhere is Mary?\tbathroom\t1\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: expected 'ID text'"):
        read_babi(path)


def test_read_babi_missing_and_undecodable_and_empty(tmp_path):
    missing = tmp_path / "qa1_missing_train.txt"
    with pytest.raises(DataError, match=rf"^{re.escape(str(missing))}: no such bAbI file"):
        read_babi(missing)
    latin1 = tmp_path / "qa1_latin1_train.txt"
    latin1.write_bytes("1 Zoë moved.\n2 Where?\tx\t1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_babi(latin1)
    no_questions = tmp_path / "qa1_statements_train.txt"
    no_questions.write_text("1 Mary moved to the bathroom.\n")
    with pytest.raises(DataError, match="no questions"):
        read_babi(no_questions)


def test_read_babi_sets_task_from_name(tmp_path):
    path = tmp_path / "qa7_counting_test.txt"
    path.write_text("\n".join(STORY) + "\n")
    assert {e.task for e in read_babi(path)} == {7}


def test_answer_tokens_and_task_numbers():
    assert answer_tokens("apple,football") == ["apple", "football"]
    assert answer_tokens("n,w") == ["n", "w"]
    assert answer_tokens("yes") == ["yes"]
    assert task_of_filename("qa6_yes-no-questions_train.txt") == 6
    assert task_of_filename("qa20_agents-motivations_test.txt") == 20
    assert task_of_filename("notes.txt") is None


def test_find_task_files_errors(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        find_task_files(tmp_path / "nope", [1])
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path))}: no bAbI train files"):
        find_task_files(tmp_path, None)
    (tmp_path / "qa1_a_train.txt").write_text("")
    (tmp_path / "qa1_b_train.txt").write_text("")
    with pytest.raises(DataError, match="two train files for task 1"):
        find_task_files(tmp_path, [1])
    with pytest.raises(ValueError, match="split"):
        find_task_files(tmp_path, [1], split="dev")


# -- the real bAbI v1.2 files -------------------------------------------------


@pytest.mark.parametrize("task", [1, 2, 3, 6, 7, 8, 19, 20])
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_files_question_counts(en, task, split):
    path = find_task_files(en, [task], split)[task]
    examples = read_babi(path)
    assert len(examples) == count_questions(path) == 1000
    assert {e.task for e in examples} == {task}
    for e in examples:
        assert e.support and all(0 <= i < len(e.story) for i in e.support)


def test_real_10k_counts_and_missing_qa3():
    root = real_babi_dir() / "en-10k"
    path = find_task_files(root, [1], "train")[1]
    assert len(read_babi(path)) == count_questions(path) == 10000
    # v1.2's en-10k ships no qa3 train file; the error names the folder and the task.
    with pytest.raises(DataError, match=rf"^{re.escape(str(root))}: no train file for task 3"):
        find_task_files(root, [1, 3], "train")
    assert 3 not in find_task_files(root, None, "train")
    assert 3 in find_task_files(root, None, "test")


def test_real_find_task_files(en):
    files = find_task_files(en, None, "test")
    assert list(files) == list(range(1, 21))
    assert files[6].name == "qa6_yes-no-questions_test.txt"


def test_real_qa1_support_mentions_the_person_and_place(en):
    examples = read_babi(find_task_files(en, [1])[1])
    for e in examples:
        person = e.question[-1]  # "where is mary"
        (fact,) = [e.story[i] for i in e.support]
        assert person in fact and e.answer in fact
        # the supporting fact is the person's last move before the question
        assert not any(person in s for s in e.story[e.support[0] + 1 :])
    assert not any(s[0] == "where" for e in examples for s in e.story)


def test_real_answer_vocabularies(en):
    def answers(task):
        return {e.answer for e in read_babi(find_task_files(en, [task])[task])}

    assert answers(6) == {"yes", "no"}
    assert answers(7) <= {"none", "one", "two", "three"}
    objects = {"apple", "football", "milk"}
    lists = answers(8)
    assert "apple,football" in lists or "football,apple" in lists
    assert {t for a in lists for t in answer_tokens(a)} == objects | {"nothing"}
    paths = answers(19)
    assert "n,w" in paths
    assert all(len(answer_tokens(a)) == 2 for a in paths)
    assert {t for a in paths for t in answer_tokens(a)} == {"n", "s", "e", "w"}
