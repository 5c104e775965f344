"""``s2kd assets build`` and ``s2kd assets verify``: the shipped demo runs (see :mod:`core.assets`).

    s2kd assets build [--out assets] [--work build/assets-work] [--only weather|taxibj]
    s2kd assets verify [--out assets]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import UserError


def _build(args: argparse.Namespace) -> int:
    from core.assets import build

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be a positive integer")
    build(Path(args.out), Path(args.work), only=only, threads=args.threads)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from core.assets import read_manifest, verify

    problems = verify(Path(args.out))
    manifest = read_manifest(Path(args.out))
    if problems:
        for p in problems:
            print(f"s2kd: assets: {p}", file=sys.stderr)
        print(f"s2kd: error: {len(problems)} problem(s) in {Path(args.out)} against its manifest", file=sys.stderr)
        return 1
    total = sum(int(f.get("size", 0)) for f in manifest["files"])
    print(f"{len(manifest['files'])} files ({total / 1e6:.2f} MB) match {Path(args.out) / 'MANIFEST.json'}")
    return 0


def register(cli) -> None:
    from core.assets import DEFAULT_OUT, DEFAULT_WORK

    cli.group(("assets",), help="The shipped demo runs under assets/ (build, verify).")
    p = cli.command(("assets", "build"), help="Regenerate the shipped demo runs (data, narratives, teachers, students, "
                    "baselines, scores, attention maps) and assets/MANIFEST.json; resumable.", func=_build)
    p.add_argument("--out", default=str(DEFAULT_OUT.relative_to(Path.cwd())) if _under_cwd(DEFAULT_OUT) else
                   str(DEFAULT_OUT), help="assets folder to write (default: assets)")
    p.add_argument("--work", default=str(DEFAULT_WORK.relative_to(Path.cwd())) if _under_cwd(DEFAULT_WORK) else
                   str(DEFAULT_WORK), help="work folder for data, full runs and caches (default: build/assets-work)")
    p.add_argument("--only", default=None, help="build one setting: weather or taxibj (comma-separated)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1: on a busy 2-core "
                   "machine two threads per process are many times slower)")
    q = cli.command(("assets", "verify"), help="Check every file of assets/MANIFEST.json against its sha256.",
                    func=_verify)
    q.add_argument("--out", default=str(DEFAULT_OUT), help="assets folder (default: the repository's assets/)")


def _under_cwd(path: Path) -> bool:
    try:
        path.relative_to(Path.cwd())
        return True
    except ValueError:
        return False
