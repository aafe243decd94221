"""What the pictures of :mod:`textrnn.gates`, :mod:`textrnn.vanishing_plots` and
:mod:`textrnn.neurons` share: a headless figure, an atomic PNG write, token labels.

matplotlib is imported here, so import this module only where a picture is drawn
(``textrnn --help`` must not pay for it).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from textrnn import atomic

# Characters a tick label could not show: a space would be an empty tick, a line end
# would break the label in two.
_SHOWN = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on the Agg canvas (no display needed);
    pyplot is never imported, so no global state and no GUI backend."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically: a reader sees the old file or the
    whole new one, never half a picture (a temp file in the same folder, then a rename).

    Returns:
        ``path`` as a Path; its folder is made if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_file(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    return path


def token_label(token: str) -> str:
    """A token as a tick label: whitespace made visible.

    >>> [token_label(t) for t in ["a", " ", "\\n", "word"]]
    ['a', '␣', '↵', 'word']
    """
    return "".join(_SHOWN.get(ch, ch) for ch in token)
