"""What several commands share: running a training, loading a checkpoint for a command,
reading texts from the arguments or standard input."""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from pathlib import Path

from textrnn.cli import flags
from textrnn.errors import TextrnnError

if typing.TYPE_CHECKING:  # the modules that need torch are imported where they are used
    from textrnn.checkpoint import Bundle
    from textrnn.pipelines import Run

log = logging.getLogger(__name__)


def train(args: argparse.Namespace, run: Run) -> int:
    """Fit ``run`` with the training flags of ``args`` and say where the best model went.

    Under ``torchrun`` every process runs this; ``--batch-size`` is each one's, and a
    worker group that ``torchrun --max-restarts`` started again resumes from ``last.pt``.
    """
    from textrnn import distributed
    from textrnn.train import fit

    cfg = flags.train_config(args)
    out = Path(args.out)
    world, main = distributed.world_size(), distributed.is_main()
    # The restarted group runs the same command line: without this, it would refuse the
    # run folder (or, with --overwrite, start the run again from step 0).
    resume = args.resume or (distributed.restarted() and (out / "last.pt").is_file())
    if world > 1 and main:
        log.info("%d processes x --batch-size %d = a global batch of %d", world,
                 args.batch_size, world * args.batch_size)
    held = [name for name in ("best.pt", "last.pt", "metrics.jsonl") if (out / name).exists()]
    if held and not (resume or args.overwrite):
        raise TextrnnError(f"{out} already holds a run ({', '.join(held)}): continue it with "
                           "--resume, or replace it with --overwrite")
    try:
        result = fit(run.model, run.train_data, run.val_data, cfg, args.out, resume=resume)
    except KeyboardInterrupt:
        raise TextrnnError(
            f"interrupted; progress saved in {Path(args.out) / 'last.pt'} (continue with --resume)"
        ) from None
    if not main:
        return 0
    print(f"step {result['step']}: best {result['best_metric']} {result['best_value']:.4f} "
          f"-> {Path(args.out) / 'best.pt'}")
    return 0


def load(args: argparse.Namespace, task: str | None = None) -> Bundle:
    """``args.checkpoint`` on ``args.device`` (with ``args.threads`` if set), refusing a
    checkpoint of another task than ``task``."""
    import torch

    from textrnn import checkpoint
    from textrnn.device import resolve_device

    if getattr(args, "threads", 0) > 0:
        torch.set_num_threads(args.threads)
    return checkpoint.load(args.checkpoint, map_location=resolve_device(args.device), task=task)


def texts_or_stdin(texts: list[str], what: str) -> list[str]:
    """The texts given on the command line, else the non-blank lines of standard input."""
    if texts and texts != ["-"]:
        return texts
    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not lines:
        raise TextrnnError(f"nothing to {what}: give some text or pipe lines in")
    return lines
