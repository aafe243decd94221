"""Focus (textrnn.data.focus): the epoch mix by validation error, its batches, its resume."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch
from test_qa import toy_examples

from textrnn import checkpoint, models
from textrnn.data.focus import Focus, counts, draw, focus_weights
from textrnn.data.qa_batches import QABatches, build_vocabs
from textrnn.models.qa import QAConfig, QAModel
from textrnn.train import TrainConfig, fit


def two_tasks(n1: int = 48, n2: int = 16) -> list:
    """Task 1: short stories; task 2: the same questions over longer ones."""
    one = toy_examples(n1, seed=1, max_sentences=3)
    two = [dataclasses.replace(ex, task=2) for ex in toy_examples(n2, seed=2, max_sentences=6)]
    return one + two


def batches_of(examples, focus: float, **kw) -> QABatches:
    words, answers = build_vocabs(examples)
    return QABatches(examples, words, answers, batch_size=8, shuffle=True, seed=3,
                     focus=focus, **kw)


def tasks_drawn(batches: QABatches) -> Counter:
    return Counter(t for b in batches for t in b["task"].tolist())


def test_weights_mix_the_data_share_with_the_error_share():
    w = focus_weights({1: 600, 2: 200, 3: 200}, {1: 0.0, 2: 0.3, 3: 0.1}, 0.5)
    assert w == pytest.approx({1: 0.3, 2: 0.1 + 0.375, 3: 0.1 + 0.125})
    assert sum(w.values()) == pytest.approx(1.0)
    assert focus_weights({1: 1, 2: 3}, {1: 0.9, 2: 0.1}, 0.0) == {1: 0.25, 2: 0.75}
    with pytest.raises(ValueError, match="share"):
        focus_weights({1: 1}, {}, 1.5)


def test_counts_sum_to_the_total_for_any_weights():
    for total in (1, 7, 100, 1001):
        weights = {1: 0.333, 2: 0.333, 3: 0.334}
        got = counts(weights, total)
        assert sum(got.values()) == total
        assert all(abs(got[t] - w * total) < 1 for t, w in weights.items())


def test_draw_takes_whole_passes_before_repeating():
    g = torch.Generator().manual_seed(0)
    members = torch.tensor([4, 9, 11])
    got = draw(members, 7, g)
    assert Counter(got.tolist()) == Counter({4: 2, 9: 2, 11: 2}) + Counter([got[6].item()])
    assert sorted(got[:3].tolist()) == [4, 9, 11] and sorted(got[3:6].tolist()) == [4, 9, 11]
    assert len(draw(members, 0, g)) == 0


def test_without_an_evaluation_the_epoch_is_every_question_once():
    examples = two_tasks()
    plain, focused = batches_of(examples, 0.0), batches_of(examples, 0.8, bucket=2)
    plain_bucketed = batches_of(examples, 0.0, bucket=2)
    for epoch in (0, 1):
        for a, b in ((plain, None), (plain_bucketed, focused)):
            a.set_epoch(epoch)
            if b is not None:
                b.set_epoch(epoch)
                for x, y in zip(a, b, strict=True):  # the same batches, draw for draw
                    assert torch.equal(x["story"], y["story"])
    assert tasks_drawn(focused) == {1: 48, 2: 16}


def test_the_next_epoch_follows_the_errors_and_an_epoch_keeps_its_mix():
    examples = two_tasks()
    batches = batches_of(examples, 0.5, bucket=2)
    batches.set_epoch(0)
    batches.on_evaluate({"val_acc_task1": 1.0, "val_acc_task2": 0.5})  # mid-epoch 0
    batches.set_epoch(0)  # epoch 0 again (a resumed run): it keeps the mix it started with
    assert tasks_drawn(batches) == {1: 48, 2: 16}
    batches.set_epoch(1)
    # 64 questions: 0.5 * 48 from the data's share of task 1, task 2 the rest
    assert tasks_drawn(batches) == {1: 24, 2: 40}
    assert len(list(batches)) == len(batches)  # an epoch keeps its length


def test_one_task_or_no_focus_ignores_evaluations():
    one = toy_examples(32)
    for batches in (batches_of(one, 0.5), batches_of(two_tasks(), 0.0)):
        batches.on_evaluate({"val_acc_task1": 0.2, "val_acc_task2": 0.9})
        batches.set_epoch(1)
        assert batches.state_dict() == {} or batches.focus.weights is None


def test_state_dict_round_trips_through_a_weights_only_checkpoint(tmp_path):
    focus = Focus(torch.tensor([1, 1, 2, 5]), 0.5)
    focus.on_evaluate({"val_acc_task1": 0.9, "val_acc_task2": 0.5, "val_acc_task5": 1.0})
    focus.set_epoch(3)
    focus.on_evaluate({"val_acc_task1": 1.0, "val_acc_task2": 0.7, "val_acc_task5": 0.8})
    path = tmp_path / "state.pt"
    torch.save(focus.state_dict(), path)
    again = Focus(torch.tensor([1, 1, 2, 5]), 0.5)
    again.load_state_dict(torch.load(path, weights_only=True))
    assert (again.weights, again.pending, again.epoch) == (focus.weights, focus.pending, 3)


class _StopAt:
    """QA batches that raise KeyboardInterrupt before batch ``at`` of epoch ``epoch``;
    everything else (set_epoch, on_evaluate, state_dict, ...) is the batches' own."""

    def __init__(self, data: QABatches, epoch: int, at: int) -> None:
        self.data, self.epoch, self.at = data, epoch, at

    def __getattr__(self, name):
        return getattr(self.data, name)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        for i, batch in enumerate(self.data):
            if self.data.epoch == self.epoch and i == self.at:
                raise KeyboardInterrupt
            yield batch

    def shard(self, keep):  # what the trainer reads (textrnn.distributed.RoundRobin)
        for i, item in enumerate(self.data.shard(keep)):
            if self.data.epoch == self.epoch and i == self.at:
                raise KeyboardInterrupt
            yield item


def test_a_run_stopped_mid_epoch_resumes_with_the_same_mixes(tmp_path):
    """8 batches an epoch, evaluations every 3 steps: the one at step 9 (epoch 1) sets
    epoch 2's mix while epoch 1 goes on with step 6's; a stop at step 10 must resume
    epoch 1 with step 6's mix and epoch 2 with step 9's."""
    examples = two_tasks()
    words, answers = build_vocabs(examples)
    config = QAConfig(vocab_size=len(words), num_answers=len(answers), arch="qrn")
    cfg = TrainConfig(epochs=3, lr=0.01, eval_every=3, device="cpu", seed=5, grad_clip=40.0)

    def run(out, stop: bool, resume: bool = False) -> QAModel:
        torch.manual_seed(0)
        model = models.build("qa", config, {"words": words, "answers": answers})
        data = batches_of(examples, 0.7)
        valid = QABatches(examples, words, answers, batch_size=64)
        fit(model, _StopAt(data, 1, 2) if stop else data, valid, cfg, out, resume=resume)
        return model

    whole = run(tmp_path / "a", stop=False)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop=True)
    assert checkpoint.read(tmp_path / "b" / "last.pt")["step"] == 10
    assert checkpoint.read(tmp_path / "b" / "last.pt")["extra"]["data"]["focus"]["epoch"] == 1
    resumed = run(tmp_path / "b", stop=False, resume=True)
    for (name, p), q in zip(whole.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q), name
    mixes = checkpoint.read(tmp_path / "a" / "last.pt")["extra"]["data"]["focus"]
    assert mixes["weights"] is not None  # the focus did change the mix in this run
