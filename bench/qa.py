"""Reproduce the README's question-answering numbers: train, test, print a per-task table.

Trains the default chatbot model (``textrnn train qa``, in this process) on the
given bAbI tasks with fixed settings and seed, then scores ``best.pt`` on the
test files (``textrnn eval``) and prints the per-task accuracy, the mean error,
the failed tasks (error > 5%, the bAbI convention) and the wall time of each
phase. Flags after ``--`` go to ``textrnn train qa`` unchanged, so any model or
schedule setting can be benchmarked the same way.

Usage::

    python bench/qa.py --data .../tasks_1-20_v1-2/en-10k --tasks 1,6 --threads 1
    python bench/qa.py --data .../en --tasks all --epochs 60 --out runs/bench-all
    python bench/qa.py --data data/generated --epochs 10 -- --hops 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from textrnn.cli import main as textrnn


def run(argv: list[str]) -> str:
    """Run ``textrnn`` in-process; return what it printed, or exit on an error."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = textrnn(argv)
    if status != 0:
        sys.exit(f"textrnn {' '.join(argv)} failed with status {status}")
    return stdout.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, train, evaluate and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True,
                        help="bAbI folder (en-10k, en, tasks_1-20_v1-2) or generated stories")
    parser.add_argument("--tasks", default="all", help="e.g. 1,6 or all (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training data (default: textrnn's qa default)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: %(default)s; 1 is the reference)")
    parser.add_argument("--seed", type=int, default=1234, help="seed (default: %(default)s)")
    parser.add_argument("--out", default=None,
                        help="run directory (default: a temporary one, removed afterwards)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("train_args", nargs="*",
                        help="after --: extra flags for `textrnn train qa`")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        out = args.out or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-qa-"))
        tasks = [] if args.tasks == "all" else ["--tasks", args.tasks]
        epochs = [] if args.epochs is None else ["--epochs", str(args.epochs)]
        train = ["train", "qa", "--data", args.data, *tasks, *epochs, "--out", out,
                 "--threads", str(args.threads), "--seed", str(args.seed), *args.train_args]
        print("textrnn " + " ".join(train), flush=True)
        started = time.perf_counter()
        run(train)
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        results = json.loads(run(["eval", "--checkpoint", str(Path(out) / "best.pt"),
                                  "--data", args.data, *tasks, "--json"]))
        eval_s = time.perf_counter() - started
        with open(Path(out) / "metrics.jsonl", encoding="utf-8") as f:
            records = [json.loads(line) for line in f]

    lines = [f"{'task':>6} {'accuracy':>9} {'error':>7} {'questions':>9}"]
    for task, r in results["tasks"].items():
        mark = "  FAILED" if r["failed"] else ""
        name = "gen" if task == "0" else task
        lines.append(f"{name:>6} {r['accuracy']:>9.2%} {r['error']:>7.2%} "
                     f"{r['questions']:>9}{mark}")
    print("\n".join(lines))
    failed = ", ".join("gen" if t == "0" else t for t in results["failed"]) or "none"
    print(f"mean error {results['mean_error']:.2%} over {len(results['tasks'])} task(s); "
          f"{len(results['failed'])} failed (error > 5%): {failed}")
    best = max(records, key=lambda r: r["val_acc"])
    print(f"train {train_s:.1f} s ({records[-1]['epoch']} epochs, {records[-1]['step']} steps; "
          f"best val_acc {best['val_acc']:.2%} at epoch {best['epoch']}), test {eval_s:.1f} s, "
          f"{args.threads} thread(s)")
    if args.json:
        print(json.dumps({**results, "train_s": train_s, "eval_s": eval_s,
                          "epochs": records[-1]["epoch"], "threads": args.threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
