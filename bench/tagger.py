"""CoNLL-2003 NER: what the CRF and the character encoder add, at an equal training budget.

Trains each configuration with ``textrnn train tagger`` (one process each, one
thread, the same seed and epochs), evaluates ``best.pt`` on the test split, and
prints a Markdown table: validation and test entity F1, and the CPU seconds
per epoch (process time, so a busy machine inflates the wall time but not it).

    python bench/tagger.py --data data/conll2003 --epochs 2 --out runs/bench-tagger
    python bench/tagger.py --configs crf-cnn,softmax-cnn   # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {  # name -> extra flags of `textrnn train tagger`
    "softmax-none": ["--char-encoder", "none"],
    "crf-none": ["--crf", "--char-encoder", "none"],
    "softmax-cnn": ["--char-encoder", "cnn"],
    "crf-cnn": ["--crf", "--char-encoder", "cnn"],
    "softmax-lstm": ["--char-encoder", "lstm"],
    "crf-lstm": ["--crf", "--char-encoder", "lstm"],
}


def run(argv: list[str], log: Path) -> float:
    """Run ``textrnn`` with ``argv`` (output to ``log``); returns its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "textrnn", *argv], stdout=f, stderr=f, check=True,
                       env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/conll2003",
                        help="folder with train/valid/test.txt (default: %(default)s)")
    parser.add_argument("--out", default="runs/bench-tagger",
                        help="run directories go here (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs each (default: %(default)s)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated subset of: " + ", ".join(CONFIGS))
    parser.add_argument("--seed", type=int, default=1234, help="seed (default: %(default)s)")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("| output | characters | val F1 | test F1 | CPU s/epoch | wall s |")
    print("|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        run_dir = out / name
        start = time.monotonic()
        cpu = run(["train", "tagger", "--data", str(data / "train.txt"), "--out", str(run_dir),
                   "--overwrite",
                   "--epochs", str(args.epochs), "--schedule", "linear", "--threads", "1",
                   "--seed", str(args.seed), *CONFIGS[name]], out / f"{name}.train.log")
        wall = time.monotonic() - start
        run(["eval", "--checkpoint", str(run_dir / "best.pt"), "--data",
             str(data / "test.txt"), "--json"], out / f"{name}.test.json")
        test = json.loads((out / f"{name}.test.json").read_text())
        records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        output, chars = name.split("-")
        print(f"| {output} | {chars} | {max(r['val_f1'] for r in records):.2%} | "
              f"{test['f1']:.2%} | {cpu / args.epochs:.0f} | {wall:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
