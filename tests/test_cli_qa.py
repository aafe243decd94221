"""The chatbot's commands, called in-process: data, train qa, eval, chat."""

from __future__ import annotations

import io
import json
import shutil
import sys

import pytest
from babi_paths import real_babi_dir

from textrnn import checkpoint
from textrnn.cli import main


def test_data_generate_then_train_eval_and_json(tmp_path, capsys):
    gen, run = tmp_path / "gen", tmp_path / "run"
    assert main(["data", "generate", "--out", str(gen), "--train", "400", "--test", "50",
                 "--kinds", "1,19"]) == 0
    assert "GENERATED" in capsys.readouterr().out
    assert main(["train", "qa", "--data", str(gen), "--out", str(run), "--max-steps", "5",
                 "--threads", "1"]) == 0
    for name in ("best.pt", "last.pt", "metrics.jsonl", "curves.png"):
        assert (run / name).is_file(), name
    # with no flags: unseen names as slots, and lists of them as list classes
    config = checkpoint.read(run / "best.pt")["model_config"]
    assert (config["list_slots"], config["slot_reading"]) == (3, "all")
    assert 1 <= config["entity_slots"] <= 20  # as many as the stories need
    assert (config["arch"], config["embedding_size"]) == ("qrn", 128)  # the QRN's width
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(gen), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results["tasks"]) == {"1", "19"}  # one task per generated kind
    row = results["tasks"]["19"]
    assert row["questions"] == 50 and 0 <= row["accuracy"] <= 1 and row["kind"] == "path-finding"
    assert row["error"] == pytest.approx(1 - row["accuracy"])
    assert results["mean_error"] == pytest.approx(
        (row["error"] + results["tasks"]["1"]["error"]) / 2)
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(gen)]) == 0
    table = capsys.readouterr().out
    assert "accuracy" in table and "mean error" in table and "path-finding" in table


def test_data_generate_refuses_a_kind_it_does_not_write(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["data", "generate", "--out", str(tmp_path), "--kinds", "1,4"])
    assert "the generator writes bAbI tasks 1,2,3,5" in capsys.readouterr().err
    for bad in ("0", "-3", "many"):
        with pytest.raises(SystemExit):
            main(["data", "generate", "--out", str(tmp_path), "--train", bad])
        assert "number of questions >= 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


def test_real_babi_tasks_table(tmp_path, capsys):
    root = real_babi_dir()
    data = tmp_path / "en"
    data.mkdir()
    for task in (1, 6):
        for f in (root / "en").glob(f"qa{task}_*"):
            shutil.copy(f, data)
    run = tmp_path / "run"
    assert main(["train", "qa", "--data", str(data), "--tasks", "1,6", "--out", str(run),
                 "--max-steps", "20", "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(data),
                 "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results["tasks"]) == {"1", "6"}  # the tasks it was trained on, by default
    assert all(r["questions"] == 1000 for r in results["tasks"].values())


def test_chat_command_reads_a_pipe(qa_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Mary moved to the bathroom.\nWhere is Mary?\n"))
    assert main(["chat", "--checkpoint", str(qa_checkpoint)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Noted") and "confidence" in out[1]


def test_data_babi_from_a_local_folder(tmp_path, capsys):
    src = tmp_path / "src" / "tasks_1-20_v1-2"
    for sub in ("en", "en-10k"):
        (src / sub).mkdir(parents=True)
        for f in (real_babi_dir() / sub).glob("qa1_*"):
            shutil.copy(f, src / sub)
    assert main(["data", "babi", "--from", str(src), "--out", str(tmp_path / "babi")]) == 0
    assert (tmp_path / "babi" / "tasks_1-20_v1-2" / "en-10k").is_dir()


@pytest.mark.parametrize("content,where", [
    ("1 Mary moved to the bathroom.\n2 Where is Mary?\tbathroom\n", ":2:"),  # 2 tab fields
    ("x Mary moved.\n", ":1:"),
])
def test_malformed_data_is_one_line_naming_file_and_line(tmp_path, capsys, content, where):
    bad = tmp_path / "qa1_bad_train.txt"
    bad.write_text(content)
    code = main(["train", "qa", "--data", str(bad), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(bad) + where in err


def test_missing_task_and_bad_task_list(tmp_path, capsys):
    gen = tmp_path / "folder"
    gen.mkdir()
    (gen / "qa1_x_test.txt").write_text("1 Mary went home.\n2 Where is Mary?\thome\t1\n")
    assert main(["train", "qa", "--data", str(gen), "--out", str(tmp_path / "r")]) == 2
    assert "no train file for task 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "qa", "--data", str(gen), "--tasks", "0,99", "--out", str(tmp_path)])


def test_a_run_folder_that_holds_a_run_is_refused_unless_resumed_or_overwritten(tmp_path,
                                                                               capsys):
    gen, run = tmp_path / "gen", tmp_path / "run"
    assert main(["data", "generate", "--out", str(gen), "--train", "200", "--test", "20",
                 "--kinds", "1"]) == 0
    argv = ["train", "qa", "--data", str(gen), "--out", str(run), "--max-steps", "2"]
    assert main(argv) == 0
    before = (run / "best.pt").read_bytes()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "--overwrite" in err
    assert (run / "best.pt").read_bytes() == before  # nothing replaced
    assert main([*argv, "--resume"]) == 0
    assert main([*argv, "--overwrite"]) == 0
