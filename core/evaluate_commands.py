"""``s2kd evaluate`` and ``s2kd bench``.

    s2kd evaluate --run runs/student [--split test] [--region Europe] [--data DIR] [--json] [--out FILE]
    s2kd evaluate --baseline persistence --data data/tiny/weather --json
    s2kd bench --suite {tiny,bench,paper} --out DIR [--data-root DIR] [--only MODEL,...] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from core.errors import UserError


def _evaluate(args: argparse.Namespace) -> int:
    from core.evaluate import evaluate, evaluate_run, format_table, load_test_data
    from core.io import atomic_write_json

    if bool(args.run) == bool(args.baseline):
        raise UserError("s2kd evaluate: give either --run RUN_DIR or --baseline NAME (with --data DIR)")
    if args.batch_size < 1:
        raise UserError("s2kd evaluate: --batch-size must be ≥ 1")
    if args.run:
        from core import checkpoint as ckpt
        from pathlib import Path

        if not (Path(args.run) / ckpt.MODEL_JSON).is_file():
            raise UserError(f"no trained model here (no {ckpt.MODEL_JSON})", path=args.run)
        result = evaluate_run(args.run, data_root=args.data, split=args.split, region=args.region,
                              batch_size=args.batch_size, device=args.device, progress=not args.json)
    else:
        from core.evaluate import fit_simple_baseline

        if not args.data:
            raise UserError("s2kd evaluate: --baseline needs --data DIR (the dataset folder)")
        data = load_test_data(args.data, split=args.split)
        result = evaluate(fit_simple_baseline(args.baseline, data), data, region=args.region,
                          batch_size=args.batch_size, name=args.baseline, progress=not args.json)
    if args.out:
        atomic_write_json(args.out, result)
    if args.json:
        print(json.dumps(result))
    else:
        print(format_table(result, subsets=("test", "test_nonstationary", "test_normal")))
        if args.out:
            print(f"\nwrote {args.out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from core.bench import BenchStopped, run_bench

    only = [m.strip() for m in (args.only or "").split(",") if m.strip()] or None
    datasets = [d.strip() for d in (args.datasets or "").split(",") if d.strip()] or None
    command = "s2kd " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
    try:
        results = run_bench(args.suite, args.out, data_root=args.data_root, only=only, datasets=datasets,
                            overrides=args.overrides, command=command)
    except BenchStopped as stop:
        return stop.code  # the stopped run saved its state: the same command resumes
    n = sum(len(d.get("models") or {}) for d in results["datasets"].values())
    print(f"bench {args.suite}: {n} model(s) on {len(results['datasets'])} dataset(s) in {results.get('seconds')} s "
          f"-> {args.out}/results.json, {args.out}/results.md")
    return 0


def register(cli) -> None:
    from core.bench import SUITES

    p = cli.command(("evaluate",), help="Score a trained run (or a simple baseline) on a split, per lead time.",
                    func=_evaluate)
    p.add_argument("--run", default=None, help="run directory written by `s2kd train`")
    p.add_argument("--baseline", default=None, choices=["persistence", "climatology", "historical-average"],
                   help="score a simple baseline instead of a run (needs --data)")
    p.add_argument("--data", default=None, help="dataset folder (default: the one the run was trained on)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default: test)")
    p.add_argument("--region", default=None,
                   help="region name (Europe, Tropics, …), 'lat0,lat1,lon0,lon1' or 'px:y0,y1,x0,x1'")
    p.add_argument("--batch-size", type=int, default=16, help="windows per batch (default: 16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", default=None, help="also write the result as JSON to this file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    b = cli.command(("bench",), help="Train, evaluate and tabulate every model of a benchmark suite.", func=_bench)
    b.add_argument("--suite", required=True, choices=list(SUITES), help="tiny (tests), bench (~2 h CPU), paper (GPU)")
    b.add_argument("--out", required=True, help="output folder (runs/, evals/, results.json, results.md)")
    b.add_argument("--data-root", default=None,
                   help="dataset folders: generated there if missing (default data/<preset>); real archives for paper")
    b.add_argument("--only", default=None, help="comma-separated model names to run (default: all)")
    b.add_argument("--datasets", default=None, help="comma-separated datasets of the suite (default: all)")
    b.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides for every trained model, e.g. train.epochs=1")
