"""``--resume`` and the run folder under bad conditions: changed settings, a metrics log
torn or ahead of the checkpoint, a temp file left by a kill mid-save, two trainings into
one folder. Each is refused in one line or repaired, and nothing finished is lost."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading

import pytest
import torch

from textrnn import checkpoint
from textrnn.cli import main
from textrnn.errors import CheckpointError, TextrnnError
from textrnn.train import TrainConfig, fit

TINY_LM = ["--level", "char", "--embedding-size", "8", "--hidden-size", "16", "--num-layers",
           "1", "--batch-size", "4", "--bptt", "16", "--device", "cpu", "--threads", "1"]


def _cfg(**overrides) -> TrainConfig:
    base = {"epochs": 50, "lr": 1e-2, "eval_every": 5, "device": "cpu", "seed": 7}
    return TrainConfig(**{**base, **overrides})


def _records(run_dir) -> list[dict]:
    """Every line of metrics.jsonl, parsed (a torn or glued line fails here)."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("textrnn: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def _first_leg(make_tiny_lm, out, **settings) -> None:
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=5, **settings), out)


# --- changed settings ---------------------------------------------------------------------


def test_a_model_setting_that_changes_a_shape_is_refused_naming_it(make_tiny_lm,
                                                                   run_dir) -> None:
    _first_leg(make_tiny_lm, run_dir)  # 2 layers
    model, _, train, val = make_tiny_lm(num_layers=1)
    with pytest.raises(CheckpointError, match="changed settings: num_layers 2 -> 1") as info:
        fit(model, train, val, _cfg(max_steps=10), run_dir, resume=True)  # was: size mismatch
    assert "\n" not in str(info.value)


def test_sgd_after_adam_is_refused_naming_the_optimizer(make_tiny_lm, run_dir) -> None:
    _first_leg(make_tiny_lm, run_dir)
    model, _, train, val = make_tiny_lm()
    with pytest.raises(CheckpointError, match="optimizer 'adam' -> 'sgd'"):  # was: KeyError
        fit(model, train, val, _cfg(max_steps=10, optimizer="sgd"), run_dir, resume=True)


def test_plateau_after_linear_is_refused_naming_the_schedule(make_tiny_lm, run_dir) -> None:
    _first_leg(make_tiny_lm, run_dir, schedule="linear")
    model, _, train, val = make_tiny_lm()
    # Before, this trained on silently at the learning rate 0 the linear schedule had reached.
    with pytest.raises(CheckpointError, match="schedule 'linear' -> 'plateau'"):
        fit(model, train, val, _cfg(max_steps=10, schedule="plateau"), run_dir, resume=True)
    assert checkpoint.read(run_dir / "last.pt")["step"] == 5  # nothing trained, nothing lost


def test_a_changed_model_flag_is_one_line_from_the_cli(tiny_text, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "lm", "--data", str(tiny_text), "--out", str(out), *TINY_LM]
    assert main([*argv, "--max-steps", "3"]) == 0
    capsys.readouterr()
    assert main([*argv, "--max-steps", "6", "--resume", "--hidden-size", "24",
                 "--optimizer", "sgd"]) == 2
    err = _one_line_error(capsys)
    assert "hidden_size 16 -> 24" in err and "optimizer 'adam' -> 'sgd'" in err


def test_safe_changes_are_noted_and_the_run_goes_on(make_tiny_lm, run_dir, caplog) -> None:
    _first_leg(make_tiny_lm, run_dir, patience=0)
    model, _, train, val = make_tiny_lm()
    caplog.set_level(logging.INFO, logger="textrnn.train")
    result = fit(model, train, val, _cfg(max_steps=12, eval_every=4, patience=5, epochs=60),
                 run_dir, resume=True)
    assert result["step"] == 12
    noted = " ".join(r.getMessage() for r in caplog.records)
    for change in ("max_steps 5 -> 12", "eval_every 5 -> 4", "patience 0 -> 5", "epochs 50 -> 60"):
        assert change in noted, noted


# --- the metrics log ----------------------------------------------------------------------


def test_a_torn_last_metrics_line_is_cut_and_the_run_resumes(make_tiny_lm, run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=10), run_dir)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 15, "epoch": 1, "train_lo')  # killed mid-write: no newline
    for max_steps in (20, 25):  # the first resume repairs the file for the next one
        model, _, train, val = make_tiny_lm()
        fit(model, train, val, _cfg(max_steps=max_steps), run_dir, resume=True)
    assert [r["step"] for r in _records(run_dir)] == [5, 10, 15, 20, 25]


def test_records_past_the_checkpoint_are_not_kept_twice(make_tiny_lm, run_dir, tmp_path) -> None:
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=5), run_dir)
    shutil.copy(run_dir / "last.pt", tmp_path / "step5.pt")
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=10), run_dir, resume=True)
    logged = _records(run_dir)
    # As if killed after the step-10 evaluation was logged but before last.pt was saved.
    shutil.copy(tmp_path / "step5.pt", run_dir / "last.pt")
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=10), run_dir, resume=True)
    again = _records(run_dir)
    assert [r["step"] for r in again] == [5, 10]  # was [5, 10, 10]
    assert again[1]["val_loss"] == logged[1]["val_loss"]  # the redone step, exactly


def test_a_bad_line_before_the_last_is_an_error_and_nothing_is_cut(make_tiny_lm,
                                                                     run_dir) -> None:
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=10), run_dir)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    spoiled = "".join(["not json\n", *lines])
    (run_dir / "metrics.jsonl").write_text(spoiled)
    model, _, train, val = make_tiny_lm()
    with pytest.raises(TextrnnError, match=r"metrics.jsonl:1: not a metrics record"):
        fit(model, train, val, _cfg(max_steps=15), run_dir, resume=True)
    assert (run_dir / "metrics.jsonl").read_text() == spoiled


# --- temp files and the run-folder lock ---------------------------------------------------


@pytest.mark.parametrize("resume", [True, False])
def test_a_temp_checkpoint_left_by_a_kill_is_removed(make_tiny_lm, run_dir, resume) -> None:
    _first_leg(make_tiny_lm, run_dir)
    stale = run_dir / ".last.pt.k1ll3d.tmp"  # the name checkpoint.save gives its temp file
    stale.write_bytes(b"PK\x03\x04 half a zip")
    other = run_dir / ".keep"  # not ours: stays
    other.write_text("")
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=10), run_dir, resume=resume)
    assert not stale.exists() and other.exists()


class _Blocking:
    """The batches of ``data``, stopping before batch 2 until ``release`` is set."""

    def __init__(self, data) -> None:
        self.data, self.running, self.release = data, threading.Event(), threading.Event()

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        for i, batch in enumerate(self.data):
            if i == 2 and not self.release.is_set():
                self.running.set()
                self.release.wait(timeout=60)
            yield batch


def test_a_second_training_into_the_same_folder_is_refused(make_tiny_lm, tiny_text, run_dir,
                                                           capsys) -> None:
    model, _, train, val = make_tiny_lm()
    blocked = _Blocking(train)
    first = threading.Thread(target=fit, args=(model, blocked, val, _cfg(max_steps=6), run_dir))
    first.start()
    try:
        assert blocked.running.wait(timeout=60)  # the first training is under way
        second, _, train, val = make_tiny_lm()
        with pytest.raises(TextrnnError, match="another training is running in this folder"):
            fit(second, train, val, _cfg(max_steps=6), run_dir)
        argv = ["train", "lm", "--data", str(tiny_text), "--out", str(run_dir), "--overwrite",
                "--max-steps", "3", *TINY_LM]
        assert main(argv) == 2
        assert f"{run_dir}: another training is running" in _one_line_error(capsys)
    finally:
        blocked.release.set()
        first.join(timeout=60)
    assert checkpoint.read(run_dir / "last.pt")["step"] == 6  # the first one ran undisturbed
    model, _, train, val = make_tiny_lm()
    fit(model, train, val, _cfg(max_steps=8), run_dir, resume=True)  # the lock went with it


def test_the_lock_dies_with_a_killed_process(make_tiny_lm, run_dir) -> None:
    run_dir.mkdir()
    # The lock fit takes: an exclusive flock on the folder, here by a process then killed -9.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
         "os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); "
         "time.sleep(120)", str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        model, _, train, val = make_tiny_lm()
        with pytest.raises(TextrnnError, match="another training is running"):
            fit(model, train, val, _cfg(max_steps=5), run_dir)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    model, _, train, val = make_tiny_lm()
    assert fit(model, train, val, _cfg(max_steps=5), run_dir)["step"] == 5


def test_a_refused_resume_leaves_the_run_as_it_was(make_tiny_lm, run_dir) -> None:
    _first_leg(make_tiny_lm, run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    model, _, train, val = make_tiny_lm()
    with pytest.raises(CheckpointError):
        fit(model, train, val, _cfg(max_steps=10, lr=0.5), run_dir, resume=True)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == 5
