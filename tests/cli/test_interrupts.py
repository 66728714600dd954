"""Ctrl-C ends every command with one line and exit code 130, whatever the interrupt became on its way up."""

from __future__ import annotations

import pytest

import sdeflow.cli as cli


def test_an_interrupt_that_surfaced_as_another_error_is_still_an_interrupt(monkeypatch, capsys):
    # A KeyboardInterrupt raised inside an import can reach main() as an ImportError (a half-initialized
    # module) or a RecursionError; the SIGINT handler's flag tells main() it was Ctrl-C. Expected: exit
    # code 130 and the one 'interrupted' line, no traceback.
    def interrupted_import(argv, command):
        monkeypatch.setattr(cli, "_INTERRUPTED", True)
        raise ImportError("cannot import name 'x' from partially initialized module 'sdeflow.y'")

    monkeypatch.setattr(cli, "_main", interrupted_import)
    assert cli.main(["sample", "--target", "ring2d"]) == 130
    assert capsys.readouterr().err.strip() == "sdeflow sample: interrupted"


def test_the_same_error_without_an_interrupt_is_not_hidden(monkeypatch):
    # Expected: without the flag a real ImportError propagates unchanged (it is a bug to report, not Ctrl-C).
    def broken(argv, command):
        raise ImportError("a genuine import error")

    monkeypatch.setattr(cli, "_main", broken)
    monkeypatch.setattr(cli, "_INTERRUPTED", False)
    with pytest.raises(ImportError, match="genuine"):
        cli.main(["sample"])


def test_the_handler_sets_the_flag_and_raises_keyboardinterrupt(monkeypatch):
    # Expected: the handler main() installs for the console script raises KeyboardInterrupt (so every
    # existing `except KeyboardInterrupt`, the trainer's checkpoint-on-interrupt included, still runs) and
    # records that it fired.
    monkeypatch.setattr(cli, "_INTERRUPTED", False)
    with pytest.raises(KeyboardInterrupt):
        cli._on_interrupt(2, None)
    assert cli._INTERRUPTED is True
