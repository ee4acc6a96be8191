"""The ``stabsim`` command line: a thin layer over the Python API.

Each subcommand lives in its own module, which provides ``register(subparsers)``: it adds
its parser and sets ``func`` (called with the parsed arguments, returning an exit code).
Messages go through :mod:`logging` (logger ``stabsim``) to stderr: ``--quiet`` keeps warnings
and errors only, ``--verbose`` adds debug messages (each kernel compiled, with its time, and
the traceback of a failure).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import warnings

#: modules that contribute subcommands
SUBCOMMAND_MODULES = ("stabsim.demo", "stabsim.sweep.cli")

#: exit codes (documented in ``stabsim --help`` and on the command-line page)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    success (for demo: every check agrees with the theory)
  {EXIT_FAILURE}    runtime failure: an error while running (a full disk, a busy work
       directory), a demo check that disagrees with the theory, a declined confirmation
  {EXIT_USAGE}    bad usage: an unknown option or command, a missing argument, an invalid
       value in the arguments or the config file, an output that cannot be written
       (checked before any work)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); an interrupted sweep resumes when run again
"""

log = logging.getLogger("stabsim")


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
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stabsim {__version__}")
    _add_loudness(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for subparser in subparsers.choices.values():  # "stabsim -q demo" or "stabsim demo -q"
        _add_loudness(subparser, default=argparse.SUPPRESS)
    return parser


def _add_loudness(parser: argparse.ArgumentParser, default) -> None:
    """``-q/--quiet`` and ``-v/--verbose``; a subcommand's default (SUPPRESS) leaves the
    value given before the command in place."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="print warnings and errors only")
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="also print debug messages (kernels compiled, tracebacks)")


def main(argv=None) -> int:
    # a sweep's loss "module:factory" is imported from the working directory, which
    # `python -m stabsim` puts on the path and the installed `stabsim` command does not
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        parser = build_parser()  # the subcommands' parsers: no engine is imported
        args = parser.parse_args(argv)
        if args.quiet and args.verbose:
            # one before the command and one after it: each parser's group saw one only
            parser.error("argument -v/--verbose: not allowed with argument -q/--quiet, "
                         "before or after the command")
    except KeyboardInterrupt:  # before the logging below is set up
        sys.stderr.write("stabsim: interrupted\n")
        return EXIT_INTERRUPTED
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    from ._compile_log import compile_notice  # imports Numba: not for --help

    with _logging_to_stderr(level), compile_notice():
        try:
            return int(args.func(args) or EXIT_OK)
        except KeyboardInterrupt:
            log.error("stabsim: interrupted")
            return EXIT_INTERRUPTED
        except (ValueError, TypeError) as exc:  # bad input (a value, or its kind): a message
            log.debug("traceback:", exc_info=True)
            log.error("stabsim: error: %s", _one_line(exc))
            return EXIT_USAGE
        except Exception as exc:  # a file system error, a busy work directory, …: one line too
            log.debug("traceback:", exc_info=True)
            log.error("stabsim: error: %s", _one_line(exc))
            return EXIT_FAILURE


@contextlib.contextmanager
def _logging_to_stderr(level: int):
    """Send the ``stabsim`` logger's messages at ``level`` and above to stderr, as plain lines,
    for the duration of one command (so that calling :func:`main` twice adds no handler).
    Python warnings become such lines too, instead of Python's two lines with a source
    line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = log.level, log.propagate, warnings.showwarning
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False  # the command's own lines, not the root logger's too
    warnings.showwarning = _log_warning
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]
        warnings.showwarning = saved[2]


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the CLI: one line through the ``stabsim`` logger."""
    log.warning("stabsim: warning: %s", " ".join(str(message).split()))


def _one_line(exc: Exception) -> str:
    """The exception's message on one line (with its type where the message alone is
    not a sentence, as for ``KeyError('x')``)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, ValueError | TypeError | OSError | RuntimeError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
