"""Floats as people read them in JSON output: ``0.9905``, not ``0.9904999732971191``.

A float32 probability or accuracy turned into a Python float carries digits no
measurement holds (the noise of its binary form). The JSON that ``textrnn eval --json``,
``textrnn classify --json`` and ``textrnn serve`` print rounds every float to
:data:`DIGITS` decimals; the values kept in checkpoints and metrics files are not rounded.
"""

from __future__ import annotations

from typing import Any

DIGITS = 4  # decimals of a float in JSON output: 0.01% steps for an accuracy


def round_floats(value: Any, digits: int = DIGITS) -> Any:
    """``value`` with every float in it, however nested in dicts, lists and tuples, rounded.

    Ints, bools, strings and None pass through; NaN and infinities stay as they are.

    >>> round_floats({"accuracy": 0.9904999732971191, "counts": [3, 0.1 + 0.2], "ok": True})
    {'accuracy': 0.9905, 'counts': [3, 0.3], 'ok': True}
    """
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: round_floats(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(item, digits) for item in value]
    return value
