"""Accuracy per kind of question of a QA checkpoint on one bAbI-format file.

A kind is the question's first two words ("where is", "how many", "is mary", ...),
with " (list)" added when the answer is a list; useful for generated stories,
which hold several kinds in one file.

    python bench/qa_kinds.py --checkpoint runs/chatbot/best.pt \
        --data data/generated/generated_qa_test.txt
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from textrnn import checkpoint
from textrnn.data.babi import read_babi
from textrnn.device import eval_mode
from textrnn.pipelines import qa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a qa checkpoint")
    parser.add_argument("--data", required=True, help="a bAbI-format file")
    args = parser.parse_args(argv)
    bundle = checkpoint.load(args.checkpoint, task="qa")
    examples = read_babi(args.data)
    right: list[bool] = []
    with eval_mode(bundle.model):
        for batch in qa.batches(bundle, examples, batch_size=256):
            logits, _ = bundle.model.scores(batch)
            right += (logits.argmax(-1) == batch["answer"]).tolist()
    kinds: dict[str, list[bool]] = defaultdict(list)
    for example, ok in zip(examples, right, strict=True):
        kind = " ".join(example.question[:2]) + (" (list)" if "," in example.answer else "")
        kinds[kind].append(ok)
    print(f"{'kind':<22} {'accuracy':>9} {'questions':>9}")
    for kind, oks in sorted(kinds.items()):
        print(f"{kind:<22} {sum(oks) / len(oks):>9.2%} {len(oks):>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
