"""Tests for textrnn.train.fit, on a tiny char LM (the LM itself: tests/test_lm.py)."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from textrnn import checkpoint
from textrnn.device import resolve_device, to_device
from textrnn.errors import TextrnnError
from textrnn.train import TrainConfig, fit

METRIC_KEYS = {"step", "epoch", "train_loss", "val_loss", "val_ppl", "val_bpc", "elapsed", "lr"}


def _cfg(**overrides) -> TrainConfig:
    base = {"epochs": 50, "lr": 1e-2, "eval_every": 5, "device": "cpu", "seed": 7}
    return TrainConfig(**{**base, **overrides})


def _records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_loss_goes_down(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm(dropout=0.0)
    before = model.evaluate(train)["val_loss"]
    fit(model, train, val, _cfg(max_steps=60, eval_every=20), run_dir)
    after = model.evaluate(train)["val_loss"]
    assert after < before - 1.0, (before, after)


def test_metrics_curves_and_checkpoints_written(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    result = fit(model, train, val, _cfg(max_steps=20, eval_every=5), run_dir)
    records = _records(run_dir)
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(set(r) == METRIC_KEYS for r in records)
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best_value = min(r["val_loss"] for r in records)
    assert result["best_value"] == best_value
    best = checkpoint.load(run_dir / "best.pt")
    assert best.metrics["val_loss"] == best_value
    last = checkpoint.load(run_dir / "last.pt")
    assert last.step == 20 and last.metrics["val_loss"] == records[-1]["val_loss"]
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp files


def test_max_steps_respected(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    result = fit(model, train, val, _cfg(max_steps=7, eval_every=5), run_dir)
    assert result["step"] == 7
    # Step 5 on schedule, and a last evaluation where max_steps stopped the run.
    assert [r["step"] for r in _records(run_dir)] == [5, 7]
    raw = checkpoint.read(run_dir / "last.pt")
    assert (raw["step"], raw["epoch"], raw["batch_in_epoch"]) == (7, 0, 7)


def test_eval_every_zero_evaluates_at_each_epoch_end(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(epochs=2, eval_every=0), run_dir)
    records = _records(run_dir)
    assert [(r["step"], r["epoch"]) for r in records] == [(len(train), 1), (2 * len(train), 2)]


def test_fresh_run_replaces_old_metrics(make_tiny_lm, run_dir) -> None:
    for _ in range(2):
        model, _, train, val = make_tiny_lm()
        fit(model, train, val, _cfg(max_steps=5), run_dir)
    assert len(_records(run_dir)) == 1


class _Interrupting:
    """Batches of ``data``; before batch ``at`` it calls ``action`` (once)."""

    def __init__(self, data, at: int, action) -> None:
        self.data, self.at, self.action = data, at, action

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        for i, batch in enumerate(self.data):
            if i == self.at and self.action is not None:
                action, self.action = self.action, None
                action()
            yield batch


def _raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def test_keyboard_interrupt_saves_last(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    data = _Interrupting(train, at=3, action=_raise_keyboard_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(model, data, val, _cfg(eval_every=100), run_dir)
    raw = checkpoint.read(run_dir / "last.pt")
    assert (raw["step"], raw["batch_in_epoch"]) == (3, 3)
    assert not (run_dir / "metrics.jsonl").exists()  # no evaluation ran; nothing else written


def test_ctrl_c_stops_at_a_step_boundary_and_resumes_exactly(make_tiny_lm, tmp_path) -> None:
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=12, eval_every=100), tmp_path / "a")

    # A real SIGINT arrives while batch 4 is being fetched: the step finishes, then fit saves.
    stopped, _, train, val = make_tiny_lm()
    data = _Interrupting(train, at=4, action=lambda: signal.raise_signal(signal.SIGINT))
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where a shell started us in background
    with pytest.raises(KeyboardInterrupt):
        fit(stopped, data, val, _cfg(max_steps=12, eval_every=100), tmp_path / "b")
    assert checkpoint.read(tmp_path / "b" / "last.pt")["step"] == 5
    assert signal.getsignal(signal.SIGINT) is before  # handler restored

    resumed, _, train, val = make_tiny_lm()
    fit(
        resumed,
        train,
        val,
        _cfg(max_steps=12, eval_every=100),
        tmp_path / "b",
        resume=True,
    )
    for (name, p), q in zip(model.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_resume_without_checkpoint_is_an_error(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    with pytest.raises(TextrnnError, match="last.pt"):
        fit(model, train, val, _cfg(max_steps=2), run_dir, resume=True)


def test_linear_schedule_decays_lr_to_zero(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=10, schedule="linear"), run_dir)
    lrs = [r["lr"] for r in _records(run_dir)]
    assert lrs[0] == pytest.approx(0.5e-2) and lrs[-1] == 0.0


class _FakeClock:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_time_budget_stops_the_run_and_decays_lr(make_tiny_lm, run_dir, monkeypatch,
                                                 caplog) -> None:
    import textrnn.train as train_module

    monkeypatch.setattr(train_module.time, "process_time", _FakeClock())
    model, _, train, val = make_tiny_lm()
    cfg = _cfg(max_minutes=0.5, budget_clock="cpu", schedule="linear", eval_every=0, epochs=1000)
    result = fit(model, train, val, cfg, run_dir)
    # About two clock readings per step (the schedule and the stop check): ~15 steps in 30 s.
    assert 5 < result["step"] < 30, result["step"]
    records = _records(run_dir)
    assert records[-1]["step"] == result["step"]  # ended on an evaluation
    assert records[-1]["lr"] < 0.2 * cfg.lr  # decayed over the budget, not over 1000 epochs
    raw = checkpoint.read(run_dir / "last.pt")
    assert raw["extra"]["budget_used"] >= 30.0
    # A resumed run has no time left: it stops at once, at the same step, and says why.
    assert "already used" not in caplog.text
    with caplog.at_level("INFO", logger="textrnn.train"):
        again = fit(model, train, val, cfg, run_dir, resume=True)
    assert again["step"] == result["step"]
    assert "time budget (--max-minutes 0.5) is already used" in caplog.text


def test_stop_at_ends_the_run_where_the_best_metric_reaches_it(make_tiny_lm, run_dir,
                                                             tmp_path) -> None:
    model, _, train, val = make_tiny_lm(dropout=0.0)
    fit(model, train, val, _cfg(max_steps=40), run_dir)
    full = _records(run_dir)
    # The third evaluation's loss, as a target: the run must stop at the first evaluation
    # at or below it, whichever that is (the loss need not fall at every evaluation).
    target = full[2]["val_loss"]
    first = next(r["step"] for r in full if r["val_loss"] <= target)
    model, _, train, val = make_tiny_lm(dropout=0.0)
    out = tmp_path / "stopped"
    result = fit(model, train, val, _cfg(max_steps=40, stop_at=target), out)
    assert result["step"] == first < 40
    assert [r["val_loss"] for r in _records(out)] == [r["val_loss"] for r in full
                                                      if r["step"] <= first]
    assert checkpoint.load(out / "best.pt").metrics["val_loss"] <= target
    again = fit(model, train, val, _cfg(max_steps=40, stop_at=target), out, resume=True)
    assert again["step"] == first  # reached before: a resumed run stops at once


def test_patience_stops_after_that_many_evaluations_without_a_better_best(
        make_tiny_lm, run_dir, tmp_path) -> None:
    model, _, train, val = make_tiny_lm(dropout=0.0)
    fit(model, train, val, _cfg(max_steps=60, lr=0.2), run_dir)
    full = [r["val_loss"] for r in _records(run_dir)]
    best, stale, stop = full[0], 0, len(full)  # where a patience of 2 must stop, by hand
    for i, loss in enumerate(full[1:], start=1):
        best, stale = (loss, 0) if loss < best else (best, stale + 1)
        if stale == 2:
            stop = i + 1
            break
    assert stop < len(full)  # the rate is high enough for the loss to stall on this text
    model, _, train, val = make_tiny_lm(dropout=0.0)
    out = tmp_path / "patient"
    result = fit(model, train, val, _cfg(max_steps=60, lr=0.2, patience=2), out)
    assert [r["val_loss"] for r in _records(out)] == full[:stop]
    assert result["step"] == 5 * stop
    again = fit(model, train, val, _cfg(max_steps=60, lr=0.2, patience=2), out, resume=True)
    assert again["step"] == result["step"]  # out of patience before: stops at once


def test_best_checkpoint_is_the_model_that_was_evaluated(make_tiny_lm, run_dir) -> None:
    # A model whose on_evaluate changes what it computes (as MemN2N's end of linear start
    # does): best.pt must still be the model its metrics were measured on.
    model, _, train, val = make_tiny_lm(dropout=0.0)

    def on_evaluate(metrics: dict) -> None:
        with torch.no_grad():
            model.head.bias.add_(5.0 * torch.randn_like(model.head.bias))

    model.on_evaluate = on_evaluate
    result = fit(model, train, val, _cfg(max_steps=20, eval_every=5), run_dir)
    best = checkpoint.load(run_dir / "best.pt")
    again = best.model.evaluate(val)["val_loss"]
    assert again == pytest.approx(result["best_value"], rel=1e-6)
    assert again == pytest.approx(best.metrics["val_loss"], rel=1e-6)


def test_to_device_moves_nested_tensors_only() -> None:
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "reset": True}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["reset"] is True and isinstance(moved["pair"], tuple)
    assert torch.equal(moved["pair"][1][0], torch.ones(1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_a_user_error() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(TextrnnError, match="CUDA is not available"):
        resolve_device("cuda")


def test_train_config_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="best_mode"):
        TrainConfig(best_mode="lowest")
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="cosine")


def test_unknown_best_metric_is_a_clear_error(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    with pytest.raises(TextrnnError, match="'val_acc' is not among"):
        fit(model, train, val, _cfg(max_steps=2, best_metric="val_acc"), run_dir)


def test_a_tie_on_the_best_metric_goes_to_the_lower_validation_loss(make_tiny_lm,
                                                                   run_dir) -> None:
    model, _, train, val = make_tiny_lm(dropout=0.0)
    scripted = iter([{"val_acc": 0.9, "val_loss": 0.5}, {"val_acc": 1.0, "val_loss": 0.3},
                     {"val_acc": 1.0, "val_loss": 0.1}, {"val_acc": 1.0, "val_loss": 0.2},
                     {"val_acc": 0.95, "val_loss": 0.05}])
    model.evaluate = lambda batches: next(scripted)
    cfg = _cfg(max_steps=25, eval_every=5, best_metric="val_acc", best_mode="max",
               patience=2)
    result = fit(model, train, val, cfg, run_dir)
    best = checkpoint.load(run_dir / "best.pt")
    assert best.step == 15 and best.metrics == {"val_acc": 1.0, "val_loss": 0.1}
    assert result["step"] == 25  # the tie at step 15 was an improvement for patience too


def test_curves_put_per_task_metrics_in_one_panel_on_a_grid(tmp_path) -> None:
    import struct

    from textrnn.runlog import plot_curves

    records = [{"step": s, "train_loss": 1 / s, "val_loss": 1 / s, "val_acc": 0.5, "val_ece": 0.1,
                **{f"val_acc_task{t}": 0.5 for t in range(1, 21)}} for s in (1, 2, 3)]
    plot_curves(records, tmp_path / "curves.png")
    width, height = struct.unpack(">II", (tmp_path / "curves.png").read_bytes()[16:24])
    # loss, val_acc, val_ece and one panel for the 20 tasks: 3 columns of 5 in, 2 rows of 3.5
    assert (width, height) == (3 * 5 * 80, 2 * 3.5 * 80)
