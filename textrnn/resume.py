"""Resuming a training: the checks, the restore and the RNG streams of every rank.

:func:`textrnn.train.fit` with ``resume=True`` reads ``last.pt`` (:func:`read_resume`:
under DDP rank 0 reads it and every rank gets it), refuses changed settings other than
:data:`SAFE_TO_CHANGE` (:func:`check_settings`), then restores the weights, optimizer,
scheduler and loop counters (:func:`restore`), then what only each rank knows
(:func:`restore_rank`): its RNG (:func:`restore_rng`) and, under DDP, its carried model
state (:func:`restore_carried`; the LM's hidden state), saved by :func:`rank_states`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textrnn import checkpoint, distributed
from textrnn.errors import CheckpointError

# TrainConfig stays unnamed here (cfg: Any): inference modules may import this one, and
# none of them may import the trainer (tests/test_layout.py).
# TrainConfig fields a resumed run may change: how long it runs, how often it reports and
# where it runs. Any other change is refused: the optimizer state of an Adam run does not fit
# SGD, a new lr or weight decay would be undone by the restored optimizer state, a new
# schedule would restart (or break) the learning rate, and a new best_metric, seed or
# budget clock would make the saved best score, RNG states or time used mean something else.
SAFE_TO_CHANGE = frozenset({"epochs", "max_steps", "max_minutes", "patience", "stop_at",
                            "eval_every", "log_every", "device", "threads", "amp",
                            "dist_timeout"})

log = logging.getLogger("textrnn.train")  # the trainer's notes


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _same(a, b) -> bool:
    """Equal settings, where a tuple equals its list and NaN (stop_at's "off") itself."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b or (a != a and b != b)


def _changed(saved: dict, now: dict) -> dict[str, str]:
    """name -> ``"name old -> new"`` for each setting of ``now`` that differs from ``saved``
    (one that ``saved`` lacks, from an older textrnn, is not compared)."""
    return {name: f"{name} {saved[name]!r} -> {value!r}" for name, value in now.items()
            if name in saved and not _same(saved[name], value)}


def check_settings(path: Path, raw: dict, model: nn.Module, cfg: Any) -> None:
    """Refuse to resume ``raw`` (read from ``path``) with other settings than it was
    trained with, naming them; a change of :data:`SAFE_TO_CHANGE` is noted and goes on."""
    vocabs = {name: vocab.to_dict() for name, vocab in model.vocabs.items()}
    if raw["task"] != model.task or raw["vocabs"] != vocabs:
        raise CheckpointError(
            f"{path}: its task or vocabulary differs from this run's; resume with the same "
            "data and task"
        )
    train_changes = _changed(raw.get("train_config", {}), asdict(cfg))
    refused = [*_changed(raw["model_config"], asdict(model.config)).values(),
               *(text for name, text in train_changes.items() if name not in SAFE_TO_CHANGE)]
    if refused:
        raise CheckpointError(
            f"{path}: cannot resume with changed settings: {', '.join(refused)} (the saved "
            "model, optimizer or schedule depend on them); resume with the run's settings, "
            "or start a new run"
        )
    if train_changes:
        log.info("resuming %s with changed settings: %s", path,
                 ", ".join(train_changes.values()))


def restore(path: Path, raw: dict, model: nn.Module, optimizer, scheduler) -> dict:
    """Load the weights, optimizer, scheduler and RNG states of ``raw`` (checked by
    :func:`check_settings`); what still does not fit is a one-line error.

    Returns:
        The loop's counters to go on from (step, epoch, batch_in_epoch, best, ...).
    """
    try:
        model.load_state_dict(raw["state_dict"])
        optimizer.load_state_dict(raw["optimizer"])
        if scheduler is not None and raw["scheduler"] is not None:
            scheduler.load_state_dict(raw["scheduler"])
        checkpoint.set_rng_state(raw["rng"])
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError, AttributeError) as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__  # one line
        raise CheckpointError(f"{path}: cannot resume from it: {reason}") from err
    # The loop's own counters, type-checked: they go into comparisons and sums.
    counters = {"best": (int, float, type(None)), "best_loss": (int, float, type(None)),
                "elapsed": (int, float),
                "budget_used": (int, float), "stale": (int,)}
    extra = {name: raw["extra"][name] for name in counters if name in raw["extra"]}
    for name, value in extra.items():
        if not isinstance(value, counters[name]):
            raise CheckpointError(f"{path}: bad checkpoint: extra {name!r} is a "
                                  f"{type(value).__name__}")
    return {**{k: raw[k] for k in ("step", "epoch", "batch_in_epoch")}, **extra}


def read_resume(path: Path, model: nn.Module, cfg: Any, device: torch.device) -> dict:
    """``path`` read and checked for resuming; under DDP rank 0 reads it and every rank
    gets the same dict, or raises the same error (a run folder need not be shared)."""
    if distributed.world_size() <= 1:
        raw = checkpoint.read(path, map_location=device, resume=True)
        check_settings(path, raw, model, cfg)
        return raw
    found: tuple[str, object] = ("error", "")
    if distributed.is_main():
        try:
            raw = checkpoint.read(path, map_location="cpu", resume=True)  # pickled to peers
            check_settings(path, raw, model, cfg)
            found = ("ok", raw)
        except CheckpointError as err:
            found = ("error", str(err))
    kind, value = distributed.broadcast(found)
    if kind == "error":
        raise CheckpointError(value)
    return value


def restore_rng(raw: dict, rank: int, world: int, seed: int) -> None:
    """Give this rank its own RNG states from ``raw`` (rank 0's came with :func:`restore`);
    from a run of another number of processes, the other ranks start afresh."""
    saved = raw["extra"].get("world_size", 1)
    ranks = raw["rng"].get("ranks") if world > 1 else None
    if saved != world or (world > 1 and not (isinstance(ranks, list) and len(ranks) == world)):
        if rank == 0:
            log.warning("resuming a run of %s process(es) with %d: the data goes on from the "
                        "checkpoint, but ranks 1 and up draw new dropout streams (not "
                        "exactly the run that would have been)", saved, world)
        if rank > 0:
            seed_everything(seed + rank)
    elif rank > 0:
        checkpoint.set_rng_state(ranks[rank])


def _cpu(obj: Any) -> Any:
    """``obj`` with every tensor in its dicts and lists copied to the CPU (to pickle it)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {key: _cpu(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(value) for value in obj)
    return obj


def carried_states(model: nn.Module, world: int) -> list[dict] | None:
    """Every rank's own module state that is not a weight (the ``_extra_state`` entries of
    its ``state_dict``: the LM's hidden state carried to the next window), in rank order;
    None in one process, whose ``state_dict`` holds it. A collective call under DDP.

    The weights are the same on every rank, so rank 0's ``state_dict`` stands for all;
    a carried state is not: rank r carries the state of its own piece of the streams.
    """
    if world <= 1:
        return None
    mine = {k: _cpu(v) for k, v in model.state_dict().items() if k.endswith("_extra_state")}
    return distributed.all_gather(mine)


def restore_carried(path: Path, raw: dict, model: nn.Module, rank: int, world: int) -> None:
    """Give this rank its own carried state from ``raw`` (see :func:`carried_states`); from
    a run of another number of processes every rank keeps rank 0's, as
    :func:`restore` loaded it (:func:`restore_rng` warns)."""
    carried = raw["extra"].get("carried")
    if raw["extra"].get("world_size", 1) != world or not (
            isinstance(carried, list) and len(carried) == world):
        return
    try:
        model.load_state_dict(carried[rank], strict=False)  # only the _extra_state entries
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise CheckpointError(f"{path}: cannot resume from it: {reason}") from err


def restore_rank(path: Path, raw: dict, model: nn.Module, rank: int, world: int,
                 seed: int) -> None:
    """This rank's own RNG streams and carried model state from ``raw``."""
    restore_rng(raw, rank, world, seed)
    restore_carried(path, raw, model, rank, world)


def rank_states(model: nn.Module, world: int) -> tuple[dict, list[dict] | None]:
    """:func:`rng_states` and :func:`carried_states`: what only each rank knows, for a
    checkpoint. A collective call under DDP."""
    return rng_states(world), carried_states(model, world)


def rng_states(world: int) -> dict:
    """Every rank's RNG states as one ``rng`` entry: rank 0's at the top (what a single
    process restores), and under DDP all ranks' under ``"ranks"``. A collective call."""
    states = distributed.all_gather(checkpoint.rng_state())
    return states[0] if world <= 1 else {**states[0], "ranks": states}


