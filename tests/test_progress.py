"""Tests for textrnn.progress: a live bar on terminals, plain periodic lines in log files."""

from __future__ import annotations

import io
import re

from textrnn.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_mode_prints_plain_lines_by_time() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(total=1000, desc="train", stream=stream, interval=10.0, clock=clock)
    assert not progress.tty  # a StringIO is not a terminal
    for _ in range(120):
        clock.now += 0.125  # 120 steps over 15 s: one line, at the 10 s mark (step 80)
        progress.update(loss=2.31, tokens=250)
    lines = stream.getvalue().splitlines()
    assert lines == ["train step 80/1000 loss 2.310 2000 tok/s 10s"]
    progress.close()  # the final state is always reported
    assert stream.getvalue().splitlines()[-1] == "train step 120/1000 loss 2.310 2000 tok/s 15s"
    assert "\r" not in stream.getvalue()


def test_log_mode_prints_every_n_steps_and_at_the_end() -> None:
    stream, clock = io.StringIO(), FakeClock()
    with Progress(total=10, stream=stream, every=4, clock=clock) as progress:
        for step in range(10):
            clock.now = float(step)
            progress.update(loss=1.0)
    steps = [int(m) for m in re.findall(r"step (\d+)/10", stream.getvalue())]
    assert steps == [4, 8, 10]  # the last one because the total is reached; close adds none


def test_log_mode_without_total_or_loss() -> None:
    stream = io.StringIO()
    with Progress(total=None, stream=stream, initial=5) as progress:
        progress.update(3)
    assert stream.getvalue() == "step 8 0s\n"


def test_write_goes_to_the_stream_in_both_modes() -> None:
    for stream in (io.StringIO(), FakeTTY()):
        with Progress(total=3, stream=stream) as progress:
            progress.write("step 1 val_loss 2.0000")
        assert "step 1 val_loss 2.0000\n" in stream.getvalue()


def test_tty_mode_draws_a_bar_with_loss_and_speed() -> None:
    stream, clock = FakeTTY(), FakeClock()
    with Progress(total=50, desc="train", stream=stream, clock=clock) as progress:
        assert progress.tty
        for _ in range(50):
            clock.now += 0.1
            progress.update(loss=1.234, tokens=100)
    out = stream.getvalue()
    assert "\r" in out  # a live bar redraws in place
    assert "50/50" in out and "loss=1.234" in out and "tok/s=1000" in out
    assert "train step" not in out  # no log lines on a terminal


def test_tty_can_be_forced_off_for_a_terminal() -> None:
    stream = FakeTTY()
    with Progress(total=2, stream=stream, tty=False) as progress:
        progress.update(2, loss=0.5)
    assert stream.getvalue() == "step 2/2 loss 0.500 0s\n"
