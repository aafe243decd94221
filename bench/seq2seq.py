"""Attention against no attention: two seq2seq models of the same size, the same time budget.

Prepares the en-bbe -> fr-lsg verse pairs (``textrnn data bible``) if they are
missing, trains ``--attention general`` (or the one given) and ``--attention
none`` for ``--minutes`` of wall-clock time each (``--clock cpu``: of CPU
time, the same work for both when other jobs share the machine), one after
the other, on ``--threads`` CPU threads, then prints test BLEU and chrF
(sacrebleu) for greedy and beam search, with the training time, CPU time and
steps of each::

    python bench/seq2seq.py --minutes 12                 # ~27 minutes in all on one thread
    python bench/seq2seq.py --minutes 6 --clock cpu      # equal CPU time each

Each model keeps the checkpoint with the best validation loss (``best.pt``).
``bench/translate.py`` compares the defaults on every verse, with JoeyNMT besides.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from textrnn import checkpoint
from textrnn.cli import main as textrnn_main
from textrnn.data.bible import prepare_bible
from textrnn.pipelines import seq2seq


def train_and_test(name: str, attention: str, data: Path, args: argparse.Namespace) -> dict:
    """Train one model for the budget, then evaluate its best checkpoint on test.tsv."""
    out = Path(args.out) / name
    argv = ["train", "seq2seq", "--data", str(data / "train.tsv"), "--out", str(out),
            "--attention", attention, "--max-minutes", str(args.minutes), "--epochs", "1000",
            "--budget-clock", args.clock,
            "--threads", str(args.threads), "--seed", str(args.seed), *args.train_args.split()]
    cpu, wall = time.process_time(), time.monotonic()
    if textrnn_main(argv) != 0:
        raise SystemExit(f"training {name} failed")
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    bundle = checkpoint.load(out / "best.pt", task="seq2seq")
    text = (out / "metrics.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    results = seq2seq.evaluate(bundle, data / "test.tsv", beam_size=args.beam, batch_size=32,
                               progress=True)
    return {
        "name": name, "attention": attention,
        "parameters": sum(p.numel() for p in bundle.model.parameters()),
        "steps": records[-1]["step"], "best_step": bundle.step,
        "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
        "val_loss": bundle.metrics["val_loss"], **results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/bible/en-bbe_fr-lsg_25",
                        help="folder with train/valid/test.tsv; made with --max-len 25 if "
                             "missing (default: %(default)s)")
    parser.add_argument("--out", default="runs/bench-seq2seq", help="run directories")
    parser.add_argument("--minutes", type=float, default=12.0,
                        help="training budget per model, in minutes of --clock time "
                             "(default: %(default)s)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="what the budget counts: wall-clock time, or CPU time, the same "
                             "work for both on a shared machine (default: %(default)s)")
    parser.add_argument("--attention", default="general",
                        help="the attention model's score (default: %(default)s)")
    parser.add_argument("--beam", type=int, default=5, help="beam size (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default: 1)")
    parser.add_argument("--seed", type=int, default=1234, help="seed (default: %(default)s)")
    parser.add_argument("--train-args", default="--vocab-size 4000 --hidden-size 128 "
                        "--eval-every 200",
                        help="more flags for both 'train seq2seq' runs (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not (data / "train.tsv").is_file():
        for split, written in prepare_bible("en-bbe", "fr-lsg", data, max_len=25).items():
            print(f"{split}: {written.describe()}")
    rows = [train_and_test(args.attention, args.attention, data, args),
            train_and_test("none", "none", data, args)]
    print(f"\ntest: {rows[0]['pairs']} pairs of {data}; {args.threads} thread(s), "
          f"torch {torch.__version__}; budget {args.minutes} min of {args.clock} time per model")
    print(f"{'attention':>10} {'params':>9} {'steps':>6} {'wall s':>7} {'cpu s':>7} "
          f"{'val loss':>8} {'greedy BLEU':>11} {'chrF':>6} {'beam BLEU':>9} {'chrF':>6}")
    for r in rows:
        beam = r.get("beam", r["greedy"])
        print(f"{r['attention']:>10} {r['parameters']:>9,} {r['steps']:>6} {r['train_wall_s']:>7} "
              f"{r['train_cpu_s']:>7} {r['val_loss']:>8.3f} {r['greedy']['bleu']:>11.2f} "
              f"{r['greedy']['chrf']:>6.2f} {beam['bleu']:>9.2f} {beam['chrf']:>6.2f}")
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
