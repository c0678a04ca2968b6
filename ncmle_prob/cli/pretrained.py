"""``ncmle pretrained``: list the shipped models, one line each from its card, or print a card.

Reads the cards' JSON only (no torch), so it answers at once. The models are used by name
wherever a command takes a checkpoint: ``ncmle sample pretrained:NAME``,
``ncmle evaluate pretrained:NAME``, ``ncmle restore --checkpoint pretrained:NAME``.
"""

from __future__ import annotations

import argparse
import json

from .common import CLIError, HelpFormatter, say

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers ``ncmle pretrained``."""
    p = sub.add_parser(
        "pretrained", help="list the pretrained models shipped in the package",
        description="List the pretrained models shipped in the package (one line each from its "
                    "card: data, network, objective, size, test bits/dim, FCD), or print one "
                    "model's card as JSON. Use a model with pretrained:NAME wherever a command "
                    "takes a checkpoint (sample, evaluate, restore).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("name", nargs="?", default=None,
                   help="print this model's whole card (JSON) instead of the list")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``ncmle pretrained``."""
    from .. import pretrained

    if args.name is not None:
        try:
            info = pretrained.card(args.name)
        except pretrained.PretrainedError as e:
            raise CLIError(str(e)) from None
        say(json.dumps(info, indent=1))
        return 0
    names = pretrained.available()
    if not names:
        say("no pretrained models in this installation")
        return 0
    for line in pretrained.summary_lines([pretrained.card(name) for name in names]):
        say(line)
    say("use one with pretrained:NAME, e.g. ncmle sample pretrained:" + names[0])
    return 0
