"""The ``switchover`` command.

Subcommands live in their own modules; each module's ``register(subparsers)`` adds its
parsers and sets ``run`` on each, a function of the parsed arguments returning the exit
status. Adding a command is adding its module's ``register`` to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import _debug_cli

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

#: Every module's subcommand registration, in the order ``--help`` lists them.
COMMANDS: tuple[Register, ...] = (_debug_cli.register,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchover",
        description="LLM provider failover runtime: chaos benchmark and debug tools.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
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


if __name__ == "__main__":
    sys.exit(main())
