"""A run folder's record of training: ``metrics.jsonl`` and ``curves.png``.

One JSON line per evaluation, appended as it comes (a killed run keeps every
line written), and the curves redrawn from the records held in memory, so an
evaluation costs one append and one drawing, never a re-read of the file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


class RunLog:
    """The metrics and curves of the run in ``out``.

    Args:
        out: the run folder (it exists).
        resume: keep the lines of the run being resumed; otherwise a fresh run in an
            old folder starts a new ``metrics.jsonl`` (it must not append to the old one).
    """

    def __init__(self, out: Path, resume: bool = False) -> None:
        self.metrics_path, self.curves_path = out / "metrics.jsonl", out / "curves.png"
        self.records: list[dict] = []
        if not resume:
            self.metrics_path.unlink(missing_ok=True)
        elif self.metrics_path.is_file():
            with open(self.metrics_path, encoding="utf-8") as f:
                self.records = [json.loads(line) for line in f if line.strip().endswith("}")]

    def append(self, record: dict) -> None:
        """Write one evaluation's record and redraw the curves."""
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.records.append(record)
        plot_curves(self.records, self.curves_path)


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
