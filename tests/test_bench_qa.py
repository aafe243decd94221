"""bench/qa.py's seed sweep: best run by validation, mean ± sd over seeds, resumable.

Runs the bench in-process on tiny generated stories (two kinds, 200 training questions)
for a few steps: the numbers mean nothing, only how the table is built from the runs.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

from textrnn import checkpoint
from textrnn.cli import main as textrnn

BENCH = Path(__file__).resolve().parent.parent / "bench" / "qa.py"
SEEDS = (1, 2)
# Enough steps that the two seeds' models differ (vector gates still tie at 40, scalar gates at
# 10; with every name read as a slot, at 80).
TRAIN = ["--", "--max-steps", "160", "--eval-every", "40"]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_qa", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Generated stories of bAbI tasks 1 and 6: 500 training (100 validation questions, so
    two seeds rarely tie), 200 test questions each (finer error steps: fewer ties)."""
    out = tmp_path_factory.mktemp("data")
    assert textrnn(["data", "generate", "--out", str(out), "--kinds", "1,6",
                    "--train", "500", "--test", "200"]) == 0
    return out


def _bench(capsys, *argv: str) -> tuple[str, dict]:
    """Run bench/qa.py with ``argv`` and ``--json``; its table and its JSON."""
    capsys.readouterr()
    assert bench.main(["--json", *argv]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    return "\n".join(printed[:-1]), json.loads(printed[-1])


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*.pt"))}


def test_joint_seeds_best_by_validation_and_mean_over_seeds(data, tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["--data", str(data), "--tasks", "1,6", "--seeds", ",".join(map(str, SEEDS)),
            "--out", str(out), *TRAIN]
    text, results = _bench(capsys, *argv)
    runs = {seed: json.loads((out / f"seed-{seed}" / "result.json").read_text())
            for seed in SEEDS}

    # The validation accuracy each result names is best.pt's, the model it tested.
    for seed, run in runs.items():
        metrics = checkpoint.read(out / f"seed-{seed}" / "best.pt")["metrics"]
        assert run["best_val_acc"] == metrics["val_acc"]
    # The best run: the higher validation accuracy (a tie would keep the first seed).
    assert runs[1]["best_val_acc"] != runs[2]["best_val_acc"], "seeds tie: raise --max-steps"
    assert runs[1]["mean_error"] != runs[2]["mean_error"]
    best = max(SEEDS, key=lambda seed: runs[seed]["best_val_acc"])
    assert results["seed"] == best
    assert results["mean_error"] == runs[best]["mean_error"]
    for task, row in results["tasks"].items():
        errors = [runs[seed]["tasks"][task]["error"] for seed in SEEDS]
        assert row["error"] == runs[best]["tasks"][task]["error"]
        assert row["error_mean"] == pytest.approx(statistics.fmean(errors))
        assert row["error_sd"] == pytest.approx(statistics.stdev(errors))
    spread = results["over_seeds"]
    assert spread["mean_error"]["mean"] == pytest.approx(
        statistics.fmean(runs[seed]["mean_error"] for seed in SEEDS))
    assert spread["failed"]["mean"] == pytest.approx(
        statistics.fmean(len(runs[seed]["failed"]) for seed in SEEDS))

    assert "best run by validation" in text and "mean ± sd" in text
    row = next(line for line in text.splitlines() if line.split()[:1] == ["6"])
    assert f"{results['tasks']['6']['error']:.2%}" in row
    assert f"{results['tasks']['6']['error_mean']:.2%} ± " in row
    assert f"seed {best}, val_acc" in text and "over 2 seeds (1, 2)" in text

    # Again: every run is read back from its result.json, nothing retrained.
    before = _mtimes(out)
    text, again = _bench(capsys, *argv)
    assert _mtimes(out) == before
    assert "textrnn train" not in text and again["reused"] == len(SEEDS)
    assert again["tasks"] == results["tasks"]

    # A run killed before its test (no result.json) goes on from its last.pt.
    (out / f"seed-{SEEDS[1]}" / "result.json").unlink()
    text, resumed = _bench(capsys, *argv)
    assert f"seed-{SEEDS[1]} --resume" in text and resumed["reused"] == 1
    assert _mtimes(out) == before  # the run had finished: nothing more to train
    assert resumed["tasks"] == results["tasks"]

    # Other settings in the same folder are refused, not mixed into the table.
    assert bench.main([*argv[:-1], "11"]) == 1
    assert "other settings" in capsys.readouterr().err


def test_per_task_seeds_mean_over_seeds(data, tmp_path, capsys):
    out = tmp_path / "per-task"
    text, results = _bench(capsys, "--data", str(data), "--tasks", "1,6", "--per-task",
                           "--seeds", ",".join(map(str, SEEDS)), "--out", str(out), *TRAIN)
    for task, row in results["tasks"].items():
        runs = {seed: json.loads((out / f"task-{task}" / f"seed-{seed}" / "result.json")
                                 .read_text()) for seed in SEEDS}
        best = max(SEEDS, key=lambda seed: runs[seed]["best_val_acc"])
        assert (row["seed"], row["error"]) == (best, runs[best]["tasks"][task]["error"])
        assert row["error_mean"] == pytest.approx(
            statistics.fmean(runs[seed]["tasks"][task]["error"] for seed in SEEDS))
    assert "best run by validation per task" in text and "mean ± sd" in text
