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

With ``TrainConfig.ema`` the ``state_dict`` is the moving average of the weights and
``extra["ema"]`` holds the trained ones (:mod:`textrnn.averaging`); readers need not know.

The model is rebuilt through the registry, never unpickled:
``MODELS[task](MODELS[task].config_class(**model_config))`` then
``load_state_dict``. Vocabularies come back from the file, never from the data.
"""

from __future__ import annotations

import pickle
import random
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textrnn import atomic
from textrnn.device import eval_mode, model_device, to_device
from textrnn.errors import CheckpointError, CheckpointWriteError
from textrnn.models import MODELS, build
from textrnn.subword import vocab_from_dict  # word or subword (sentencepiece) vocabularies
from textrnn.vocab import Vocab

FORMAT = 1
REQUIRED_KEYS = ("format", "task", "model_config", "vocabs", "state_dict")
# What resuming a training needs on top (every last.pt has them).
RESUME_KEYS = ("optimizer", "scheduler", "step", "epoch", "batch_in_epoch", "rng", "metrics",
               "extra")
# How save() names its temp file: ".last.pt.<random>.tmp" next to last.pt.
TEMP_GLOB = ".*.pt.*.tmp"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int in Python


def _is_dict(value: Any) -> bool:  # with str keys: config and metric names
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)


def _is_state_dict(value: Any) -> bool:  # tensors, but a module's _extra_state is any data
    return _is_dict(value) and all(
        isinstance(v, torch.Tensor) or k.endswith("_extra_state") for k, v in value.items()
    )


# Each header field: what it must be (said in the error) and the test of it. A field that is
# not in REQUIRED_KEYS may be absent.
HEADER = {
    "format": ("an int", _is_int),
    "task": ("a str", lambda v: isinstance(v, str)),
    "model_config": ("a dict of settings", _is_dict),
    "vocabs": ("a dict of vocabularies (dicts)",
               lambda v: _is_dict(v) and all(isinstance(d, dict) for d in v.values())),
    "state_dict": ("a dict of tensors", _is_state_dict),
    "optimizer": ("a dict or None", lambda v: v is None or _is_dict(v)),
    "scheduler": ("a dict or None", lambda v: v is None or _is_dict(v)),
    "step": ("an int >= 0", lambda v: _is_int(v) and v >= 0),
    "epoch": ("an int >= 0", lambda v: _is_int(v) and v >= 0),
    "batch_in_epoch": ("an int >= 0", lambda v: _is_int(v) and v >= 0),
    "rng": ("a dict of generator states", _is_dict),
    "metrics": ("a dict of numbers", lambda v: _is_dict(v) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in v.values())),
    "train_config": ("a dict of settings", _is_dict),
    "extra": ("a dict", _is_dict),
}


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

    Raises:
        CheckpointWriteError: (a CheckpointError and an OSError) in one line, when the
            file cannot be written (a full disk, a missing or read-only folder); the
            temp file is removed, and an older ``path`` is left as it was.
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
    try:
        atomic.write_file(path, lambda f: torch.save(payload, f))
    except OSError as err:  # a full disk or a read-only folder; ENOSPC from a write or fsync
        raise _write_error(path, err) from err
    return path


def update_metrics(path: str | PathLike[str], metrics: dict[str, float]) -> None:
    """Replace the metrics stored in the checkpoint ``path`` (atomically, as :func:`save`
    writes); its weights and training state stay as they were.

    Raises:
        CheckpointError: when ``path`` cannot be read (see :func:`read`) or written.
    """
    path = Path(path)
    raw = read(path)
    raw["metrics"] = dict(metrics)
    try:
        atomic.write_file(path, lambda f: torch.save(raw, f))
    except OSError as err:
        raise _write_error(path, err) from err


def _write_error(path: Path, err: OSError) -> CheckpointWriteError:
    """The one-line error for an OSError while :func:`save` wrote ``path``."""
    # Nothing is renamed over `path` until the new file is complete, so an old one is intact.
    kept = "the previous file is kept" if path.is_file() else "no checkpoint was written"
    return CheckpointWriteError(
        f"{path}: could not write the checkpoint: {err.strerror or err}; {kept}", err.errno
    )


def remove_temp_files(directory: str | PathLike[str]) -> list[Path]:
    """Delete the temp files that a :func:`save` killed mid-write left in ``directory``.

    Only safe while no other process saves there (``fit`` holds the run folder's lock).

    Returns:
        The files removed.
    """
    stale = sorted(Path(directory).glob(TEMP_GLOB))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _describe(value: Any) -> str:
    """``"a list ([1, 2])"``: a value's type and the start of its repr, for one error line."""
    shown = repr(value)
    return f"a {type(value).__name__} ({shown if len(shown) <= 60 else shown[:57] + '...'})"


def check_header(path: Path, raw: Any, *, resume: bool = False) -> None:
    """Refuse, in one line, a loaded dict that is not a checkpoint this textrnn can use.

    Every field of :data:`HEADER` present is checked for its type, so no command later
    trips over a list where a dict should be.

    Args:
        path: the file it came from (named in the error).
        raw: what ``torch.load`` returned.
        resume: also require the fields of :data:`RESUME_KEYS` (and an optimizer state).

    Raises:
        CheckpointError: ``"<path>: <reason>"``.
    """
    if not isinstance(raw, dict) or "format" not in raw or "task" not in raw:
        raise CheckpointError(
            f"{path}: not a textrnn checkpoint (no 'format'/'task' keys; a bare state_dict?)"
        )

    def check(name: str) -> None:
        what, ok = HEADER[name]
        if not ok(raw[name]):
            raise CheckpointError(
                f"{path}: bad checkpoint: '{name}' should be {what}, not {_describe(raw[name])}"
            )

    check("format")  # first: a newer format may change the other fields
    if raw["format"] > FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {raw['format']!r} is newer than this textrnn reads "
            f"({FORMAT}); upgrade textrnn"
        )
    needed = REQUIRED_KEYS + (RESUME_KEYS if resume else ())
    missing = [key for key in needed if key not in raw]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
    for name in HEADER:
        if name in raw:
            check(name)
    if raw["task"] not in MODELS:
        raise CheckpointError(
            f"{path}: unknown task {raw['task']!r} (known: {', '.join(sorted(MODELS))})"
        )
    if resume and raw["optimizer"] is None:
        raise CheckpointError(f"{path}: holds no optimizer state, so a run cannot resume from it")


def _load_error(path: Path, err: Exception) -> CheckpointError:
    """The one-line error for what ``torch.load(weights_only=True)`` raised."""
    # The weights-only unpickler refuses anything that would run code (a class, a function):
    # that is not damage, and saying "corrupt" would send the user looking for the wrong fix.
    unsafe = re.search(r"GLOBAL (\S+)|unrecognized function|Can only (?:create|build)", str(err))
    if isinstance(err, pickle.UnpicklingError) and unsafe:
        what = f" ({unsafe.group(1)})" if unsafe.group(1) else ""
        return CheckpointError(
            f"{path}: refused: unsafe content: it holds Python objects{what} that a safe "
            "(weights-only) load does not run; textrnn checkpoints hold plain data only"
        )
    return CheckpointError(
        f"{path}: cannot read checkpoint: the file is truncated, corrupt or not a torch file"
    )


def read(path: str | PathLike[str], map_location: Any = "cpu", task: str | None = None,
         *, resume: bool = False) -> dict:
    """Load and validate a checkpoint's dict without building the model (used to resume).

    Args:
        path: a file written by :func:`save`.
        map_location: where tensors go.
        task: if given, the task the file must be of (another task's file is refused).
        resume: also require what resuming a training needs (see :func:`check_header`).

    Raises:
        CheckpointError: ``"<path>: <reason>"`` if the file is missing, unreadable,
            truncated, refused as unsafe, not a textrnn checkpoint, of a newer format, has
            a field of the wrong type, an unknown task or is not of ``task``.
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
        raise _load_error(path, err) from err
    check_header(path, raw, resume=resume)
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
        vocabs = {name: vocab_from_dict(d) for name, d in raw["vocabs"].items()}
        model = build(raw["task"], config, vocabs)
        model.load_state_dict(raw["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__  # one line
        raise CheckpointError(
            f"{path}: checkpoint does not match its {raw['task']!r} model: {reason}"
        ) from err
    model.to(map_location).eval()
    if hasattr(model, "calibrate"):  # e.g. the QA model's answer temperature
        model.calibrate(dict(raw.get("metrics", {})))
    return Bundle(
        task=raw["task"],
        model=model,
        vocabs=vocabs,
        config=config,
        metrics=dict(raw.get("metrics", {})),  # check_header made sure of the types
        step=raw.get("step", 0),
        raw=raw,
    )
