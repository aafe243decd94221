"""The terminal chat (``textrnn chat``'s :func:`textrnn.cli.terminal.repl`): what it says at a
terminal that a pipe does not see. A stand-in answerer: no model is needed for these."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest

from textrnn.chat import ChatSession
from textrnn.cli.terminal import repl


class Terminal(io.StringIO):
    """Typed lines that say they come from a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def session() -> ChatSession:
    return ChatSession(SimpleNamespace(memory_size=50, entity_slots=0, unknown=lambda text: []))


def test_help_says_how_to_leave(session):
    stdout = io.StringIO()
    assert repl(session, io.StringIO("/help\n"), stdout) == 0
    out = stdout.getvalue()
    assert "/story" in out and "/reset" in out and "/quit" in out and "Ctrl-D" in out
    assert "/quit" not in session.send("/help").text  # the web page's help: no /quit there


def test_ctrl_d_at_a_terminal_ends_the_line(session):
    stdout = io.StringIO()
    assert repl(session, Terminal("Mary moved to the bathroom.\n"), stdout) == 0
    out = stdout.getvalue()
    assert out.startswith("Chatbot ready.")
    assert out.endswith("> \n")  # the prompt Ctrl-D was typed at, then a new line
    assert "Noted (1 sentence" in out


def test_a_pipe_gets_no_prompt_and_no_extra_line(session):
    stdout = io.StringIO()
    assert repl(session, io.StringIO("Mary moved to the bathroom."), stdout) == 0
    assert stdout.getvalue() == "Noted (1 sentence; 1 in the story).\n"


def test_the_process_terminal_reads_through_readline_and_keeps_history(
        session, monkeypatch, tmp_path, capsys):
    history = tmp_path / "history"
    monkeypatch.setattr(sys, "stdin", Terminal("Mary moved to the bathroom.\n/quit\n"))
    monkeypatch.delitem(sys.modules, "readline", raising=False)
    assert repl(session, history=history) == 0
    assert "readline" in sys.modules  # imported for this chat only, not by textrnn.chat
    assert history.is_file()
    out = capsys.readouterr().out
    assert "Noted (1 sentence" in out and not out.endswith("> \n")  # /quit: no Ctrl-D line
