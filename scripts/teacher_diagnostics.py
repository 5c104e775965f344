"""What the text teacher has to give a student, per bench dataset (BENCHMARKS.md, "Why ...").

    OMP_NUM_THREADS=1 .venv/bin/python scripts/teacher_diagnostics.py --bench-out benchmarks

Reads the cached outputs of the bench's ``teacher-s2`` on its training windows (the same cache the
students distil from; built if missing) and prints, per dataset:

- ``text share``: ‖S_t − Z_t‖ / ‖Z_t‖, how much the narrative changes the teacher's latent (the semantic
  term's target S_t against the vision latent Z_t; 0 = the text adds nothing);
- ``attention peak``: the mean over windows of max(n(A)) and of the coefficient of variation std(n(A)),
  with n(A) the attention map normalised to mean 1 as in the attention term (a uniform map: 1 and 0);
- ``top-10 % mass``: the share of attention in the top tenth of latent cells (0.10 for a uniform map);
- ``high-band energy``: mean(B_high Z_t²) / mean(Z_t²), the share of the latent the α-weighted half of the
  spectral term aligns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def diagnose(targets, n: int) -> dict[str, float]:
    """The statistics of the module docstring over the first ``n`` cached training windows."""
    out = targets.lookup(sorted(targets.keys)[:n])
    z = out["latent"].double().numpy()
    s = out["text_fused"].double().numpy()
    hi = out["latent_high"].double().numpy()
    a = np.clip(out["attention"].double().numpy().reshape(n, -1), 0, None)
    na = a / np.maximum(a.mean(axis=1, keepdims=True), 1e-30)
    k = max(1, int(round(0.1 * na.shape[1])))
    top = np.sort(na, axis=1)[:, -k:].sum(axis=1) / na.sum(axis=1)
    return {
        "text_share": float(np.linalg.norm(s - z) / np.linalg.norm(z)),
        "attention_max": float(na.max(axis=1).mean()),
        "attention_cv": float(na.std(axis=1).mean()),
        "attention_top10_mass": float(top.mean()),
        "high_band_energy": float((hi ** 2).mean() / (z ** 2).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    from core.bench import DISTILL_TEACHER, SUITES, base_config_path, prepare_data, run_overrides
    from core.config import load_config
    from core.train.data import build_data
    from core.train.teacher_cache import prepare_teacher

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-out", default="benchmarks")
    ap.add_argument("--windows", type=int, default=128, help="training windows to summarise (default 128)")
    args = ap.parse_args(argv)
    suite = SUITES["bench"]
    rows = []
    for plan in suite.datasets:
        runs = Path(args.bench_out) / "runs" / plan.name
        if not (runs / DISTILL_TEACHER / "model.json").is_file():
            print(f"teacher_diagnostics: {runs / DISTILL_TEACHER}: no finished teacher run; skipped", file=sys.stderr)
            continue
        data_dir = prepare_data(suite, plan, None, lambda _m: None)
        cfg = load_config(base_config_path(suite, plan),
                          run_overrides(suite, plan, "student-s2kd", data_dir, runs, []))
        data = build_data(cfg.data)
        targets = prepare_teacher(cfg, data)
        rows.append((plan.name, diagnose(targets, min(args.windows, len(targets.keys)))))
    keys = ["text_share", "attention_max", "attention_cv", "attention_top10_mass", "high_band_energy"]
    print("| dataset | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
    for name, d in rows:
        print(f"| {name} | " + " | ".join(f"{d[k]:.3g}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
