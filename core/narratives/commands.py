"""``s2kd narrate``: narrate every window of a dataset, cache the narratives and their embeddings.

    s2kd narrate --root data/demo/weather [--source weatherbench] [--narrator diagnostic|openai|transformers]
                 [--scope context|privileged] [--split train,val,test] [--limit N] [--cache DIR]
    s2kd narrate --root data/demo/weather --show 12        # one narrative with its provenance

Resumable: narratives and embeddings live in a :class:`core.cache.SafeCache` keyed by content, so a rerun
skips what is cached (fallback narratives are not cached and are retried).  ``--limit`` caps the windows
per split.  The run ends with the throughput (windows/s, sentences/s).

Library helpers for the teacher: :func:`dataset_context` (events + climatology of a dataset folder) and
:func:`window_input` (the :class:`~core.narratives.NarrationInput` of window ``i`` of a
:class:`core.data.windows.WindowDataset`, in physical units, targets included — a narrator's scope
removes them when it must).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from core.errors import ConfigError, DataError, UserError

__all__ = ["register", "default_cache_dir", "read_events", "dataset_context", "window_input", "run_narration",
           "NARRATOR_CHOICES"]

NARRATOR_CHOICES = ("diagnostic", "openai", "transformers")


def default_cache_dir(root: str | os.PathLike) -> Path:
    """``<root>/.s2kd-cache/narratives`` (the default of ``[narratives] cache`` in core.config)."""
    return Path(root) / ".s2kd-cache" / "narratives"


def read_events(root: str | os.PathLike) -> list[dict]:
    """The events of ``{root}/events.json`` (``[]`` when the file is absent)."""
    path = Path(root) / "events.json"
    if not path.is_file():
        return []
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read events ({type(exc).__name__}: {exc})", path=path) from None
    events = obj.get("events") if isinstance(obj, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise DataError("'events' must be a list of objects", path=path)
    return [e for e in events if "start" in e]


def monthly_climatology(train_fields) -> Callable[[str], Any]:
    """``f(iso_time) -> (C, H, W)`` float32: the training split's mean for that calendar month (or the
    overall mean when the month is absent from training).  Computed lazily (dask) where the data is lazy."""
    import numpy as np

    by_month_da = train_fields.groupby("time.month").mean("time")
    months = [int(m) for m in by_month_da["month"].values]
    values = np.asarray(by_month_da.values, dtype=np.float32)  # (n_months, C, H, W), small
    counts = np.bincount(np.asarray(train_fields["time"].dt.month.values, dtype=np.int64), minlength=13)
    weights = np.array([counts[m] for m in months], dtype=np.float64)
    overall = (np.tensordot(weights, values.astype(np.float64), axes=1) / weights.sum()).astype(np.float32)
    by_month = {m: values[k] for k, m in enumerate(months)}

    def climatology(iso_time: str):
        return by_month.get(int(str(iso_time)[5:7]), overall)

    return climatology


def dataset_context(root: str | os.PathLike, fields, train_fields=None) -> tuple[list[dict], Callable | None]:
    """``(events, climatology_fn)`` of a dataset: events from ``events.json``; for lat-lon grids a monthly
    climatology from ``train_fields`` (None for city grids or when no training split is given)."""
    events = read_events(root)
    clim = None
    if train_fields is not None and fields.attrs.get("grid", "latlon") == "latlon" and "lat" in fields.dims:
        clim = monthly_climatology(train_fields)
    return events, clim


def window_input(ds, i: int, events: Sequence[Mapping] = (), climatology: Callable | None = None,
                 source: str = ""):
    """The :class:`~core.narratives.NarrationInput` of window ``i`` of ``ds`` (a WindowDataset), in
    physical units, with the known-ahead context and the targets (removed by ``context`` scope)."""
    import numpy as np

    from core.narratives import NarrationInput

    x, y = ds.window_arrays(i)
    if ds.normalizer is not None:
        x, y = np.asarray(ds.normalizer.invert(x)), np.asarray(ds.normalizer.invert(y))
    t_in, t_out = ds.window_times(i)
    in_iso = [str(np.datetime64(t, "s")) for t in t_in]
    out_iso = [str(np.datetime64(t, "s")) for t in t_out]
    context: dict[str, Any] = {}
    meteorology = {}
    for name, vals in ds.context(i).items():
        series = [v.item() if hasattr(v, "item") else v for v in list(vals["input"]) + list(vals["target"])]
        if name == "holiday":
            context["holiday"] = [bool(v) for v in series]
        elif name in ("temperature", "wind_speed", "weather"):
            meteorology[name] = [float(v) if name != "weather" else int(v) for v in series]
    if meteorology:
        context["meteorology"] = meteorology
    start, end = np.datetime64(in_iso[0]), np.datetime64(out_iso[-1])
    window_events = []
    for ev in events:
        try:
            a = np.datetime64(str(ev["start"]).rstrip("Z"))
            b = np.datetime64(str(ev.get("end") or ev["start"]).rstrip("Z"))
        except (ValueError, TypeError):
            continue
        if a <= end and b >= start:
            window_events.append(dict(ev))
    if window_events:
        context["events"] = window_events
    dims = list(ds.grid)
    grid = "latlon" if dims[:2] == ["lat", "lon"] else "city"
    units = ds.units or [""] * len(ds.channels)
    return NarrationInput(frames=x, channels=ds.channels, units=units, grid=grid, ys=ds.grid[dims[0]],
                          xs=ds.grid[dims[1]], input_times=in_iso, target_times=out_iso, context=context,
                          climatology=climatology(in_iso[-1]) if climatology is not None else None,
                          targets=y, source=source)


# --------------------------------------------------------------------------- the run
def run_narration(windows: Iterator[tuple[str, Any]], narrator, cache, encoder=None, total: int | None = None,
                  progress: bool | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Narrate ``(label, NarrationInput)`` pairs (cached ones are skipped), then embed the narratives.

    Returns counts and throughput: ``windows``, ``narrated`` (new), ``cached``, ``fallbacks``,
    ``narrate_s``, ``windows_per_s`` (new narratives only), ``sentences``, ``embedded`` (new),
    ``embed_s``, ``sentences_per_s``.
    """
    from tqdm import tqdm

    from core.narratives import narrate_many

    chunk = max(1, 4 * int(getattr(narrator, "max_concurrency", 1) or 1))
    texts: list[str] = []
    stats = {"windows": 0, "narrated": 0, "cached": 0, "fallbacks": 0, "fallback_reasons": {}}
    t_narr = 0.0
    bar = tqdm(total=total, desc="narrate", unit="win", disable=None if progress is None else not progress,
               file=sys.stderr)
    buffer: list[Any] = []

    def flush():
        nonlocal t_narr
        if not buffer:
            return
        t0 = time.perf_counter()
        results = narrate_many(narrator, buffer, cache)
        dt = time.perf_counter() - t0
        for narrative, hit in results:
            stats["windows"] += 1
            if hit:
                stats["cached"] += 1
            else:
                stats["narrated"] += 1
                t_narr += dt / len(results)
            if narrative.provenance.fallback:
                stats["fallbacks"] += 1
                reason = narrative.provenance.fallback_reason or "unknown"
                stats["fallback_reasons"][reason] = stats["fallback_reasons"].get(reason, 0) + 1
            texts.append(narrative.text)
        bar.update(len(results))
        buffer.clear()

    try:
        for _label, window in windows:
            buffer.append(window)
            if len(buffer) >= chunk:
                flush()
        flush()
    finally:
        bar.close()
    stats["narrate_s"] = round(t_narr, 3)
    stats["windows_per_s"] = round(stats["narrated"] / t_narr, 2) if t_narr > 0 else None
    unique = list(dict.fromkeys(texts))
    stats["sentences"] = len(unique)
    stats.update(embedded=0, embed_s=0.0, sentences_per_s=None)
    if encoder is not None and unique:
        from core.semantics import EMBEDDING_NAMESPACE

        todo = [t for t in unique if cache is None or not cache.contains(EMBEDDING_NAMESPACE, encoder.cache_key(t))]
        t0 = time.perf_counter()
        ebar = tqdm(total=len(todo), desc="embed", unit="text", disable=None if progress is None else not progress,
                    file=sys.stderr)
        try:
            for start in range(0, len(todo), 256):
                part = todo[start: start + 256]
                encoder.encode_cached(part, cache, batch_size=batch_size)
                ebar.update(len(part))
        finally:
            ebar.close()
        dt = time.perf_counter() - t0
        stats.update(embedded=len(todo), embed_s=round(dt, 3),
                     sentences_per_s=round(len(todo) / dt, 2) if todo and dt > 0 else None)
    return stats


# --------------------------------------------------------------------------- CLI
def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"scope": args.scope}
    table: dict[str, Any] = {}
    if args.backend_config:
        import tomllib

        try:
            with open(args.backend_config, "rb") as fh:
                table = dict(tomllib.load(fh).get(args.narrator, {}))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the backend config ({exc})", path=args.backend_config) from None
    if args.narrator == "openai":
        from core.narratives.openai_backend import OpenAIConfig

        for flag, key in (("base_url", "base_url"), ("model", "model"), ("api_key_env", "api_key_env"),
                          ("timeout", "timeout_s"), ("max_retries", "max_retries"),
                          ("concurrency", "max_concurrency")):
            value = getattr(args, flag)
            if value is not None:
                table[key] = value
        opts["config"] = OpenAIConfig.from_mapping(table)
    elif args.narrator == "transformers":
        if args.model_dir:
            table["model_dir"] = args.model_dir
        if "model_dir" not in table:
            raise UserError("--narrator transformers needs --model-dir (a local model folder)")
        opts.update(table)
    return opts


def _open(args: argparse.Namespace):
    from core.data import open_source
    from core.data.splits import MANIFEST_NAME, read_dataset_manifest, split_by_last_days, split_by_years, \
        split_from_manifest

    root = Path(args.root)
    if not root.exists():
        raise DataError("data folder not found", path=root)
    manifest = read_dataset_manifest(root) if (root / MANIFEST_NAME).is_file() else {}
    source = args.source or manifest.get("source")
    if not source:
        raise UserError(f"--source is needed ({root / MANIFEST_NAME} not found)")
    t_in = args.t_in or manifest.get("t_in")
    t_out = args.t_out or manifest.get("t_out")
    if not t_in or not t_out:
        raise UserError("--t-in and --t-out are needed (the dataset manifest does not give them)")
    fields = open_source(source, root, variables=args.variables)
    if manifest:
        splits = split_from_manifest(fields, root)
    elif fields.attrs.get("grid") == "city":
        splits = split_by_last_days(fields)
    else:
        splits = split_by_years(fields)
    return root, source, fields, splits, int(t_in), int(t_out)


def _windows(args, root, source, fields, splits, t_in, t_out, names: Sequence[str]):
    from core.data.windows import WindowDataset

    for name in names:
        if name not in splits:
            raise UserError(f"unknown split {name!r}; the data has {', '.join(splits)}")
    events, clim = dataset_context(root, fields, splits.get("train"))
    wanted = None
    if args.show is not None:
        wanted = args.show + 1
    elif args.limit is not None:
        wanted = args.limit
    out = []
    for name in names:
        split = splits[name]
        ds = None
        if wanted is not None:  # read only the head of the split that the first windows need (+ room for gaps)
            need = (wanted - 1) * args.stride + (t_in + t_out - 1) * args.step + 1
            rows = int(need * 1.25) + 64
            if rows < split.sizes["time"]:
                try:
                    ds = WindowDataset(split.isel(time=slice(0, rows)), t_in, t_out, stride=args.stride,
                                       step=args.step)
                except DataError:
                    ds = None
                if ds is not None and len(ds) < wanted:
                    ds = None
        if ds is None:
            ds = WindowDataset(split, t_in, t_out, stride=args.stride, step=args.step)
        out.append((name, ds))
    return out, events, clim


def _iter_inputs(datasets, events, clim, source, limit):
    for name, ds in datasets:
        n = len(ds) if limit is None else min(limit, len(ds))
        for i in range(n):
            yield f"{name}:{i}", window_input(ds, i, events, clim, source=source)


def _run(args: argparse.Namespace) -> int:
    from core.cache import SafeCache
    from core.narratives import build_narrator, narrate_cached

    names = [s.strip() for s in args.split.split(",") if s.strip()]
    if not names:
        raise UserError("--split needs at least one split name")
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be a positive integer")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError("--threads must be a positive integer")
        import torch

        torch.set_num_threads(args.threads)
    narrator = build_narrator(args.narrator, **_backend_options(args))
    root, source, fields, splits, t_in, t_out = _open(args)
    cache = SafeCache(args.cache or default_cache_dir(root))
    try:
        if args.show is not None:
            datasets, events, clim = _windows(args, root, source, fields, splits, t_in, t_out, names[:1])
            name, ds = datasets[0]
            if not 0 <= args.show < len(ds):
                raise UserError(f"--show {args.show}: split {name!r} has windows 0…{len(ds) - 1}")
            window = window_input(ds, args.show, events, clim, source=source)
            narrative, hit = narrate_cached(narrator, window, cache)
            if args.json:
                print(json.dumps({"split": name, "index": args.show, "cached": hit, **narrative.to_json()},
                                 indent=2, sort_keys=True, ensure_ascii=False))
                return 0
            p = narrative.provenance
            print(f"window {args.show} of {name}: input {window.input_times[0]} … {window.input_times[-1]}, "
                  f"targets {window.target_times[0]} … {window.target_times[-1]}")
            print()
            print(narrative.text)
            print()
            print(f"backend: {p.backend}   model: {p.model}   prompt: {p.prompt_version}   scope: {p.scope}")
            print(f"created: {p.created_at}   cached: {'yes' if hit else 'no'}   fallback: "
                  f"{'yes (' + str(p.fallback_reason) + ', requested ' + str(p.requested_backend) + ')' if p.fallback else 'no'}")
            return 0
        datasets, events, clim = _windows(args, root, source, fields, splits, t_in, t_out, names)
        total = sum(len(ds) if args.limit is None else min(args.limit, len(ds)) for _, ds in datasets)
        encoder = None
        if not args.no_embed:
            from core.semantics import SentenceEncoder

            encoder = SentenceEncoder(device=args.device)
        stats = run_narration(_iter_inputs(datasets, events, clim, source, args.limit), narrator, cache,
                              encoder=encoder, total=total, batch_size=args.batch_size)
    finally:
        cache.close()
    stats.update(narrator=args.narrator, scope=args.scope, splits=names, cache=str(args.cache or default_cache_dir(root)))
    if args.json:
        print(json.dumps(stats, sort_keys=True))
    else:
        wps = f"{stats['windows_per_s']:.1f} windows/s" if stats["windows_per_s"] else "-"
        sps = f"{stats['sentences_per_s']:.1f} sentences/s" if stats["sentences_per_s"] else "-"
        print(f"{stats['windows']} windows: {stats['narrated']} narrated ({wps}), {stats['cached']} already cached, "
              f"{stats['fallbacks']} fallbacks; {stats['embedded']} new embeddings ({sps}); cache {stats['cache']}")
        for reason, n in stats["fallback_reasons"].items():
            print(f"  fallback x{n}: {reason}")
    return 0


def register(cli) -> None:
    p = cli.command(("narrate",), help="narrate every window of a dataset (cached, resumable) and embed the texts",
                    func=_run)
    p.add_argument("--root", required=True, help="dataset folder (e.g. data/demo/weather)")
    p.add_argument("--source", default=None, help="reader name (default: 'source' of ROOT/s2kd_dataset.json)")
    p.add_argument("--variables", default=None, help="comma-separated channels (default: all)")
    p.add_argument("--narrator", choices=NARRATOR_CHOICES, default="diagnostic", help="narrator backend")
    p.add_argument("--scope", choices=("context", "privileged"), default="context",
                   help="context: only what is known at forecast time; privileged: may use the targets")
    p.add_argument("--split", default="train,val,test", help="comma-separated splits (default: train,val,test)")
    p.add_argument("--limit", type=int, default=None, help="at most N windows per split")
    p.add_argument("--stride", type=int, default=1, help="window stride in time slots (default 1)")
    p.add_argument("--step", type=int, default=1, help="frame step inside a window in time slots (default 1)")
    p.add_argument("--t-in", dest="t_in", type=int, default=None, help="input frames (default: manifest t_in)")
    p.add_argument("--t-out", dest="t_out", type=int, default=None, help="target frames (default: manifest t_out)")
    p.add_argument("--cache", default=None, help="cache folder (default: ROOT/.s2kd-cache/narratives)")
    p.add_argument("--show", type=int, default=None, metavar="N",
                   help="print the narrative of window N of the first split with its provenance")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-embed", action="store_true", help="do not pre-compute sentence embeddings")
    p.add_argument("--batch-size", type=int, default=32, help="embedding batch size (default 32)")
    p.add_argument("--device", default="auto", help="device of the sentence encoder (auto, cpu, cuda, mps)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--backend-config", default=None,
                   help="TOML file with [openai] / [transformers] tables of backend settings")
    g = p.add_argument_group("openai backend (the API key is read from the environment only)")
    g.add_argument("--base-url", default=None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--model", default=None, help="model name served by the server")
    g.add_argument("--api-key-env", default=None, help="environment variable holding the key "
                                                        "(default S2KD_OPENAI_API_KEY)")
    g.add_argument("--timeout", type=float, default=None, help="seconds per request attempt")
    g.add_argument("--max-retries", type=int, default=None, help="retries on 429/5xx/timeouts")
    g.add_argument("--concurrency", type=int, default=None, help="requests in flight at once")
    g = p.add_argument_group("transformers backend")
    g.add_argument("--model-dir", default=None, help="local model folder (loaded offline)")
