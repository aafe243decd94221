"""One progress reporter for training and other long loops, for terminals and log files.

On a terminal (the stream is a TTY) it draws a live tqdm bar with the loss and
the speed as postfix::

    train:  12%|██▍            | 120/1000 [00:08<01:01, 14.3step/s, loss=2.310, tok/s=1450]

When the stream is not a TTY (``train ... > run.log``, CI), a bar full of
carriage returns would make the log unreadable, so it prints plain lines
instead: one every ``every`` steps or every ``interval`` seconds, whichever
comes first, and one at the end::

    train step 120/1000 loss 2.310 1450 tok/s 8s

Usage::

    with Progress(total=1000, desc="train") as progress:
        for batch in batches:
            ...
            progress.update(loss=loss.item(), tokens=batch_tokens)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Report steps, loss and tokens/s either as a live bar or as periodic log lines.

    Args:
        total: the step count at which the work is done, or ``None`` if unknown.
        desc: a short label printed before each line / the bar (e.g. ``"train"``).
        stream: where to write; ``sys.stderr`` by default (read at call time, so
            pytest's capture works).
        initial: the step to start counting from (a resumed run starts past 0).
        interval: in log mode, the most seconds between two lines.
        every: in log mode, also print a line every ``every`` steps (0 = only by time).
        tty: force the bar (``True``) or the log lines (``False``); ``None`` asks the stream.
        clock: a monotonic clock in seconds; tests pass a fake one.
        enabled: False draws and prints nothing (the ranks past 0 of a DDP run).
    """

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        stream: TextIO | None = None,
        initial: int = 0,
        interval: float = 10.0,
        every: int = 0,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.total, self.desc, self.step = total, desc, initial
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.interval, self.every, self.clock = interval, every, clock
        self.tty = enabled and (_is_tty(self.stream) if tty is None else tty)
        self.loss: float | None = None
        self.tokens_per_s: float | None = None
        self._start = self._last_time = clock()
        self._tokens = 0  # tokens since the last report (the speed is measured over that window)
        self._printed_step = initial  # the step of the last log line
        self._bar = None
        if self.tty:
            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                file=self.stream,
                unit="step",
                dynamic_ncols=True,
                leave=True,
            )

    def update(self, n: int = 1, loss: float | None = None, tokens: int = 0) -> None:
        """Count ``n`` more steps, with the latest training loss and the tokens they used."""
        self.step += n
        if not self.enabled:
            return
        self._tokens += tokens
        if loss is not None:
            self.loss = loss
        now = self.clock()
        if self._bar is not None:
            # Refresh the speed at most twice a second, so it does not jitter.
            if now - self._last_time >= 0.5:
                self._measure(now)
            self._bar.set_postfix(self._postfix(), refresh=False)
            self._bar.update(n)
            return
        due_by_steps = self.every > 0 and self.step % self.every == 0
        if due_by_steps or now - self._last_time >= self.interval or self.step == self.total:
            self._measure(now)
            self._print_line()

    def write(self, message: str) -> None:
        """Print one line (e.g. evaluation results) without breaking the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar (terminal) or print the final line if not printed yet (log)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.step != self._printed_step:
            self._measure(self.clock())
            self._print_line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _measure(self, now: float) -> None:
        if self._tokens and now > self._last_time:
            self.tokens_per_s = self._tokens / (now - self._last_time)
        self._tokens, self._last_time = 0, now

    def _postfix(self) -> dict[str, str]:
        postfix = {}
        if self.loss is not None:
            postfix["loss"] = f"{self.loss:.3f}"
        if self.tokens_per_s is not None:
            postfix["tok/s"] = f"{self.tokens_per_s:.0f}"
        return postfix

    def _print_line(self) -> None:
        total = "" if self.total is None else f"/{self.total}"
        parts = [self.desc] if self.desc else []
        parts.append(f"step {self.step}{total}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.0f} tok/s")
        parts.append(f"{self._last_time - self._start:.0f}s")
        self._printed_step = self.step
        print(" ".join(parts), file=self.stream, flush=True)
