"""QA batches, MemN2N and the LSTM reader: equations, masking, tying, contract, convergence."""

from __future__ import annotations

import random

import pytest
import torch
from babi_paths import real_babi_dir
from training import train_steps

from textrnn.data import qa_batches
from textrnn.data.babi import QAExample, find_task_files, read_babi
from textrnn.data.qa_batches import QABatches, build_vocabs, encode_stories
from textrnn.models.qa import QRN, MemN2N, QAConfig, QAModel, position_encoding

PEOPLE = ["mary", "john", "sandra", "daniel"]
PLACES = ["garden", "kitchen", "office", "hallway", "bathroom"]


def toy_examples(n: int, seed: int = 0, max_sentences: int = 6) -> list[QAExample]:
    """Tiny qa1-like stories: 'P went to the L', 'where is P' -> P's last place."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        story, where = [], {}
        for _ in range(rng.randint(1, max_sentences)):
            person, place = rng.choice(PEOPLE), rng.choice(PLACES)
            story.append([person, "went", "to", "the", place])
            where[person] = (place, len(story) - 1)
        person = rng.choice(sorted(where))
        examples.append(QAExample(story, ["where", "is", person], where[person][0],
                                  [where[person][1]], task=1))
    return examples


def toy_setup(arch: str = "memn2n", n: int = 64, **kw):
    torch.manual_seed(0)
    examples = toy_examples(n)
    words, answers = build_vocabs(examples)
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), arch=arch, **kw)
    batches = QABatches(examples, words, answers, batch_size=16, shuffle=True, seed=0)
    return QAModel(config), batches, words, answers


def train(model, batches, epochs: int, lr: float = 0.01) -> list[float]:
    """The shared loop, with memory networks' loose gradient clip."""
    return train_steps(model, batches, epochs, lr, grad_clip=40.0)


# --- batches ---------------------------------------------------------------------------

def test_batch_equals_hand_built():
    examples = [QAExample([["a", "b"], ["c"]], ["q", "a"], "x", [1], task=3),
                QAExample([["b", "b", "c"]], ["q"], "y", [0], task=None)]
    words, answers = build_vocabs(examples)
    a, b, c, q = (words.stoi[w] for w in "abcq")
    (batch,) = QABatches(examples, words, answers, batch_size=2)
    expected = {
        "story": torch.tensor([[[a, b, 0], [c, 0, 0]], [[b, b, c], [0, 0, 0]]]),
        "story_lengths": torch.tensor([2, 1]), "sentence_lengths": torch.tensor([[2, 1], [3, 0]]),
        "question": torch.tensor([[q, a], [q, 0]]), "question_lengths": torch.tensor([2, 1]),
        "answer": torch.tensor([answers.stoi["x"], answers.stoi["y"]]),
        "task": torch.tensor([3, 0]), "support": torch.tensor([[1], [0]]),
    }
    assert batch.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(batch[key], value), key
    single, _ = encode_stories([examples[0].story], [examples[0].question], words)
    both, _ = encode_stories([ex.story for ex in examples], [ex.question for ex in examples],
                             words)
    for key in ("story", "story_lengths", "sentence_lengths", "question", "question_lengths"):
        trimmed = batch[key][tuple(slice(0, n) for n in single[key].shape)]
        assert torch.equal(single[key], trimmed), key
        assert torch.equal(both[key], batch[key]), key


def test_batches_deterministic_per_seed_and_epoch_and_encoded_once(monkeypatch):
    examples = toy_examples(50)
    words, answers = build_vocabs(examples)
    one = QABatches(examples, words, answers, batch_size=8, shuffle=True, seed=1)
    two = QABatches(examples, words, answers, batch_size=8, shuffle=True, seed=1)
    monkeypatch.setattr(qa_batches, "_encode", None)  # iterating must not encode again
    first = [b["question"] for b in one]
    assert all(torch.equal(x, y) for x, y in zip(first, [b["question"] for b in two],
                                                 strict=True))
    assert len(one) == len(first) == 7
    one.set_epoch(1)
    assert not all(torch.equal(x, y) for x, y in zip(first, [b["question"] for b in one],
                                                     strict=True))
    one.set_epoch(0)
    assert all(torch.equal(x, y) for x, y in zip(first, [b["question"] for b in one],
                                                 strict=True))


def test_memory_size_keeps_recent_sentences_and_shifts_support():
    story = [[f"w{i}"] for i in range(6)]
    examples = [QAExample(story, ["q"], "x", [4, 1], task=1)]
    words, answers = build_vocabs(examples)
    (batch,) = QABatches(examples, words, answers, memory_size=3)
    assert batch["story_lengths"].tolist() == [3]
    assert [words.itos[i] for i in batch["story"][0, :, 0].tolist()] == ["w3", "w4", "w5"]
    assert batch["support"].tolist() == [[1, -1]]  # w4 is now index 1; w1 fell out


def test_unknown_answer_is_ignored_by_loss_and_counted_wrong():
    model, _, words, answers = toy_setup()
    test = [QAExample([["mary", "went", "to", "the", "moon"]], ["where", "is", "mary"], "moon",
                      [0], task=1)]
    (batch,) = QABatches(test, words, answers)
    assert batch["answer"].tolist() == [-100]
    assert model.evaluate([batch])["val_acc"] == 0.0
    assert batch["story"][0, 0, -1].item() == words.unk_id


# --- MemN2N equations --------------------------------------------------------------------

def test_position_encoding_formula():
    J, W, d = 3, 5, 4
    l = position_encoding(torch.tensor([J]), W, d)[0]  # (W, d)
    for j in range(1, W + 1):
        for k in range(1, d + 1):
            want = (1 - j / J) - (k / d) * (1 - 2 * j / J) if j <= J else 0.0
            assert l[j - 1, k - 1].item() == pytest.approx(want)


@pytest.mark.parametrize("linear_start", [True, False])
def test_padding_words_and_sentences_change_nothing(linear_start):
    model, batches, *_ = toy_setup(linear_start=linear_start)
    model.eval()
    batch = next(iter(batches))
    logits, attention = model(batch)
    B, S, W = batch["story"].shape
    story = torch.randint(1, model.config.vocab_size, (B, S + 2, W + 3))  # garbage ids
    real = torch.arange(W) < batch["sentence_lengths"].unsqueeze(-1)  # (B, S, W)
    story[:, :S, :W] = torch.where(real, batch["story"], story[:, :S, :W])
    padded = dict(batch, story=story)  # garbage past every sentence's and story's end
    padded["sentence_lengths"] = torch.nn.functional.pad(batch["sentence_lengths"], (0, 2),
                                                         value=3)
    logits2, attention2 = model(padded)
    torch.testing.assert_close(logits2, logits)
    torch.testing.assert_close(attention2[..., : attention.shape[-1]], attention)
    mask = torch.arange(attention2.shape[-1]) < batch["story_lengths"].unsqueeze(1)  # (B, S)
    assert (attention2.masked_select(~mask.unsqueeze(1)) == 0).all()


def test_temporal_index_is_recency_with_gaps_under_random_noise():
    model, *_ = toy_setup()
    net = model.net
    batch = {"story": torch.zeros(2, 4, 1, dtype=torch.long), "story_lengths": torch.tensor([3, 1])}
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    net.eval()
    assert net._recency(batch, mask).tolist() == [[2, 1, 0, 0], [0, 0, 0, 0]]
    net.train()
    torch.manual_seed(0)
    big = {"story_lengths": torch.tensor([50] * 64)}
    noisy = net._recency(big, torch.ones(64, 50, dtype=torch.bool))  # (64, 50)
    assert (noisy.diff(dim=1) < 0).all()  # still strictly by recency
    assert (noisy >= torch.arange(49, -1, -1)).all() and (noisy < net.num_times).all()
    assert 0.05 < (noisy[:, 0] - 49).float().mean().item() / 50 < 0.15  # ~10% gaps


def test_adjacent_tying_shares_parameters():
    model, *_ = toy_setup(hops=3)
    net = model.net
    assert net.B is net.A(1)
    for k in (1, 2):
        assert net.A(k + 1) is net.C(k)
        assert net.A(k + 1).weight is net.C(k).weight
    assert len(net.tables) == 4 and len(net.temporal) == 4
    assert torch.equal(net.tables[0].weight[0], torch.zeros(net.config.embedding_size))


def test_answer_hidden_adds_a_relu_layer_and_defaults_to_the_papers_linear_answer():
    model, batches, *_ = toy_setup()
    assert model.config.answer_hidden == 0 and isinstance(model.net.H, torch.nn.Identity)
    assert model.net.W.in_features == model.config.embedding_size
    model, batches, *_ = toy_setup(answer_hidden=8)
    assert model.net.W.in_features == 8
    logits, _ = model(next(iter(batches)))  # (B, A)
    assert logits.shape == (16, model.config.num_answers)


def test_hop_relu_is_relu_on_half_of_h_u_plus_o():
    model, batches, *_ = toy_setup(hop_relu=True, hops=1, linear_start=False,
                                   temporal_encoding=False, embedding_size=6)
    net, batch = model.net.eval(), next(iter(batches))
    assert toy_setup()[0].net.H_u is None  # off by default: old checkpoints load unchanged
    l_story = position_encoding(batch["sentence_lengths"], batch["story"].shape[2], 6)
    m = (l_story * net.A(1)(batch["story"])).sum(2)  # (B, S, d)
    c = (l_story * net.C(1)(batch["story"])).sum(2)
    l_q = position_encoding(batch["question_lengths"], batch["question"].shape[1], 6)
    u = (l_q * net.B(batch["question"])).sum(1)  # (B, d)
    mask = torch.arange(m.shape[1]) < batch["story_lengths"].unsqueeze(1)
    p = torch.softmax(torch.einsum("bsd,bd->bs", m, u).masked_fill(~mask, -torch.inf), -1)
    v = u @ net.H_u.weight.T + torch.einsum("bs,bsd->bd", p, c)  # H_u u + o
    expected = torch.cat([v[:, :3].clamp(min=0), v[:, 3:]], dim=1)
    logits, _ = model(batch)
    torch.testing.assert_close(logits, net.W(expected))
    assert (v[:, :3] < 0).any() and (v[:, 3:] < 0).any()  # both halves were exercised


def test_hop_init_eye_starts_from_the_plain_update():
    net = toy_setup(hop_relu=True, hop_init="eye", embedding_size=6)[0].net
    torch.testing.assert_close(net.H_u.weight.detach(), torch.eye(6))
    u = torch.tensor([[-1.0, 2.0, -3.0, 4.0, -5.0, 6.0]])
    assert net._relu_half(u).tolist() == [[0.0, 2.0, 0.0, 4.0, -5.0, 6.0]]


def test_hop_relu_keeps_padding_inert():
    model, batches, *_ = toy_setup(hop_relu=True)
    model.eval()
    batch = next(iter(batches))
    logits, _ = model(batch)
    wide = dict(batch, story=torch.nn.functional.pad(batch["story"], (0, 2, 0, 3), value=7),
                sentence_lengths=torch.nn.functional.pad(batch["sentence_lengths"], (0, 3),
                                                         value=2))
    torch.testing.assert_close(model(wide)[0], logits)


def yes_no_examples(n: int, seed: int = 0) -> list[QAExample]:
    """Tiny qa6-like stories: 'is P in the L' -> yes/no, half of each."""
    rng = random.Random(seed)
    examples = []
    for ex in toy_examples(n, seed):
        person, place = ex.question[-1], ex.answer
        if rng.random() < 0.5:
            place = rng.choice([p for p in PLACES if p != ex.answer])
        answer = "yes" if place == ex.answer else "no"
        examples.append(QAExample(ex.story, ["is", person, "in", "the", place], answer,
                                  ex.support, task=6))
    return examples


def test_answer_hidden_learns_yes_no_questions():
    # Whether the asked place equals the remembered one is not linear in u = q + o.
    examples = yes_no_examples(512)
    words, answers = build_vocabs(examples)
    torch.manual_seed(0)
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), arch="memn2n", hops=1,
                      linear_start=False, random_noise=0.0, answer_hidden=32)
    model = QAModel(config)
    batches = QABatches(examples, words, answers, batch_size=32, shuffle=True, seed=0)
    train(model, batches, epochs=15)
    assert model.evaluate(batches)["val_acc"] >= 0.95


def test_linear_start_switches_off_when_val_loss_stalls_and_survives_state_dict():
    model, *_ = toy_setup()
    assert model.linear_start_active
    assert not model.on_evaluate({"val_loss": 1.0})
    assert not model.on_evaluate({"val_loss": 0.9})
    assert model.on_evaluate({"val_loss": 0.95}) and not model.linear_start_active
    fresh, *_ = toy_setup()
    fresh.load_state_dict(model.state_dict())
    assert not fresh.linear_start_active


@pytest.mark.parametrize("arch", ["memn2n", "lstm_reader", "entnet", "qrn"])
@pytest.mark.parametrize("linear_start", [True, False])
def test_predict_attention_is_a_distribution_over_real_sentences(arch, linear_start):
    model, batches, *_ = toy_setup(arch, linear_start=linear_start)
    batch = next(iter(batches))
    predictions = model.predict(batch)
    for pred, n in zip(predictions, batch["story_lengths"].tolist(), strict=True):
        assert len(pred["attention"]) == n
        assert sum(pred["attention"]) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 < pred["confidence"] <= 1.0 and isinstance(pred["answer_id"], int)
        assert len(pred["hops"]) == {"memn2n": 3, "qrn": 2}.get(arch, 1)
        assert pred["hops"][-1] == pred["attention"]


@pytest.mark.parametrize("arch", ["memn2n", "lstm_reader", "entnet", "qrn"])
def test_empty_story_is_answered_without_attention(arch):
    model, _, words, _ = toy_setup(arch)
    (pred,) = model.predict(encode_stories([[]], [["where", "is", "mary"]], words)[0])
    assert pred["attention"] == [] and 0.0 < pred["confidence"] <= 1.0


@pytest.mark.parametrize("arch", ["memn2n", "lstm_reader", "entnet", "qrn"])
def test_loss_goes_down_on_toy_data(arch):
    model, batches, *_ = toy_setup(arch, n=128, linear_start=False)
    means = train(model, batches, epochs=6, lr=0.02)
    assert means[-1] < 0.9 * means[0]  # chance is ln 5 = 1.61
    metrics = model.evaluate(batches)
    assert set(metrics) == {"val_loss", "val_acc", "val_ece", "val_unsure_below", "val_acc_task1",
                            "val_temperature"}
    assert 0.0 <= metrics["val_ece"] <= 1.0 and 0.0 < metrics["val_temperature"]


def test_lstm_reader_reads_the_last_words_right_aligned():
    model, batches, words, _ = toy_setup("lstm_reader", max_story_words=7)
    batch = next(iter(batches))
    ids, sentence_of = model.net._flat_story(batch)
    assert ids.shape == sentence_of.shape == (16, 7)
    for b in range(16):
        n = batch["story_lengths"][b].item()
        flat = [w for s in range(n) for w in batch["story"][b, s].tolist() if w]
        want = flat[-7:]
        assert ids[b, 7 - len(want):].tolist() == want
        assert (sentence_of[b, : 7 - len(want)] == -1).all()
        assert sentence_of[b, -1].item() == n - 1
    logits, attention = model(batch)
    assert logits.shape == (16, model.config.num_answers)
    assert attention.shape == (16, 1, batch["story"].shape[1])


def test_unknown_arch_is_rejected():
    with pytest.raises(ValueError, match="arch"):
        QAModel(QAConfig(vocab_size=5, num_answers=2, arch="transformer"))
    assert QAModel.config_class is QAConfig and isinstance(
        QAModel(QAConfig(vocab_size=5, num_answers=2)).net, QRN)  # the default
    assert isinstance(QAModel(QAConfig(vocab_size=5, num_answers=2, arch="memn2n")).net, MemN2N)


def test_memn2n_learns_real_qa1():
    root = real_babi_dir() / "en"
    train_examples = read_babi(find_task_files(root, [1], "train")[1])
    test_examples = read_babi(find_task_files(root, [1], "test")[1])
    words, answers = build_vocabs(train_examples)
    torch.manual_seed(0)
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), arch="memn2n",
                      linear_start=False)
    model = QAModel(config)
    # Without linear start QA1-1k converges in a few epochs (~0.1-0.2 s each on 2 cores).
    train(model, QABatches(train_examples, words, answers, shuffle=True, seed=0), epochs=8)
    metrics = model.evaluate(QABatches(test_examples, words, answers, batch_size=500))
    assert metrics["val_acc"] >= 0.90


def test_bucketed_batches_hold_similar_stories_and_every_example_once():
    examples = [QAExample([["a"]] * n, ["q"], "x", [0], task=1) for n in range(1, 41)] * 8
    words, answers = build_vocabs(examples)
    plain = QABatches(examples, words, answers, batch_size=8, shuffle=True, seed=0)
    bucketed = QABatches(examples, words, answers, batch_size=8, shuffle=True, seed=0, bucket=10)
    widths = {name: [b["story"].shape[1] for b in batches]
              for name, batches in (("plain", plain), ("bucketed", bucketed))}
    # uniform lengths 1-40: ~36 sentences wide at random, ~23 when sorted in chunks of 80
    assert sum(widths["bucketed"]) < 0.7 * sum(widths["plain"])
    seen = sorted(n for b in bucketed for n in b["story_lengths"].tolist())
    assert seen == sorted(min(n, 50) for n in range(1, 41) for _ in range(8))
    first = [b["story_lengths"].tolist() for b in bucketed]
    bucketed.set_epoch(1)
    assert [b["story_lengths"].tolist() for b in bucketed] != first  # reshuffled per epoch
    bucketed.set_epoch(0)
    assert [b["story_lengths"].tolist() for b in bucketed] == first  # and reproducible
