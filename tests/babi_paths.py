"""Where the tests find the real bAbI v1.2 data (never copied into the repo).

Set ``TEXTRNN_BABI_DIR`` to a ``tasks_1-20_v1-2`` folder; by default it is the
team's shared copy next to the repository. Tests that need it are skipped
when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/babi/tasks_1-20_v1-2"


def real_babi_dir() -> Path:
    """The real ``tasks_1-20_v1-2`` folder, or skip the calling test."""
    root = Path(os.environ.get("TEXTRNN_BABI_DIR", DEFAULT))
    if not (root / "en").is_dir():
        pytest.skip(f"real bAbI data not found at {root} (set TEXTRNN_BABI_DIR)")
    return root
