"""The QA model's answer temperature: fitted on validation, stored in the checkpoint's
metrics, applied when answering, never in training, and absent (T = 1) in old files."""

from __future__ import annotations

import pytest
import torch
from two_people import write_two_people

from textrnn import checkpoint
from textrnn.metrics import fit_temperature
from textrnn.pipelines import qa


def test_fit_temperature_finds_the_nll_minimum_of_the_grid():
    torch.manual_seed(0)
    logits = torch.randn(200, 5) * 3
    answers = torch.randint(0, 5, (200,))  # answers unrelated to the scores: T grows
    grid = (0.5, 1.0, 2.0, 4.0)
    best = fit_temperature(logits, answers, grid)
    losses = {t: torch.nn.functional.cross_entropy(logits / t, answers).item() for t in grid}
    assert best == min(losses, key=losses.get) == 4.0
    assert fit_temperature(logits, torch.full((200,), -100)) == 1.0  # nothing known


def test_the_temperature_scales_answering_not_training_and_survives_a_checkpoint(tmp_path):
    run = qa.build(write_two_people(tmp_path / "qa1_train.txt"), arch="memn2n",
                   embedding_size=8, hops=1)
    model = run.model
    batch = next(iter(run.val_data))
    model.eval()
    plain, _ = model.scores(batch)
    before = model.predict(batch)
    loss = model.loss(batch)
    metrics = model.evaluate(run.val_data)
    assert "val_temperature" in metrics
    model.calibrate({"val_temperature": 0.5})
    after = model.predict(batch)
    sharp = torch.softmax(plain / 0.5, -1).max(-1)
    assert [p["answer_id"] for p in after] == [p["answer_id"] for p in before]  # no change
    assert [p["answer_id"] for p in after] == sharp.indices.tolist()
    torch.testing.assert_close(torch.tensor([p["confidence"] for p in after]), sharp.values)
    torch.testing.assert_close(model.loss(batch), loss)  # the loss never sees T
    assert model.evaluate(run.val_data)["val_loss"] == pytest.approx(metrics["val_loss"])
    checkpoint.save(tmp_path / "ck.pt", model=model, metrics={"val_temperature": 0.5})
    assert checkpoint.load(tmp_path / "ck.pt", task="qa").model.temperature == 0.5
    checkpoint.save(tmp_path / "old.pt", model=model, metrics={})  # as before it existed
    assert checkpoint.load(tmp_path / "old.pt", task="qa").model.temperature == 1.0


def test_training_validates_one_numbering_and_settle_stores_best_as_it_answers(tmp_path):
    from textrnn.train import TrainConfig, fit

    run = qa.build(write_two_people(tmp_path / "qa1_train.txt"), arch="memn2n",
                   embedding_size=8, hops=1)
    assert run.model.config.slot_draws == 8 and run.val_data.slot_draws == qa.TRAINING_DRAWS
    out = tmp_path / "run"
    fit(run.model, run.train_data, run.val_data, TrainConfig(max_steps=3, lr=0.01), out)
    trained = checkpoint.read(out / "best.pt")
    settled = qa.settle(run, out)
    assert run.val_data.slot_draws == 8
    bundle = checkpoint.load(out / "best.pt", task="qa")
    assert bundle.metrics == settled  # stored, every metric of the 8-numbering validation
    assert settled["val_loss"] != pytest.approx(trained["metrics"]["val_loss"])  # one before
    assert bundle.model.temperature == settled["val_temperature"]
    measured = bundle.evaluate(run.val_data)  # as it answers
    assert measured == pytest.approx({k: v for k, v in settled.items() if k in measured})
    again = checkpoint.read(out / "best.pt")
    for key in ("state_dict", "step", "extra", "model_config"):  # all else as it was
        assert str(again[key]) == str(trained[key]), key
    assert settled["val_slot_draws"] == 8
    assert qa.settle(run, out) is None  # settled already (a finished run resumed)
    run.val_data.slot_draws = 1
    assert qa.settle(run, out) is None and run.val_data.slot_draws == 1
    assert checkpoint.read(out / "best.pt")["metrics"] == settled
    assert qa.settle(run, tmp_path / "none") is None  # no best.pt
