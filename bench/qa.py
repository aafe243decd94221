"""Reproduce the README's question-answering numbers: train, test, print a per-task table.

Trains the default chatbot model (``textrnn train qa``, in this process) on the
given bAbI tasks with fixed settings and seed, then scores ``best.pt`` on the
test files (``textrnn eval``) and prints the per-task accuracy, the mean error,
the failed tasks (error > 5%, the bAbI convention) and the wall time of each
phase. Flags after ``--`` go to ``textrnn train qa`` unchanged, so any model or
schedule setting can be benchmarked the same way.

With several ``--seeds`` it is a sweep (issue 18's protocol): one model per seed
(per task and variant with ``--per-task``), ``--jobs`` of them at once. The table
shows the best run, chosen by validation accuracy (``best.pt``'s ``val_acc``, never
the test), and beside it the mean ± sd of the test error over the seeds, so that
nobody reads a lucky seed as the model's level. Each run has its own folder,
``OUT/seed-N`` (``OUT/task-T/seed-N`` and ``OUT/task-T/<variant>/seed-N`` per task,
``OUT/joint/seed-N`` for ``--with-joint``), and writes its ``result.json`` once tested:
run the same command again and finished runs are read back, not retrained, and a run
killed midway goes on from its ``last.pt`` (``textrnn train --resume``).

Usage::

    python bench/qa.py --data .../tasks_1-20_v1-2/en-10k --tasks 1,6 --threads 1
    python bench/qa.py --data .../en --tasks all --epochs 60 --out runs/bench-all
    python bench/qa.py --data data/generated --epochs 10 -- --hops 2
    python bench/qa.py --data .../en-10k --tasks all --seeds 1,2,3 --jobs 3 --out runs/s \\
        -- --device cuda --max-minutes 30
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
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from textrnn.cli import main as textrnn
from textrnn.data.babi import parse_tasks, task_files


class BenchError(Exception):
    """A run that cannot go on; one line for the user (an Exception, so that a worker
    process hands it back to the pool: a SystemExit there would hang ``Pool.map``)."""


def run(argv: list[str]) -> str:
    """Run ``textrnn`` in-process; return what it printed, or raise :class:`BenchError`."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = textrnn(argv)
    if status != 0:
        raise BenchError(f"textrnn {' '.join(argv)} failed with status {status}")
    return stdout.getvalue()


def train_and_test(data: str, tasks: str, out: str, args: argparse.Namespace) -> dict:
    """Train one model on ``tasks`` into ``out``, test ``best.pt``; the eval JSON plus timings.

    The result is also written to ``out/result.json``; when that file is already there
    (from the same settings) it is returned as it is, nothing retrained. A run killed
    midway, its ``last.pt`` left, is resumed.
    """
    from textrnn import checkpoint  # torch: only once there is something to train

    out_dir = Path(out)
    settings = {"data": str(Path(data).resolve()), "tasks": tasks, "seed": args.seed,
                "epochs": args.epochs, "train_args": args.train_args}
    done = out_dir / "result.json"
    if done.exists():
        result = json.loads(done.read_text(encoding="utf-8"))
        if result.get("settings") != settings:
            raise BenchError(f"{done}: a run with other settings ({result.get('settings')}) "
                             "is there; give another --out")
        print(f"{out}: tested before, not retrained", flush=True)
        return {**result, "reused": True}
    task_flags = [] if tasks == "all" else ["--tasks", tasks]
    epochs = [] if args.epochs is None else ["--epochs", str(args.epochs)]
    # `textrnn train` refuses a folder holding a run unless told which: go on from a
    # killed run's last.pt; anything less (killed before its first save) starts afresh.
    again = "--resume" if (out_dir / "last.pt").exists() else "--overwrite"
    train = ["train", "qa", "--data", data, *task_flags, *epochs, "--out", out, again,
             "--threads", str(args.threads), "--seed", str(args.seed), *args.train_args]
    print("textrnn " + " ".join(train), flush=True)
    started = time.perf_counter()
    run(train)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    results = json.loads(run(["eval", "--checkpoint", str(out_dir / "best.pt"), "--data", data,
                              *task_flags, "--threads", str(args.threads), "--json"]))
    eval_s = time.perf_counter() - started
    with open(out_dir / "metrics.jsonl", encoding="utf-8") as f:
        last = [json.loads(line) for line in f][-1]
    # The validation scores of the model tested, as best.pt holds them (the log's first
    # best record can differ from it where a tie of lower loss replaced best.pt).
    best = checkpoint.read(out_dir / "best.pt")
    metrics = best["metrics"]
    result = {**results, "train_s": train_s, "eval_s": eval_s, "epochs": last["epoch"],
              "steps": last["step"], "best_val_acc": metrics["val_acc"],
              "best_epoch": best["epoch"],
              # Each task's validation accuracy at best.pt: how --with-joint compares models.
              "best_val_by_task": {t: metrics.get(f"val_acc_task{t}", metrics["val_acc"])
                                   for t in results["tasks"]},
              "settings": settings}
    partial = done.with_suffix(".json.tmp")  # replaced whole: a kill leaves no half file
    partial.write_text(json.dumps(result) + "\n", encoding="utf-8")
    os.replace(partial, done)
    return {**result, "reused": False}


def _one_run(job: tuple) -> dict:
    """A worker process's job: one model (a task's, a seed's joint one, or --with-joint's)."""
    data, tasks, seed, variant, out, args, joint = job
    run_args = argparse.Namespace(**{**vars(args), "seed": seed,
                                     "train_args": [*args.train_args, *variant.split()]})
    if joint:  # --with-joint: one model of all the tasks, a candidate for each
        run_args.epochs = args.joint_epochs or args.epochs
        variant = "joint"
    result = train_and_test(data, str(tasks), out, run_args)
    name = f"qa{tasks}" if str(tasks).isdigit() else f"tasks {tasks}"
    tag = f" [{variant}]" if variant else ""
    print(f"{name} seed {seed}{tag}: test {result['mean_accuracy']:.2%}, best val "
          f"{result['best_val_acc']:.2%} at epoch {result['best_epoch']}, "
          f"{result['train_s']:.0f} s", flush=True)
    return {**result, "seed": seed, "variant": variant}


def _folder(variant: str) -> str:
    """A variant's sub-folder: ``"--hop-relu --hop-init eye"`` -> ``hop-relu-hop-init-eye``."""
    return re.sub(r"[^A-Za-z0-9.=_]+", "-", variant).strip("-")


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


def _spread(values: list[float]) -> dict:
    """Mean and sample sd (n - 1; None for one value) of ``values``."""
    sd = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "sd": sd}


def over_seeds(best: dict, runs: list[dict], seeds: list[int], per_task: bool) -> dict:
    """The mean ± sd over ``seeds``: added to each row of ``best``'s table (``error_mean``,
    ``error_sd``, ``error_by_seed``), and returned for the mean error and failed tasks.

    Each seed's own table is what the protocol gives with that seed alone: its joint
    model, or (``per_task``) the best by validation per task of its runs. Its test errors
    are averaged over the seeds, as are its mean error and its number of failed tasks.
    """
    tables = {seed: merge([r for r in runs if r["seed"] == seed]) if per_task
              else next(r for r in runs if r["seed"] == seed) for seed in seeds}
    for task, row in best["tasks"].items():
        by_seed = {seed: table["tasks"][task]["error"] for seed, table in tables.items()}
        spread = _spread(list(by_seed.values()))
        row.update(error_mean=spread["mean"], error_sd=spread["sd"], error_by_seed=by_seed)
    return {"seeds": seeds,
            "mean_error": {**_spread([t["mean_error"] for t in tables.values()]),
                           "by_seed": {s: t["mean_error"] for s, t in tables.items()}},
            "failed": {**_spread([len(t["failed"]) for t in tables.values()]),
                       "by_seed": {s: t["failed"] for s, t in tables.items()}}}


def _pm(spread: dict, percent: bool = True) -> str:
    """``"1.20% ± 0.50%"``, or the mean alone where there is no sd."""
    form = "{:.2%}" if percent else "{:.1f}"
    sd = "" if spread["sd"] is None else " ± " + form.format(spread["sd"])
    return form.format(spread["mean"]) + sd


def table(results: dict, args: argparse.Namespace, seeds: list[int]) -> list[str]:
    """The per-task table and summary lines of ``results``."""
    sweep = len(seeds) > 1
    lines = [f"{'best run by validation':>35}   test error over {len(seeds)} seeds"] * sweep
    lines.append(f"{'task':>6} {'accuracy':>9} {'error':>7} {'questions':>9}"
                 + f"  {'mean ± sd':>18}" * sweep)
    for task, r in results["tasks"].items():
        mark = "  FAILED" if r["failed"] else ""
        name = "gen" if task == "0" else task
        spread = f"  {_pm({'mean': r['error_mean'], 'sd': r['error_sd']}):>18}" if sweep else ""
        chosen = f"  (seed {r['seed']} {r['variant']}".rstrip() + ")" if args.per_task else ""
        lines.append(f"{name:>6} {r['accuracy']:>9.2%} {r['error']:>7.2%} "
                     f"{r['questions']:>9}{spread}{mark}{chosen}")
    failed = ", ".join("gen" if t == "0" else t for t in results["failed"]) or "none"
    mode = "one model per task" if args.per_task else "one joint model"
    best = ""
    if sweep:
        best = ("best run by validation per task: " if args.per_task else
                f"best run by validation (seed {results['seed']}, val_acc "
                f"{results['best_val_acc']:.2%}): ")
    lines.append(f"{best}mean error {results['mean_error']:.2%} over {len(results['tasks'])} "
                 f"task(s), {mode}; {len(results['failed'])} failed (error > 5%): {failed}")
    if sweep:
        spread = results["over_seeds"]
        lines.append(f"over {len(seeds)} seeds ({', '.join(map(str, seeds))}), mean ± sd: "
                     f"mean error {_pm(spread['mean_error'])}, failed tasks "
                     f"{_pm(spread['failed'], percent=False)}")
    reused = f" ({results['reused']} tested before, not retrained)" if results["reused"] else ""
    if args.per_task:
        lines.append(f"{results['runs']} runs{reused}, the best of each task's seeds and "
                     "variants by validation accuracy kept")
        lines.append(f"train {results['train_s']:.1f} s summed over runs ({results['epochs']} "
                     f"epochs each at most), test {results['eval_s']:.1f} s, wall "
                     f"{results['wall_s']:.1f} s, {args.jobs} job(s) x {args.threads} thread(s)")
    else:
        summed = f" summed over {results['runs']} runs{reused}; best run" if sweep else reused
        lines.append(f"train {results['train_s']:.1f} s{summed} ({results['epochs']} "
                     f"epochs, {results['steps']} steps; best val_acc "
                     f"{results['best_val_acc']:.2%} at epoch {results['best_epoch']}), test "
                     f"{results['eval_s']:.1f} s, wall {results['wall_s']:.1f} s, "
                     f"{args.jobs} job(s) x {args.threads} thread(s)")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, train, evaluate and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True,
                        help="bAbI folder (en-10k, en, tasks_1-20_v1-2) or generated stories")
    parser.add_argument("--tasks", default="all", help="e.g. 1,6 or all (default: %(default)s)")
    parser.add_argument("--per-task", action="store_true",
                        help="train one model per task instead of one joint model")
    parser.add_argument("--jobs", type=int, default=1,
                        help="models trained at once, one process and --threads threads "
                             "each (default: %(default)s)")
    parser.add_argument("--with-joint", action="store_true",
                        help="with --per-task: also train one joint model of all the tasks "
                             "per seed (base flags, no --variant), a candidate for every task")
    parser.add_argument("--joint-epochs", type=int, default=None,
                        help="epochs of the --with-joint model (default: --epochs)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the training data (default: textrnn's qa default)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: %(default)s; 1 is the reference)")
    parser.add_argument("--seed", type=int, default=1234, help="seed (default: %(default)s)")
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="train with each of these seeds (e.g. 1,2,3; instead of --seed): "
                             "the best by validation accuracy is kept, the mean ± sd over "
                             "the seeds shown beside it")
    parser.add_argument("--variant", action="append", default=None, metavar="FLAGS",
                        help="with --per-task: extra train flags to try, the best by "
                             "validation kept per task; repeat it, and write it with '=': "
                             "--variant= --variant=--hop-relu (default: one, no extra flags)")
    parser.add_argument("--out", default=None,
                        help="sweep directory, one sub-directory per run (default: a "
                             "temporary one, removed afterwards); run the command again "
                             "with the same --out to go on with an unfinished sweep")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("train_args", nargs="*",
                        help="after --: extra flags for `textrnn train qa`")
    args = parser.parse_args(argv)
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()] if args.seeds else [args.seed]
    except ValueError:
        parser.error(f"--seeds: not a list of numbers: {args.seeds!r}")
    if len(set(seeds)) != len(seeds) or not seeds:
        parser.error(f"--seeds: give each seed once: {args.seeds!r}")

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out = Path(args.out or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-qa-")))
        if not args.per_task:
            jobs = [(args.data, args.tasks, seed, "", str(out / f"seed-{seed}"), args, False)
                    for seed in seeds]
        else:
            if args.tasks == "all":
                tasks = sorted(task_files(args.data, None, "train"))
            else:
                tasks = parse_tasks(args.tasks)
            variants = args.variant or [""]
            jobs = [(args.data, t, seed, variant,
                     str(out / f"task-{t}" / _folder(variant) / f"seed-{seed}"), args, False)
                    for t in tasks for variant in variants for seed in seeds]
            if args.with_joint:  # the longest jobs first, so the others fill in beside them
                jobs[:0] = [(args.data, args.tasks, seed, "", str(out / "joint" / f"seed-{seed}"),
                             args, True) for seed in seeds]
        try:
            if args.jobs > 1:  # spawn: a forked torch process can deadlock in its thread pool
                with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
                    runs = pool.map(_one_run, jobs, chunksize=1)
            else:
                runs = [_one_run(job) for job in jobs]
        except BenchError as err:
            print(f"bench/qa.py: error: {err}", file=sys.stderr)
            return 1
    if args.per_task:
        results = merge(runs)
    else:  # one model for every task: the seed of the best validation accuracy (ties: first)
        chosen = max(runs, key=lambda r: r["best_val_acc"])
        results = {**chosen, "tasks": {t: {**r, "seed": chosen["seed"], "variant": ""}
                                       for t, r in chosen["tasks"].items()},
                   "train_s": sum(r["train_s"] for r in runs),
                   "eval_s": sum(r["eval_s"] for r in runs), "runs": len(runs)}
    results["over_seeds"] = over_seeds(results, runs, seeds, args.per_task)
    results["reused"] = sum(r["reused"] for r in runs)
    results["wall_s"] = time.perf_counter() - started

    print("\n".join(table(results, args, seeds)))
    if args.json:
        print(json.dumps({**results, "threads": args.threads, "jobs": args.jobs,
                          "per_task": args.per_task}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
