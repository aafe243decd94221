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
    python bench/qa.py --data .../en-10k --per-task --jobs 2 --epochs 60
    python bench/qa.py --data .../en-10k --per-task --variant= --variant=--hop-relu
    python bench/qa.py --data .../en-10k --per-task --jobs 2 -- --stop-at 1.0  # stop at 100% val
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from textrnn.cli import main as textrnn
from textrnn.data.babi import task_files
from textrnn.pipelines.qa import parse_tasks


def run(argv: list[str]) -> str:
    """Run ``textrnn`` in-process; return what it printed, or exit on an error."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = textrnn(argv)
    if status != 0:
        sys.exit(f"textrnn {' '.join(argv)} failed with status {status}")
    return stdout.getvalue()


def train_and_test(data: str, tasks: str, out: str, args: argparse.Namespace) -> dict:
    """Train one model on ``tasks`` into ``out``, test ``best.pt``; the eval JSON plus timings."""
    task_flags = [] if tasks == "all" else ["--tasks", tasks]
    epochs = [] if args.epochs is None else ["--epochs", str(args.epochs)]
    train = ["train", "qa", "--data", data, *task_flags, *epochs, "--out", out, "--overwrite",
             "--threads", str(args.threads), "--seed", str(args.seed), *args.train_args]
    print("textrnn " + " ".join(train), flush=True)
    started = time.perf_counter()
    run(train)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    results = json.loads(run(["eval", "--checkpoint", str(Path(out) / "best.pt"), "--data", data,
                              *task_flags, "--threads", str(args.threads), "--json"]))
    eval_s = time.perf_counter() - started
    with open(Path(out) / "metrics.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    best = max(records, key=lambda r: r["val_acc"])
    return {**results, "train_s": train_s, "eval_s": eval_s, "epochs": records[-1]["epoch"],
            "steps": records[-1]["step"], "best_val_acc": best["val_acc"],
            "best_epoch": best["epoch"],
            # Each task's validation accuracy at best.pt: how --with-joint compares models.
            "best_val_by_task": {t: best.get(f"val_acc_task{t}", best["val_acc"])
                                 for t in results["tasks"]}}


def _one_task(job: tuple) -> dict:
    """A worker process's job (``--per-task``): one task's model, or the joint one."""
    data, task, seed, variant, out, args, joint = job
    run_args = argparse.Namespace(**{**vars(args), "seed": seed,
                                     "train_args": [*args.train_args, *variant.split()]})
    if joint:  # --with-joint: one model of all the tasks, a candidate for each
        run_args.epochs = args.joint_epochs or args.epochs
        variant = "joint"
    result = train_and_test(data, str(task), out, run_args)
    print(f"qa{task} seed {seed} [{variant}]: test {result['mean_accuracy']:.2%}, best val "
          f"{result['best_val_acc']:.2%} at epoch {result['best_epoch']}, "
          f"{result['train_s']:.0f} s", flush=True)
    return {**result, "seed": seed, "variant": variant}


def merge(runs: list[dict]) -> dict:
    """Combine single-task results into one table, as ``textrnn eval --json`` prints it.

    Where a task was trained with several seeds or variants (or also in a joint model,
    ``--with-joint``), the model with the best validation accuracy on that task is kept
    (ties: the first), as the paper keeps the best of its repeats; test accuracy plays
    no part in the choice.
    """
    per_task: dict[str, dict] = {}
    for run in runs:
        for task in run["tasks"]:  # one task, or all of them for the joint model
            if task not in per_task or (run["best_val_by_task"][task]
                                        > per_task[task]["best_val_by_task"][task]):
                per_task[task] = run
    per_task = dict(sorted(per_task.items(), key=lambda item: int(item[0])))
    tasks = {t: {**run["tasks"][t], "seed": run["seed"], "variant": run["variant"]}
             for t, run in per_task.items()}
    chosen = {t: run["best_val_by_task"][t] for t, run in per_task.items()}
    per_task = list(per_task.values())
    errors = [r["error"] for r in tasks.values()]
    return {"tasks": tasks, "mean_error": sum(errors) / len(errors),
            "mean_accuracy": 1 - sum(errors) / len(errors),
            "failed": [t for t, r in tasks.items() if r["failed"]],
            "train_s": sum(r["train_s"] for r in runs),  # every seed's run counts
            "eval_s": sum(r["eval_s"] for r in runs),
            "epochs": max(r["epochs"] for r in per_task),
            "best_val_acc": chosen,
            "runs": len(runs)}


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, train, evaluate and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True,
                        help="bAbI folder (en-10k, en, tasks_1-20_v1-2) or generated stories")
    parser.add_argument("--tasks", default="all", help="e.g. 1,6 or all (default: %(default)s)")
    parser.add_argument("--per-task", action="store_true",
                        help="train one model per task instead of one joint model")
    parser.add_argument("--jobs", type=int, default=1,
                        help="with --per-task: tasks trained at once, one process and "
                             "--threads threads each (default: %(default)s)")
    parser.add_argument("--with-joint", action="store_true",
                        help="with --per-task: also train one joint model of all the tasks "
                             "(base flags, no --variant), a candidate for every task")
    parser.add_argument("--joint-epochs", type=int, default=None,
                        help="epochs of the --with-joint model (default: --epochs)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training data (default: textrnn's qa default)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: %(default)s; 1 is the reference)")
    parser.add_argument("--seed", type=int, default=1234, help="seed (default: %(default)s)")
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="with --per-task: train each task with each of these seeds "
                             "(e.g. 1,2,3) and keep the best by validation accuracy")
    parser.add_argument("--variant", action="append", default=None, metavar="FLAGS",
                        help="with --per-task: extra train flags to try, the best by "
                             "validation kept per task; repeat it, and write it with '=': "
                             "--variant= --variant=--hop-relu (default: one, no extra flags)")
    parser.add_argument("--out", default=None,
                        help="run directory (default: a temporary one, removed afterwards); "
                             "with --per-task, one sub-directory per task")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("train_args", nargs="*",
                        help="after --: extra flags for `textrnn train qa`")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out = args.out or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-qa-"))
        if not args.per_task:
            results = train_and_test(args.data, args.tasks, out, args)
        else:
            if args.tasks == "all":
                tasks = sorted(task_files(args.data, None, "train"))
            else:
                tasks = parse_tasks(args.tasks)
            seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
            variants = args.variant or [""]
            jobs = [(args.data, t, seed, variant, str(Path(out) / f"qa{t}-seed{seed}-v{i}"),
                     args, False)
                    for t in tasks for i, variant in enumerate(variants) for seed in seeds]
            if args.with_joint:  # the longest job first, so the others fill in beside it
                jobs.insert(0, (args.data, args.tasks, seeds[0], "", str(Path(out) / "joint"),
                                args, True))
            if args.jobs > 1:  # spawn: a forked torch process can deadlock in its thread pool
                pool = multiprocessing.get_context("spawn").Pool(args.jobs)
                with pool:
                    per_task = pool.map(_one_task, jobs, chunksize=1)
            else:
                per_task = [_one_task(job) for job in jobs]
            results = merge(per_task)
    wall_s = time.perf_counter() - started

    lines = [f"{'task':>6} {'accuracy':>9} {'error':>7} {'questions':>9}"]
    for task, r in results["tasks"].items():
        mark = "  FAILED" if r["failed"] else ""
        name = "gen" if task == "0" else task
        chosen = f"  (seed {r['seed']} {r['variant']})".rstrip() if args.per_task else ""
        lines.append(f"{name:>6} {r['accuracy']:>9.2%} {r['error']:>7.2%} "
                     f"{r['questions']:>9}{mark}{chosen}")
    print("\n".join(lines))
    failed = ", ".join("gen" if t == "0" else t for t in results["failed"]) or "none"
    mode = "one model per task" if args.per_task else "one joint model"
    print(f"mean error {results['mean_error']:.2%} over {len(results['tasks'])} task(s), "
          f"{mode}; {len(results['failed'])} failed (error > 5%): {failed}")
    if args.per_task:
        print(f"{results['runs']} runs, the best of each task's seeds and variants by "
              "validation accuracy kept")
        print(f"train {results['train_s']:.1f} s summed over runs ({results['epochs']} epochs "
              f"each at most), test {results['eval_s']:.1f} s, wall {wall_s:.1f} s, "
              f"{args.jobs} job(s) x {args.threads} thread(s)")
    else:
        print(f"train {results['train_s']:.1f} s ({results['epochs']} epochs, "
              f"{results['steps']} steps; best val_acc {results['best_val_acc']:.2%} at epoch "
              f"{results['best_epoch']}), test {results['eval_s']:.1f} s, "
              f"{args.threads} thread(s)")
    if args.json:
        print(json.dumps({**results, "wall_s": wall_s, "threads": args.threads,
                          "per_task": args.per_task}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
