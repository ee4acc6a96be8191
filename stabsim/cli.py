"""The ``stabsim`` command line: a thin layer over the Python API.

Each subcommand lives in its own module, which provides ``register(subparsers)``: it adds
its parser and sets ``func`` (called with the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: modules that contribute subcommands
SUBCOMMAND_MODULES = ("stabsim.demo", "stabsim.sweep.cli")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="stabsim",
        description="Simulate and test the self-stabilisation theory of gradient descent "
                    "at the edge of stability.",
    )
    parser.add_argument("--version", action="version", version=f"stabsim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # bad input: a message, not a traceback
        print(f"stabsim {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
