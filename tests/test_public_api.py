"""The package's public names: exactly ``__all__``, each importable and documented."""

from __future__ import annotations

import textrnn

EXPECTED = {
    "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell", "Vocab", "__version__",
    "detach_state", "load",
}


def test_all_matches_the_exported_names():
    assert set(textrnn.__all__) == EXPECTED
    public = {name for name in vars(textrnn) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(textrnn, name)).__name__ == "module"}
    extras = public - modules - set(textrnn.__all__) - {"annotations"}
    assert not extras, f"public names missing from __all__: {sorted(extras)}"


def test_every_public_callable_has_a_docstring():
    for name in textrnn.__all__:
        obj = getattr(textrnn, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), name
