"""The moving average of the weights (textrnn.averaging) and fit's ``ema``: the update
against the formula, checkpoints that hold the average, exact resumes, older checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from textrnn import checkpoint
from textrnn.averaging import WeightAverage
from textrnn.cli import main
from textrnn.errors import CheckpointError
from textrnn.train import TrainConfig, fit


def _cfg(**overrides) -> TrainConfig:
    base = {"epochs": 50, "lr": 1e-2, "eval_every": 5, "device": "cpu", "seed": 7, "ema": 0.9}
    return TrainConfig(**{**base, **overrides})


def _params(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_update_follows_the_formula_with_its_warm_up() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.3)
    expected = _params(model)  # a_0 = θ_0
    for t in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))  # a stand-in for an optimizer step
        ema.update(model)
        d = (2 / 11, 3 / 12, 0.3, 0.3, 0.3)[t - 1]  # (1 + t) / (10 + t) up to the decay
        expected = {n: d * expected[n] + (1 - d) * p for n, p in _params(model).items()}
        for name, average in ema.average.items():
            torch.testing.assert_close(average, expected[name], rtol=0, atol=1e-6)
    assert ema.updates == 5 and ema.rate() == 0.3


def test_applied_swaps_the_average_in_and_the_weights_back_bit_for_bit() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.9)
    trained = _params(model)
    ema.average = {n: torch.randn_like(a) for n, a in ema.average.items()}
    with ema.applied(model) as state:
        _assert_equal(_params(model), ema.average)
        _assert_equal(state["weights"], trained)
        assert (state["decay"], state["updates"]) == (0.9, 0)
    _assert_equal(_params(model), trained)


def test_off_does_nothing() -> None:
    model = nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.0)
    before = _params(model)
    ema.update(model)
    with ema.applied(model) as state:
        assert state == {}
    _assert_equal(_params(model), before)
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)


def test_checkpoints_hold_the_average_that_was_validated(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm(dropout=0.0)
    fit(model, train, val, _cfg(max_steps=10, eval_every=5, lr=5e-2), run_dir)
    raw = checkpoint.read(run_dir / "last.pt")
    state = raw["extra"]["ema"]
    assert state["updates"] == 10
    _assert_equal(state["weights"], _params(model))  # fit leaves the model its own weights
    average = {n: raw["state_dict"][n] for n in state["weights"]}
    assert any(not torch.equal(average[n], state["weights"][n]) for n in average)
    # eval and translate load the average, and its loss is the one logged for step 10.
    bundle = checkpoint.load(run_dir / "last.pt")
    _assert_equal(_params(bundle.model), average)
    assert bundle.evaluate(val)["val_loss"] == pytest.approx(raw["metrics"]["val_loss"])


@pytest.mark.parametrize("stop", ["max_steps", "ctrl_c"])
def test_a_stopped_run_resumes_to_the_same_weights_and_average(make_tiny_lm, tmp_path,
                                                               stop) -> None:
    model, _, train, val = make_tiny_lm()  # dropout on: the RNG states must come back too
    fit(model, train, val, _cfg(max_steps=12, eval_every=6), tmp_path / "a")

    stopped, _, train, val = make_tiny_lm()
    if stop == "max_steps":  # stopped after the step-6 evaluation, as by a kill after it
        fit(stopped, train, val, _cfg(max_steps=6, eval_every=6), tmp_path / "b")
    else:  # Ctrl-C between steps 4 and 5: last.pt is saved at step 4, off the schedule
        batches = list(train)

        def interrupted():
            for i, batch in enumerate(batches):
                if i == 4:
                    raise KeyboardInterrupt
                yield batch

        class Data:
            def __len__(self):
                return len(batches)

            def __iter__(self):
                return interrupted()

        with pytest.raises(KeyboardInterrupt):
            fit(stopped, Data(), val, _cfg(max_steps=12, eval_every=6), tmp_path / "b")
        assert checkpoint.read(tmp_path / "b" / "last.pt")["step"] == 4
    resumed, _, train, val = make_tiny_lm()
    fit(resumed, train, val, _cfg(max_steps=12, eval_every=6), tmp_path / "b", resume=True)

    _assert_equal(_params(resumed), _params(model))
    straight = checkpoint.read(tmp_path / "a" / "last.pt")
    again = checkpoint.read(tmp_path / "b" / "last.pt")
    weights = straight["extra"]["ema"]["weights"]
    _assert_equal(again["extra"]["ema"]["weights"], weights)
    _assert_equal({n: again["state_dict"][n] for n in weights},  # the average
                  {n: straight["state_dict"][n] for n in weights})
    assert again["extra"]["ema"]["updates"] == straight["extra"]["ema"]["updates"] == 12


def _old_checkpoint(make_tiny_lm, run_dir):
    """A run's last.pt as a textrnn from before the average wrote it: no ``ema`` in its
    train_config or extra (checkpoint.save's layout is otherwise unchanged)."""
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=5, ema=0.0), run_dir)
    raw = checkpoint.read(run_dir / "last.pt")
    del raw["train_config"]["ema"], raw["extra"]["ema"]
    torch.save(raw, run_dir / "last.pt")
    return model


def test_a_checkpoint_from_before_loads_and_resumes(make_tiny_lm, run_dir, caplog) -> None:
    model = _old_checkpoint(make_tiny_lm, run_dir)
    _assert_equal(_params(checkpoint.load(run_dir / "last.pt").model), _params(model))
    resumed, _, train, val = make_tiny_lm()
    fit(resumed, train, val, _cfg(max_steps=10, ema=0.0), run_dir, resume=True)
    assert checkpoint.read(run_dir / "last.pt")["step"] == 10
    # Resumed with an average: it starts at the loaded weights, and says so.
    _old_checkpoint(make_tiny_lm, run_dir)
    resumed, _, train, val = make_tiny_lm()
    fit(resumed, train, val, _cfg(max_steps=10), run_dir, resume=True)
    assert "holds no weight average" in caplog.text
    assert checkpoint.read(run_dir / "last.pt")["extra"]["ema"]["updates"] == 5


def test_resume_refuses_a_changed_decay_or_a_broken_average(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=5), run_dir)
    with pytest.raises(CheckpointError, match="ema 0.9 -> 0.99"):
        fit(model, train, val, _cfg(max_steps=10, ema=0.99), run_dir, resume=True)
    raw = checkpoint.read(run_dir / "last.pt")
    raw["extra"]["ema"]["weights"].popitem()
    torch.save(raw, run_dir / "last.pt")
    with pytest.raises(CheckpointError, match="'ema' does not fit"):
        fit(model, train, val, _cfg(max_steps=10), run_dir, resume=True)


def test_train_seq2seq_takes_the_flag_and_translates_with_the_average(tmp_path,
                                                                      capsys) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"one two {w} .\tun deux {m} .\n" for w, m in
                            [("three", "trois"), ("four", "quatre"), ("five", "cinq")] * 8),
                    encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["train", "seq2seq", "--help"])
    assert "--ema EMA" in capsys.readouterr().out
    argv = ["train", "seq2seq", "--data", str(data), "--out", str(tmp_path / "run"),
            "--vocab", "word", "--min-count", "1", "--hidden-size", "16",
            "--embedding-size", "8", "--batch-size", "8", "--max-steps", "4",
            "--eval-every", "2", "--threads", "1", "--ema", "0.99"]
    assert main(argv) == 0
    raw = checkpoint.read(tmp_path / "run" / "best.pt")
    assert raw["train_config"]["ema"] == 0.99 and raw["extra"]["ema"]["updates"] in (2, 4)
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(tmp_path / "run" / "best.pt"),
                 "--beam", "1", "one two three ."]) == 0
