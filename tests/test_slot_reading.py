"""``slot_reading="all"``: every story is read with its names, places and things as slots,
known or not, so a story of new names reads exactly as the same story of known ones."""

from __future__ import annotations

import torch
from two_people import write_two_people

from textrnn import checkpoint
from textrnn.chat import Answerer
from textrnn.data.babi import parse_babi
from textrnn.data.entities import slotted_words
from textrnn.data.qa_batches import QABatches, build_vocabs, encode_stories
from textrnn.data.slot_reading import shuffled_order
from textrnn.pipelines import qa

LINES = ["1 Mary went to the garden.", "2 John moved to the office.",
         "3 Where is Mary?\tgarden\t1", "4 Is John in the garden?\tno\t2",
         "1 Sandra is hungry.", "2 Where will sandra go?\tkitchen\t1",
         "3 Sandra went to the kitchen.", "4 Why did sandra go to the kitchen?\thungry\t1"]
KNOWN = [["mary", "went", "to", "the", "garden"], ["john", "moved", "to", "the", "office"]]
NEW = [["alice", "went", "to", "the", "attic"], ["bob", "moved", "to", "the", "porch"]]


def test_slotted_words_are_the_entities_but_knowledge_cues():
    slotted = slotted_words(parse_babi(LINES))
    # "hungry" is what "where will sandra go?" is answered from, and "kitchen" is that
    # answer in one of its two stories here: both stay words; the name sandra does not
    assert slotted == {"mary", "john", "garden", "office", "sandra"}


def test_known_and_new_names_read_the_same_and_answers_map_back_to_each():
    examples = parse_babi(LINES)
    words, answers = build_vocabs(examples, entity_slots=6)
    slotted = frozenset(slotted_words(examples))
    known, known_meanings = encode_stories([KNOWN], [["where", "is", "mary"]], words, 50, 6,
                                           answers, slotted=slotted)
    new, new_meanings = encode_stories([NEW], [["where", "is", "alice"]], words, 50, 6,
                                       answers, slotted=slotted)
    for key in ("story", "question", "answer_mask"):
        assert torch.equal(known[key], new[key]), key
    first = answers.stoi["@ent1"]
    assert known_meanings[0][first + 1] == "garden" and new_meanings[0][first + 1] == "attic"
    assert known["story"].max() < len(words)
    assert not {words.stoi[w] for w in slotted} & set(known["story"].flatten().tolist())
    # without slotted (checkpoints from before), known words keep their own ids
    plain, _ = encode_stories([KNOWN], [["where", "is", "mary"]], words, 50, 6, answers)
    assert plain["story"][0, 0, 0] == words.stoi["mary"]


def test_training_reads_every_entity_as_a_slot_under_shuffled_numbers():
    examples = parse_babi(LINES) * 10
    words, answers = build_vocabs(examples, entity_slots=6)
    slotted = frozenset(slotted_words(examples))
    batches = QABatches(examples, words, answers, batch_size=40, shuffle=True, seed=0,
                        entity_slots=6, slotted=slotted)
    slot_ids = set(range(words.stoi["@ent1"], words.stoi["@ent6"] + 1))
    numbers: set[tuple[int, ...]] = set()
    for batch in batches:
        ids = set(batch["story"].flatten().tolist()) | set(batch["question"].flatten().tolist())
        assert not {words.stoi[w] for w in slotted} & ids  # no known entity word is left
        assert words.stoi["hungry"] in ids  # the knowledge cue is
        # "where is X?" is answered by the slot that stands for X's place
        where = (batch["question"][:, 0] == words.stoi["where"]) & (
            batch["question"][:, 1] == words.stoi["is"])
        assert (batch["answer"][where] >= answers.stoi["@ent1"]).all()
        numbers.update(tuple(row) for row in batch["question"][:, 2:3].tolist())
    assert len(numbers & {(i,) for i in slot_ids}) > 1  # the slot numbers vary


def test_build_stores_the_slotted_words_and_the_chat_reads_new_names(tmp_path):
    run = qa.build(write_two_people(tmp_path / "qa1_train.txt", 60), arch="memn2n",
                   embedding_size=8, hops=1)
    assert run.model.config.slot_reading == "all"
    assert run.model.config.entity_slots == 4  # two people and two places a story
    assert set(run.model.vocabs["slotted"].itos) == {"mary", "john", "garden", "office"}
    checkpoint.save(tmp_path / "ck.pt", model=run.model)
    bot = Answerer(checkpoint.load(tmp_path / "ck.pt", task="qa"))
    known = bot.answer(["Mary went to the garden.", "John moved to the office."], "Where is John?")
    new = bot.answer(["Alice went to the attic.", "Bob moved to the porch."], "Where is Bob?")
    # an untrained model, but one that cannot tell the two stories apart: the same answer
    # (a slot's word, renamed, or the same class) with the same confidence and evidence
    rename = {"mary": "alice", "john": "bob", "garden": "attic", "office": "porch"}
    slot_words = {w: rename[w] for w in ("mary", "john", "garden", "office")}
    new_words = [slot_words.get(w, w) for w in known.answer.split(",")]
    assert new.answer in (",".join(new_words), known.answer)
    assert abs(known.confidence - new.confidence) < 1e-6
    assert [e.weight for e in known.evidence] == [e.weight for e in new.evidence]


def test_past_k_entities_a_known_name_reads_as_unk_like_a_new_one():
    examples = parse_babi(LINES)
    words, answers = build_vocabs(examples, entity_slots=2)
    slotted = frozenset(slotted_words(examples))
    known, _ = encode_stories([KNOWN], [["where", "is", "mary"]], words, 50, 2, answers,
                              slotted=slotted)
    new, _ = encode_stories([NEW], [["where", "is", "alice"]], words, 50, 2, answers,
                            slotted=slotted)
    assert torch.equal(known["story"], new["story"])
    assert known["story"][0, 1, 0] == known["story"][0, 1, 4] == words.unk_id  # john, office


def test_shuffled_numbers_are_dense_and_every_order_of_them_is_drawn():
    used = torch.tensor([[True, True, True, False, False], [True, False, True, False, True]])
    seen: set[tuple[int, ...]] = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        order = shuffled_order(used, torch.rand(used.shape, generator=g))
        assert (order.sort(-1).values == torch.arange(5)).all()  # a permutation of 0..K-1
        assert set(order[0, :3].tolist()) == {0, 1, 2} and order[0, 3:].tolist() == [3, 4]
        assert set(order[1, used[1]].tolist()) == {0, 1, 2}  # used columns anywhere
        seen.add(tuple(order[0, :3].tolist()))
    assert len(seen) == 6  # all 3! orders of the three entities


def test_training_and_answering_number_a_story_of_n_entities_1_to_n():
    examples = parse_babi(LINES) * 10
    words, answers = build_vocabs(examples, entity_slots=6)
    slotted = frozenset(slotted_words(examples))
    first = words.stoi["@ent1"]
    for shuffle, draws in ((True, 1), (False, 8)):
        batches = QABatches(examples, words, answers, batch_size=40, shuffle=shuffle, seed=0,
                            entity_slots=6, slotted=slotted, slot_draws=draws)
        views = 0
        for batch in batches:
            readings = [(batch["story"], batch["question"])]
            readings += list(zip(batch.get("view_story", []), batch.get("view_question", []),
                                 strict=True))
            views += len(readings)
            for story, question in readings:
                for b in range(len(story)):
                    ids = story[b].flatten().tolist() + question[b].tolist()
                    numbers = {i - first for i in ids if i >= first}
                    assert numbers == set(range(len(numbers))), (shuffle, b)  # 0..n-1
        assert views >= (8 if draws == 8 else 1)
