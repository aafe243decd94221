"""Crafted checkpoints whose header fields have the wrong type: every command that reads a
checkpoint refuses them in one line naming the file and the field, never a traceback."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from textrnn import checkpoint
from textrnn.cli import main
from textrnn.errors import CheckpointError

# The flags of a tiny `train lm` (as in test_cli.py): a few seconds on one thread.
TINY_LM = ["--level", "char", "--embedding-size", "8", "--hidden-size", "16", "--num-layers",
           "1", "--batch-size", "4", "--bptt", "16", "--device", "cpu", "--threads", "1"]

# (field, a wrongly typed value): each must be refused by the header check.
BAD_FIELDS = [
    ("task", ["lm"]),
    ("task", 3),
    ("metrics", [0.5]),
    ("metrics", {"val_loss": "low"}),
    ("step", "3"),
    ("step", -1),
    ("step", 2.5),
    ("step", True),
    ("epoch", "0"),
    ("batch_in_epoch", None),
    ("model_config", [16, 32]),
    ("model_config", "hidden_size=32"),
    ("vocabs", ["a", "b"]),
    ("vocabs", {"tokens": ["a", "b"]}),
    ("state_dict", [1, 2]),
    ("state_dict", {"embedding.weight": "x"}),
    ("optimizer", "adam"),
    ("scheduler", [1]),
    ("rng", 5),
    ("train_config", "lr=0.1"),
    ("extra", [1]),
    ("format", "1"),
    ("format", 1.0),
    ("format", None),
]


@pytest.fixture
def good_raw(make_tiny_lm, tmp_path) -> dict:
    """The dict of a valid tiny-LM checkpoint, to spoil one field of."""
    model, _, _, _ = make_tiny_lm()
    path = checkpoint.save(tmp_path / "good.pt", model=model, step=3, metrics={"val_loss": 2.0})
    return torch.load(path, weights_only=True)


def _spoiled(raw: dict, path: Path, field: str, value) -> Path:
    torch.save({**raw, field: value}, path)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("textrnn: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS, ids=lambda x: repr(x)[:20])
def test_load_refuses_a_wrongly_typed_field_naming_it(good_raw, tmp_path, field, value) -> None:
    path = _spoiled(good_raw, tmp_path / "bad.pt", field, value)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: bad checkpoint: '{field}' should be "), text
    assert "\n" not in text


def test_a_string_format_is_a_wrong_type_not_a_newer_format(good_raw, tmp_path) -> None:
    path = _spoiled(good_raw, tmp_path / "bad.pt", "format", "1")
    with pytest.raises(CheckpointError, match="'format' should be an int, not a str") as info:
        checkpoint.load(path)
    assert "newer" not in str(info.value)


@pytest.mark.parametrize(
    ("what", "holding"),
    [("a class", argparse.Namespace(lr=0.1)), ("a function", os.system)],
)
def test_unsafe_pickles_are_refused_as_unsafe_not_corrupt(good_raw, tmp_path, what,
                                                         holding) -> None:
    path = _spoiled(good_raw, tmp_path / "evil.pt", "extra", {"payload": holding})
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: refused: unsafe content"), text
    assert "corrupt" not in text and "\n" not in text


def test_the_old_pickle_format_with_a_global_is_refused_as_unsafe(good_raw, tmp_path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({**good_raw, "extra": argparse.Namespace()}, path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="refused: unsafe content.*argparse.Namespace"):
        checkpoint.read(path)


def _command(name: str, path: Path, tiny_text: Path) -> list[str]:
    """``name``'s command line reading the checkpoint ``path``."""
    text = {"eval": ["--data", str(tiny_text)], "score": ["a b"], "tag": ["John runs"],
            "classify": ["good film"], "translate": ["hello"]}.get(name, [])
    return [name, "--checkpoint", str(path), *text, "--device", "cpu"]


@pytest.mark.parametrize("field", ["task", "metrics"])
@pytest.mark.parametrize(
    "command", ["eval", "chat", "serve", "sample", "score", "tag", "classify", "translate"]
)
def test_every_command_that_reads_a_checkpoint_gives_one_line(
        good_raw, tmp_path, tiny_text, capsys, command, field) -> None:
    # A list where a str or a dict belongs: before, a TypeError traceback in each of them.
    path = _spoiled(good_raw, tmp_path / "bad.pt", field, ["lm"])
    assert main(_command(command, path, tiny_text)) == 2
    assert f"{path}: bad checkpoint: '{field}' should be" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("step", "3", "'step' should be an int >= 0"), ("extra", [1], "'extra' should be a dict"),
     ("optimizer", None, "holds no optimizer state")],
)
def test_train_resume_from_a_bad_last_checkpoint_gives_one_line(
        tiny_text, tmp_path, capsys, field, value, message) -> None:
    out = tmp_path / "run"
    argv = ["train", "lm", "--data", str(tiny_text), "--out", str(out), "--max-steps", "3",
            *TINY_LM]
    assert main(argv) == 0
    raw = torch.load(out / "last.pt", weights_only=True)
    _spoiled(raw, out / "last.pt", field, value)
    capsys.readouterr()
    assert main([*argv, "--max-steps", "6", "--resume"]) == 2
    err = _one_line_error(capsys)
    assert f"{out / 'last.pt'}: " in err and message in err, err
