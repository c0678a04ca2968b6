"""The ``ncmle`` command: ``train``, ``evaluate``, ``sample``, ``restore``, ``demo`` and
``pretrained``.

Building the parser imports neither torch nor Pyro (each command imports what it needs when it
runs), so ``ncmle --help`` and argument errors come back at once.

User mistakes (bad arguments, unknown data set or option, missing or damaged checkpoint,
missing data files) print one line ``ncmle: error: ...`` and exit with status 2; set
``NCMLE_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._registry import NamedRegistry
from .common import CLIError, Parser

__all__ = ["COMMANDS", "build_parser", "main"]

#: The ``ncmle`` commands, by name (kind ``"command"`` of :mod:`ncmle_prob._registry`): each is
#: a module's ``add_parser(subparsers)``, imported when the parser is built, in this order.
COMMANDS = NamedRegistry("command")
for _name in ("train", "evaluate", "sample", "restore", "demo", "pretrained"):
    COMMANDS.register_lazy(_name, f"ncmle_prob.cli.{_name}:add_parser")
del _name


def build_parser() -> argparse.ArgumentParser:
    """The ``ncmle`` argument parser."""
    from .. import __version__

    parser = Parser(
        prog="ncmle",
        description="Noise-conditional autoregressive models: "
        + ", ".join(COMMANDS.names(sort=False)) + "; pretrained models (ncmle pretrained) work "
        "wherever a checkpoint does, as pretrained:NAME.",
    )
    parser.add_argument("--version", action="version", version=f"ncmle_prob {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS.names(sort=False):
        COMMANDS.get(name)(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..data import DatasetNotFoundError
    from ..training import CheckpointError, NonFiniteLossError

    return (CLIError, CheckpointError, DatasetNotFoundError, NonFiniteLossError, ValueError,
            TypeError, FileNotFoundError, ImportError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ncmle`` console script; returns the exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.run(args))
    except KeyboardInterrupt:
        print("ncmle: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # a CLIError needs no import; the other user errors' classes import torch
        user = isinstance(e, CLIError) or isinstance(e, _user_errors())  # noqa: SIM101
        if os.environ.get("NCMLE_DEBUG") or not user:
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"ncmle: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
