"""``textrnn train qa``, the QA group of ``textrnn eval``, ``textrnn chat`` and ``textrnn serve``:
flags and printing over :mod:`textrnn.pipelines.qa` and :mod:`textrnn.chat`."""

from __future__ import annotations

import argparse
import socket
import sys

from textrnn.cli import common, flags
from textrnn.data.babi import GENERATED_TASK, parse_tasks
from textrnn.errors import TextrnnError

# The model and pipeline modules import torch: each function below imports what it uses,
# so that building the parser (textrnn --help) does not.

TASK = "qa"
HELP = "question answering on bAbI-format stories (the chatbot)"


def _tasks(text: str) -> list[int] | None:
    try:
        return parse_tasks(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The data and model flags of ``train qa``."""
    from textrnn.models.qa import ARCHS, QAConfig
    from textrnn.pipelines import qa

    parser.add_argument("--tasks", type=_tasks, default=None, metavar="LIST",
                        help="bAbI tasks to train jointly, e.g. 1,6 or all (default: all found "
                             "in --data)")
    parser.add_argument("--focus", type=float, default=qa.FOCUS, metavar="PHI",
                        help="share of each epoch after the first given to the tasks by their "
                             "validation error, so the kinds still wrong get more steps; 0 = "
                             f"every question once an epoch (default: {qa.FOCUS})")
    flags.add_config_flags(parser, QAConfig, skip=qa.DERIVED, choices={
        "arch": sorted(ARCHS), "hop_init": ("normal", "eye"), "weight_tying": ("adjacent",),
        "slot_reading": ("all", "unknown")})
    # Memory networks like a larger step than the trainer's default and no tight clip;
    # decaying it linearly to 0 settles the yes/no answers (QA6-10k: 95-97% with a
    # constant 0.01, 99.7% with 0.005 -> 0 and --answer-hidden 64). The answer layer
    # is on here, not in QAConfig, so checkpoints saved without it still load.
    # 30 epochs, not 20: with entity slots (half the training stories read some names as
    # @entK) the quick start's validation accuracy went 98.85% -> 99.65% (20 -> 30 epochs).
    # One thread: these models are tiny, and a second thread only waits (or, on a busy
    # machine, spins) at every step.
    parser.set_defaults(lr=0.005, schedule="linear", grad_clip=40.0, epochs=None,
                        batch_size=32, answer_hidden=64, threads=1,
                        entity_slots=qa.ENTITY_SLOTS, list_slots=qa.LONGEST,
                        slot_reading=qa.SLOT_READING, embedding_size=qa.WIDTH)
    width = next(a for a in parser._actions if a.dest == "embedding_size")
    width.help = ("word embedding width d (default: " + ", ".join(
        f"{w} for {arch}" for arch, w in qa.ARCH_WIDTH.items())
        + f", {QAConfig.embedding_size} for the others)")
    slots = next(a for a in parser._actions if a.dest == "entity_slots")
    slots.help = ("K: names, places and things read as @ent1..@entK; 0 = off (default: as "
                  f"many as the most one training story holds, at most {qa.MAX_SLOTS})")
    epochs = next(a for a in parser._actions if a.dest == "epochs")
    epochs.help = (f"passes over the training data (default: {qa.EPOCHS}, or as many as "
                   f"make {qa.MIN_STEPS} steps on a small training set)")


def train(args: argparse.Namespace) -> int:
    """``train qa``: build the data and model, fit, then validate best.pt as it answers."""
    from textrnn import distributed
    from textrnn.models.qa import QAConfig
    from textrnn.pipelines import qa

    run = qa.build(args.data, tasks=args.tasks, batch_size=args.batch_size, seed=args.seed,
                   focus=args.focus, **flags.config_kwargs(QAConfig, args, skip=qa.DERIVED))
    if args.epochs is None:
        args.epochs = qa.default_epochs(len(run.train_data))
    code = common.train(args, run)
    if distributed.is_main():
        settled = qa.settle(run, args.out)
        if settled is not None:
            print(f"best.pt validated as it answers ({run.val_data.slot_draws} numberings of "
                  f"the slots): val_acc {settled['val_acc']:.4f}, answer temperature "
                  f"{settled['val_temperature']:.2f}")
    return code


def add_eval_flags(group: argparse._ArgumentGroup) -> None:
    """``eval`` flags for QA checkpoints."""
    group.add_argument("--tasks", type=_tasks, default=None, metavar="LIST",
                       help="qa: tasks to test (default: those the model was trained on)")


def evaluate(bundle, args: argparse.Namespace) -> dict:
    """Per-task test accuracy (see :func:`textrnn.pipelines.qa.evaluate`)."""
    from textrnn.pipelines import qa

    return qa.evaluate(bundle, args.data, tasks=args.tasks, batch_size=args.batch_size)


def format_eval(results: dict) -> str:
    """A per-task table, then the mean error and the failed tasks (error > 5%)."""
    def name(task: str) -> str:
        return "gen" if task == str(GENERATED_TASK) else task

    lines = [f"{'task':>6} {'kind':<24} {'accuracy':>9} {'error':>7} {'questions':>9}"]
    for task, r in results["tasks"].items():
        mark = "  FAILED" if r["failed"] else ""
        lines.append(f"{name(task):>6} {r.get('kind', ''):<24} {r['accuracy']:>9.2%} "
                     f"{r['error']:>7.2%} {r['questions']:>9}{mark}")
    failed = ", ".join(map(name, results["failed"])) or "none"
    lines.append(f"mean error {results['mean_error']:.2%} over {len(results['tasks'])} "
                 f"task(s); failed (error > 5%): {failed}")
    lines.append(f"calibration: expected calibration error {results['ece']:.4f} "
                 "(10 bins of the answers' confidence)")
    return "\n".join(lines)


def _answerer(args: argparse.Namespace):
    if getattr(args, "runtime", "torch") == "onnx":  # a file from `textrnn export`
        from textrnn import runtime

        return runtime.load(args.checkpoint, task=TASK)
    from textrnn.chat import Answerer

    return Answerer(common.load(args, task=TASK))


def cmd_chat(args: argparse.Namespace) -> int:
    """``chat``: a terminal chat with a question-answering checkpoint."""
    from textrnn.chat import ChatSession
    from textrnn.cli.terminal import repl

    answerer = _answerer(args)
    info = answerer.info()
    acc = info["metrics"].get("val_acc")
    print(f"loaded {args.checkpoint}: {info['arch']} trained on task(s) "
          f"{', '.join(map(str, answerer.bundle.config.tasks)) or '?'}"
          + (f", validation accuracy {acc:.1%}" if acc is not None else ""), file=sys.stderr)
    return repl(ChatSession(answerer), history=args.history)


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: the chat page and JSON API for a QA checkpoint (FastAPI on uvicorn)."""
    try:
        from textrnn.serve import create_app, run_server  # the web stack is an optional extra
    except ImportError as err:
        raise TextrnnError(f"textrnn serve needs the web extra ({err.name} is missing): "
                           "pip install 'textrnn[serve]'") from None
    sessions = args.sessions or f"{args.checkpoint}.sessions.sqlite"
    with _listen(args.host, args.port) as sock:  # first, so a busy port fails fast
        app = create_app(_answerer(args), sessions=sessions, max_sessions=args.max_sessions,
                         session_ttl_s=args.session_ttl,
                         max_message_chars=args.max_message_chars)
        port = sock.getsockname()[1]  # the one the system chose for --port 0
        print(f"textrnn chat on http://{args.host}:{port}/  (API schema: /docs; "
              f"sessions in {sessions})", flush=True)
        run_server(app, sock=sock)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, handed to uvicorn; bound here so that a busy
    port is one line (``textrnn: error: ...``), said before the server claims to be up."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        # As uvicorn binds: a restarted server may take a port its old connections linger on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's backlog
    except OSError as err:
        sock.close()
        raise TextrnnError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def add_commands(commands) -> None:
    """``chat`` and ``serve``."""
    chat = commands.add_parser(
        "chat", help="chat with a question-answering model in the terminal",
        description="Tell the bot a story, one or more sentences per line; a line ending in '?' "
        "is answered with the model's confidence and the sentences it used. Commands: /story, "
        "/reset, /help, /quit; at a terminal, lines are edited and recalled with readline. Reads "
        "standard input, so it works with a pipe too.",
    )
    chat.add_argument("--checkpoint", required=True, metavar="FILE", help="a qa checkpoint")
    chat.add_argument("--history", metavar="FILE", default=None,
                      help="keep the lines typed at the terminal in FILE, to recall them "
                           "(up arrow, Ctrl-R) in later chats (default: this chat only)")
    flags.add_device_flags(chat)
    chat.set_defaults(func=cmd_chat)

    serve = commands.add_parser(
        "serve", help="serve the chatbot: a chat page at / and a JSON API under /api",
        description="Serve a QA checkpoint over HTTP: the chat page at /, the JSON API under "
        "/api (schema at /openapi.json, docs at /docs). Binds to loopback unless told otherwise.",
    )
    serve.add_argument("--checkpoint", required=True, metavar="FILE",
                       help="a qa checkpoint (with --runtime onnx, a file from textrnn export)")
    serve.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                       help="run the model in PyTorch, or in ONNX Runtime (default: %(default)s)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind; 0.0.0.0 exposes it to the network "
                            "(default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    flags.add_device_flags(serve)
    serve.add_argument("--max-sessions", type=int, default=1000,
                       help="live chat sessions; the least recently used is dropped beyond "
                            "this (default: %(default)s)")
    serve.add_argument("--session-ttl", type=float, default=1800.0, metavar="SECONDS",
                       help="an idle session expires after this (default: %(default)s)")
    serve.add_argument("--sessions", metavar="PATH",
                       help="SQLite file for the chat sessions, shared by a restarted server "
                            "and by every server process given it; :memory: keeps them in "
                            "this process only (default: the checkpoint's path + "
                            ".sessions.sqlite)")
    serve.add_argument("--max-message-chars", type=int, default=1000,
                       help="longest message accepted (default: %(default)s)")
    serve.set_defaults(func=cmd_serve)
