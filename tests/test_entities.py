"""Entity slots: unknown words read as @entK, answers mapped back, training hides known
names; and the renamed bAbI test."""

from __future__ import annotations

import torch

from textrnn.cli import main
from textrnn.data.babi import parse_babi, read_babi
from textrnn.data.babi_rename import NEW_NAMES, NEW_NOUNS, rename_examples, write_renamed
from textrnn.data.entities import entity_words, knowledge_cues
from textrnn.data.qa_batches import QABatches, build_vocabs, encode_stories

LINES = ["1 Mary went to the garden.", "2 John moved to the office.",
         "3 Where is Mary?\tgarden\t1", "4 Is John in the garden?\tno\t2",
         "1 Sandra is hungry.", "2 Where will sandra go?\tkitchen\t1"]


def test_unknown_words_become_slots_in_order_of_first_mention_and_answers_map_back():
    words, answers = build_vocabs(parse_babi(LINES), entity_slots=3)
    assert words.itos[-3:] == answers.itos[-3:] == ["@ent1", "@ent2", "@ent3"]
    story = [["alice", "went", "to", "the", "attic"], ["mary", "went", "to", "the", "cellar"]]
    batch, meanings = encode_stories([story], [["where", "is", "alice"]], words, 50, 3, answers)
    slot = words.stoi
    assert batch["story"][0, 0].tolist() == [slot["@ent1"], slot["went"], slot["to"],
                                             slot["the"], slot["@ent2"]]
    # mary is known: read as itself; the new cellar takes the next slot
    assert batch["story"][0, 1].tolist() == [slot["mary"], slot["went"], slot["to"],
                                             slot["the"], slot["@ent3"]]
    assert batch["question"][0].tolist() == [slot["where"], slot["is"], slot["@ent1"]]
    first = answers.stoi["@ent1"]
    assert meanings == [{first: "alice", first + 1: "attic", first + 2: "cellar"}]
    # only the slots that stand for a word of this story can be answers
    batch, _ = encode_stories([story[:1]], [["where", "is", "alice"]], words, 50, 3, answers)
    mask = batch["answer_mask"][0]
    assert mask[: first].all() and mask[first: first + 2].all() and not mask[first + 2]


def test_more_unknown_words_than_slots_read_as_unk():
    words, answers = build_vocabs(parse_babi(LINES), entity_slots=1)
    story = [["alice", "went", "to", "the", "attic"]]
    batch, meanings = encode_stories([story], [["where", "is", "alice"]], words, 50, 1, answers)
    assert batch["story"][0, 0, 0] == words.stoi["@ent1"]
    assert batch["story"][0, 0, 4] == words.unk_id and batch["story"].max() < len(words)
    assert meanings == [{answers.stoi["@ent1"]: "alice"}]


def test_training_hides_known_entities_reproducibly_and_never_a_knowledge_cue():
    examples = parse_babi(LINES) * 20
    words, answers = build_vocabs(examples, entity_slots=4)
    entities = frozenset(entity_words(examples))
    assert entities == {"mary", "john", "sandra", "garden", "kitchen"}

    def epoch(seed: int, e: int) -> list[dict]:
        batches = QABatches(examples, words, answers, batch_size=60, shuffle=True, seed=seed,
                            entity_slots=4, entities=entities, entity_dropout=1.0)
        batches.set_epoch(e)
        return list(batches)

    a, b, c = epoch(0, 0), epoch(0, 0), epoch(0, 1)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    assert not all(torch.equal(x["story"], y["story"]) for x, y in zip(a, c, strict=True))
    slots = torch.tensor([words.stoi[f"@ent{k}"] for k in range(1, 5)])
    batch = a[0]
    hidden = torch.isin(batch["story"], slots).flatten(1).any(1)  # (B,)
    assert hidden.any()
    # "Where will sandra go?" -> kitchen is knowledge, not in the story: never hidden
    knowledge = batch["answer"] == answers.stoi["kitchen"]
    assert knowledge.any() and not hidden[knowledge].any()
    # a hidden answer is the slot its word was read as
    slot_answer = batch["answer"] >= answers.stoi["@ent1"]
    assert slot_answer.any()
    for row in slot_answer.nonzero().flatten().tolist():
        k = int(batch["answer"][row]) - answers.stoi["@ent1"] + 1
        assert (batch["story"][row] == words.stoi[f"@ent{k}"]).any()
        assert batch["answer_mask"][row, batch["answer"][row]]


def test_knowledge_cues_are_the_words_of_stories_that_do_not_hold_the_answer():
    assert knowledge_cues(parse_babi(LINES)) == {"sandra", "is", "hungry", "where", "will",
                                                 "go", "kitchen"}


def test_renamed_test_replaces_names_and_places_consistently(tmp_path):
    src, out = tmp_path / "babi", tmp_path / "renamed"
    src.mkdir()
    for split in ("train", "test"):
        (src / f"qa1_single-supporting-fact_{split}.txt").write_text("\n".join(LINES[:4]) + "\n")
    written = write_renamed(src, out)
    assert set(written) == {"qa1"} and written["qa1"].counts["questions"] == 2
    renamed = read_babi(out / "qa1_single-supporting-fact_test.txt")
    original = read_babi(src / "qa1_single-supporting-fact_test.txt")
    vocabulary = {w for ex in original for s in [*ex.story, ex.question] for w in s}
    new_words = {w for ex in renamed for s in ex.story for w in s} - vocabulary
    assert new_words and new_words <= {w.lower() for w in [*NEW_NAMES, *NEW_NOUNS]}
    first = renamed[0]
    assert first.answer == first.story[first.support[0]][-1] != "garden"  # still answerable
    assert first.question[-1] == first.story[0][0] != "mary"  # the same new name throughout
    assert renamed[1].answer == "no"  # yes/no answers are not renamed
    assert main(["data", "renamed", "--from", str(src), "--out", str(tmp_path / "cli")]) == 0


def test_renamed_test_renames_the_things_no_answer_names(tmp_path):
    """bAbI 17-19 answer yes/no or directions: their shapes, boxes and rooms are renamed
    too, the relations ("to the left of") and the answers are not."""
    src, out = tmp_path / "babi", tmp_path / "renamed"
    src.mkdir()
    shapes = ["1 The red square is to the left of the triangle.",
              "2 Is the triangle to the right of the red square?\tyes\t1"]
    rooms = ["1 The kitchen is north of the garden.", "2 The office is east of the kitchen.",
             "3 How do you go from the garden to the office?\tn,e\t1 2"]
    for split in ("train", "test"):
        (src / f"qa17_positional-reasoning_{split}.txt").write_text("\n".join(shapes) + "\n")
        (src / f"qa19_path-finding_{split}.txt").write_text("\n".join(rooms) + "\n")
    written = write_renamed(src, out)
    assert written["qa17"].counts["renamed words"] == 2  # red, triangle
    assert written["qa19"].counts["renamed words"] == 3  # kitchen, garden, office
    [q17] = read_babi(out / "qa17_positional-reasoning_test.txt")
    [q19] = read_babi(out / "qa19_path-finding_test.txt")
    new = {w.lower() for w in NEW_NOUNS}
    assert q17.story[0][1] in new and q17.story[0][2] == "square" and q17.story[0][6] == "left"
    assert q17.question[2] == q17.story[0][-1] in new and q17.answer == "yes"
    assert {q19.story[0][1], q19.story[0][-1], q19.story[1][1]} <= new and q19.answer == "n,e"
    assert q19.question[-1] == q19.story[1][1] and q19.question[-4] == q19.story[0][-1]


def test_rename_examples_renames_parsed_stories_like_files():
    examples = parse_babi(LINES)
    taken = {w for ex in examples for s in [*ex.story, ex.question] for w in s}
    renamed = rename_examples(examples, examples, taken)
    first = renamed[0]
    assert first.story[0][0] not in taken and first.question[-1] == first.story[0][0]
    assert first.answer == first.story[0][-1] not in taken  # garden -> a new noun
    assert renamed[1].answer == "no"
    assert renamed[2].story == [["sandra", "is", "hungry"]] or renamed[2].story[0][1:] == [
        "is", "hungry"]  # a knowledge cue stays; only the name may change
    assert renamed[2].answer == "kitchen"


def test_answers_are_averaged_over_numberings_of_the_slots():
    from textrnn.models.qa import QAConfig, QAModel

    words, answers = build_vocabs(parse_babi(LINES), entity_slots=3)
    story = [["alice", "went", "to", "the", "attic"], ["bob", "went", "to", "the", "cellar"]]
    batch, _ = encode_stories([story], [["where", "is", "alice"]], words, 50, 3, answers,
                              slot_draws=4)
    assert batch["view_story"].shape == (3, *batch["story"].shape)
    assert sorted(batch["view_order"][0, 0].tolist()) == [0, 1, 2]
    torch.manual_seed(0)
    model = QAModel(QAConfig(vocab_size=len(words), num_answers=len(answers),
                             entity_slots=3)).eval()
    with torch.no_grad():
        logits, _ = model.scores(batch)
        by_hand = torch.softmax(model.scores({k: v for k, v in batch.items()
                                              if not k.startswith("view_")})[0], -1)
        first = len(answers) - 3
        for d in range(3):
            view = {**batch, "story": batch["view_story"][d],
                    "question": batch["view_question"][d],
                    "answer_mask": batch["view_answer_mask"][d]}
            view = {k: v for k, v in view.items() if not k.startswith("view_")}
            p = torch.softmax(model.scores(view)[0], -1)
            by_hand += torch.cat([p[:, :first], p[:, first:].gather(1, batch["view_order"][d])],
                                 1)
    assert torch.allclose(logits.exp(), by_hand / 4, atol=1e-6)
    assert torch.allclose(logits.exp().sum(-1), torch.ones(1))
    # nothing unknown: one reading, no views
    plain, _ = encode_stories([[["mary", "went", "to", "the", "garden"]]],
                              [["where", "is", "mary"]], words, 50, 3, answers, slot_draws=4)
    assert "view_story" not in plain
