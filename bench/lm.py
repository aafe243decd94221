"""Word-level language modelling, side by side: textrnn's ``lm`` task against the recipe of
PyTorch's ``word_language_model`` example, on the same split, tokens and wall-clock budget.

The data are Shakespeare's plays as ``textrnn data shakespeare`` writes them (split
by play: the test plays, The Tempest and Julius Caesar, are never seen in training),
tokenised by textrnn at word level (case kept, punctuation split off, ``<eos>`` at
every line end), with one vocabulary from the training plays only: the
``--max-vocab`` most frequent words, the rest ``<unk>`` (10,000 words leave 5.5% of
the test tokens as ``<unk>``). Both models read exactly the same id streams, and both
are scored on the test plays the same way: 10 parallel streams, windows of 35 tokens,
the hidden state carried across windows.

(a) **textrnn**: ``textrnn train lm --level word`` with the flags in
:data:`TEXTRNN_FLAGS` (add more after ``--``), built by :func:`textrnn.pipelines.lm.build`,
trained by :func:`textrnn.train.fit` and scored by :func:`textrnn.pipelines.lm.evaluate`
(what ``textrnn eval`` prints).

(b) **the reference**, :class:`ReferenceLSTM` and :func:`train_reference`, written
here from the example's recipe and default flags (not its code): embedding (200) →
dropout → ``torch.nn.LSTM`` (200 units, 2 layers, dropout 0.2 between them) →
dropout → linear decoder, optionally tied to the embedding; sequence-first
batches of 20 streams, windows of 35 tokens, the hidden state detached between
windows; embedding and decoder weights uniform in ±0.1, decoder bias 0; plain SGD
at learning rate 20 with the gradient norm clipped to 0.25; after each epoch the
model is validated and, when validation does not improve, the rate is divided by 4.

The budget is the wall-clock time of training (validations inside it included);
when it runs out, training stops at the next step boundary. Each side then keeps its
best model by validation (the last model is validated too) and is tested. Printed:
test perplexity, training tokens/s, and the ratios (textrnn / reference). Then both
trained models take ``--speed-steps`` more training steps in turn, step by step on the
same batches, and each side's tokens/s is printed from its own steps' time: the budget
runs go one after the other, and a shared machine's speed drifts between them.

Usage::

    textrnn data shakespeare --out data/shakespeare
    python bench/lm.py --data data/shakespeare --budget 300 --threads 1
    python bench/lm.py --budget 60 -- --hidden-size 256    # extra flags for textrnn
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textrnn import checkpoint
from textrnn.cli import build_parser, flags
from textrnn.data.shakespeare import prepare_shakespeare
from textrnn.data.text import StreamBatches, read_text, tokenize_lines
from textrnn.models.lm import LMConfig
from textrnn.pipelines import lm
from textrnn.train import fit
from textrnn.vocab import Vocab

# textrnn's side: a word LSTM of the reference's size and batch, Adam, the learning rate
# decayed linearly to 0 over the time budget, and the adaptive softmax: the 10,000-way
# output layer is two thirds of a full-softmax step on a CPU, and the adaptive one
# makes the step 2.4-2.8x cheaper (run 7 in the README; with tied weights and a full
# softmax textrnn only matched the reference, runs 3-6). A larger batch is not faster
# per token on a CPU. No dropout: a budget of minutes is about one pass over the
# training plays, where dropout only slows learning (run 4 vs 5); add
# `-- --dropout 0.2` for budgets of several epochs.
TEXTRNN_FLAGS = (
    "--level word --cell lstm --embedding-size 200 --hidden-size 200 --num-layers 2 "
    "--dropout 0 --softmax adaptive --bptt 35 --batch-size 20 --optimizer adam --lr 3e-3 "
    "--grad-clip 0.25 --schedule linear"
).split()
EVAL_BATCH_SIZE, EVAL_BPTT = 10, 35  # how both sides are validated and tested


class Budget:
    """Re-iterable training batches that end the run when the wall-clock budget is spent.

    Raising :class:`KeyboardInterrupt` is how a user stops :func:`textrnn.train.fit`
    (it saves ``last.pt`` at the step boundary and re-raises), so textrnn is stopped
    exactly as a person pressing Ctrl-C would stop it.
    """

    def __init__(self, batches: StreamBatches, seconds: float) -> None:
        self.batches, self.seconds = batches, seconds
        self.start: float | None = None
        self.tokens = 0  # training tokens handed out

    def __len__(self) -> int:
        return len(self.batches)

    def elapsed(self) -> float:
        return 0.0 if self.start is None else time.monotonic() - self.start

    def __iter__(self) -> Iterator[dict]:
        if self.start is None:
            self.start = time.monotonic()
        for batch in self.batches:
            if self.elapsed() >= self.seconds:
                raise KeyboardInterrupt
            self.tokens += batch["y"].numel()
            yield batch


class ReferenceLSTM(nn.Module):
    """The example's model: embedding → dropout → nn.LSTM → dropout → linear decoder.

    Sequence-first, as in the example (``torch.nn.LSTM``'s default layout).

    Args:
        vocab_size: V.
        embedding_size, hidden_size, num_layers, dropout: the example's defaults.
        tie_weights: share the embedding and decoder matrices (needs equal sizes).
    """

    def __init__(self, vocab_size: int, embedding_size: int = 200, hidden_size: int = 200,
                 num_layers: int = 2, dropout: float = 0.2, tie_weights: bool = False) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.rnn = nn.LSTM(embedding_size, hidden_size, num_layers, dropout=dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if not tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, x: Tensor, state) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x: (T, B) ids; state: (h, c), each (L, B, H), or None. Returns logits (T, B, V)."""
        emb = self.drop(self.embedding(x))  # (T, B, E)
        out, state = self.rnn(emb, state)  # (T, B, H)
        return self.decoder(self.drop(out)), state  # (T, B, V)


@torch.no_grad()
def reference_loss(model: ReferenceLSTM, batches: StreamBatches) -> float:
    """Mean next-token loss (nats) over consecutive windows, the state carried across them."""
    model.eval()
    total, count, state = 0.0, 0, None
    for batch in batches:
        x, y = batch["x"].t(), batch["y"].t()  # (T, B): the example's sequence-first layout
        logits, state = model(x, state)  # (T, B, V)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count


def reference_step(model: ReferenceLSTM, batch: dict, state, lr: float, clip: float):
    """One training step of the example's loop; returns the state to carry on."""
    x, y = batch["x"].t(), batch["y"].t()  # (T, B)
    if state is not None:
        state = tuple(s.detach() for s in state)  # truncated BPTT
    logits, state = model(x, state)  # (T, B, V)
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    model.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(p.grad, alpha=-lr)  # plain SGD, as in the example
    return state


def interleaved_speed(ours: nn.Module, ref: ReferenceLSTM, batches: list[dict],
                      lr: float, clip: float, warmup: int = 3) -> tuple[float, float]:
    """Training tokens/s of each side, timed step by step in turn on the same batches.

    The budget runs above go one after the other, so a shared machine that slows
    down during one of them tilts their tokens/s; here both sides see the same
    machine, step for step. textrnn's step is :func:`textrnn.train.fit`'s (loss,
    backward, clip, optimizer step; Adam at the budget run's lr), the reference's is
    :func:`reference_step` (plain SGD). The first ``warmup`` steps are not timed.

    Returns:
        (textrnn tokens/s, reference tokens/s).
    """
    ours.train()
    ref.train()
    optimizer = torch.optim.Adam(ours.parameters(), lr=lr, fused=True)  # as fit makes it
    seconds, tokens, state = [0.0, 0.0], 0, None
    for i, batch in enumerate(batches):
        started = time.perf_counter()
        loss = ours.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(ours.parameters(), clip)
        optimizer.step()
        middle = time.perf_counter()
        state = reference_step(ref, batch, state, 20.0, clip)
        if i >= warmup:
            seconds[0] += middle - started
            seconds[1] += time.perf_counter() - middle
            tokens += batch["y"].numel()
    return tokens / seconds[0], tokens / seconds[1]


def train_reference(model: ReferenceLSTM, train: Budget, valid: StreamBatches,
                    lr: float = 20.0, clip: float = 0.25) -> dict:
    """Train with the example's loop until the budget is spent; keep the best model by validation.

    Returns:
        ``{"steps", "tokens", "seconds", "val_loss", "epochs"}``; ``model`` holds the best weights.
    """
    best_loss, best_state, steps, epochs = math.inf, None, 0, 0
    model.train()
    try:
        while True:
            state = None
            for batch in train:
                state = reference_step(model, batch, state, lr, clip)
                steps += 1
            epochs += 1
            val_loss = reference_loss(model, valid)
            if val_loss < best_loss:
                best_loss, best_state = val_loss, {k: v.clone() for k, v in
                                                   model.state_dict().items()}
            else:
                lr /= 4.0  # anneal when validation stops improving
    except KeyboardInterrupt:  # the budget is spent
        seconds = train.elapsed()
    val_loss = reference_loss(model, valid)
    if val_loss > best_loss:
        model.load_state_dict(best_state)
    return {"steps": steps, "tokens": train.tokens, "seconds": seconds, "epochs": epochs,
            "val_loss": min(val_loss, best_loss)}


def run_textrnn(data: Path, out: Path, args: argparse.Namespace) -> dict:
    """Train textrnn's lm task for the budget and test it as ``textrnn eval`` does."""
    argv = ["train", "lm", "--data", str(data / "train.txt"), "--valid", str(data / "valid.txt"),
            "--out", str(out), "--max-vocab", str(args.max_vocab), "--threads",
            str(args.threads), "--seed", str(args.seed), *TEXTRNN_FLAGS, *args.textrnn_args]
    targs = build_parser().parse_args(argv)  # `textrnn train lm`'s flags, parsed as it does
    # fit stops itself at the budget, so --schedule linear ends at 0
    cfg = replace(flags.train_config(targs), max_minutes=args.budget / 60)
    run = lm.build(targs.data, valid=targs.valid, bptt=targs.bptt, min_count=targs.min_count,
                   max_vocab=targs.max_vocab, batch_size=targs.batch_size, seed=targs.seed,
                   **flags.config_kwargs(LMConfig, targs))
    model, train_data = run.model, run.train_data
    budget = Budget(train_data, args.budget)
    try:
        fit(model, budget, run.val_data, cfg, out)
    except KeyboardInterrupt:  # the budget is spent; fit saved last.pt
        pass
    # fit stopped at the budget on its own clock, which starts before Budget's, and then
    # validated once more: that last validation is not training time.
    seconds = min(budget.elapsed(), args.budget)
    candidates = [out / "last.pt"] + ([out / "best.pt"] if (out / "best.pt").exists() else [])
    scored = []
    for path in candidates:
        bundle = checkpoint.load(path, task="lm")
        val = lm.evaluate(bundle, data / "valid.txt", bptt=EVAL_BPTT, batch_size=EVAL_BATCH_SIZE)
        scored.append((val["loss"], path, bundle))
    val_loss, path, bundle = min(scored, key=lambda item: item[0])
    test = lm.evaluate(bundle, data / "test.txt", bptt=EVAL_BPTT, batch_size=EVAL_BATCH_SIZE)
    return {"steps": bundle.step, "tokens": budget.tokens, "seconds": seconds,
            "model": bundle.model, "batches": train_data, "lr": cfg.lr,
            "val_loss": val_loss, "test_loss": test["loss"], "vocab": model.vocabs["tokens"],
            "params": sum(p.numel() for p in model.parameters())}


def run_reference(data: Path, vocab: Vocab, args: argparse.Namespace) -> dict:
    """Train and test the reference on the ids of textrnn's vocabulary."""
    def ids(split: str) -> Tensor:
        return torch.tensor(vocab.encode(tokenize_lines(read_text(data / f"{split}.txt"), "word")))

    torch.manual_seed(args.seed)
    model = ReferenceLSTM(len(vocab), tie_weights=args.reference_tied)
    train = Budget(StreamBatches(ids("train"), 20, 35), args.budget)
    valid = StreamBatches(ids("valid"), EVAL_BATCH_SIZE, EVAL_BPTT)
    result = train_reference(model, train, valid)
    test = reference_loss(model, StreamBatches(ids("test"), EVAL_BATCH_SIZE, EVAL_BPTT))
    return {**result, "test_loss": test, "params": sum(p.numel() for p in model.parameters()),
            "model": model}


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run both sides, print the comparison; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/shakespeare",
                        help="folder with train/valid/test.txt; written by `textrnn data "
                        "shakespeare` if missing (default: %(default)s)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="training seconds for each side (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--max-vocab", type=int, default=10000,
                        help="vocabulary size, from the training plays (default: %(default)s)")
    parser.add_argument("--reference-tied", action="store_true",
                        help="tie the reference's embedding and decoder (the example's --tied)")
    parser.add_argument("--speed-steps", type=int, default=30,
                        help="steps of each side timed in turn after the budget runs "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1234, help="seed (default: %(default)s)")
    parser.add_argument("--out", default=None,
                        help="textrnn's run directory (default: a temporary one)")
    parser.add_argument("textrnn_args", nargs="*", help="after --: extra `textrnn train lm` flags")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not all((data / f"{s}.txt").is_file() for s in ("train", "valid", "test")):
        prepare_shakespeare(data)
    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        ours = run_textrnn(data, Path(args.out or tmp), args)
    ref = run_reference(data, ours["vocab"], args)
    print(f"word level, Shakespeare split by play; vocabulary {len(ours['vocab'])} "
          f"(training plays); budget {args.budget:.0f} s each; threads {args.threads}; "
          f"torch {torch.__version__}")
    print(f"{'':10} {'test ppl':>9} {'valid ppl':>9} {'tokens/s':>9} {'steps':>6} "
          f"{'tokens':>9} {'params':>10}")
    for name, r in (("textrnn", ours), ("reference", ref)):
        print(f"{name:10} {math.exp(r['test_loss']):9.1f} {math.exp(r['val_loss']):9.1f} "
              f"{r['tokens'] / r['seconds']:9.0f} {r['steps']:6d} {r['tokens']:9d} "
              f"{r['params']:10,d}")
    ppl_ratio = math.exp(ours["test_loss"] - ref["test_loss"])
    speed_ratio = (ours["tokens"] / ours["seconds"]) / (ref["tokens"] / ref["seconds"])
    print(f"textrnn / reference: test perplexity {ppl_ratio:.3f}x (target < 1), "
          f"tokens/s {speed_ratio:.2f}x (target >= 1)")
    batches = list(itertools.islice(iter(ours["batches"]), args.speed_steps + 3))
    ours_tps, ref_tps = interleaved_speed(ours["model"], ref["model"], batches, ours["lr"], 0.25)
    print(f"timed in turn, {args.speed_steps} steps each on the same batches: textrnn "
          f"{ours_tps:.0f} tokens/s, reference {ref_tps:.0f} tokens/s, "
          f"{ours_tps / ref_tps:.2f}x (target >= 1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
