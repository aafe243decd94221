"""One training loop for every task: ``fit(model, train_data, val_data, cfg, out_dir, ...)``.

``fit`` never names a task. It relies on the model contract of
:mod:`textrnn.models` (``loss``, ``evaluate``, optionally ``num_tokens``) and on
``train_data`` being a re-iterable of batches (dicts of tensors), with an
optional ``set_epoch(epoch)`` for deterministic per-epoch shuffling.

What lands in ``out_dir``:

- ``metrics.jsonl``: one JSON line per evaluation (step, epoch, train_loss, the
  validation metrics, elapsed seconds, lr);
- ``curves.png``: train loss and validation metrics against steps, redrawn at
  every evaluation;
- ``last.pt`` at every evaluation (and on Ctrl-C), ``best.pt`` whenever
  ``cfg.best_metric`` improves, or ties with a lower validation loss.

Resuming (``resume=True``) restores weights, optimizer, scheduler, RNG states
and the position inside the epoch from ``last.pt``. On CPU, a run stopped at a
checkpoint (killed after an evaluation, or by Ctrl-C, which fit defers to the
end of the current step) and resumed ends with exactly the same weights as one
that ran straight through. A resume refuses changed model settings and any training
setting the saved optimizer, schedule or best score depend on (see
:data:`textrnn.resume.SAFE_TO_CHANGE`), and cuts ``metrics.jsonl`` back to the checkpoint's step.

With ``cfg.ema`` what is validated and saved is an exponential moving average of the
weights (:mod:`textrnn.averaging`); ``model`` itself trains, and ends, with its own weights,
which the checkpoints keep beside the average, for ``--resume``.

Only one training at a time may use a run folder (see :func:`~textrnn.runlog.lock_run_folder`).

Under ``torchrun`` the same loop trains with DistributedDataParallel (see
:mod:`textrnn.distributed`): each rank reads its shard of every epoch, and W ranks with
batch B take the steps one process takes with batch W*B. Every rank evaluates the full
validation set and takes rank 0's numbers, so all make the same decisions (best, patience,
schedule); rank 0 alone writes the run folder. Checkpoints hold every rank's RNG states
and carried model state (the LM's hidden state), so a resume with as many processes is exact.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, replace
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from textrnn import checkpoint, distributed
from textrnn.averaging import WeightAverage
from textrnn.device import resolve_device, to_device
from textrnn.errors import TextrnnError
from textrnn.progress import Progress
from textrnn.resume import rank_states, read_resume, restore, restore_rank, seed_everything
from textrnn.runlog import RunLog, lock_run_folder

# A tie on best_metric goes to the lower validation loss: accuracy saturates (100% on
# bAbI validation within an epoch or two) long before the model stops getting better,
# and the first checkpoint to reach 100% read renamed names 4 points worse than the last.
TIE_BREAK = "val_loss"
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULES = ("none", "plateau", "linear")
log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Settings of :func:`fit`; stored in every checkpoint as ``train_config``."""

    epochs: int = 10  # passes over the training data
    max_steps: int = 0  # stop after this many steps in total; 0 = no limit (smoke runs)
    lr: float = 2e-3  # learning rate (Adam's default 1e-3 is slow for small RNNs)
    optimizer: str = "adam"  # optimizer (weight decay is decoupled for adamw)
    weight_decay: float = 0.0  # L2 penalty
    grad_clip: float = 1.0  # clip the gradient norm to this; 0 = off (RNNs need it)
    eval_every: int = 0  # evaluate and checkpoint every N steps; 0 = at each epoch's end
    log_every: int = 100  # progress line every N steps when not on a terminal
    seed: int = 1234  # seed for weights, dropout and shuffling (torch, random, numpy, CUDA)
    device: str = "auto"  # auto (CUDA when there is a GPU), cpu or cuda
    threads: int = 1  # CPU threads; 0 = torch's choice. 1: see cli/flags.py DEFAULT_THREADS
    amp: bool = True  # bf16 mixed precision on CUDA (no loss scaling needed); ignored on CPU
    best_metric: str = ""  # the evaluate() key that decides best.pt; "" = the model's own
    best_mode: str = ""  # "min" or "max": which direction of best_metric is better; "" = model's
    # learning-rate schedule: plateau halves it when the metric stalls, linear decays it to 0
    schedule: str = "none"
    # stop training after this many minutes (evaluations count; the linear schedule decays
    # over them); 0 = no limit
    max_minutes: float = 0.0
    # what --max-minutes counts: wall-clock time, or this process's CPU time (fair on a
    # shared machine)
    budget_clock: str = "wall"
    # stop once the best-checkpoint metric reaches this value (e.g. 1.0 for accuracy);
    # best.pt is then the first checkpoint to reach it
    stop_at: float = math.nan
    # stop once this many evaluations in a row have not bettered the best-checkpoint
    # metric (early stopping); 0 = never
    patience: int = 0
    # validate and save (best.pt, last.pt) an exponential moving average of the weights
    # with this decay (e.g. 0.999; warmed up over the first steps); 0 = off
    ema: float = 0.0
    # under torchrun: the most seconds a rank waits for the others (a dead or stuck peer
    # ends the run with an error after it); must exceed the longest evaluation
    dist_timeout: float = 600.0

    def __post_init__(self) -> None:
        for name, allowed in (
            ("optimizer", tuple(OPTIMIZERS)),
            ("best_mode", ("", "min", "max")),
            ("schedule", SCHEDULES),
            ("budget_clock", ("wall", "cpu")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0 = off), got {self.ema}")


class _Budget:
    """The time a run may train for, on the wall clock or this process's CPU clock.

    The time already used is carried through checkpoints, so a resumed run gets
    what is left, not a fresh budget.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.seconds = 60.0 * cfg.max_minutes  # 0 = no budget
        self.clock = time.process_time if cfg.budget_clock == "cpu" else time.monotonic
        self.restart(0.0)

    def restart(self, used: float) -> None:
        """Count from now on, ``used`` seconds already spent (by the run being resumed)."""
        self.before, self.start = used, self.clock()
        self.agreed: float | None = None  # under DDP: the ranks' clock, set every step

    def local(self) -> float:
        """Seconds used so far by this process's clock, earlier runs included."""
        return self.before + self.clock() - self.start

    def used(self) -> float:
        """Seconds used so far, earlier runs of a resumed training included; under DDP the
        value the ranks last agreed on, so that all stop (and decay the lr) alike."""
        return self.local() if self.agreed is None else self.agreed

    def fraction(self) -> float:
        """Share of the budget spent (0 when there is no budget)."""
        return self.used() / self.seconds if self.seconds > 0 else 0.0

    def spent(self) -> bool:
        """True once a budget is set and used up."""
        return self.seconds > 0 and self.used() >= self.seconds


def _make_scheduler(cfg: TrainConfig, optimizer, total_steps: int | None, budget: _Budget):
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=cfg.best_mode, factor=0.5, patience=0
        )
    if not total_steps and not budget.seconds:
        raise TextrnnError(
            "the linear schedule needs max_steps, max_minutes or a train_data with len()"
        )

    def factor(step: int) -> float:  # decay to 0 at the step limit or the time limit, whichever
        spent = max(step / total_steps if total_steps else 0.0, budget.fraction())  # comes first
        return max(0.0, 1.0 - spent)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class _DeferredInterrupt:
    """Turn the first Ctrl-C into a flag checked between steps, so last.pt is saved at a
    step boundary and resumes exactly; a second Ctrl-C interrupts at once."""

    def __enter__(self):
        self.hit, self._old = False, None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.hit = True
        signal.signal(signal.SIGINT, self._old)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def fit(
    model: nn.Module,
    train_data,
    val_data,
    cfg: TrainConfig,
    out_dir: str | PathLike[str],
    *,
    resume: bool = False,
) -> dict:
    """Train ``model`` on ``train_data``, evaluating on ``val_data`` and checkpointing.

    Args:
        model: a registered task model (:class:`textrnn.models.TaskModel`); its ``task``,
            ``config`` and ``vocabs`` go into the checkpoints.
        train_data: re-iterable of batches (dicts of tensors), optionally with ``set_epoch``.
        val_data: re-iterable of batches passed to ``model.evaluate``.
        cfg: the :class:`TrainConfig`.
        out_dir: created if needed; receives metrics, curves and checkpoints.
        resume: continue from ``out_dir/last.pt`` instead of starting afresh.

    Returns:
        ``{"step", "epoch", "best_metric", "best_value", "metrics"}`` (metrics of the
        last evaluation).

    Raises:
        KeyboardInterrupt: after saving ``last.pt``, when interrupted.
        TextrnnError: when another training holds ``out_dir``, or (a CheckpointError)
            when ``last.pt`` cannot be resumed with these settings.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    main = distributed.is_main()  # under torchrun rank 0 alone holds and writes the folder
    with (lock_run_folder(out) if main else contextlib.nullcontext(),
          distributed.process_group(resolve_device(cfg.device), cfg.dist_timeout) as device):
        if main:
            checkpoint.remove_temp_files(out)  # left by a run killed mid-save; none is ours
        try:
            return _fit(model, train_data, val_data, cfg, out, resume, device)
        except RuntimeError as err:
            if distributed.world_size() <= 1 or not distributed.is_peer_error(err):
                raise
            reason = " ".join(str(err).split())[:120]  # one line; gloo's run on
            raise TextrnnError(
                f"rank {distributed.rank()}: lost the other training processes (one died, "
                f"or did not answer within --dist-timeout {cfg.dist_timeout:g}s); continue "
                f"from {out / 'last.pt'} with --resume ({reason})") from err


def _fit(model: nn.Module, train_data, val_data, cfg: TrainConfig, out: Path,
         resume: bool, device: torch.device) -> dict:
    """:func:`fit` in the locked run folder ``out``, on ``device``."""
    cfg = replace(cfg, best_metric=cfg.best_metric or model.best_metric,
                  best_mode=cfg.best_mode or model.best_mode)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    rank, world = distributed.rank(), distributed.world_size()
    main = rank == 0
    seed_everything(cfg.seed + rank)  # each rank its own dropout; DDP copies rank 0's weights
    model.to(device).train()
    net = distributed.loss_fn(model, device)  # model.loss, or DDP around it
    steps = distributed.shard(train_data, rank, world)
    # Adam's fused kernel: one pass over each parameter instead of a dozen (26 ms -> 3 ms
    # a step for a 2.7M-parameter word LM on one CPU thread).
    fused = {"fused": True} if cfg.optimizer in ("adam", "adamw") else {}
    optimizer = OPTIMIZERS[cfg.optimizer](
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused
    )
    steps_per_epoch = len(steps) if hasattr(train_data, "__len__") else None
    total = min(cfg.max_steps or math.inf, cfg.epochs * (steps_per_epoch or math.inf))
    total = None if total == math.inf else int(total)
    budget = _Budget(cfg)  # restarted below with the time a resumed run had used
    scheduler = _make_scheduler(cfg, optimizer, total, budget)
    ema = WeightAverage(model, cfg.ema)  # with ema 0 it does nothing
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"
    )
    better = (lambda a, b: a < b) if cfg.best_mode == "min" else (lambda a, b: a > b)

    def reached(best: float | None) -> bool:  # False for NaN, stop_at's "never"
        return best is not None and (best == cfg.stop_at or better(best, cfg.stop_at))

    def finished() -> bool:  # stop_at reached, or patience run out
        return reached(s["best"]) or (cfg.patience > 0 and s["stale"] >= cfg.patience)

    def improves(value: float, metrics: dict) -> bool:  # better, or a tie of lower loss
        if s["best"] is None or better(value, s["best"]):
            return True
        loss, best_loss = metrics.get(TIE_BREAK), s["best_loss"]
        return (value == s["best"] and cfg.best_metric != TIE_BREAK and loss is not None
                and best_loss is not None and loss < best_loss)

    s = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best": None, "best_loss": None,
         "elapsed": 0.0, "budget_used": 0.0, "stale": 0}  # stale: evaluations since the best
    last_metrics: dict = {}
    if resume:
        path = out / "last.pt"
        raw = read_resume(path, model, cfg, device)
        s.update(restore(path, raw, model, optimizer, scheduler))
        restore_rank(path, raw, model, rank, world, cfg.seed)  # RNG, the LM's carried state
        ema.resume(path, raw["extra"].get("ema"), model)  # the model held the average
        if hasattr(train_data, "load_state_dict"):  # e.g. the epoch mix of QA's focus
            train_data.load_state_dict(raw["extra"].get("data", {}))
        last_metrics = raw["metrics"]
        if hasattr(model, "calibrate"):  # what checkpoint.load does: the QA answer temperature
            model.calibrate(last_metrics)
    # A resumed run's log goes back to its checkpoint: later records are redone.
    runlog = RunLog(out, resume_step=s["step"] if resume else None) if main else None
    started, losses = time.monotonic() - s["elapsed"], []
    budget.restart(s["budget_used"])
    if resume and budget.spent() and main:  # the budget counts the run's earlier time too
        log.info("the time budget (--max-minutes %g) is already used by this run (%.1f min):"
                 " give a larger one to go on", cfg.max_minutes, budget.used() / 60)

    def agree(loss: float, tokens: int, hit: bool) -> tuple[float, int, bool]:
        """Under DDP, the global batch's loss and tokens, and whether any rank was
        interrupted; the ranks' mean clock becomes the budget's. Every rank must stop, and
        set its lr, at the same step, and their clocks differ. One small all-reduce."""
        if world <= 1:
            return loss, tokens, hit
        total, ntok, hits, used = distributed.all_sum(
            [loss, float(tokens), float(hit), budget.local() / world])
        budget.agreed = used
        return total, int(ntok), hits > 0

    def save(name: str, metrics: dict) -> None:  # under DDP every rank calls it, rank 0 writes
        rng, carried = rank_states(model, world)
        if not main:
            return
        with ema.applied(model) as averaged:  # the average is the checkpoint's state_dict
            checkpoint.save(
                out / name,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                step=s["step"],
                epoch=s["epoch"],
                batch_in_epoch=s["batch_in_epoch"],
                metrics=metrics,
                train_config=asdict(cfg),
                rng=rng,
                extra={"best": s["best"], "best_loss": s["best_loss"],
                       "elapsed": time.monotonic() - started,
                       "budget_used": budget.used(), "stale": s["stale"], "world_size": world,
                       "carried": carried, "ema": averaged,
                       "data": train_data.state_dict() if hasattr(train_data, "state_dict")
                       else {}},
            )

    def evaluate(scheduled: bool) -> None:
        nonlocal last_metrics, losses
        model.eval()
        with torch.no_grad(), autocast, ema.applied(model):
            metrics = model.evaluate(to_device(b, device) for b in val_data)
        model.train()
        # Every rank evaluated the same weights; rank 0's numbers make the decisions below
        # on all of them (a GPU's last bits may differ, and a split decision would hang).
        metrics = distributed.broadcast(metrics)
        if hasattr(model, "calibrate"):  # answer as a checkpoint of this validation will
            model.calibrate(metrics)
        if cfg.best_metric not in metrics:
            raise TextrnnError(f"best_metric {cfg.best_metric!r} is not among {sorted(metrics)}")
        value = metrics[cfg.best_metric]
        record = {
            "step": s["step"],
            "epoch": s["epoch"],
            "train_loss": sum(losses) / len(losses) if losses else None,
            **metrics,
            "elapsed": round(time.monotonic() - started, 3),
            "lr": optimizer.param_groups[0]["lr"],
        }
        losses, last_metrics = [], metrics
        if runlog is not None:
            runlog.append(record)
        progress.write(f"step {s['step']} " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        # best.pt first: it must hold the model these metrics were measured on, and
        # on_evaluate may change it (MemN2N's linear start ends by switching a softmax on).
        if improves(value, metrics):
            s["best"], s["best_loss"], s["stale"] = value, metrics.get(TIE_BREAK), 0
            save("best.pt", metrics)
        elif scheduled:
            s["stale"] += 1
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and scheduled:
            scheduler.step(value)  # only on the regular schedule, so a stop/resume changes nothing
        if hasattr(model, "on_evaluate") and scheduled:
            model.on_evaluate(metrics)  # e.g. MemN2N ends its linear start when val loss stalls
        if hasattr(train_data, "on_evaluate") and scheduled:
            train_data.on_evaluate(metrics)  # e.g. QA's focus: the next epoch's mix of tasks
        save("last.pt", metrics)  # after: a resumed run goes on from the changed model

    progress = Progress(total, desc="train", initial=s["step"], every=cfg.log_every,
                        enabled=main)
    agree(0.0, 0, False)  # the ranks' clocks, before the first look at the budget
    done = (total is not None and s["step"] >= total) or budget.spent() or finished()
    stopped = False  # by an interrupt every rank agreed on: a step boundary on all
    try:
        with _DeferredInterrupt() as interrupt, progress:
            while not done and s["epoch"] < cfg.epochs:
                if hasattr(steps, "set_epoch"):
                    steps.set_epoch(s["epoch"])
                # The batches before batch_in_epoch were consumed before the checkpoint
                # we resumed from.
                for step in steps.steps(start=s["batch_in_epoch"]):
                    if done:  # checked here, so that a run ending on an epoch's last
                        break  # batch still counts that epoch as finished (the else below)
                    batch = to_device(step.batch, device)
                    with autocast:
                        loss = net(batch)
                    optimizer.zero_grad(set_to_none=True)
                    # share: this rank's part of the global batch (1 in one process).
                    (loss if step.share == 1.0 else loss * step.share).backward()
                    if cfg.grad_clip > 0:  # DDP's backward has averaged the gradients
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    optimizer.step()
                    ema.update(model)
                    ntok = model.num_tokens(batch) if hasattr(model, "num_tokens") else 0
                    loss_value, ntok, interrupt.hit = agree(loss.item() * step.share / world,
                                                            ntok, interrupt.hit)
                    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                        scheduler.step()
                    s["step"] += 1
                    s["batch_in_epoch"] = step.position
                    losses.append(loss_value)
                    progress.update(loss=losses[-1], tokens=ntok)
                    done = (total is not None and s["step"] >= total) or budget.spent()
                    if cfg.eval_every and s["step"] % cfg.eval_every == 0:
                        evaluate(scheduled=True)
                        done = done or finished()
                    if interrupt.hit:
                        stopped = True
                        raise KeyboardInterrupt
                else:  # the epoch ran to its end: the next one starts from its first batch
                    s["epoch"], s["batch_in_epoch"] = s["epoch"] + 1, 0
                    if not cfg.eval_every:
                        evaluate(scheduled=True)
                        done = done or finished()
            # rank 0's answer: a peer may not see the run folder
            if distributed.broadcast(bool(losses) or not (out / "last.pt").exists()):
                evaluate(scheduled=False)  # end on an evaluated, resumable checkpoint
    except KeyboardInterrupt:
        # Nothing finished is lost; `--resume` continues. After a deferred Ctrl-C (or one
        # raised between batches) this is a step boundary and the resume is exact; a second
        # Ctrl-C mid-step may redo that step with different dropout draws. Under DDP only
        # an agreed stop is saved: the ranks of a second Ctrl-C stand at different points,
        # and saving (which gathers every rank's RNG) would hang; last.pt is then the
        # previous evaluation's.
        if world <= 1 or stopped:
            save("last.pt", last_metrics)
        raise
    return {
        "step": s["step"],
        "epoch": s["epoch"],
        "best_metric": cfg.best_metric,
        "best_value": s["best"],
        "metrics": last_metrics,
    }
