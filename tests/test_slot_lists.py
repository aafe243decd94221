"""List answers through entity slots: list classes, their scores, readings and meanings."""

from __future__ import annotations

import itertools

import pytest
import torch

from textrnn.data.babi import QAExample
from textrnn.data.qa_batches import QABatches, build_vocabs, encode_stories
from textrnn.data.slot_lists import bits, list_lookup, list_ranks, list_table, list_targets
from textrnn.models.qa import QAConfig, QAModel
from textrnn.models.qa_lists import ListAnswers

K, L = 5, 3


def test_the_table_holds_every_set_of_2_to_L_slots_once():
    table = list_table(K, L)
    sets = {frozenset(s for s in row if s >= 0) for row in table.tolist()}
    want = {frozenset(c) for n in (2, 3) for c in itertools.combinations(range(K), n)}
    assert sets == want and len(table) == len(want)
    lookup = list_lookup(table, K)
    assert torch.equal(lookup[bits(table)], torch.arange(len(table)))
    assert (lookup >= 0).sum() == len(table)  # no other mask has a class


def test_targets_follow_the_numbering_of_the_slots():
    table = list_table(K, L)
    lookup = list_lookup(table, K)
    answer_list = torch.tensor([[0, 2, -1], [1, 3, 4], [-1, -1, -1]])  # entity ranks
    order = torch.tensor([[4, 0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]])
    got = list_targets(answer_list, order, lookup)
    assert table[got[0]].tolist() == [1, 4, -1]  # entities 0 and 2 are slots 4 and 1
    assert table[got[1]].tolist() == [1, 3, 4]
    assert got[2] == -1


def test_list_ranks_need_entities_in_first_mention_order():
    names = ["mary", "kite", "lamp", "rose"]
    assert list_ranks("kite,lamp,rose", names, 3) == [1, 2, 3]
    assert list_ranks("kite,lamp,rose", names, 2) == []  # longer than L
    assert list_ranks("lamp,kite", names, 3) == []
    assert list_ranks("kite,nothing", names, 3) == []


def test_a_list_scores_the_sum_of_its_slots_plus_a_bias_per_length():
    lists = ListAnswers(K, L)
    with torch.no_grad():
        lists.bias.copy_(torch.tensor([-1.0, -3.0]))
    logits = torch.randn(2, 4 + K)  # 4 ordinary answers, then the slots
    out = lists.extend(logits, None)
    assert out.shape == (2, 4 + K + len(lists.table))
    assert torch.equal(out[:, : 4 + K], logits)
    for c, row in enumerate(lists.table.tolist()):
        slots = [s for s in row if s >= 0]
        want = logits[:, 4 + torch.tensor(slots)].sum(-1) + (-1.0 if len(slots) == 2 else -3.0)
        assert torch.allclose(out[:, 4 + K + c], want)


def test_a_list_with_a_slot_the_story_rules_out_is_ruled_out():
    lists = ListAnswers(K, L)
    mask = torch.ones(1, 4 + K, dtype=torch.bool)
    mask[0, 4 + 3] = False  # slot 3 stands for no word of this story
    logits = torch.randn(1, 4 + K).masked_fill(~mask, torch.finfo(torch.float).min)
    out = lists.extend(logits, mask)
    p = torch.softmax(out, -1)
    has3 = (lists.table == 3).any(-1)
    assert torch.all(p[0, 4 + K:][has3] == 0) and torch.all(p[0, 4 + K:][~has3] > 0)
    assert torch.isfinite(out).all()


def test_another_reading_maps_back_to_the_same_sets_of_entities():
    """Scores that depend on the entity, not on its slot number, give the same list
    probabilities in every reading once mapped back."""
    lists = ListAnswers(K, L)
    torch.manual_seed(0)
    per_entity = torch.randn(3, K)  # (B, K) the score of each entity
    first = torch.softmax(lists.extend(torch.cat([torch.zeros(3, 2), per_entity], 1), None), -1)
    order = torch.stack([torch.randperm(K) for _ in range(3)])  # (B, K) entity k -> slot
    by_slot = torch.empty_like(per_entity).scatter_(1, order, per_entity)  # slot s's score
    view = torch.softmax(lists.extend(torch.cat([torch.zeros(3, 2), by_slot], 1), None), -1)
    mapped = lists.to_first_reading(view[:, 2 + K:], order)
    assert torch.allclose(mapped, first[:, 2 + K:], atol=1e-6)
    assert not torch.allclose(view[:, 2 + K:], first[:, 2 + K:])  # the numbering did change


def carrying(person: str, things: list[str], dropped: str | None = None) -> QAExample:
    story = [[person, "got", "the", t] for t in things]
    if dropped:
        story.append([person, "dropped", "the", dropped])
    held = [t for t in things if t != dropped]
    return QAExample(story, ["what", "is", person, "carrying"], ",".join(held) or "nothing",
                     list(range(len(story))), task=8)


def test_renamed_list_answers_become_list_classes_and_read_back_as_words():
    train = [carrying("mary", ["apple", "milk"]), carrying("john", ["milk", "apple", "ball"]),
             carrying("mary", ["ball"])]
    words, answers = build_vocabs(train, K)
    test = [carrying("ada", ["kite", "lamp"]), carrying("bo", ["kite", "lamp", "rose"], "lamp"),
            carrying("mary", ["apple", "milk"])]
    batches = QABatches(test, words, answers, batch_size=8, entity_slots=K, list_slots=L)
    batch = next(iter(batches))
    A = len(answers)
    table = list_table(K, L)
    # ada, kite, lamp are entities 0, 1, 2: the answer is the set of slots {1, 2}
    assert batch["answer"][0] >= A and table[batch["answer"][0] - A].tolist() == [1, 2, -1]
    assert table[batch["answer"][1] - A].tolist() == [1, 3, -1]  # bo, kite, lamp, rose
    assert batch["answer"][2] == answers.stoi["apple,milk"]  # known words keep their class
    _, meanings = encode_stories([ex.story for ex in test[:2]], [ex.question for ex in test[:2]],
                                 words, entity_slots=K, answer_vocab=answers, list_slots=L)
    assert meanings[0][int(batch["answer"][0])] == "kite,lamp"
    assert meanings[1][int(batch["answer"][1])] == "kite,rose"
    without = QABatches(test, words, answers, batch_size=8, entity_slots=K)
    assert next(iter(without))["answer"][0] == -100  # no list classes: no answer


@pytest.mark.parametrize("arch", ["qrn", "memn2n"])
def test_a_model_with_list_classes_answers_them_and_averages_readings(arch):
    train = [carrying("mary", ["apple", "milk"]), carrying("john", ["milk", "ball"])]
    words, answers = build_vocabs(train, K)
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), arch=arch,
                      entity_slots=K, list_slots=L, slot_draws=4)
    model = QAModel(config)
    test = [carrying("ada", ["kite", "lamp"]), carrying("bo", ["kite"])]
    batch = next(iter(QABatches(test, words, answers, batch_size=8, entity_slots=K,
                                list_slots=L, slot_draws=4)))
    logits, _ = model.scores(batch)
    assert logits.shape == (2, len(answers) + len(list_table(K, L)))
    assert torch.allclose(logits.exp().sum(-1), torch.ones(2), atol=1e-5)  # averaged probs
    loss = model.loss(batch)
    loss.backward()
    assert model.lists.bias.grad is not None and torch.isfinite(loss)
