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


class _Parser(argparse.ArgumentParser):
    """An argument parser (and, through ``add_subparsers``, subparsers) whose usage errors
    are one ``stabsim: error: …`` line too."""

    def error(self, message):
        self.exit(2, f"stabsim: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
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
    except KeyboardInterrupt:
        print("stabsim: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError) as exc:  # bad input (a value, or its kind): a message
        print(f"stabsim: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a file system error, a busy work directory, …: one line too
        print(f"stabsim: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: Exception) -> str:
    """The exception's message on one line (with its type where the message alone is
    not a sentence, as for ``KeyError('x')``)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, ValueError | TypeError | OSError | RuntimeError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
