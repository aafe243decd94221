"""A run folder's record of training, ``metrics.jsonl`` and ``curves.png``, and its lock.

One JSON line per evaluation, appended as it comes (a killed run keeps every
line written), and the curves redrawn from the records held in memory, so an
evaluation costs one append and one drawing, never a re-read of the file.

A resumed run reads the file once: it drops a last line torn by a kill mid-write and
the records past the checkpoint it resumes from (the run redoes those steps, so they
would appear twice), and rewrites the file with what is left.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from textrnn.errors import DataError, TextrnnError

try:
    import fcntl
except ImportError:  # Windows has no flock: run folders are not locked there
    fcntl = None


@contextmanager
def lock_run_folder(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder ``out`` (it exists), or refuse in one line.

    The lock is a ``flock`` on the folder itself rather than on an ``out/.lock`` file: a
    lock file would stay in the run folder, and removing it at the end races with a run
    starting at that moment. The kernel drops the lock when the process ends, kill -9
    included, so a killed run never leaves its folder locked.

    Raises:
        TextrnnError: another process (or another ``fit`` in this one) holds it.
    """
    if fcntl is None:
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TextrnnError(
                f"{out}: another training is running in this folder; wait for it to end, "
                "or train into another folder"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


class RunLog:
    """The metrics and curves of the run in ``out``.

    Args:
        out: the run folder (it exists).
        resume_step: the step of the checkpoint a resumed run goes on from: the records
            up to it are kept. None: a fresh run, which in an old folder starts a new
            ``metrics.jsonl`` (it must not append to the old one).

    Raises:
        DataError: a line before the last is not a JSON record (nothing is cut).
    """

    def __init__(self, out: Path, resume_step: int | None = None) -> None:
        self.metrics_path, self.curves_path = out / "metrics.jsonl", out / "curves.png"
        self.records: list[dict] = []
        if resume_step is None:
            self.metrics_path.unlink(missing_ok=True)
        elif self.metrics_path.is_file():
            records = read_records(self.metrics_path)
            self.records = [r for r in records if r["step"] <= resume_step]
            _write_records(self.records, self.metrics_path)

    def append(self, record: dict) -> None:
        """Write one evaluation's record and redraw the curves."""
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.records.append(record)
        plot_curves(self.records, self.curves_path)


def read_records(path: Path) -> list[dict]:
    """The records of ``path``, without a last line torn by a kill mid-write.

    Raises:
        DataError: ``"<path>:<line>: ..."`` for a bad line that is not the last.
    """
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()  # bytes torn too
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
        elif number < len(lines) and line.strip():  # a kill can only tear the last line
            raise DataError("not a metrics record (a JSON object with a step); fix or "
                            "delete this line", path=path, line=number)
    return records


def _write_records(records: list[dict], path: Path) -> None:
    """Replace ``path`` with ``records``, one JSON line each (atomically)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


def plot_curves(records: list[dict], path: Path) -> None:
    """Draw train loss and each validation metric against step into a PNG (atomically)."""
    keys = [k for k in records[0] if k.startswith("val_") and "loss" not in k]
    width = 5.0 * (1 + len(keys))  # inches
    fig = Figure(figsize=(width, 3.5))
    # Fixed margins: a layout engine would cost more than the drawing itself.
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.2 / width, bottom=0.15, top=0.9, wspace=0.3)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 1 + len(keys), squeeze=False)[0]
    steps = [r["step"] for r in records]

    def values(key: str) -> list[float]:  # None (no train steps since the last eval) -> a gap
        return [math.nan if r.get(key) is None else r[key] for r in records]

    for name in ("train_loss", "val_loss"):
        if name in records[0]:
            axes[0].plot(steps, values(name), marker=".", label=name)
    axes[0].legend()
    for ax, key in zip(axes[1:], keys, strict=True):
        ax.plot(steps, values(key), marker=".")
        ax.set_title(key)
    for ax in axes:
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))  # 16000 would overlap
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=80)
    os.replace(tmp, path)
