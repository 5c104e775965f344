"""``s2kd data synth``: write an embedded dataset with one of the simulators."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from core.errors import UserError
from core.io import current_umask
from core.synth import PRESETS, SIMULATORS, simulator


def default_out(kind: str, preset: str) -> Path:
    """The default folder of an embedded dataset: ``data/{preset}/{kind}``."""
    return Path("data") / preset / kind


def synthesize(kind: str, preset: str, seed: int, out: Path, overwrite: bool = False) -> dict:
    """Generate ``kind`` into ``out`` atomically: write into a temporary sibling folder, then rename.

    An interrupted run leaves no half-written ``out``; an existing ``out`` is kept unless ``overwrite``.
    """
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    generate = simulator(kind)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory", path=out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError("output folder is not empty (use --overwrite to replace it)", path=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700
    try:
        t0 = time.perf_counter()
        summary = dict(generate(tmp, preset, seed) or {})
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{int(time.time())}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.update(kind=kind, preset=preset, seed=seed, out=str(out))
    return summary


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_out(args.kind, args.preset)
    summary = synthesize(args.kind, args.preset, args.seed, out, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(summary, sort_keys=True, default=str))
    else:
        print(f"wrote {args.kind} ({args.preset}, seed {args.seed}) to {out} in {summary['seconds']:.1f} s")
    return 0


def register(cli) -> None:
    p = cli.command(("data", "synth"), help="Generate an embedded dataset in the real archive layout.", func=_run)
    p.add_argument("--kind", required=True, choices=list(SIMULATORS), help="which simulator")
    p.add_argument("--preset", default="demo", choices=list(PRESETS), help="size (default: demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--out", default=None, help="output folder (default: data/{preset}/{kind})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    register_prepare(cli)


#: What ``s2kd data prepare`` (and ``make app``) makes when missing: the app's embedded default.
PREPARE_KINDS: tuple[str, ...] = ("weather", "taxibj")
PREPARE_SEED = 0


def prepare(preset: str = "demo", kinds: tuple[str, ...] = PREPARE_KINDS, seed: int = PREPARE_SEED,
            root: Path = Path("data")) -> list[dict]:
    """Generate each embedded dataset of ``kinds`` under ``root/{preset}/{kind}`` unless it exists.

    A dataset counts as present when its ``s2kd_dataset.json`` exists (it is written last, inside the
    temporary folder that is renamed into place, so its presence means the folder is complete).
    """
    done = []
    for kind in kinds:
        out = Path(root) / preset / kind
        if (out / "s2kd_dataset.json").is_file():
            done.append({"kind": kind, "preset": preset, "out": str(out), "status": "present"})
            continue
        summary = synthesize(kind, preset, seed, out, overwrite=True)
        summary["status"] = "generated"
        done.append(summary)
    return done


def _prepare(args: argparse.Namespace) -> int:
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    for kind in kinds:
        if kind not in SIMULATORS:
            raise UserError(f"unknown data kind {kind!r} in --kinds; choose from {', '.join(SIMULATORS)}")
    if args.warm_inits < 1:
        raise UserError(f"--warm-inits must be at least 1, not {args.warm_inits}")
    for item in prepare(args.preset, kinds, args.seed, Path(args.root)):
        if item["status"] == "present":
            print(f"{item['kind']}: present in {item['out']}")
        else:
            print(f"{item['kind']}: generated in {item['out']} ({item['seconds']:.1f} s)")
    if args.warm_dashboard:
        from core.dashboard import warm_cache

        warm_cache(inits=args.warm_inits, log=print)
    return 0


def register_prepare(cli) -> None:
    p = cli.command(("data", "prepare"), help="Generate the app's embedded default data if it is missing.",
                    func=_prepare)
    p.add_argument("--preset", default="demo", choices=list(PRESETS))
    p.add_argument("--kinds", default=",".join(PREPARE_KINDS), help="comma-separated kinds")
    p.add_argument("--seed", type=int, default=PREPARE_SEED)
    p.add_argument("--root", default="data", help="data root (default: data)")
    p.add_argument("--warm-dashboard", action="store_true",
                   help="then fill the dashboard's disk cache ($S2KD_DASHBOARD_CACHE, else ~/.cache/s2kd/dashboard) "
                        "with the forecasts of the first init time(s) of every run set the app finds, so that its "
                        "first Forecasts page loads no model (make app does this; quick when already warm)")
    p.add_argument("--warm-inits", type=int, default=1, help="init times per run set to warm (default: 1)")
