"""DistributedDataParallel under torchrun: 2 CPU processes (gloo on loopback) against one.

Each test launches real processes (``torchrun --standalone``, which picks free ports, or
two ``python -m textrnn`` with torchrun's variables set by hand) on a tiny GRU classifier
over a generated corpus of 57 texts: with ``--batch-size 4`` that is 15 batches an
epoch, so an epoch's last step leaves rank 1 without a batch, and the 1-text batch
meets a 4-text one in some step.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from textrnn import checkpoint, distributed
from textrnn.pipelines import classifier
from textrnn.train import TrainConfig, fit

SEED = 5
MODEL = {"embedding_size": 8, "hidden_size": 8}
TRAIN_FLAGS = ["--batch-size", "4", "--min-count", "1", "--embedding-size", "8",
               "--hidden-size", "8", "--threads", "1", "--device", "cpu", "--seed", str(SEED),
               "--dist-timeout", "20"]
LAUNCH_TIMEOUT = 120  # seconds; a hang fails the test instead of the suite


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A folder with train.csv (57 texts) and valid.csv (20): a word of the label's
    sentiment among filler words."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    good, bad = "good great fine lovely superb".split(), "bad awful dull boring poor".split()
    filler = "the film was and a plot it story acting very".split()

    def row() -> str:
        label = rng.choice(["pos", "neg"])
        words = rng.choices(filler, k=rng.randint(2, 8))
        words.insert(rng.randint(0, len(words)), rng.choice(good if label == "pos" else bad))
        return f"{' '.join(words)},{label}"

    for name, n in (("train.csv", 57), ("valid.csv", 20)):
        (folder / name).write_text("text,label\n" + "".join(row() + "\n" for _ in range(n)))
    return folder


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "textrnn", "train", "classifier", "--data", str(corpus / "train.csv"),
            "--valid", str(corpus / "valid.csv"), "--out", str(out), *TRAIN_FLAGS, *extra]


def _torchrun(corpus: Path, out: Path, *extra: str, launcher: tuple[str, ...] = ()):
    """``torchrun --standalone --nproc-per-node 2 -m textrnn train classifier ...``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", *launcher, *_train_args(corpus, out, *extra)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.read(path)["state_dict"]


def _assert_same_weights(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if name.endswith("_extra_state"):  # e.g. the LM's carried state: {"state": [h]}
            _assert_same_weights({str(i): t for i, t in enumerate(a[name].get("state", []))},
                                 {str(i): t for i, t in enumerate(b[name].get("state", []))},
                                 atol)
            continue
        assert torch.allclose(a[name], b[name], rtol=0, atol=atol), (
            name, (a[name] - b[name]).abs().max().item())


class _DoubleBatches:
    """One process reading what 2 ranks read together: batches 2s and 2s+1 of the same
    epoch order, as one batch (the last step: the last batch alone)."""

    def __init__(self, data) -> None:
        self.data = data  # a BucketBatches

    def set_epoch(self, epoch: int) -> None:
        self.data.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self.data) // 2)

    def __iter__(self):
        plan = self.data.batches()
        for s in range(0, len(plan), 2):
            yield self.data.collate([i for batch in plan[s : s + 2] for i in batch])


def _build(corpus: Path, batch_size: int, dropout: float):
    return classifier.build(corpus / "train.csv", valid=corpus / "valid.csv", min_count=1,
                            batch_size=batch_size, seed=SEED, dropout=dropout, **MODEL)


@pytest.fixture(scope="module")
def ddp_run(corpus, tmp_path_factory) -> Path:
    """A 2-process run without dropout: 2 epochs of 8 steps."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    done = _torchrun(corpus, out, "--epochs", "2", "--dropout", "0")
    assert "2 processes x --batch-size 4 = a global batch of 8" in done.stderr
    return out


def test_two_processes_take_the_steps_of_one_with_double_batch(corpus, ddp_run, tmp_path):
    run = _build(corpus, batch_size=4, dropout=0.0)
    cfg = TrainConfig(epochs=2, eval_every=0, device="cpu", threads=1, seed=SEED)
    result = fit(run.model, _DoubleBatches(run.train_data), run.val_data, cfg, tmp_path / "one")
    assert result["step"] == 16 == checkpoint.read(ddp_run / "last.pt")["step"]
    _assert_same_weights(_weights(ddp_run / "last.pt"), run.model.state_dict())


def test_ddp_checkpoint_loads_in_one_process(ddp_run, corpus):
    bundle = checkpoint.load(ddp_run / "best.pt", task="classifier")
    plain = _build(corpus, batch_size=4, dropout=0.0).model
    assert list(bundle.model.state_dict()) == list(plain.state_dict())  # no "module." prefix
    raw = checkpoint.read(ddp_run / "last.pt", resume=True)
    assert raw["extra"]["world_size"] == 2 and len(raw["rng"]["ranks"]) == 2
    # Only rank 0 wrote: one metrics line per evaluation, no stray files.
    assert len((ddp_run / "metrics.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in ddp_run.iterdir()) == [
        "best.pt", "curves.png", "last.pt", "metrics.jsonl"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_by_hand(corpus: Path, out: Path, *extra: str) -> list[subprocess.Popen]:
    """Two ranks with torchrun's variables set by hand, so that no agent stops the
    survivor when one dies: what it does on its own is under test."""
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = {**_env(), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(subprocess.Popen([sys.executable, *_train_args(corpus, out, *extra)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return procs


def _wait_for(path: Path, procs: list[subprocess.Popen], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        assert all(p.poll() is None for p in procs), "a rank ended early"
        time.sleep(0.005)


RESUMABLE = ("--epochs", "4", "--eval-every", "3", "--dropout", "0.3")


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory) -> Path:
    """A 2-process run with dropout, straight through (32 steps)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    _torchrun(corpus, out, *RESUMABLE)
    return out


def test_killed_rank_stops_the_other_then_resume_matches(corpus, uninterrupted, tmp_path):
    out = tmp_path / "run"
    rank0, rank1 = _launch_by_hand(corpus, out, *RESUMABLE)
    try:
        _wait_for(out / "last.pt", [rank0, rank1])
        rank1.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _, err = rank0.communicate(timeout=40)  # --dist-timeout 20, and start-up slack
    finally:
        for p in (rank0, rank1):
            p.kill()
            p.communicate()
    assert time.monotonic() - killed_at < 30
    assert rank0.returncode == 2, err[-2000:]
    assert "rank 0: lost the other training processes" in err, err[-2000:]
    assert "--resume" in err
    assert checkpoint.read(out / "last.pt")["step"] < 32  # stopped mid-run
    _torchrun(corpus, out, *RESUMABLE, "--resume")
    assert checkpoint.read(out / "last.pt")["step"] == 32
    _assert_same_weights(_weights(out / "last.pt"), _weights(uninterrupted / "last.pt"))


LM_FLAGS = ["--level", "char", "--bptt", "8", "--batch-size", "4", "--embedding-size", "8",
            "--hidden-size", "8", "--threads", "1", "--device", "cpu", "--seed", str(SEED),
            "--dist-timeout", "20", "--epochs", "3", "--eval-every", "4", "--dropout", "0.3"]


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    """A folder with train.txt and valid.txt: random lines of words, read by characters
    (with --batch-size 4 and --bptt 8 each rank's piece is 18 windows an epoch)."""
    folder = tmp_path_factory.mktemp("text")
    rng = random.Random(1)
    words = "to be or not that is the question whether tis nobler in mind".split()
    for name, n in (("train.txt", 60), ("valid.txt", 10)):
        lines = (" ".join(rng.choices(words, k=4)) for _ in range(n))
        (folder / name).write_text("".join(line + "\n" for line in lines))
    return folder


def _lm_args(text: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "textrnn", "train", "lm", "--data", str(text / "train.txt"),
            "--valid", str(text / "valid.txt"), "--out", str(out), *LM_FLAGS, *extra]


def _launch(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env={**_env(), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _torchrun_lm(text: Path, out: Path, *extra: str) -> None:
    agent = _launch(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                     *_lm_args(text, out, *extra)])
    _, err = agent.communicate(timeout=LAUNCH_TIMEOUT)
    assert agent.returncode == 0, err[-3000:]


def test_lm_killed_and_resumed_matches_the_straight_run(text, tmp_path):
    """The LM carries each rank's hidden state across windows: a resume must give every
    rank its own (and its own place in its piece of the streams), not rank 0's."""
    _torchrun_lm(text, tmp_path / "straight")
    out = tmp_path / "run"
    port = str(_free_port())
    ranks = [_launch(_lm_args(text, out), RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2",
                     LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
             for r in range(2)]
    try:
        _wait_for(out / "last.pt", ranks)
        ranks[1].send_signal(signal.SIGKILL)
        ranks[0].communicate(timeout=40)
    finally:
        for p in ranks:
            p.kill()
            p.communicate()
    stopped = checkpoint.read(out / "last.pt")
    total = checkpoint.read(tmp_path / "straight" / "last.pt")["step"]
    assert 0 < stopped["step"] < total == 54, stopped["step"]  # 3 epochs of 18 windows
    assert "_extra_state" in "".join(stopped["state_dict"])  # the LM carries its state
    _torchrun_lm(text, out, "--resume")
    assert checkpoint.read(out / "last.pt")["step"] == total
    _assert_same_weights(_weights(out / "last.pt"), _weights(tmp_path / "straight" / "last.pt"))


def test_elastic_restart_resumes_from_last(corpus, uninterrupted, tmp_path):
    """torchrun --max-restarts starts both workers again after one is killed; they take
    up last.pt (the same command line, no --resume) and end as the straight run."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "--max-restarts", "1", "--monitor-interval", "0.1",
           *_train_args(corpus, out, *RESUMABLE)]
    agent = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        _wait_for(out / "last.pt", [agent])
        workers = subprocess.run(["pgrep", "-P", str(agent.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[-1]), signal.SIGKILL)
        _, err = agent.communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        agent.kill()
    assert agent.returncode == 0, err[-3000:]
    assert checkpoint.read(out / "last.pt")["step"] == 32
    _assert_same_weights(_weights(out / "last.pt"), _weights(uninterrupted / "last.pt"))


def test_single_process_checkpoint_resumes_under_ddp(corpus, tmp_path):
    out = tmp_path / "run"
    run = _build(corpus, batch_size=4, dropout=0.0)
    fit(run.model, run.train_data, run.val_data,
        TrainConfig(max_steps=4, eval_every=4, device="cpu", threads=1, seed=SEED), out)
    done = _torchrun(corpus, out, "--dropout", "0", "--max-steps", "8", "--eval-every", "4",
                     "--resume")
    assert "resuming a run of 1 process(es) with 2" in done.stderr
    raw = checkpoint.read(out / "last.pt", resume=True)
    # 4 single steps read batches 0-3; 4 DDP steps read 4-11 of the same epoch.
    assert (raw["step"], raw["epoch"], raw["batch_in_epoch"]) == (8, 0, 12)
    assert raw["extra"]["world_size"] == 2


def test_round_robin_shares_and_positions():
    batches = [{"x": torch.zeros(n, 1)} for n in (4, 4, 4, 1, 4)]
    ranks = [list(distributed.RoundRobin(batches, rank, 2).steps()) for rank in range(2)]
    assert [s.position for s in ranks[0]] == [2, 4, 5] == [s.position for s in ranks[1]]
    assert [s.share for s in ranks[0]] == [1.0, 2 * 4 / 5, 2.0]
    assert [s.share for s in ranks[1]] == [1.0, 2 * 1 / 5, 0.0]
    assert ranks[1][2].batch is batches[4]  # no batch left: one with share 0
    # A resume 3 batches in starts the next step at batch 3, on every rank alike.
    later = list(distributed.RoundRobin(batches, 0, 2).steps(start=3))
    assert [(s.position, s.batch is batches[3]) for s in later] == [(5, True)]
    assert len(distributed.RoundRobin(batches, 0, 2)) == 3


def test_stream_shard_splits_every_stream_in_time():
    from textrnn.data.text import StreamBatches

    data = StreamBatches(torch.arange(18), batch_size=2, bptt=2)  # rows 0..8, 9..17
    pieces = [list(distributed.shard(data, rank, 2).steps()) for rank in range(2)]
    assert [len(p) for p in pieces] == [2, 2]  # (9 - 1) // 2 = 4 inputs each: 2 windows
    assert pieces[0][0].batch["x"].tolist() == [[0, 1], [9, 10]]
    assert pieces[1][0].batch["x"].tolist() == [[4, 5], [13, 14]]
    assert pieces[1][1].batch["y"].tolist() == [[7, 8], [16, 17]]  # the piece's last target
    assert [s.batch["reset"] for s in pieces[1]] == [True, False]
