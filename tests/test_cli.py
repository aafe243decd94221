"""Tests for textrnn.cli, run in-process with ``main([...])`` and temporary directories."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest

from textrnn import __version__
from textrnn.cli import build_parser, classifier, data, lm, main

TINY_LM = [
    "--level",
    "char",
    "--embedding-size",
    "8",
    "--hidden-size",
    "16",
    "--num-layers",
    "1",
    "--batch-size",
    "4",
    "--bptt",
    "16",
    "--device",
    "cpu",
]


def _train_tiny(tiny_text: Path, out: Path) -> int:
    """A 5-step ``train lm`` on the tiny text into ``out``; returns the exit status."""
    return main(["train", "lm", "--data", str(tiny_text), "--out", str(out),
                 "--max-steps", "5", *TINY_LM])


@pytest.fixture
def trained(tiny_text, tmp_path):
    """Run directory of a 5-step ``train lm`` on the tiny text."""
    out = tmp_path / "run"
    assert _train_tiny(tiny_text, out) == 0
    return out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("textrnn: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_train_writes_a_run(tiny_text, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert _train_tiny(tiny_text, out) == 0
    assert {p.name for p in out.iterdir()} == {"best.pt", "last.pt", "metrics.jsonl", "curves.png"}
    captured = capsys.readouterr()
    assert "step 5: best val_loss" in captured.out
    assert "train step 5/5" in captured.err  # the progress goes to stderr, as log lines here


def test_train_resume_continues(trained, tiny_text, capsys) -> None:
    assert (
        main(
            [
                "train",
                "lm",
                "--data",
                str(tiny_text),
                "--out",
                str(trained),
                "--max-steps",
                "8",
                "--resume",
                *TINY_LM,
            ]
        )
        == 0
    )
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == [5, 8]


def test_eval_json(trained, tiny_text, capsys) -> None:
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(trained / "best.pt"),
                "--data",
                str(tiny_text),
                "--json",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"loss", "ppl", "bpc", "tokens"} and results["tokens"] > 500


def test_eval_text(trained, tiny_text, capsys) -> None:
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(trained / "best.pt"), "--data", str(tiny_text)]) == 0
    assert capsys.readouterr().out.startswith("loss ")


def test_sample(trained, capsys) -> None:
    capsys.readouterr()
    argv = [
        "sample",
        "--checkpoint",
        str(trained / "best.pt"),
        "--prompt",
        "Shall",
        "--max-tokens",
        "30",
        "--temperature",
        "0.9",
        "--top-k",
        "5",
        "--seed",
        "3",
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("Shall") and len(first) == len("Shall") + 30 + 1  # + print's \n
    assert main(argv) == 0
    assert capsys.readouterr().out == first  # same seed, same text


def _subcommand_paths(parser: argparse.ArgumentParser, prefix=()):
    yield list(prefix)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommand_paths(sub, (*prefix, name))


@pytest.mark.parametrize("path", list(_subcommand_paths(build_parser())), ids=" ".join)
def test_help_for_every_command(path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([*path, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: textrnn")
    assert "help=" not in out and "None)" not in out  # every flag has real help text


def test_every_flag_has_help() -> None:
    for path in _subcommand_paths(build_parser()):
        parser = build_parser()
        for name in path:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[name]
        for action in parser._actions:
            assert action.help, (path, action.dest)


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out


def test_bad_data_file_is_one_line_error(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\n\xff\xfe not utf-8\n")
    assert main(["train", "lm", "--data", str(bad), "--out", str(tmp_path / "r"), *TINY_LM]) == 2
    assert f"{bad}:2: not valid UTF-8" in _one_line_error(capsys)


def test_missing_data_file(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.txt"
    assert main(["train", "lm", "--data", str(missing), "--out", str(tmp_path / "r")]) == 2
    assert str(missing) in _one_line_error(capsys)


def test_too_little_data(tmp_path, capsys) -> None:
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    assert (
        main(
            ["train", "lm", "--data", str(short), "--out", str(tmp_path / "r"), "--batch-size", "8"]
        )
        == 2
    )
    assert f"{short}: " in _one_line_error(capsys)


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_missing_checkpoint(command, tiny_text, tmp_path, capsys) -> None:
    missing = tmp_path / "none.pt"
    argv = [command, "--checkpoint", str(missing)]
    argv += ["--data", str(tiny_text)] if command == "eval" else []
    assert main(argv) == 2
    assert f"{missing}: no such checkpoint file" in _one_line_error(capsys)


def test_corrupt_checkpoint(tiny_text, tmp_path, capsys) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00" * 100)
    assert main(["eval", "--checkpoint", str(corrupt), "--data", str(tiny_text)]) == 2
    assert f"{corrupt}: cannot read checkpoint" in _one_line_error(capsys)


def test_resume_without_a_run(tiny_text, tmp_path, capsys) -> None:
    out = tmp_path / "never"
    assert (
        main(["train", "lm", "--data", str(tiny_text), "--out", str(out), "--resume", *TINY_LM])
        == 2
    )
    assert str(out / "last.pt") in _one_line_error(capsys)


def test_bad_usage_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "lm", "--data"])
    assert info.value.code == 2


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys) -> None:
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path / "demo"),
                "--data-dir",
                str(tmp_path / "shk"),
                "--max-steps",
                "20",
                "--eval-every",
                "10",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "val bpc" in capsys.readouterr().out


ROOT = Path(__file__).parent.parent
OURS = ("sample", "score", "demo", "classify")  # and train lm/classifier, their eval, data


def _shell_commands(path: Path) -> list[list[str]]:
    """The ``textrnn ...`` command lines of the ```bash blocks of a Markdown file, as argv
    lists (continuation lines joined, quotes honoured, comments dropped)."""
    commands = []
    for block in path.read_text(encoding="utf-8").split("```")[1::2]:
        if not block.startswith("bash"):
            continue
        pending = ""
        for line in block.splitlines()[1:]:
            pending += line
            if pending.endswith("\\"):  # a continuation line
                pending = pending[:-1]
                continue
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the prompt goes on on the next line
                pending += "\n"
                continue
            pending = ""
            if words[:1] == ["textrnn"]:
                commands.append(words[1:])
    return commands


def _lm_and_classifier_commands() -> list[list[str]]:
    """The README's (and docs/results.md's) commands of the lm and classifier tasks."""
    found = [c for name in ("README.md", "docs/results.md") if (ROOT / name).is_file()
             for c in _shell_commands(ROOT / name)]
    trains = [c for c in found if c[:2] in (["train", "lm"], ["train", "classifier"])]
    runs = {c[c.index("--out") + 1] for c in trains}
    evals = [c for c in found if c[0] == "eval"
             and str(Path(c[c.index("--checkpoint") + 1]).parent) in runs]
    datas = [c for c in found if c[:2] in (["data", "shakespeare"], ["data", "melodies"],
                                           ["data", "reviews"], ["data", "ratings"])]
    return trains + evals + datas + [c for c in found if c[0] in OURS]


LM_AND_CLASSIFIER = _lm_and_classifier_commands()


def test_readme_has_the_commands() -> None:
    names = {" ".join(argv[:2]) if argv[0] in ("train", "data") else argv[0]
             for argv in LM_AND_CLASSIFIER}
    assert names >= {"demo", "train lm", "train classifier", "sample", "score", "eval",
                     "classify", "data melodies", "data shakespeare", "data reviews",
                     "data ratings"}


@pytest.mark.parametrize("argv", LM_AND_CLASSIFIER, ids=" ".join)
def test_readme_commands_parse(argv) -> None:
    """Every README command of the lm and classifier tasks parses as it is written."""
    args = build_parser().parse_args(argv)
    if argv[0] == "train":
        assert args.func is {"lm": lm, "classifier": classifier}[args.task].train
    elif argv[0] == "data":
        assert args.func.__module__ == data.__name__
    elif argv[0] != "eval":
        assert args.func.__module__ in (lm.__name__, classifier.__name__)
    if argv[0] == "sample" and "--abc" in argv:
        assert args.prompt == r"X:1\nM:4/4\nL:1/8\nK:G\nG" and args.abc == "tune.abc"
    if argv[0] == "sample" and "--max-tokens" in argv:  # the prompt holds a quoted line break
        assert args.prompt == "ROMEO:\n" and args.max_tokens == 400
    if argv[:2] == ["train", "lm"] and "--bptt" in argv:
        assert args.bptt == int(argv[argv.index("--bptt") + 1])


@pytest.mark.parametrize("argv", [
    ["eval", "--checkpoint", "c.pt", "--data", "d.txt"],
    ["sample", "--checkpoint", "c.pt"],
    ["score", "--checkpoint", "c.pt", "a", "b"],
    ["tag", "--checkpoint", "c.pt", "x"],
    ["classify", "--checkpoint", "c.pt", "x"],
    ["translate", "--checkpoint", "c.pt", "x"],
    ["demo"],
    *[["train", task, "--data", "d", "--out", "o"]
      for task in ("lm", "qa", "tagger", "classifier", "seq2seq")],
], ids=lambda argv: " ".join(argv[:2]) if argv[0] == "train" else argv[0])
def test_commands_default_to_one_thread_and_say_so(argv, capsys) -> None:
    """One measured default for --threads (see flags.add_device_flags), shown in the help."""
    parser = build_parser()
    assert parser.parse_args(argv).threads == 1
    with pytest.raises(SystemExit):
        parser.parse_args([*argv[: 2 if argv[0] == "train" else 1], "--help"])
    assert "(default: 1)" in " ".join(capsys.readouterr().out.split()).split("--threads")[-1]


def test_sample_max_lines_parses_and_refuses_negative(capsys) -> None:
    parser = build_parser()
    assert parser.parse_args(["sample", "--checkpoint", "c.pt"]).max_lines is None
    assert parser.parse_args(["sample", "--checkpoint", "c.pt", "--max-lines", "5"]).max_lines == 5
    with pytest.raises(SystemExit):
        parser.parse_args(["sample", "--checkpoint", "c.pt", "--max-lines", "-1"])
    assert "expected a whole number >= 0" in capsys.readouterr().err
