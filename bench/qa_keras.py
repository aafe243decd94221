"""Time to 98.6% test accuracy on bAbI QA1-10k: the Keras "memory network" example vs textrnn.

The Keras bAbI memory-network example reports 98.6% on QA1-10k (after about
120 epochs). This script rebuilds that model from its published architecture,
written here from the description (no code taken from the example)::

    story (B, Ls) ── Embedding(V, 64), Dropout(0.3) ── m (B, Ls, 64)
    question (B, Lq) ── Embedding(V, 64), Dropout(0.3) ── u (B, Lq, 64)
    match = softmax(m · uᵀ)                                 (B, Ls, Lq)
    story ── Embedding(V, Lq), Dropout(0.3) ── c            (B, Ls, Lq)
    response = permute(match + c)                           (B, Lq, Ls)
    answer = softmax(Dense(V)(Dropout(0.3)(LSTM(32)([response ; u]))))
    RMSprop, categorical cross-entropy, batch 32

and trains it epoch by epoch on the QA1-10k training file, scoring the test
file after each epoch, until test accuracy reaches the target or the time
limit runs out. Then it trains textrnn's default MemN2N (``textrnn train qa``,
one epoch per call with ``--resume``, which continues exactly) under the same
rule. Both run in this process on ``--threads`` torch threads; the times
include the per-epoch test evaluations.

Differences from the example, on purpose: stories and questions are parsed
by :func:`textrnn.data.babi.read_babi`, then each sentence gets its "." back and
each question its "?" (the example keeps them as words, and they mark the
sentence ends in the flat story); the vocabulary comes from the training file only.

Keras 3 runs on the torch backend; keep it out of the project's environment::

    python -m venv --system-site-packages /tmp/kerasenv   # then make torch and textrnn
    /tmp/kerasenv/bin/pip install keras                   # importable there (a .pth file)
    KERAS_BACKEND=torch /tmp/kerasenv/bin/python bench/qa_keras.py \\
        --data .../tasks_1-20_v1-2/en-10k --time-limit 900

Without Keras the Keras half is skipped with a note and textrnn's is still run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from textrnn.cli import main as textrnn
from textrnn.data.babi import read_babi
from textrnn.vocab import Vocab

TARGET = 0.986  # the Keras example's reported QA1-10k test accuracy


def qa1_files(data: str) -> tuple[Path, Path]:
    """The QA1 train and test files under a bAbI folder (en-10k, or tasks_1-20_v1-2)."""
    root = Path(data)
    if (root / "en-10k").is_dir():
        root = root / "en-10k"
    train = sorted(root.glob("qa1_*_train.txt"))
    test = sorted(root.glob("qa1_*_test.txt"))
    if not train or not test:
        sys.exit(f"no qa1 train/test files under {root}")
    return train[0], test[0]


def keras_arrays(train_path: Path, test_path: Path):
    """Flat, pre-padded word ids: ``(x, q, y)`` for train and test, and sizes.

    The story is every sentence before the question, flattened into one word
    sequence; both stories and questions are padded (and cut) at the front, so
    the last word is always in the last column, as Keras' ``pad_sequences`` does.
    """
    train, test = read_babi(train_path), read_babi(test_path)

    def flat(example) -> list[str]:
        return [w for sentence in example.story for w in [*sentence, "."]]

    def question(example) -> list[str]:
        return [*example.question, "?"]

    vocab = Vocab.from_tokens([*(flat(e) for e in train), *(question(e) for e in train),
                               *([e.answer] for e in train)])

    story_len = max(len(flat(e)) for e in train)
    question_len = max(len(question(e)) for e in train)

    def encode(examples):
        x = np.zeros((len(examples), story_len), dtype="int64")  # (N, Ls)
        q = np.zeros((len(examples), question_len), dtype="int64")  # (N, Lq)
        y = np.zeros(len(examples), dtype="int64")  # (N,)
        for n, e in enumerate(examples):
            ids = vocab.encode(flat(e))[-story_len:]
            x[n, story_len - len(ids):] = ids
            ids = vocab.encode(question(e))[-question_len:]
            q[n, question_len - len(ids):] = ids
            y[n] = vocab.encode([e.answer])[0]
        return x, q, y

    return encode(train), encode(test), len(vocab), story_len, question_len


def keras_model(keras, vocab_size: int, story_len: int, question_len: int):
    """The example's memory network + LSTM(32), compiled with RMSprop."""
    layers = keras.layers
    story = keras.Input((story_len,), dtype="int64")
    question = keras.Input((question_len,), dtype="int64")
    m = layers.Dropout(0.3)(layers.Embedding(vocab_size, 64)(story))  # (B, Ls, 64)
    c = layers.Dropout(0.3)(layers.Embedding(vocab_size, question_len)(story))  # (B, Ls, Lq)
    u = layers.Dropout(0.3)(layers.Embedding(vocab_size, 64)(question))  # (B, Lq, 64)
    match = layers.Activation("softmax")(layers.Dot(axes=(2, 2))([m, u]))  # (B, Ls, Lq)
    response = layers.Permute((2, 1))(layers.Add()([match, c]))  # (B, Lq, Ls)
    h = layers.LSTM(32)(layers.Concatenate()([response, u]))  # (B, 32)
    answer = layers.Dense(vocab_size, activation="softmax")(layers.Dropout(0.3)(h))  # (B, V)
    model = keras.Model([story, question], answer)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def time_keras(train_path: Path, test_path: Path, target: float, limit: float,
               max_epochs: int, seed: int) -> dict | None:
    """Train the Keras example to ``target`` test accuracy; None when Keras is missing."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        print("keras is not importable here: skipping the Keras half "
              "(see the module docstring for a separate environment)")
        return None
    keras.utils.set_random_seed(seed)
    (x, q, y), (tx, tq, ty), vocab_size, story_len, question_len = keras_arrays(
        train_path, test_path)
    model = keras_model(keras, vocab_size, story_len, question_len)
    print(f"keras {keras.__version__} ({keras.backend.backend()} backend): "
          f"{len(y)} train / {len(ty)} test questions, story {story_len} words")
    started, accuracy, epoch = time.perf_counter(), 0.0, 0
    while accuracy < target and epoch < max_epochs and time.perf_counter() - started < limit:
        model.fit([x, q], y, batch_size=32, epochs=1, verbose=0)
        epoch += 1
        accuracy = float(model.evaluate([tx, tq], ty, batch_size=256, verbose=0)[1])
        elapsed = time.perf_counter() - started
        print(f"  keras epoch {epoch}: test {accuracy:.2%} at {elapsed:.0f} s", flush=True)
    return {"epochs": epoch, "accuracy": accuracy, "seconds": time.perf_counter() - started,
            "reached": accuracy >= target}


def time_textrnn(data: str, target: float, limit: float, max_epochs: int, seed: int,
                 threads: int) -> dict:
    """Train textrnn's default QA model one epoch at a time until test accuracy >= target."""
    with tempfile.TemporaryDirectory(prefix="bench-qa-keras-") as out:
        started, accuracy, epoch = time.perf_counter(), 0.0, 0
        while accuracy < target and epoch < max_epochs and time.perf_counter() - started < limit:
            epoch += 1
            argv = ["train", "qa", "--data", data, "--tasks", "1", "--out", out,
                    "--epochs", str(epoch), "--threads", str(threads), "--seed", str(seed)]
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):  # the progress bar
                status = textrnn(argv + (["--resume"] if epoch > 1 else ["--overwrite"]))
            if status:
                sys.exit(f"textrnn {' '.join(argv)} failed")
            # last.pt: the model as it is now (best.pt is chosen on validation, not test).
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                textrnn(["eval", "--checkpoint", str(Path(out) / "last.pt"), "--data", data,
                         "--tasks", "1", "--json"])
            accuracy = json.loads(stdout.getvalue())["mean_accuracy"]
            print(f"  textrnn epoch {epoch}: test {accuracy:.2%} at "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
    return {"epochs": epoch, "accuracy": accuracy, "seconds": time.perf_counter() - started,
            "reached": accuracy >= target}


def main(argv: list[str] | None = None) -> int:
    """Time both models and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="bAbI en-10k folder (or tasks_1-20_v1-2)")
    parser.add_argument("--target", type=float, default=TARGET,
                        help="test accuracy to reach (default: %(default)s)")
    parser.add_argument("--time-limit", type=float, default=900.0,
                        help="seconds per model before giving up (default: %(default)s)")
    parser.add_argument("--max-epochs", type=int, default=200,
                        help="epochs per model before giving up (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1234, help="seed (default: %(default)s)")
    parser.add_argument("--skip-keras", action="store_true", help="time textrnn only")
    parser.add_argument("--skip-textrnn", action="store_true", help="time Keras only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_path, test_path = qa1_files(args.data)

    results = {}
    if not args.skip_textrnn:
        results["textrnn MemN2N"] = time_textrnn(args.data, args.target, args.time_limit,
                                                 args.max_epochs, args.seed, args.threads)
    if not args.skip_keras:
        keras_result = time_keras(train_path, test_path, args.target, args.time_limit,
                                  args.max_epochs, args.seed)
        if keras_result is not None:
            results["keras example"] = keras_result
    print(f"time to {args.target:.1%} test accuracy on QA1-10k, {args.threads} thread(s):")
    for name, r in results.items():
        verdict = "reached" if r["reached"] else "NOT reached"
        print(f"  {name:<15} {verdict} in {r['seconds']:.0f} s, {r['epochs']} epochs "
              f"(test {r['accuracy']:.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
