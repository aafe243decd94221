"""Throughput and time to accuracy of ``textrnn train`` on 1, 2, ... processes (DDP).

Each process count trains the same run from scratch under
``torchrun --standalone --nproc-per-node N -m textrnn train <task> ...`` with the same
per-process ``--batch-size`` (so N processes take steps of N times the batch), one CPU
thread per process (``--threads 1``) and ``--stop-at`` the target validation metric.
It reads the run's ``metrics.jsonl`` back and prints per N:

- examples/s: training examples (global batch x steps) per second of training, from the
  last record's elapsed time (the evaluations are inside it, as they are in a real run);
- time to target: elapsed seconds at the first evaluation that reached ``--target``;
- wall: the whole command, process start-up and data loading included.

On CPU several processes pay off only with a core each to spare: on a 2-core machine
that other jobs share, 2 processes are often no faster than 1 (each step waits for the
slower rank, and the gradient all-reduce runs on the same cores); the table says what
this machine measured, not what a GPU node would. On a machine with N GPUs, pass
``--device cuda`` (each rank takes GPU ``LOCAL_RANK``).

Usage::

    python bench/ddp.py --data data/generated --procs 1,2 --target 0.95
    python bench/ddp.py --data data/generated --procs 1,2,4 -- --device cuda --threads 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def train(procs: int, args: argparse.Namespace, extra: list[str]) -> dict:
    """One run on ``procs`` processes; its figures (see the module docstring)."""
    out = Path(args.out) / f"procs-{procs}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc-per-node", str(procs), "-m", "textrnn", "train", args.task,
           "--data", args.data, "--out", str(out), "--overwrite",
           "--batch-size", str(args.batch_size), "--threads", "1", "--device", "cpu",
           "--seed", str(args.seed), "--epochs", str(args.epochs),
           "--eval-every", str(args.eval_every), "--stop-at", str(args.target),
           "--max-minutes", str(args.max_minutes), *extra]
    if args.task == "qa":
        cmd += ["--tasks", args.tasks]
    start = time.monotonic()
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{procs} processes failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    reached = [r for r in records if r.get(args.metric, float("-inf")) >= args.target]
    return {
        "procs": procs,
        "global_batch": procs * args.batch_size,
        "steps": last["step"],
        "examples_per_s": last["step"] * procs * args.batch_size / last["elapsed"],
        "time_to_target_s": reached[0]["elapsed"] if reached else None,
        "best": max(r[args.metric] for r in records),
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--data", required=True, help="the task's training data")
    add("--task", default="qa", help="the textrnn train task (default: %(default)s)")
    add("--tasks", default="1", help="qa: the bAbI tasks (default: %(default)s)")
    add("--procs", default="1,2", help="process counts to compare (default: %(default)s)")
    add("--batch-size", type=int, default=32, help="per process (default: %(default)s)")
    add("--epochs", type=int, default=20, help="at most (default: %(default)s)")
    add("--eval-every", type=int, default=50, help="global steps (default: %(default)s)")
    add("--metric", default="val_acc", help="what --target is of (default: %(default)s)")
    add("--target", type=float, default=0.95, help="(default: %(default)s)")
    add("--max-minutes", type=float, default=5.0, help="per run (default: %(default)s)")
    add("--seed", type=int, default=1, help="(default: %(default)s)")
    add("--out", default="runs/bench-ddp", help="run folders (default: %(default)s)")
    args = parser.parse_args(argv)
    print(f"{'procs':>5} {'global batch':>12} {'steps':>6} {'examples/s':>10} "
          f"{'to ' + args.metric + ' ' + str(args.target):>18} {'best':>6} {'wall':>7}")
    for procs in (int(p) for p in args.procs.split(",")):
        r = train(procs, args, extra)
        target = "not reached" if r["time_to_target_s"] is None else (
            f"{r['time_to_target_s']:.1f} s")
        print(f"{r['procs']:>5} {r['global_batch']:>12} {r['steps']:>6} "
              f"{r['examples_per_s']:>10.0f} {target:>18} {r['best']:>6.3f} "
              f"{r['wall_s']:>6.1f}s", flush=True)
    print(f"(CPU, --threads 1 per process, {os.cpu_count()} cores on this machine, shared "
          "with whatever else runs: more processes help only with idle cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
