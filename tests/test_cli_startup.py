"""Start-up: the parser and the help of ``textrnn`` and ``textrnn data`` import no torch.

torch takes about 2 s to import, which was nearly all of ``textrnn --help``'s 2.5 s. These
check which modules a fresh interpreter has loaded, not the time, so a busy machine cannot
make them flaky. Each runs in a subprocess: this one has long imported torch.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "matplotlib", "music21", "fastapi", "uvicorn")


def loaded_after(code: str) -> set[str]:
    """The heavy top-level packages a fresh interpreter has imported after running ``code``."""
    check = f"""
import sys
{code}
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))))
"""
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_building_the_parser_imports_no_torch():
    assert loaded_after("import textrnn.cli; textrnn.cli.build_parser(lazy=True)") == set()


@pytest.mark.parametrize("argv", [["--help"], ["data", "--help"], ["train", "--help"],
                                  ["--version"]], ids=" ".join)
def test_help_imports_no_torch(argv):
    code = f"""
import contextlib, io
from textrnn.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main({argv!r})
    except SystemExit as done:
        assert done.code == 0, done.code
assert out.getvalue(), "no help printed"
"""
    assert loaded_after(code) == set()


def test_import_textrnn_is_light_and_its_names_still_load():
    assert loaded_after("import textrnn; textrnn.load; textrnn.__version__") == set()
    assert "torch" in loaded_after(
        "import textrnn; assert textrnn.LSTM.__name__ == 'LSTM'; from textrnn import Vocab")


def test_a_commands_own_flags_are_there_when_it_runs(capsys):
    """The lazily filled parsers: ``train qa --help`` lists the trainer's and the model's
    flags, and a bad flag there is still argparse's usage error."""
    from textrnn.cli import main

    with pytest.raises(SystemExit) as done:
        main(["train", "qa", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--max-steps" in out and "--arch" in out
    with pytest.raises(SystemExit) as done:
        main(["data", "bible", "--src", "xx", "--tgt", "fr-lsg"])
    assert done.value.code == 2
    assert "invalid choice: 'xx'" in capsys.readouterr().err
