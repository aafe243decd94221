"""Where the tests find the real bAbI v1.2 data (never copied into the repo).

Set ``TEXTRNN_BABI_DIR`` to a ``tasks_1-20_v1-2`` folder; otherwise the first of
``data/babi`` in the repository (where ``textrnn data babi`` installs it) and the
team's shared copy next to the repository. Tests that need it are skipped when
none is there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLACES = (REPO / "data/babi/tasks_1-20_v1-2", REPO.parent / "shared/data/babi/tasks_1-20_v1-2")


def real_babi_dir() -> Path:
    """The real ``tasks_1-20_v1-2`` folder, or skip the calling test."""
    if "TEXTRNN_BABI_DIR" in os.environ:
        places = (Path(os.environ["TEXTRNN_BABI_DIR"]),)
    else:
        places = PLACES
    for root in places:
        if (root / "en").is_dir():
            return root
    pytest.skip(f"real bAbI data not found in {', '.join(map(str, places))} "
                "(textrnn data babi, or set TEXTRNN_BABI_DIR)")
