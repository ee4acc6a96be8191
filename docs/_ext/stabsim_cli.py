"""The ``stabsim-cli`` directive: the command line reference, generated at build time.

It builds the real parser (:func:`stabsim.cli.build_parser`) and writes, for ``stabsim`` and
for every subcommand registered on it, a section titled with the command and holding its
``--help`` text, so the page can never disagree with the program.
"""

from __future__ import annotations

import argparse
import functools
import importlib

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

from stabsim.cli import SUBCOMMAND_MODULES, build_parser

#: help text width: fixed, so the page does not depend on the terminal the build ran in
WIDTH = 88


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` of every subcommand, in registration order."""
    # argparse keeps the subparsers only on its private _SubParsersAction
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def help_text(parser: argparse.ArgumentParser) -> str:
    """``parser.format_help()`` at :data:`WIDTH` columns, with the parser's own formatter."""
    formatter = parser.formatter_class
    parser.formatter_class = functools.partial(formatter, width=WIDTH)
    try:
        return parser.format_help()
    finally:
        parser.formatter_class = formatter


def commands() -> list[tuple[str, str]]:
    """``(command, help text)`` for ``stabsim`` and each of its subcommands."""
    parser = build_parser()
    pairs = [(parser.prog, parser)] + [(sub.prog, sub) for _, sub in subcommands(parser)]
    return [(name, help_text(p)) for name, p in pairs]


class StabsimCLI(SphinxDirective):
    """One section per command: its name as the title, its help as a literal block."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        for name in ("stabsim.cli", *SUBCOMMAND_MODULES):  # rebuild when the CLI changes
            self.env.note_dependency(importlib.import_module(name).__file__)
        sections = []
        for command, text in commands():
            section = nodes.section(ids=[nodes.make_id(command)], names=[command])
            section += nodes.title(command, command)
            section += nodes.literal_block(text, text, language="text")
            sections.append(section)
        return sections


def setup(app):
    app.add_directive("stabsim-cli", StabsimCLI)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
