"""ONNX export, per model: export time, file size, one request in PyTorch vs ONNX Runtime.

For each checkpoint: ``textrnn export`` in a fresh process (timed), the file's size,
then in this process, both runtimes at 1 thread, the median latency of one
single-example request through the user-facing call (``Answerer.answer``,
``classify``, ``tag``, ``sample``, ``translate``), and the ratio. With ``--quantize int8``
also the int8 file: its size, latency and accuracy change (qa: accuracy on ``--data``, the
generated test split by default; classifier, tagger and seq2seq: agreement of its labels,
or translations, with the float model's). A seq2seq export is a folder (encoder, decoder
step, sentencepiece models): its size is the folder's.

    python bench/export.py                         # trains a tiny chatbot and translator
    python bench/export.py --checkpoint runs/chatbot/best.pt --data data/generated \\
        --quantize int8
    python bench/export.py --checkpoint runs/reviews/best.pt runs/ner/best.pt

The numbers are of a shared machine's CPU; the ratio, measured in one process with the
same inputs, is what carries over.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STORY = ["Mary moved to the bathroom.", "John went to the hallway.", "Mary went to the garden."]
TEXT = "A slow start, but the acting is superb and the ending is moving."
PROMPT = "Shall I compare thee"
SENTENCE = "Vincent and Jules went to Paris with Acme Corp .".split()
DIGITS = "zero one two three four five six seven eight nine".split()
CHIFFRES = "zéro un deux trois quatre cinq six sept huit neuf".split()
SOURCES = ["three one four one five nine two six .", "two seven .", "eight"]


def tiny_checkpoint(root: Path) -> tuple[str, Path]:
    """Train a small 'where' chatbot (default arch) on generated stories; returns its
    best.pt and the data folder (with the test split)."""
    import torch

    from textrnn.cli import main
    from textrnn.data.babi_gen import write_generated

    torch.set_num_threads(1)
    write_generated(root / "data", 2000, 200, seed=0, kinds=(1,))
    main(["train", "qa", "--data", str(root / "data"), "--out", str(root / "run"),
          "--epochs", "2", "--threads", "1"])
    return str(root / "run" / "best.pt"), root / "data"


def tiny_translator(root: Path) -> str:
    """Train the default-sized seq2seq (GRU, general attention, E 128, H 256) for 2 epochs
    on 1,000 toy pairs (digit words -> French, reversed; ~10 s); returns its best.pt."""
    import random

    from textrnn.cli import main

    rng = random.Random(0)
    lines = []
    for _ in range(1000):
        digits = [rng.randrange(10) for _ in range(rng.randint(2, 9))]
        lines.append(" ".join(DIGITS[d] for d in digits) + " .\t"
                     + " ".join(CHIFFRES[d] for d in reversed(digits)) + " .\n")
    (root / "pairs.tsv").write_text("".join(lines), encoding="utf-8")
    main(["train", "seq2seq", "--data", str(root / "pairs.tsv"), "--out", str(root / "mt"),
          "--epochs", "2", "--threads", "1", "--vocab-size", "60", "--batch-size", "32"])
    return str(root / "mt" / "best.pt")


def size(path: Path) -> int:
    """Bytes of a file, or of the files of a folder (a seq2seq export)."""
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def export(checkpoint: str, out: Path, quantize: str | None) -> float:
    """``textrnn export`` in a fresh process; returns its wall time in seconds."""
    cmd = [sys.executable, "-m", "textrnn", "export", "--checkpoint", checkpoint,
           "--out", str(out)] + (["--quantize", quantize] if quantize else [])
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"export failed: {done.stderr.strip().splitlines()[-1]}")
    return time.perf_counter() - start


def median_ms(call, repeats: int) -> float:
    """Median wall time of ``call()`` in ms, after a few warm-up calls."""
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def request(task: str, model):
    """One single-example request through the call users make, as a thunk."""
    from textrnn import runtime

    if task == "qa":
        return lambda: model.answer(STORY, "Where is Mary?")
    if task == "classifier":
        return lambda: runtime.classify(model, [TEXT])
    if task == "tagger":
        return lambda: runtime.tag(model, [SENTENCE])
    if task == "lm":  # a prompt and 20 tokens, streamed: 21 graph runs
        from textrnn.pipelines import lm

        return lambda: list(lm.sample(model, PROMPT, max_tokens=20, seed=0))
    if task == "seq2seq":  # one sentence, beam 5 (translate's default)
        from textrnn.pipelines import seq2seq

        return lambda: seq2seq.translate(model, SOURCES[:1])
    raise SystemExit(f"no request defined for task {task!r}")


def predictions(task: str, model, data: Path | None) -> tuple[list, list | None]:
    """The model's predictions on an evaluation set, and the gold labels if known."""
    from textrnn import runtime

    if task == "qa":
        from textrnn.data.babi import read_babi, task_files

        examples = [ex for path in task_files(data, None, "test").values()
                    for ex in read_babi(path)]
        items = [([" ".join(s) for s in ex.story], " ".join(ex.question)) for ex in examples]
        answers = [a.answer for i in range(0, len(items), 32)
                   for a in model.answer_batch(items[i: i + 32])]
        return answers, [ex.answer for ex in examples]
    if task == "classifier":
        texts = [TEXT, "Dull and far too long.", "I laughed, I cried.", "Not good.",
                 "A masterpiece of boredom."] * 4
        return [label for label, _ in runtime.classify(model, texts)], None
    if task == "lm":  # greedy continuations
        from textrnn.pipelines import lm

        return ["".join(lm.sample(model, PROMPT[:n], max_tokens=40, temperature=0))
                for n in range(1, len(PROMPT) + 1)], None
    if task == "seq2seq":  # greedy translations
        return [t.text for t in runtime.translate(model, SOURCES * 4, beam_size=1)], None
    sentences = [SENTENCE, "Mia went to Rome .".split(), "Butch and Mia met .".split()] * 4
    return runtime.tag(model, sentences), None


def agreement(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / max(len(a), 1)


def bench(checkpoint: str, data: Path | None, quantize: str | None, repeats: int,
          folder: Path) -> None:
    import torch

    import textrnn
    from textrnn import runtime

    torch.set_num_threads(1)
    out = folder / (Path(checkpoint).parent.name + ".onnx")  # a folder, for seq2seq
    seconds = export(checkpoint, out, None)
    torch_model, onnx_model = textrnn.load(checkpoint), runtime.load(out, threads=1)
    task = torch_model.bundle.task if hasattr(torch_model, "bundle") else torch_model.task
    torch_ms = median_ms(request(task, torch_model), repeats)
    onnx_ms = median_ms(request(task, onnx_model), repeats)
    print(f"{checkpoint} ({task}): export {seconds:.1f} s, {size(out) / 1e6:.2f} MB; "
          f"one request: torch {torch_ms:.2f} ms, onnxruntime {onnx_ms:.2f} ms "
          f"({torch_ms / onnx_ms:.2f}x)")
    if not quantize:
        return
    q_out = folder / (out.stem + f".{quantize}.onnx")
    q_seconds = export(checkpoint, q_out, quantize)
    q_model = runtime.load(q_out, threads=1)
    q_ms = median_ms(request(task, q_model), repeats)
    ref, gold = predictions(task, onnx_model, data)
    got, _ = predictions(task, q_model, data)
    if gold is not None:
        change = f"accuracy {agreement(ref, gold):.2%} -> {agreement(got, gold):.2%}"
    else:
        change = f"agrees with float on {agreement(got, ref):.2%} of predictions"
    print(f"  {quantize}: export {q_seconds:.1f} s, {size(q_out) / 1e6:.2f} MB, "
          f"one request {q_ms:.2f} ms ({torch_ms / q_ms:.2f}x torch); {change} "
          f"({len(ref)} examples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs="*", default=[],
                        help="checkpoints (default: train a tiny chatbot and translator)")
    parser.add_argument("--data", type=Path, default=None,
                        help="qa: the bAbI folder whose test split measures int8 accuracy")
    parser.add_argument("--quantize", choices=["int8"], default=None)
    parser.add_argument("--repeats", type=int, default=200, help="timed requests per runtime")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints, data = args.checkpoint, args.data
        if not checkpoints:
            checkpoint, generated = tiny_checkpoint(Path(tmp))
            checkpoints, data = [checkpoint, tiny_translator(Path(tmp))], data or generated
        for checkpoint in checkpoints:
            bench(checkpoint, data, args.quantize, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
