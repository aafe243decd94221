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
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from matplotlib import colormaps
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


COLUMNS = 3  # panels per row of curves.png
tab20 = colormaps["tab20"]
_PER_TASK = re.compile(r"(?P<metric>.+)_task(?P<task>\d+)")  # val_acc_task6


def _panels(keys: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Group validation metrics into panels: ``(title, [(key, label), ...])``. The per-task
    versions of a metric (``val_acc_task1``, ``val_acc_task6``, ...) share one panel, a
    line each, so a joint bAbI run draws one panel of 20 lines, not 20 panels.

    >>> _panels(["val_acc", "val_acc_task1", "val_acc_task6", "val_ece"])
    [('val_acc', [('val_acc', 'val_acc')]), ('val_acc per task', [('val_acc_task1', 'task 1'), \
('val_acc_task6', 'task 6')]), ('val_ece', [('val_ece', 'val_ece')])]
    """
    panels: dict[str, list[tuple[str, str]]] = {}
    for key in keys:
        match = _PER_TASK.fullmatch(key)
        if match:
            panels.setdefault(f"{match['metric']} per task", []).append(
                (key, f"task {match['task']}"))
        else:
            panels.setdefault(key, []).append((key, key))
    return list(panels.items())


def plot_curves(records: list[dict], path: Path) -> None:
    """Draw train loss and each validation metric against step into a PNG (atomically),
    on a grid of :data:`COLUMNS` panels a row."""
    panels = _panels([k for k in records[0] if k.startswith("val_") and "loss" not in k])
    columns = min(COLUMNS, 1 + len(panels))
    rows = -(-(1 + len(panels)) // columns)
    width, height = 5.0 * columns, 3.5 * rows  # inches
    fig = Figure(figsize=(width, height))
    # Fixed margins: a layout engine would cost more than the drawing itself.
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.2 / width, bottom=0.5 / height,
                        top=1 - 0.35 / height, wspace=0.3, hspace=0.45)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    steps = [r["step"] for r in records]

    def values(key: str) -> list[float]:  # None (no train steps since the last eval) -> a gap
        return [math.nan if r.get(key) is None else r[key] for r in records]

    for name in ("train_loss", "val_loss"):
        if name in records[0]:
            axes[0].plot(steps, values(name), marker=".", label=name)
    axes[0].legend()
    axes[0].set_title("loss")
    for ax, (title, lines) in zip(axes[1:], panels, strict=False):
        # past 10 lines the default colours repeat: tab20 keeps 20 apart
        colours = tab20.colors if len(lines) > 10 else [None] * len(lines)
        for (key, label), colour in zip(lines, colours, strict=False):
            ax.plot(steps, values(key), marker=".", label=label, color=colour)
        if len(lines) > 1:
            ax.legend(fontsize="x-small", ncol=2 if len(lines) > 6 else 1)
        ax.set_title(title)
    for ax in axes[1 + len(panels):]:
        ax.set_visible(False)  # the grid's last row may have spare places
    for ax in axes[: 1 + len(panels)]:
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))  # 16000 would overlap
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=80)
    os.replace(tmp, path)
