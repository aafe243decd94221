"""The checkpoint file: the only module that knows the on-disk format.

A checkpoint is one self-describing ``torch.save`` file holding plain data only
(dicts, lists, numbers, strings and tensors), so it loads with
``torch.load(..., weights_only=True)`` and never unpickles code::

    {
      "format": 1,                         # bumped when this layout changes
      "task": "lm",                        # key into textrnn.models.MODELS
      "model_config": {...},               # asdict(model.config)
      "vocabs": {"tokens": {...}},         # name -> Vocab.to_dict()
      "state_dict": {...},                 # model weights (+ any _extra_state)
      "optimizer": {...} | None,           # for resuming
      "scheduler": {...} | None,
      "step": 1200, "epoch": 3, "batch_in_epoch": 17,
      "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...],
              "python": [...], "numpy": [...]},
      "metrics": {"val_loss": 1.4, ...},   # of the evaluation saved with it
      "train_config": {...},               # asdict(TrainConfig)
      "extra": {...},                      # free-form, e.g. the best score so far
    }

The model is rebuilt through the registry, never unpickled:
``MODELS[task](MODELS[task].config_class(**model_config))`` then
``load_state_dict``. Vocabularies come back from the file, never from the data.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textrnn.device import eval_mode, model_device, to_device
from textrnn.errors import CheckpointError
from textrnn.models import MODELS, build
from textrnn.vocab import Vocab

FORMAT = 1
REQUIRED_KEYS = ("format", "task", "model_config", "vocabs", "state_dict")


@dataclass
class Bundle:
    """A loaded checkpoint: the rebuilt model (in eval mode) and what goes with it.

    Attributes:
        task: the task name, a key of ``MODELS``.
        model: the model with its weights loaded.
        vocabs: name -> :class:`~textrnn.vocab.Vocab`.
        config: the model's config dataclass.
        metrics: the metrics saved with the checkpoint.
        step: the optimizer steps taken when it was saved.
        raw: the whole validated dict (optimizer, RNG states, ...), for resuming.
    """

    task: str
    model: nn.Module
    vocabs: dict[str, Vocab]
    config: Any
    metrics: dict[str, float] = field(default_factory=dict)
    step: int = 0
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return model_device(self.model)

    def evaluate(self, batches: Iterable[dict]) -> dict[str, float]:
        """``model.evaluate`` over ``batches`` moved to the model's device, in eval mode."""
        with eval_mode(self.model):
            return self.model.evaluate(to_device(b, self.device) for b in batches)


def rng_state() -> dict:
    """Every random number generator's state, as plain data (for ``rng=`` in :func:`save`)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": _to_lists(random.getstate()),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where there is CUDA)."""
    # .cpu(): a checkpoint loaded with map_location="cuda" has these on the GPU too.
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_to_tuples(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, tuple) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def save(
    path: str | PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    step: int = 0,
    epoch: int = 0,
    batch_in_epoch: int = 0,
    rng: dict | None = None,
    metrics: dict[str, float] | None = None,
    train_config: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically: a temp file in the same directory, fsync, rename.

    A reader (or a crash) never sees a half-written file: ``path`` holds either
    the old checkpoint or the new one.

    Args:
        path: the file to write; its directory must exist.
        model: a registered model (:class:`textrnn.models.TaskModel`): its ``task``,
            ``config`` and ``vocabs`` (stored as plain dicts) go into the file.
        optimizer, scheduler: saved with ``state_dict()`` if given.
        step, epoch, batch_in_epoch: where training stands (``batch_in_epoch``
            batches of ``epoch`` are consumed).
        rng: generator states from :func:`rng_state`; taken now if None.
        metrics, train_config, extra: plain data stored as given.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "task": model.task,
        "model_config": asdict(model.config),
        "vocabs": {name: vocab.to_dict() for name, vocab in model.vocabs.items()},
        "state_dict": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "rng": rng_state() if rng is None else rng,
        "metrics": dict(metrics or {}),
        "train_config": dict(train_config or {}),
        "extra": dict(extra or {}),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temp file behind
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path: str | PathLike[str], map_location: Any = "cpu", task: str | None = None) -> dict:
    """Load and validate a checkpoint's dict without building the model (used to resume).

    Args:
        path: a file written by :func:`save`.
        map_location: where tensors go.
        task: if given, the task the file must be of (another task's file is refused).

    Raises:
        CheckpointError: ``"<path>: <reason>"`` if the file is missing, unreadable,
            truncated, not a textrnn checkpoint, of a newer format, an unknown task or
            not of ``task``.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        # torch's own messages run to several lines of internals; the cause stays chained.
        raise CheckpointError(
            f"{path}: cannot read checkpoint: the file is truncated, corrupt or not a torch file"
        ) from err
    if not isinstance(raw, dict) or "format" not in raw or "task" not in raw:
        raise CheckpointError(
            f"{path}: not a textrnn checkpoint (no 'format'/'task' keys; a bare state_dict?)"
        )
    if not isinstance(raw["format"], int) or raw["format"] > FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {raw['format']!r} is newer than this textrnn reads "
            f"({FORMAT}); upgrade textrnn"
        )
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
    if raw["task"] not in MODELS:
        raise CheckpointError(
            f"{path}: unknown task {raw['task']!r} (known: {', '.join(sorted(MODELS))})"
        )
    if task is not None and raw["task"] != task:
        raise CheckpointError(f"{path}: a {raw['task']!r} checkpoint, not a {task!r} one")
    return raw


def load(path: str | PathLike[str], map_location: Any = "cpu", task: str | None = None) -> Bundle:
    """Load a checkpoint and rebuild its model and vocabularies.

    Args:
        path: a file written by :func:`save`.
        map_location: where tensors go (``"cpu"``, ``"cuda"``, a ``torch.device``).
        task: if given, the task the file must be of: ``load(p, task="tagger")`` refuses
            a language model's checkpoint in one line.

    Returns:
        A :class:`Bundle` whose model is in eval mode, on ``map_location``.

    Raises:
        CheckpointError: with a one-line message naming ``path``.
    """
    raw = read(path, map_location, task=task)
    try:
        config = MODELS[raw["task"]].config_class(**raw["model_config"])
        vocabs = {name: Vocab.from_dict(d) for name, d in raw["vocabs"].items()}
        model = build(raw["task"], config, vocabs)
        model.load_state_dict(raw["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__  # one line
        raise CheckpointError(
            f"{path}: checkpoint does not match its {raw['task']!r} model: {reason}"
        ) from err
    model.to(map_location).eval()
    return Bundle(
        task=raw["task"],
        model=model,
        vocabs=vocabs,
        config=config,
        metrics=dict(raw.get("metrics") or {}),
        step=int(raw.get("step", 0)),
        raw=raw,
    )
