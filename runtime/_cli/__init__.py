"""The ``switchover`` command.

Subcommands live in their own modules; each module's ``register(subparsers)`` adds its
parsers and sets ``run`` on each, a function of the parsed arguments returning the exit
status. The runtime's own commands are in ``COMMANDS``; other packages (the benchmark in
``switchover.bench``) add theirs through the ``switchover.commands`` entry point group, so
that nothing here imports them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Callable, Iterator, Sequence

from .. import __version__
from . import _inspect

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

#: Every module's subcommand registration, in the order ``--help`` lists them.
COMMANDS: tuple[Register, ...] = (_inspect.register,)
#: The entry point group other packages register their subcommands in.
GROUP = "switchover.commands"


def _registrations() -> Iterator[Register]:
    plugins = sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name)
    for entry in plugins:
        register: Register = entry.load()
        yield register
    yield from COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchover",
        description="LLM provider failover runtime: chaos benchmark and debug tools.",
    )
    parser.add_argument("--version", action="version", version=f"switchover {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrations():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    status: int = args.run(args)
    return status
