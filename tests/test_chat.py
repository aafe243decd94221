"""The chat layer without HTTP: Answerer and ChatSession behaviour, and the terminal REPL."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from textrnn import load
from textrnn.chat import Answerer, ChatSession, format_answer, split_sentences
from textrnn.checkpoint import load as load_bundle
from textrnn.cli.terminal import repl
from textrnn.data.slot_lists import list_table
from textrnn.errors import CheckpointError

PLACES = {"bathroom", "hallway", "garden", "office", "bedroom", "kitchen"}
STORY = ["Mary moved to the bathroom.", "John went to the hallway.", "Daniel went to the office."]


@pytest.fixture(scope="module")
def bot(qa_checkpoint) -> Answerer:
    return load(str(qa_checkpoint))


def test_load_gives_an_answerer_with_answer_confidence_and_evidence(bot):
    assert isinstance(bot, Answerer)
    a = bot.answer(STORY, "Where is Mary?")
    assert a.answer == "bathroom"  # the suite's model answers 'where' questions well
    assert 0.0 < a.confidence <= 1.0
    assert a.evidence and all(0 <= e.index < len(STORY) for e in a.evidence)
    assert all(e.sentence == STORY[e.index] for e in a.evidence)
    assert a.unknown_words == [] and a.dropped == 0
    assert set(a.to_dict()) == {"answer", "confidence", "evidence", "unknown_words", "dropped",
                                "sure", "hops"}


def test_batched_answers_equal_one_at_a_time(bot):
    items = [
        (STORY, "Where is Mary?"), (STORY[:2], "Where is John?"), (STORY[1:], "Where is Daniel?"),
    ]
    batched = bot.answer_batch(items)
    single = [bot.answer(s, q) for s, q in items]
    for b, s in zip(batched, single, strict=True):
        assert b.answer == s.answer
        assert b.confidence == pytest.approx(s.confidence, abs=1e-5)
        assert [e.index for e in b.evidence] == [e.index for e in s.evidence]


def test_long_story_keeps_the_newest_sentences_and_maps_evidence_back(bot):
    filler = [f"{p} went to the garden." for p in ("John", "Daniel", "Sandra")] * 30
    story = ["Mary moved to the bathroom.", *filler, "Mary went to the kitchen."]
    a = bot.answer(story, "Where is Mary?")
    assert a.dropped == len(story) - bot.memory_size
    assert all(e.index >= a.dropped and e.sentence == story[e.index] for e in a.evidence)


def test_an_answer_under_the_validation_threshold_says_it_is_not_sure(bot):
    assert 0.3 <= bot.unsure_below <= 0.9  # chosen on validation, saved in the checkpoint
    sure = bot.answer(STORY, "Where is Mary?")
    assert sure.sure and "not sure" not in format_answer(sure)
    doubtful = replace(sure, confidence=bot.unsure_below / 2, sure=False)
    assert format_answer(doubtful).startswith("bathroom  (not sure, my best guess; confidence")
    low = [a for a in bot.answer_batch([(STORY, q) for q in
                                        ("Where is the milk?", "Where is Fred?", "Is it?")])]
    assert all(a.sure == (a.confidence >= bot.unsure_below) for a in low)


def test_unknown_words_are_reported_and_answered_as_entities(bot):
    a = bot.answer(["Mary moved to the zeppelin."], "Where is Mary?")
    assert a.unknown_words == ["zeppelin"] and a.answer == "zeppelin"


def test_names_and_places_never_seen_in_training(bot):
    """The transcript of issue 19: new people in new places, and a place it knows."""
    story = ["Alice went to the garden.", "Bob moved to the office."]
    assert bot.answer(story, "Where is Alice?").answer == "garden"
    assert bot.answer(story, "Where is Bob?").answer == "office"
    story = ["Zelda travelled to the observatory.", "Quentin went to the boathouse.",
             "Zelda journeyed to the lighthouse."]
    assert bot.answer(story, "Where is Quentin?").answer == "boathouse"
    assert bot.answer(story, "Where is Zelda?").answer == "lighthouse"


def test_a_list_class_reads_back_as_its_words_in_first_mention_order(bot, monkeypatch):
    """A list of things the model never saw (list classes: textrnn.data.slot_lists)."""
    story = ["Ada went to the lamp.", "Ada went to the kite."]  # ada, lamp, kite: slots 0-2
    config = bot.bundle.config
    table = list_table(config.entity_slots, config.list_slots).tolist()
    first = len(bot.answers)

    def predict(batch):
        n = int(batch["story_lengths"][0])
        return [{"answer_id": first + table.index([1, 2, -1]), "confidence": 0.9,
                 "attention": [1 / n] * n, "hops": [[1 / n] * n]}]

    monkeypatch.setattr(bot.model, "predict", predict)
    assert bot.answer(story, "What is Ada carrying?").answer == "lamp,kite"


def test_session_adds_statements_and_answers_questions(bot):
    session = ChatSession(bot)
    r = session.send("Mary moved to the bathroom. John went to the hallway.")
    assert r.kind == "added" and r.added == STORY[:2] and session.story == STORY[:2]
    r = session.send("Where is Mary?")
    assert r.kind == "answer" and r.answer is not None and r.answer.answer == "bathroom"
    assert r.text.startswith(r.answer.answer)
    r = session.send("Daniel went to the office. Where is Daniel?")  # both in one line
    assert r.kind == "answer" and session.story == STORY and r.answer.answer == "office"


@pytest.mark.parametrize("question", ["where is mary", "WHERE IS MARY", "  Where   is Mary  "])
def test_a_question_word_makes_a_question_without_its_mark(bot, question):
    session = ChatSession(bot)
    session.send("Mary moved to the bathroom. John went to the hallway.")
    r = session.send(question)
    assert r.kind == "answer" and r.answer.answer == "bathroom" and len(session.story) == 2
    r = session.send("Daniel went to the kitchen. where is daniel")
    assert r.kind == "answer" and r.answer.answer == "kitchen" and len(session.story) == 3


def test_session_commands_and_polite_errors(bot):
    session = ChatSession(bot, max_message_chars=50)
    assert session.send("Where is Mary?").kind == "info"  # no story yet
    assert session.send("   ").kind == "info"
    assert session.send("x" * 51).kind == "error"
    assert "51" in session.send("x" * 51).text
    session.send("Mary moved to the bathroom.")
    assert "1. Mary moved to the bathroom." in session.send("/story").text
    assert session.send("/bogus").kind == "error"
    assert "Commands" in session.send("/help").text
    session.send("/reset")
    assert session.story == [] and session.send("/story").text == "The story is empty."
    r = session.send("Mary moved to the zeppelin.")  # a new word is a new name: no warning
    assert r.kind == "added" and "don't know" not in r.text


def test_session_forgets_the_oldest_beyond_memory(bot):
    session = ChatSession(bot)
    lines = [f"John went to the {p}." for p in sorted(PLACES)] * 10  # 60 > memory 50
    replies = [session.send(line) for line in lines]
    assert len(session.story) == bot.memory_size
    assert session.story == lines[-bot.memory_size :]
    forgotten = [s for r in replies for s in r.forgotten]
    assert forgotten == lines[: len(lines) - bot.memory_size]
    assert "forgot" in replies[-1].text


def test_answerer_refuses_other_tasks(tiny_text, tmp_path):
    from textrnn.cli import main

    main(["train", "lm", "--data", str(tiny_text), "--out", str(tmp_path), "--max-steps", "2",
          "--bptt", "8", "--batch-size", "2", "--hidden-size", "8", "--embedding-size", "4"])
    with pytest.raises(CheckpointError, match="'qa' checkpoint"):
        Answerer(load_bundle(tmp_path / "best.pt"))
    with pytest.raises(CheckpointError, match="a 'lm' checkpoint, not a 'qa' one"):
        Answerer.from_checkpoint(str(tmp_path / "best.pt"))


def test_repl_over_a_pipe(bot):
    stdin = io.StringIO("Mary moved to the bathroom.\nWhere is Mary?\n/story\n/quit\nignored?\n")
    stdout = io.StringIO()
    assert repl(ChatSession(bot), stdin, stdout) == 0
    out = stdout.getvalue().splitlines()
    assert out[0].startswith("Noted")
    assert out[1].split()[0] == "bathroom" and "confidence" in out[1]
    assert out[2] == "1. Mary moved to the bathroom."
    assert len(out) == 3  # nothing after /quit


def test_split_sentences():
    assert split_sentences("A b. C d? E!") == ["A b.", "C d?", "E!"]
    assert split_sentences("...") == []
