"""Tests for textrnn.checkpoint: round trips, safe loading, atomic writes, errors, exact resume."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from textrnn import checkpoint
from textrnn.errors import CheckpointError
from textrnn.models.lm import LMConfig
from textrnn.train import TrainConfig, fit


def test_round_trip_same_predictions(make_tiny_lm, tmp_path) -> None:
    model, vocabs, train, _ = make_tiny_lm()
    model.loss(next(iter(train)))  # carry some state, as a model mid-training does
    checkpoint.save(tmp_path / "m.pt", model=model, step=3, metrics={"val_loss": 2.5})
    bundle = checkpoint.load(tmp_path / "m.pt")
    assert bundle.task == "lm" and bundle.step == 3 and bundle.metrics == {"val_loss": 2.5}
    assert isinstance(bundle.config, LMConfig) and bundle.config == model.config
    assert bundle.vocabs == vocabs
    assert not bundle.model.training
    model.eval()
    for batch in train:
        assert bundle.model.predict(batch) == model.predict(batch)
    assert torch.equal(bundle.model.state[0], model.state[0])  # the carried state travels too


def test_file_is_plain_data_loadable_with_weights_only(make_tiny_lm, tmp_path) -> None:
    model, vocabs, _, _ = make_tiny_lm()
    checkpoint.save(tmp_path / "m.pt", model=model, train_config={"lr": 0.1}, extra={"best": 1.0})
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["format"] == 1 and raw["task"] == "lm"
    assert raw["model_config"]["hidden_size"] == 32
    assert raw["vocabs"]["tokens"] == vocabs["tokens"].to_dict()
    assert set(raw["rng"]) >= {"torch", "python", "numpy"}
    assert raw["train_config"] == {"lr": 0.1} and raw["extra"] == {"best": 1.0}


def test_load_asks_torch_for_weights_only(make_tiny_lm, tmp_path, monkeypatch) -> None:
    model, vocabs, _, _ = make_tiny_lm()
    checkpoint.save(tmp_path / "m.pt", model=model)
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    checkpoint.load(tmp_path / "m.pt")
    assert seen == [True]


def test_atomic_write_leaves_no_temp_files(make_tiny_lm, tmp_path, monkeypatch) -> None:
    model, vocabs, _, _ = make_tiny_lm()
    path = checkpoint.save(tmp_path / "m.pt", model=model, step=1)
    checkpoint.save(path, model=model, step=2)  # overwrite in place
    assert os.listdir(tmp_path) == ["m.pt"]

    def crash(obj, f):  # a write that dies half-way
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, model=model, step=3)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.pt"]
    assert checkpoint.load(path).step == 2  # the old checkpoint is intact


def test_rng_state_round_trip() -> None:
    state = checkpoint.rng_state()
    expected = (torch.rand(3), random.random(), np.random.rand())
    checkpoint.set_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert (random.random(), np.random.rand()) == expected[1:]


def _write_raw(path, raw) -> None:
    torch.save(raw, path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such checkpoint file"),
        ("truncated", "cannot read checkpoint"),
        ("random bytes", "cannot read checkpoint"),
        ("raw state_dict", "not a textrnn checkpoint"),
        ("unknown task", "unknown task 'nope'"),
        ("newer format", "format 99 is newer"),
        ("missing keys", "missing vocabs"),
        ("wrong config", "does not match"),
    ],
)
def test_bad_files_raise_checkpoint_error_naming_the_file(
    make_tiny_lm, tmp_path, case: str, message: str
) -> None:
    model, vocabs, _, _ = make_tiny_lm()
    good = checkpoint.save(tmp_path / "good.pt", model=model)
    raw = torch.load(good, weights_only=True)
    path = tmp_path / "bad.pt"
    if case == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "random bytes":
        path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    elif case == "raw state_dict":
        _write_raw(path, model.state_dict())
    elif case == "unknown task":
        _write_raw(path, {**raw, "task": "nope"})
    elif case == "newer format":
        _write_raw(path, {**raw, "format": 99})
    elif case == "missing keys":
        _write_raw(path, {k: v for k, v in raw.items() if k != "vocabs"})
    elif case == "wrong config":
        _write_raw(path, {**raw, "model_config": {**raw["model_config"], "hidden_size": 8}})
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text
    assert "\n" not in text


# --- resuming ---------------------------------------------------------------------------


def _train(make_tiny_lm, out, max_steps: int, resume: bool = False):
    model, _, train, val = make_tiny_lm(dropout=0.3)  # dropout: the RNG state matters
    cfg = TrainConfig(epochs=10, max_steps=max_steps, lr=1e-2, eval_every=4, device="cpu", seed=11)
    fit(model, train, val, cfg, out, resume=resume)
    return model


def _same_weights(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_resume_is_bit_identical_to_an_uninterrupted_run(make_tiny_lm, tmp_path) -> None:
    """Run A trains 23 steps straight. Run B stops at step 6 (mid-epoch: 9 batches per
    epoch), as if killed after its checkpoint, then resumes to step 23 (crossing two epoch
    boundaries). Every parameter must be exactly equal."""
    straight = _train(make_tiny_lm, tmp_path / "a", max_steps=23)
    first_leg = _train(make_tiny_lm, tmp_path / "b", max_steps=6)
    assert not _same_weights(straight, first_leg)
    raw = checkpoint.read(tmp_path / "b" / "last.pt")
    assert (raw["step"], raw["epoch"], raw["batch_in_epoch"]) == (6, 0, 6)
    resumed = _train(make_tiny_lm, tmp_path / "b", max_steps=23, resume=True)
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_resume_depends_on_the_restored_rng(make_tiny_lm, tmp_path, monkeypatch) -> None:
    """The equality above is not luck: without restoring the RNG (dropout masks) it fails."""
    straight = _train(make_tiny_lm, tmp_path / "a", max_steps=12)
    _train(make_tiny_lm, tmp_path / "b", max_steps=6)
    monkeypatch.setattr(checkpoint, "set_rng_state", lambda state: None)
    resumed = _train(make_tiny_lm, tmp_path / "b", max_steps=12, resume=True)
    assert not _same_weights(straight, resumed)
