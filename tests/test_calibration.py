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
