"""The terminal chat of ``textrnn chat``: a :class:`~textrnn.chat.ChatSession` over
stdin/stdout, with readline line editing and history at a terminal, pipes line by line."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

from textrnn.chat import HELP, ChatSession

# What only the terminal chat understands (ChatSession, shared with the web page, does not).
TERMINAL_HELP = "/quit (or Ctrl-D) ends the chat."
_QUIT = ("/quit", "/exit")


def repl(session: ChatSession, stdin: TextIO | None = None, stdout: TextIO | None = None,
         history: str | os.PathLike | None = None) -> int:
    """Chat over ``stdin``/``stdout`` until end of input or ``/quit``; works with pipes too.

    At a terminal the lines are edited with readline (arrows, Ctrl-A/E, Ctrl-R to search
    earlier lines), and ``history``, if given, is a file of those lines kept between chats;
    Ctrl-D ends the chat on a line of its own.
    """
    stdin = stdin or sys.stdin  # looked up per call, so a replaced sys.stdin is honoured
    stdout = stdout or sys.stdout
    interactive = stdin.isatty()
    if interactive:
        print("Chatbot ready. " + HELP.splitlines()[0] + " (/quit or Ctrl-D to leave)",
              file=stdout)
    with _prompter(stdin, stdout, history if interactive else None) as ask:
        while True:
            try:
                line = ask("> " if interactive else "")
            except EOFError:
                if interactive:  # the cursor is still after the prompt: end that line
                    print(file=stdout)
                break
            command = (line.split() or [""])[0].lower()
            if command in _QUIT:
                break
            reply = session.send(line)
            text = f"{reply.text}\n{TERMINAL_HELP}" if command == "/help" else reply.text
            print(text, file=stdout, flush=True)
    return 0


@contextlib.contextmanager
def _prompter(stdin: TextIO, stdout: TextIO,
              history: str | os.PathLike | None) -> Iterator[Callable[[str], str]]:
    """Yields ``ask(prompt) -> line``, which raises EOFError at the end of the input.

    For the process's own terminal that is :func:`input` with :mod:`readline` loaded, which
    gives it line editing; any other stream is read line by line here.
    """
    if not (stdin is sys.stdin and stdout is sys.stdout and stdin.isatty()):
        def ask(prompt: str) -> str:
            print(prompt, end="", file=stdout, flush=True)
            line = stdin.readline()
            if not line:
                raise EOFError
            return line

        yield ask
        return
    try:
        import readline  # here, not above: only a terminal chat needs it (none on Windows)
    except ImportError:
        readline = None
    if readline is not None and history and os.path.exists(history):
        with contextlib.suppress(OSError):  # an unreadable history is not worth a failure
            readline.read_history_file(history)
    try:
        yield input
    finally:
        if readline is not None and history:
            readline.set_history_length(1000)  # lines kept in the file
            with contextlib.suppress(OSError):
                readline.write_history_file(history)
