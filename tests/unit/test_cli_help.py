"""`booking <command> --help` explains every option and states its default (issue 21, item 8)."""

from __future__ import annotations

import argparse

from api.cli import parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_has_a_help_text_that_states_its_default() -> None:
    missing, no_default = [], []
    for name, command in _subcommands().items():
        if not command.add_help:  # a plug-in command (entry point): it parses its own options
            continue
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = f"booking {name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help:
                missing.append(label)
            elif action.option_strings and action.default not in (None, False) and "default" not in action.help:
                no_default.append(label)
    assert missing == [], f"options without a help text: {missing}"
    assert no_default == [], f"options whose help does not state their default: {no_default}"


def test_the_defaults_are_shown_as_they_are() -> None:
    text = _subcommands()["serve"].format_help()
    for shown in ("(default: 127.0.0.1)", "(default: 8000)", "(default: 1)", "(default: info)", "(default: granian)"):
        assert shown in text, shown
