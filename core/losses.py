"""The unified S²-KD student loss (DESIGN §2.3): a weighted sum of named terms over named outputs.

    L = w_task · MSE(Ŷs, Y)                                  task       (+ w_mae · MAE(Ŷs, Y))
      + w_output · MSE(Ŷs, Ŷt)                               output KD
      + w_feature · MSE(φ(Zs), Zt) / E                       feature KD (FitNets, one 1×1 adapter φ)
      + w_spectral · [ MSE(B_low φ(Zs), B_low Zt) + α · MSE(B_high φ(Zs), B_high Zt) ] / E   spectral KD
      + w_semantic · mean_{b,x} (1 − cos(ψ(Zs)[b,:,x], St[b,:,x]))                 semantic
      + w_infonce · CE(e_s · p_tᵀ / τ, diag)                  in-batch InfoNCE vs the pooled narrative
      + w_attention · mean_{b,x} (n(A_s)[b,x] − n(A_t)[b,x])²  attention transfer
      + w_fft · mean |log(|F Ŷs| + ε) − log(|F Y| + ε)|      output spectrum (rfft2 over H, W)

Every ‖·‖² is a mean over elements, so the terms do not grow with the grid or the batch.
With ``feature_norm="energy"`` the feature and spectral terms are divided by
``E = mean(Zt²) = mean(B_low Zt²) + mean(B_high Zt²)`` (the bands are orthogonal), the teacher latent's
energy in the batch (detached): relative errors, 1 for an all-zero student, whatever the teacher's latent
scale.  The default ``"none"`` is the raw MSE of DESIGN §2.3: in a validation sweep on the bench weather
data (BENCHMARKS.md) the energy-normalised terms did not help; the raw spectral term, about 7× the task
loss at the start with λ_spec = 1, is kept in scale by λ_spec = 0.1 instead (see :data:`METHOD_WEIGHTS`).
``n(A) = h·w · A⁺ / Σ_x A⁺`` is sum-normalisation over space rescaled to mean 1 (``A⁺ = max(A, 0)``; a map
with zero mass becomes uniform): both maps are probability maps over the latent grid, compared on a scale
that does not shrink as the grid grows.  ``B_low``/``B_high`` is :func:`models.spectral.band_split` (the same
split as the SDN).

Inputs are plain tensor dicts, so teacher outputs may come from a cache:

- student: ``forecast``; ``adapted`` (feature); ``adapted_low`` + ``adapted_high`` (spectral; these are
  φ_low/φ_high applied to the student's own band split; if absent, ``adapted`` is split here with
  ``cutoff``/``periodic``); ``semantic`` (semantic); ``semantic_embedding`` (infonce);
  ``absorbed_attention`` (attention).
- teacher: ``forecast`` (output); ``latent`` (feature); ``latent_low`` + ``latent_high`` (spectral; if
  absent, ``latent`` is split here); ``text_fused`` (semantic); ``text_pooled`` (infonce: the pooled,
  L2-normalised narrative embedding that was fed to the teacher); ``attention`` (attention).

Methods are rows of ONE table, :data:`METHOD_WEIGHTS`; every ablation is a zero weight.  A term whose
weight is 0 is not computed (its inputs need not exist).  ``distill_loss`` returns the total and the
unweighted value of each computed term (detached) for logging.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from models.spectral import band_split

TERMS = ("task", "mae", "output", "feature", "spectral", "semantic", "infonce", "attention", "fft")

# One table: method -> weight of each term (same λ for a term wherever it is on; 0 = off, not computed).
# λ_spec = λ_feat = 0.1 (were 1.0) are the validation sweep's choice (``scripts/kd_sweep.py``,
# BENCHMARKS.md): at 1.0 the raw latent alignment outweighed the task loss and left feature KD, spectral KD
# and S²-KD worse than the student alone on the validation split of both bench datasets; 0.1 was better
# in all six comparisons (the same rule for the baselines as for S²-KD).
#                 task  mae  output feature spectral semantic infonce attention fft
_ROWS = {
    "none":         (1.0, 0.0, 0.0,   0.0,    0.0,     0.0,     0.0,    0.0,      0.0),
    "output":       (1.0, 0.0, 0.5,   0.0,    0.0,     0.0,     0.0,    0.0,      0.0),
    "feature":      (1.0, 0.0, 0.0,   0.1,    0.0,     0.0,     0.0,    0.0,      0.0),
    "spectral":     (1.0, 0.0, 0.0,   0.0,    0.1,     0.0,     0.0,    0.0,      0.0),
    "s2kd":         (1.0, 0.0, 0.5,   0.0,    0.1,     0.5,     0.0,    1.0,      0.0),
    "s2kd-no-sem":  (1.0, 0.0, 0.5,   0.0,    0.1,     0.0,     0.0,    1.0,      0.0),
    "s2kd-no-att":  (1.0, 0.0, 0.5,   0.0,    0.1,     0.5,     0.0,    0.0,      0.0),
    "s2kd-no-spec": (1.0, 0.0, 0.5,   0.0,    0.0,     0.5,     0.0,    1.0,      0.0),
}
METHOD_WEIGHTS: dict[str, dict[str, float]] = {m: dict(zip(TERMS, row)) for m, row in _ROWS.items()}
METHODS = tuple(METHOD_WEIGHTS)
FEATURE_NORMS = ("energy", "none")


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Distillation settings: a method (row of :data:`METHOD_WEIGHTS`) plus per-term weight overrides.

    ``alpha`` weighs the high band in the spectral term; ``feature_norm`` (``"energy"`` or ``"none"``) divides
    the feature and spectral terms by the teacher latent's mean square E (module docstring); ``cutoff`` (fraction of Nyquist) and ``periodic``
    are used only where a band split is computed here (when the band tensors are not supplied): set them
    to the teacher SDN's values.  ``infonce_temperature`` is τ; ``fft_eps`` the ε of the spectrum loss.
    """

    method: str = "s2kd"
    weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    alpha: float = 1.0
    cutoff: float = 0.25
    periodic: tuple[bool, bool] = (False, True)
    infonce_temperature: float = 0.07
    fft_eps: float = 1e-4
    feature_norm: str = "none"

    def __post_init__(self):
        if self.method not in METHOD_WEIGHTS:
            raise ValueError(f"distill: unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        unknown = sorted(set(self.weights) - set(TERMS))
        if unknown:
            raise ValueError(f"distill: unknown loss term(s) {', '.join(map(repr, unknown))}; "
                             f"terms are {', '.join(TERMS)}")
        w = {k: float(v) for k, v in self.weights.items()}
        if any(v < 0 for v in w.values()):
            raise ValueError(f"distill: loss weights must be >= 0, got {w}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "periodic", tuple(bool(p) for p in self.periodic))
        if len(self.periodic) != 2:
            raise ValueError(f"distill: periodic must be two booleans (H, W), got {self.periodic}")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"distill: feature_norm must be one of {', '.join(FEATURE_NORMS)}, got {self.feature_norm!r}")
        if self.alpha < 0 or self.infonce_temperature <= 0 or not 0 < self.cutoff:
            raise ValueError("distill: need alpha >= 0, infonce_temperature > 0 and cutoff > 0")

    def resolved_weights(self) -> dict[str, float]:
        w = dict(METHOD_WEIGHTS[self.method])
        w.update(self.weights)
        return w

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["weights"] = dict(self.weights)
        d["periodic"] = list(self.periodic)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DistillConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"distill: unknown setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(names))}")
        d = dict(d)
        if "periodic" in d:
            d["periodic"] = tuple(d["periodic"])
        return cls(**d)


# ------------------------------------------------------------------------------------------------ terms
def _get(out: Mapping[str, torch.Tensor] | None, key: str, who: str, term: str) -> torch.Tensor:
    if out is None or key not in out or out[key] is None:
        raise ValueError(f"distill: term {term!r} needs {who} output {key!r}, which is missing "
                         f"(give it, or set the weight of {term!r} to 0)")
    return out[key]


def _same_shape(a: torch.Tensor, b: torch.Tensor, term: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"distill: term {term!r}: student {tuple(a.shape)} and teacher {tuple(b.shape)} "
                         "shapes differ (latent grids and adapter widths must match)")


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).pow(2).mean()


def spectral_term(s_low, s_high, t_low, t_high, alpha: float) -> torch.Tensor:
    """``MSE(low_s, low_t) + α · MSE(high_s, high_t)``."""
    return mse(s_low, t_low) + alpha * mse(s_high, t_high)


def latent_energy(*parts: torch.Tensor) -> torch.Tensor:
    """``E = Σ_parts mean(part²)`` (detached, floored at 1e-12): the teacher latent's mean square."""
    return sum(p.detach().float().pow(2).mean() for p in parts).clamp_min(1e-12)


def semantic_term(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean(1 − cos)`` along the channel axis (dim 1), averaged over batch and space."""
    return (1.0 - F.cosine_similarity(pred.float(), target.float(), dim=1, eps=1e-8)).mean()


def infonce_term(emb: torch.Tensor, pooled: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch InfoNCE: sample i's embedding must pick narrative i among the batch's narratives."""
    e = F.normalize(emb.float(), dim=-1)
    p = F.normalize(pooled.float(), dim=-1)
    logits = e @ p.t() / temperature
    return F.cross_entropy(logits, torch.arange(e.shape[0], device=e.device))


def normalize_map(a: torch.Tensor) -> torch.Tensor:
    """``n(A) = h·w · A⁺ / Σ A⁺`` over the last two axes (uniform 1 where the mass is zero)."""
    a = a.float().clamp_min(0.0)
    n = a.shape[-2] * a.shape[-1]
    s = a.sum(dim=(-2, -1), keepdim=True)
    return torch.where(s > 0, a * n / s.clamp_min(1e-30), torch.ones_like(a))


def attention_term(a_s: torch.Tensor, a_t: torch.Tensor) -> torch.Tensor:
    return (normalize_map(a_s) - normalize_map(a_t)).pow(2).mean()


def fft_term(pred: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    fp = torch.fft.rfft2(pred.float()).abs()
    ft = torch.fft.rfft2(target.float()).abs()
    return (torch.log(fp + eps) - torch.log(ft + eps)).abs().mean()


def _bands(out, prefix_pair, whole_key, who, config):
    lo, hi = prefix_pair
    if out is not None and lo in out and hi in out:
        return out[lo], out[hi]
    z = _get(out, whole_key, who, "spectral")
    return band_split(z, config.cutoff, config.periodic)


def distill_loss(student_out: Mapping[str, torch.Tensor], teacher_out: Mapping[str, torch.Tensor] | None,
                 target: torch.Tensor, config: DistillConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and the unweighted, detached value of every computed term (weight > 0)."""
    w = config.resolved_weights()
    pred = _get(student_out, "forecast", "student", "task")
    terms: dict[str, torch.Tensor] = {}
    if w["task"] > 0:
        _same_shape(pred, target, "task")
        terms["task"] = mse(pred, target)
    if w["mae"] > 0:
        _same_shape(pred, target, "mae")
        terms["mae"] = (pred.float() - target.float()).abs().mean()
    if w["output"] > 0:
        t = _get(teacher_out, "forecast", "teacher", "output")
        _same_shape(pred, t, "output")
        terms["output"] = mse(pred, t.detach())
    if w["feature"] > 0:
        s = _get(student_out, "adapted", "student", "feature")
        t = _get(teacher_out, "latent", "teacher", "feature")
        _same_shape(s, t, "feature")
        terms["feature"] = mse(s, t.detach())
        if config.feature_norm == "energy":
            terms["feature"] = terms["feature"] / latent_energy(t)
    if w["spectral"] > 0:
        s_lo, s_hi = _bands(student_out, ("adapted_low", "adapted_high"), "adapted", "student", config)
        t_lo, t_hi = _bands(teacher_out, ("latent_low", "latent_high"), "latent", "teacher", config)
        _same_shape(s_lo, t_lo, "spectral")
        _same_shape(s_hi, t_hi, "spectral")
        terms["spectral"] = spectral_term(s_lo, s_hi, t_lo.detach(), t_hi.detach(), config.alpha)
        if config.feature_norm == "energy":
            terms["spectral"] = terms["spectral"] / latent_energy(t_lo, t_hi)
    if w["semantic"] > 0:
        s = _get(student_out, "semantic", "student", "semantic")
        t = _get(teacher_out, "text_fused", "teacher", "semantic")
        _same_shape(s, t, "semantic")
        terms["semantic"] = semantic_term(s, t.detach())
    if w["infonce"] > 0:
        s = _get(student_out, "semantic_embedding", "student", "infonce")
        t = _get(teacher_out, "text_pooled", "teacher", "infonce")
        if s.shape[0] != t.shape[0] or s.shape[-1] != t.shape[-1]:
            raise ValueError(f"distill: term 'infonce': student {tuple(s.shape)} and narrative {tuple(t.shape)} differ")
        terms["infonce"] = infonce_term(s, t.detach(), config.infonce_temperature)
    if w["attention"] > 0:
        s = _get(student_out, "absorbed_attention", "student", "attention")
        t = _get(teacher_out, "attention", "teacher", "attention")
        _same_shape(s, t, "attention")
        terms["attention"] = attention_term(s, t.detach())
    if w["fft"] > 0:
        _same_shape(pred, target, "fft")
        terms["fft"] = fft_term(pred, target, config.fft_eps)
    if not terms:
        raise ValueError("distill: every loss weight is 0")
    total = sum(w[k] * v for k, v in terms.items())
    return total, {k: v.detach() for k, v in terms.items()}
