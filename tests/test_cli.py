"""Tests for textrnn.cli, run in-process with ``main([...])`` and temporary directories."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from textrnn import __version__
from textrnn.cli import build_parser, main

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
