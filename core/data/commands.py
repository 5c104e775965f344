"""``s2kd data inspect``: open a data source and print a summary (text or one JSON object)."""

from __future__ import annotations

import argparse
import json

from core.errors import UserError

#: Source names accepted by ``--source`` (the keys of :data:`core.data.SOURCES`, kept in that order).
SOURCE_CHOICES: tuple[str, ...] = ("weatherbench", "wb2", "taxibj", "taxibj-npz", "taxibj+", "netcdf")


def parse_variables(text: str | None) -> list[str] | None:
    """``"z500, t850"`` → ``["z500", "t850"]``; ``None``/empty → ``None`` (all variables)."""
    if text is None:
        return None
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise UserError(f"--variables {text!r} names no variable")
    return names


def parse_years(text: str | None) -> list[int] | None:
    """``"2016,2017"`` or ``"2016-2018"`` (or a mix, ``"2010-2012,2016"``) → sorted unique years."""
    if text is None:
        return None
    years: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                years.update(range(lo, hi + 1))
            else:
                years.add(int(part))
        except ValueError:
            raise UserError(f"--years {text!r}: expected years like 2016,2017 or 2016-2018") from None
    if not years:
        raise UserError(f"--years {text!r} names no year")
    return sorted(years)


def _run(args: argparse.Namespace) -> int:
    from core.data.inspect import format_summary, inspect_source

    summary = inspect_source(args.source, args.root, variables=parse_variables(args.variables),
                             years=parse_years(args.years), stats=not args.no_stats)
    if args.json:
        print(json.dumps(summary, sort_keys=True, default=str))
    else:
        print(format_summary(summary))
    return 0


def register(cli) -> None:
    p = cli.command(("data", "inspect"), help="Open a data source and summarise it (channels, grid, times).",
                    func=_run)
    p.add_argument("--source", required=True, choices=list(SOURCE_CHOICES), help="reader to use")
    p.add_argument("--root", required=True, help="data folder (or file / zarr store for netcdf, wb2)")
    p.add_argument("--variables", default=None,
                   help="comma-separated channels, e.g. z500,t850,t2m (default: all found)")
    p.add_argument("--years", default=None, help="years to read: 2016,2017 or 2016-2018 (default: all)")
    p.add_argument("--no-stats", action="store_true",
                   help="skip per-channel min/mean/max (and the full NaN/Inf scan they imply)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
