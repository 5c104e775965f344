"""The ``s2kd`` command line (also ``python -m core``).

Sub-commands live in small modules that each expose ``register(cli: Registry)``; this file only
assembles them.  A module adds a command with ``cli.command(("data", "inspect"), help=...)``, which
returns an ``argparse.ArgumentParser`` whose ``func`` default is called with the parsed namespace and
returns an exit status.

Errors: a :class:`core.errors.UserError` (or an argparse usage error) prints one line
``s2kd: error: ...`` to stderr and exits 2.  Heavy imports (torch, xarray) happen inside the command
functions so that ``s2kd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

from core.errors import UserError

#: Modules that register sub-commands, in help order.  One line per module.
COMMAND_MODULES: tuple[str, ...] = (
    "core.data.commands",
    "core.synth.commands",
    "core.synth.figures_commands",
    "core.narratives.commands",
    "core.train.commands",
    "core.evaluate_commands",
    "core.assets_commands",
)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors become a one-line UserError (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


class Registry:
    """Builds nested sub-command parsers on demand (``("data", "inspect")`` → ``s2kd data inspect``)."""

    def __init__(self, parser: argparse.ArgumentParser):
        self._groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
            (): parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
        }
        self._parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}

    def _group(self, path: tuple[str, ...], help: str | None = None) -> argparse._SubParsersAction:
        if path in self._groups:
            return self._groups[path]
        parent = self._group(path[:-1])
        group_parser = parent.add_parser(path[-1], help=help or f"{path[-1]} commands")
        group_parser.set_defaults(func=lambda args, p=group_parser: _print_help(p))
        self._parsers[path] = group_parser
        sub = group_parser.add_subparsers(dest="_".join(path) + "_command", metavar="COMMAND", parser_class=_Parser)
        self._groups[path] = sub
        return sub

    def group(self, path: Sequence[str], help: str) -> None:
        """Declare a command group with a help text (optional; groups are also made on demand)."""
        self._group(tuple(path), help=help)

    def command(self, path: Sequence[str], help: str, func: Callable[[argparse.Namespace], int | None] | None = None,
                **kwargs) -> argparse.ArgumentParser:
        """Add the command ``path`` and return its parser; ``func(args)`` runs it."""
        path = tuple(path)
        if path in self._parsers:
            raise ValueError(f"command {' '.join(path)!r} registered twice")
        parser = self._group(path[:-1]).add_parser(path[-1], help=help, description=help, **kwargs)
        if func is not None:
            parser.set_defaults(func=func)
        self._parsers[path] = parser
        return parser


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Assemble the full ``s2kd`` parser from :data:`COMMAND_MODULES`."""
    parser = _Parser(prog="s2kd", description="Semantic-Spectral Knowledge Distillation toolkit.")
    from core import __version__

    parser.add_argument("--version", action="version", version=f"s2kd {__version__}")
    registry = Registry(parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(registry)
    parser.set_defaults(func=lambda args: _print_help(parser))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        status = args.func(args)
        return int(status or 0)
    except UserError as exc:
        print(f"s2kd: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("s2kd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
