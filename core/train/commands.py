"""``s2kd train`` and ``s2kd predict``.

    s2kd train --config configs/weather/tiny.toml --out runs/teacher model.name=teacher-vision distill.method=none
    s2kd train --out runs/teacher --resume                    # continue a stopped / killed run
    torchrun --nproc_per_node=2 -m core train --config ... --out ...   # several processes / GPUs
    s2kd predict --run runs/teacher --index 0 --out forecast.nc
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from core.errors import DataError, UserError


def _train(args: argparse.Namespace) -> int:
    from core import checkpoint as ckpt
    from core.config import load_config
    from core.train.loop import train

    out = Path(args.out)
    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise UserError("s2kd train: --config PATH is required (or --resume an existing --out run)")
        config_path = out / ckpt.CONFIG_TOML
        if not config_path.is_file():
            raise UserError("nothing to resume: no config.toml in the run directory", path=out)
    cfg = load_config(config_path, args.overrides)
    try:
        result = train(cfg, out, resume=args.resume)
    except OSError as exc:  # a full disk, a read-only or vanished folder while writing the run
        if exc.errno is None:
            raise
        raise UserError(f"cannot write the run ({exc.strerror or exc}); every file already written is complete, "
                        f"the last checkpoint is kept: fix the cause and continue with "
                        f"s2kd train --out {out} --resume", path=exc.filename or out) from None
    best = "-" if result.best_val is None else f"{result.best_val:.5g}"
    if os.environ.get("RANK", "0") == "0":  # one summary under torchrun
        print(f"{result.status}: {result.epochs_done} epoch(s), {result.global_step} steps, best val_mse {best} "
              f"(epoch {result.best_epoch}) -> {out}")
    return result.exit_code


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from core.forecaster import load_forecaster
    from core.io import atomic_path

    fc = load_forecaster(args.run, device=args.device)
    desc = fc.description
    root = Path(args.data or desc.get("root") or "")
    source = args.source or desc.get("source")
    if not root.exists():
        raise DataError("data folder not found (pass --data)", path=root)
    if not source:
        raise DataError("the run does not name its data source (pass --source)", path=args.run)
    from core.data import open_source
    from core.data.splits import split_from_manifest
    from core.data.windows import WindowDataset
    from core.train.data import check_compatible

    fields = open_source(source, root, variables=fc.channels or None)
    check_compatible(desc, fields, what=f"data in {root}")
    splits = split_from_manifest(fields, root)
    if args.split not in splits:
        raise UserError(f"no split {args.split!r} in {root} (have {', '.join(splits)})")
    ds = WindowDataset(splits[args.split], fc.t_in, fc.t_out, stride=1, step=int(desc.get("step", 1)),
                       load=False)
    if args.time:
        t0 = np.datetime64(args.time, "ns")
        hits = np.flatnonzero(ds.target_start_times == t0)
        if hits.size == 0:
            raise UserError(f"no {args.split} window whose first target time is {args.time}")
        index = int(hits[0])
    else:
        index = args.index
        if not -len(ds) <= index < len(ds):
            raise UserError(f"--index {index} out of range: the {args.split} split has {len(ds)} windows")
    in_times, _ = ds.window_times(index)
    window = ds._fields.sel(time=in_times)
    forecast = fc.predict(window, args.narrative)
    summary = {"model": fc.name, "run": str(args.run), "split": args.split, "index": index,
               "init": str(in_times[-1])[:19], "lead_times": int(forecast.sizes["time"]),
               "channels": list(map(str, forecast["channel"].values)),
               "mean": [float(v) for v in forecast.mean(dim=[d for d in forecast.dims if d != "channel"]).values]}
    if args.out:
        with atomic_path(args.out, suffix=".nc") as tmp:
            forecast.to_dataset(name="forecast").to_netcdf(tmp)
        summary["out"] = str(args.out)
    print(json.dumps(summary) if args.json or not args.out else f"wrote {args.out}: {fc.name} forecast from "
          f"{summary['init']} ({summary['lead_times']} lead times)")
    return 0


def register(cli) -> None:
    p = cli.command(("train",), help="Train a teacher, a student (with a distillation method) or a baseline.",
                    func=_train)
    p.add_argument("--config", default=None, help="TOML config (e.g. configs/weather/tiny.toml)")
    p.add_argument("--out", required=True, help="run directory to write (model, metrics, resume state)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides in TOML value syntax, e.g. train.lr=3e-4 model.name=student")

    q = cli.command(("predict",), help="Forecast one window of a dataset with a trained run.", func=_predict)
    q.add_argument("--run", required=True, help="run directory written by `s2kd train`")
    q.add_argument("--data", default=None, help="dataset folder (default: the one the run was trained on)")
    q.add_argument("--source", default=None, help="reader name (default: the run's)")
    q.add_argument("--split", default="test", choices=["train", "val", "test"], help="split (default: test)")
    q.add_argument("--index", type=int, default=0, help="window index in the split (default: 0)")
    q.add_argument("--time", default=None, help="pick the window whose first target time is this ISO time")
    q.add_argument("--narrative", default=None, help="narrative text for a text teacher")
    q.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    q.add_argument("--out", default=None, help="write the forecast (physical units) as NetCDF")
    q.add_argument("--json", action="store_true", help="print a JSON summary")
