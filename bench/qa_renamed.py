"""Accuracy on names, places and things never seen, measured on VALIDATION data.

The held-out 10% of each training file (the split ``textrnn train qa`` validates on),
as it is and renamed (``textrnn.data.babi_rename.rename_examples``), for each
checkpoint given: what the entity-slot settings were chosen on, so that the
renamed *test* (``textrnn data renamed``) stays untouched until the end.

    python bench/qa_renamed.py --data $D --tasks 1,6 runs/a/best.pt runs/b/best.pt
"""

from __future__ import annotations

import argparse

from textrnn import checkpoint
from textrnn.data.babi import parse_tasks, read_babi, task_files
from textrnn.data.babi_rename import rename_examples
from textrnn.data.split import holdout
from textrnn.pipelines import qa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a bAbI folder, e.g. .../en-10k")
    parser.add_argument("--tasks", default="1,6", help="tasks, e.g. 1,6 or all")
    parser.add_argument("checkpoints", nargs="+", help="qa checkpoints to compare")
    args = parser.parse_args(argv)
    splits = {}
    for task, path in task_files(args.data, parse_tasks(args.tasks), "train").items():
        train, valid = holdout(read_babi(path), path)
        taken = {w for ex in train + valid for s in [*ex.story, ex.question] for w in s}
        splits[task] = {"valid": valid, "renamed": rename_examples(valid, train, taken)}
    print(f"{'checkpoint':<40} {'task':>4} {'valid':>8} {'renamed':>8}")
    for path in args.checkpoints:
        bundle = checkpoint.load(path, task="qa")
        for task, split in splits.items():
            acc = {name: bundle.evaluate(qa.batches(bundle, examples, 256))["val_acc"]
                   for name, examples in split.items()}
            print(f"{path:<40} {task:>4} {acc['valid']:>8.2%} {acc['renamed']:>8.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
