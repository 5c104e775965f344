"""Validation sweep of distillation weights with the bench suite's budget (BENCHMARKS.md, "Why S²-KD ...").

    OMP_NUM_THREADS=1 .venv/bin/python scripts/kd_sweep.py --dataset weather --bench-out benchmarks \\
        --out benchmarks/sweep-weather

Trains students exactly as ``s2kd bench --suite bench`` does (same preset, data folder, budget, seed and
teacher: ``<bench-out>/runs/<dataset>/teacher-s2``, which must exist, i.e. run the bench first), one per
variant below, each with extra dotted overrides, and reports the best **validation** MSE of each (the
number the trainer selects its checkpoint by; the test split is never read).  Finished variants are
reused, so a rerun only trains what is missing.  Writes ``<out>/sweep.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (bench model whose method it uses, extra overrides).  Weights are explicit, so a variant means
#: the same whatever the defaults in core/losses.py (the sweep chose λ_spec = λ_feat = 0.1 there; they were 1.0).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "none": ("student-none", []),
    "output": ("student-output", []),
    "spectral (λ_spec=1)": ("student-spectral", ["distill.weights.spectral=1.0"]),
    "spectral (λ_spec=0.1)": ("student-spectral", ["distill.weights.spectral=0.1"]),
    "s2kd (λ_spec=1)": ("student-s2kd", ["distill.weights.spectral=1.0"]),
    "s2kd (λ_spec=0.1)": ("student-s2kd", ["distill.weights.spectral=0.1"]),
    "s2kd (λ_spec=0.01)": ("student-s2kd", ["distill.weights.spectral=0.01"]),
    "s2kd-no-spec (λ_spec=0)": ("student-s2kd-no-spec", []),
    # does the high band hurt (α=0 aligns the low band only), and does plain latent MSE hurt at a small λ
    "spectral (λ_spec=1, α=0: low band only)": ("student-spectral", ["distill.weights.spectral=1.0",
                                                                     "distill.alpha=0.0"]),
    "feature (λ_feat=1)": ("student-feature", ["distill.weights.feature=1.0"]),
    "feature (λ_feat=0.1)": ("student-feature", ["distill.weights.feature=0.1"]),
}


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isascii() and c.isalnum() else " " for c in name).split())


def main(argv: list[str] | None = None) -> int:
    from core.bench import SUITES, DISTILL_TEACHER, prepare_data, shared_data_loader, train_model
    from core.checkpoint import read_metrics
    from core.io import atomic_write_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, choices=[p.name for p in SUITES["bench"].datasets])
    ap.add_argument("--bench-out", default="benchmarks", help="the bench's --out (its teacher-s2 run is used)")
    ap.add_argument("--out", required=True, help="folder for the sweep's runs and sweep.json")
    ap.add_argument("--only", default="", help="semicolon-separated variant names (default: all)")
    ap.add_argument("--seeds", default="0", help="comma-separated train.seed values (default: 0, the bench's); "
                                                "the table gives the mean and spread over them")
    args = ap.parse_args(argv)

    suite = SUITES["bench"]
    plan = next(p for p in suite.datasets if p.name == args.dataset)
    teacher_runs = Path(args.bench_out) / "runs" / plan.name
    if not (teacher_runs / DISTILL_TEACHER / "model.json").is_file():
        print(f"kd_sweep: error: {teacher_runs / DISTILL_TEACHER}: no finished teacher run (run the bench first)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = prepare_data(suite, plan, None, print)
    chosen = [v for v in VARIANTS if not args.only or v in args.only.split(";")]
    shared = shared_data_loader(plan.name, print)

    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    previous = {}
    if (out / "sweep.json").is_file():  # rows of earlier invocations (other variants or seeds) are kept
        previous = {(r["variant"], r.get("seed", 0)): r for r in json.loads((out / "sweep.json").read_text())["rows"]}
    rows = []
    for name, seed in [(n, sd) for n in chosen for sd in seeds]:
        model, extra = VARIANTS[name]
        extra = extra + ([f"train.seed={seed}"] if seed else [])
        # train_model puts the run at <runs>/<model> and the teacher at <runs>/teacher-s2: give each variant
        # its own folder whose teacher-s2 is a link to the bench's
        runs = out / (_slug(name) + (f"-seed{seed}" if seed else ""))
        runs.mkdir(parents=True, exist_ok=True)
        link = runs / DISTILL_TEACHER
        if not link.exists():
            link.symlink_to((teacher_runs / DISTILL_TEACHER).resolve(), target_is_directory=True)
        info = train_model(suite, plan, model, data_dir, runs, extra, print, shared)
        vals = [r["val_mse"] for r in read_metrics(runs / model) if r.get("val_mse") is not None]
        seconds = (previous.get((name, seed)) or {}).get("seconds") if info["reused"] else info["seconds"]
        previous[(name, seed)] = {"variant": name, "seed": seed, "model": model, "overrides": extra,
                                  "best_val_mse": min(vals), "final_val_mse": vals[-1], "seconds": seconds}
    rows = sorted(previous.values(), key=lambda r: (list(VARIANTS).index(r["variant"]) if r["variant"] in VARIANTS
                                                   else len(VARIANTS), r.get("seed", 0)))
    atomic_write_json(out / "sweep.json", {"dataset": plan.name, "budget": dict(plan.budget), "rows": rows})
    print(table(plan.name, rows))
    return 0


def table(dataset: str, rows: list[dict]) -> str:
    """Markdown: per variant the best validation MSE (mean over its seeds, with min–max when several) and
    the change of the mean against ``none`` over the same seeds."""
    by: dict[str, dict[int, float]] = {}
    for r in rows:
        by.setdefault(r["variant"], {})[r.get("seed", 0)] = r["best_val_mse"]
    ref = by.get("none", {})
    lines = [f"| {dataset} variant | seeds | best val MSE (mean) | min–max | vs none (same seeds) |",
             "|---|---:|---:|---:|---:|"]
    for name, vals in by.items():
        seeds = sorted(vals)
        mean = sum(vals.values()) / len(vals)
        common = [sd for sd in seeds if sd in ref]
        rel = (f"{100 * (sum(vals[sd] for sd in common) / sum(ref[sd] for sd in common) - 1):+.1f}%"
               if common and name != "none" else "–")
        spread = f"{min(vals.values()):.4g}–{max(vals.values()):.4g}" if len(vals) > 1 else "–"
        lines.append(f"| {name} | {','.join(map(str, seeds))} | {mean:.4g} | {spread} | {rel} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
