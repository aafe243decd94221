"""The QA model's answer temperature: fitted on validation, stored in the checkpoint's
metrics, applied when answering, never in training, and absent (T = 1) in old files."""

from __future__ import annotations

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
    metrics = model.evaluate(run.val_data)
    assert "val_temperature" in metrics
    model.calibrate({"val_temperature": 0.5})
    sharp, _ = model.scores(batch)
    torch.testing.assert_close(sharp, plain / 0.5)
    assert torch.equal(sharp.argmax(-1), plain.argmax(-1))  # no answer changes
    model.train()  # training draws noise (MemN2N's random empty memories): seed both passes
    torch.manual_seed(1)
    trained, _ = model.scores(batch)
    model.calibrate({})
    torch.manual_seed(1)
    trained_plain, _ = model.scores(batch)
    torch.testing.assert_close(trained, trained_plain)  # the loss never sees T
    model.calibrate({"val_temperature": 0.5})
    checkpoint.save(tmp_path / "ck.pt", model=model, metrics={"val_temperature": 0.5})
    assert checkpoint.load(tmp_path / "ck.pt", task="qa").model.temperature == 0.5
    checkpoint.save(tmp_path / "old.pt", model=model, metrics={})  # as before it existed
    assert checkpoint.load(tmp_path / "old.pt", task="qa").model.temperature == 1.0
