"""``s2kd data figures``: draw PNG figures of an embedded (or real-layout) dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KINDS = ("weather", "taxibj", "taxibj+")


def _run(args: argparse.Namespace) -> int:
    from core.synth.figures import make_figures

    paths = make_figures(Path(args.root), Path(args.out), kind=args.kind)
    if args.json:
        print(json.dumps({"figures": [str(p) for p in paths]}))
    else:
        for p in paths:
            print(p)
    return 0


def register(cli) -> None:
    p = cli.command(("data", "figures"),
                    help="Draw figures of a dataset folder (maps, spectrum, daily/seasonal cycles) as PNGs.",
                    func=_run)
    p.add_argument("--root", required=True, help="dataset folder (e.g. data/demo/weather)")
    p.add_argument("--out", required=True, help="folder for the PNG files")
    p.add_argument("--kind", choices=list(KINDS), default=None,
                   help="dataset kind (default: from s2kd_dataset.json or the files present)")
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")
