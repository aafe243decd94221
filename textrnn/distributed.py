"""Training on several processes with PyTorch's DistributedDataParallel, started by torchrun.

``torchrun`` starts one process per device and tells each who it is through environment
variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`process_group` joins them: gloo on CPU, NCCL on CUDA with ``LOCAL_RANK`` picking
the GPU, and a timeout on every collective, so a dead or stuck peer ends the run with an
error instead of a hang. Without those variables everything here is a no-op and
:func:`~textrnn.train.fit` trains in one process as before.

How a global step is made (W processes, ``--batch-size`` B per process)::

    the epoch's batch order (same seed and epoch on every rank, so the same order):
        b0  b1  b2  b3  b4  b5  b6          7 batches of B (the last may be smaller)
    step 0: rank 0 b0, rank 1 b1           the global batch is the union: 2B examples
    step 1: rank 0 b2, rank 1 b3
    step 2: rank 0 b4, rank 1 b5
    step 3: rank 0 b6, rank 1 b6 x 0       no batch left: rank 1 repeats one with share 0

DDP averages the ranks' gradients. For that to be the gradient of the mean loss over
the global batch, rank r scales its (per-example mean) loss by its share
``W * n_r / N`` (``n_r`` its rows, ``N`` the step's rows): with equal batches every share
is 1, and a short or empty last batch counts for what it holds. So W processes with
batch B take the same steps as one process with batch W*B over the same order.

Every rank plans the whole epoch but collates only its own batches: the task batchers'
``shard(keep)`` builds the batches of ``keep`` (:meth:`RoundRobin.mine`) and, for the
others, only makes the random draws (slot numbering, word dropout) that collating them
would, since each batch's draws come from one generator per epoch in batch order. So a
rank's batches are exactly those it would keep from the whole epoch, for 1/W of the
collating (plus, in an epoch's last step, the share-0 batch of a rank with none left).

A language model's stream (:class:`~textrnn.data.text.StreamBatches`) carries its
hidden state from one window to the next, so its ranks cannot take every W-th window:
rank r reads the r-th of W consecutive pieces of every stream instead (:class:`StreamShard`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.rendezvous import rendezvous

from textrnn.data.text import StreamBatches


def world_size() -> int:
    """How many processes train together: the process group's, else torchrun's ``WORLD_SIZE``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 for a single process)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the rank that writes the run folder (rank 0), and in a single process."""
    return rank() == 0


def restarted() -> bool:
    """True in a worker group that ``torchrun --max-restarts`` started again after a failure."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


@contextlib.contextmanager
def process_group(device: torch.device, timeout_s: float) -> Iterator[torch.device]:
    """Join the other torchrun processes for the duration of the block (if launched so).

    Args:
        device: the device the run asked for; on CUDA each rank takes GPU ``LOCAL_RANK``.
        timeout_s: the most seconds a collective waits for the other ranks before it fails.

    Yields:
        The device this rank trains on.
    """
    if world_size() <= 1 or dist.is_initialized():
        yield device  # one process, or a caller who set the group up itself
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    # gloo runs the collectives on CPU tensors; NCCL on GPU ones, and is the fast one there.
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    store, rank_, world = next(rendezvous("env://", timeout=timeout))
    # A group that torchrun --max-restarts started again meets in the agent's store, where
    # the dead group's addresses still are: without a key prefix of its own, a rank may
    # read a dead peer's address and fail to connect (seen with gloo, 1 restart in 2).
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.PrefixStore(f"textrnn/attempt{attempt}", store)
    dist.init_process_group(backend, store=store, rank=rank_, world_size=world,
                            timeout=timeout)
    try:
        yield device
        # Leave together: a rank that tore its gloo pairs down while a peer still sent
        # (rank 0 writing its last checkpoint) was aborted at exit, "terminate called
        # without an active exception" (1 run in ~10 on 2 cores). Not after an error: a
        # dead peer would make the barrier wait out the timeout.
        dist.barrier()
    finally:
        dist.destroy_process_group()


class _Loss(nn.Module):
    """``model.loss(batch)`` as ``forward``: DDP reduces gradients only for what runs
    through its own ``forward``, and the task models keep their loss in ``loss``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model.loss(batch)


def loss_fn(model: nn.Module, device: torch.device):
    """The callable that turns a batch into the loss to back-propagate.

    In one process that is ``model.loss``; under torchrun a DistributedDataParallel
    around it, which averages the gradients over the ranks during ``backward``. The
    wrapper holds ``model`` itself, so ``model.state_dict()`` keeps its plain keys (no
    ``module.`` prefix) and a checkpoint loads the same in one process or several.
    """
    if world_size() <= 1:
        return model.loss
    # find_unused_parameters: some settings leave a module out of the loss (a head that
    # is off, MemN2N's linear start); without it DDP waits for their gradients forever.
    return nn.parallel.DistributedDataParallel(
        _Loss(model), device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True)


def batch_rows(batch: Any) -> int:
    """The number of examples (rows) in a batch: the first dimension of its first tensor.

    >>> batch_rows({"ids": torch.zeros(3, 7), "lengths": torch.zeros(3)})
    3
    """
    values = batch.values() if isinstance(batch, dict) else batch
    return next(int(v.shape[0]) for v in values if isinstance(v, torch.Tensor))


class Step(NamedTuple):
    """What one rank trains on in one global step.

    Attributes:
        position: where the epoch stands after this step, in the data's own batches (what
            a checkpoint stores as ``batch_in_epoch``).
        batch: this rank's batch (dict of tensors).
        share: the factor on this rank's loss, ``W * n_r / N`` (1 with equal batches).
    """

    position: int
    batch: Any
    share: float


class RoundRobin:
    """Rank ``rank`` of ``world`` takes batches ``rank, rank + world, ...`` of each epoch.

    Args:
        data: the task's re-iterable batches (with ``set_epoch`` if it shuffles).
        rank, world: this process and how many there are.
    """

    def __init__(self, data, rank: int, world: int) -> None:
        self.data, self.rank, self.world = data, rank, world

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next :meth:`steps` follows (every rank the same)."""
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self.data) // self.world)  # global steps an epoch

    def steps(self, start: int = 0) -> Iterator[Step]:
        """This rank's steps of the epoch, after the first ``start`` batches.

        Data with a ``shard(keep)`` method (the task batchers) collates only the batches
        of ``keep``, this rank's, and still makes every other batch's random draws, so
        each batch is that of an uninterrupted epoch; other data is iterated whole, and
        the batches before ``start`` dropped.
        """
        if hasattr(self.data, "shard"):
            batches = self.data.shard(self.mine(len(self.data), start))
        else:
            batches = ((batch_rows(b), b) for b in self.data)
        group, position = [], start
        for i, (rows, batch) in enumerate(batches):
            if i < start:
                continue
            group.append((rows, batch))
            position = i + 1
            if len(group) == self.world:
                yield self._step(position, group)
                group = []
        if group:  # the epoch's last step, with fewer batches than ranks
            yield self._step(position, group)

    def mine(self, n: int, start: int = 0) -> set[int]:
        """The batches (of ``n`` in the epoch) this rank trains on, from ``start`` on.

        >>> sorted(RoundRobin([], rank=1, world=2).mine(7))  # 6: rank 0's, with share 0
        [1, 3, 5, 6]
        >>> sorted(RoundRobin([], rank=1, world=3).mine(7, start=3))
        [4, 6]
        """
        keep = set(range(start + self.rank, n, self.world))
        last = start + (n - start - 1) // self.world * self.world  # the last step's first
        if start < n and self.rank >= n - last:
            keep.add(last)  # no batch left for this rank in the last step: it runs that one
        return keep

    def _step(self, position: int, group: list[tuple[int, Any]]) -> Step:
        rows = [n for n, _ in group]
        mine = self.rank < len(group)
        # No batch left for this rank: it still runs one, since every rank must join the
        # gradient all-reduce, but with share 0 it adds nothing.
        batch = group[self.rank][1] if mine else group[0][1]
        share = self.world * rows[self.rank] / sum(rows) if mine else 0.0
        return Step(position, batch, share)


class StreamShard:
    """Rank ``rank`` of ``world`` reads the ``rank``-th of ``world`` consecutive pieces of
    every stream of a :class:`~textrnn.data.text.StreamBatches`::

        stream b:  a b c d e f g h i      (world 2: each piece holds (9 - 1) // 2 = 4 inputs)
        rank 0:    a b c d (e)            the piece's last input's target is the next token
        rank 1:            e f g h (i)

    Each rank's windows follow each other in time, so the hidden state it carries from one
    window to the next is right; every rank gets the same number of equal windows.
    """

    def __init__(self, data: StreamBatches, rank: int, world: int) -> None:
        self.bptt = data.bptt
        n_inputs = (data.data.shape[1] - 1) // world  # inputs of each piece
        first = rank * n_inputs
        self.data = data.data[:, first : first + n_inputs + 1]  # (B, n_inputs + 1)

    def __len__(self) -> int:
        return -(-(self.data.shape[1] - 1) // self.bptt)

    def steps(self, start: int = 0) -> Iterator[Step]:
        """This rank's windows, after the first ``start``."""
        n_inputs = self.data.shape[1] - 1
        for i, t in enumerate(range(0, n_inputs, self.bptt)):
            if i < start:
                continue
            seq_len = min(self.bptt, n_inputs - t)
            yield Step(i + 1, {"x": self.data[:, t : t + seq_len],  # (B, T)
                               "y": self.data[:, t + 1 : t + 1 + seq_len],  # (B, T)
                               "reset": t == 0}, 1.0)


def shard(data, rank: int, world: int):
    """The sharded view of a task's training batches that :func:`~textrnn.train.fit` reads:
    ``set_epoch`` (if the data shuffles), ``len()`` in global steps, ``steps(start)``."""
    # A stream is split in time, not dealt out batch by batch (see StreamShard).
    if world > 1 and isinstance(data, StreamBatches):
        return StreamShard(data, rank, world)
    return RoundRobin(data, rank, world)


def all_sum(values: list[float]) -> list[float]:
    """Each value summed over the ranks (``values`` itself in one process)."""
    if world_size() <= 1:
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if (
        dist.get_backend() == "nccl") else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)  # (K,)
    dist.all_reduce(t)
    return t.tolist()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (plain picklable data; tensors on the CPU)."""
    if world_size() <= 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(obj: Any) -> list:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process)."""
    if world_size() <= 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def is_peer_error(err: BaseException) -> bool:
    """True for the error a collective raises when another rank died or timed out."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        word in text for word in ("Gloo", "gloo", "NCCL", "Connection closed", "timed out",
                                  "Connection reset"))
