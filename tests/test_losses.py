"""The S²-KD loss: each term is zero on matching features, hand-computed values, short optimisations."""

import pytest
import torch

import models
from core.losses import (METHOD_WEIGHTS, METHODS, TERMS, DistillConfig, attention_term, distill_loss,
                         normalize_map)
from models.spectral import band_split

SHAPE, T_OUT, GRID = (4, 2, 16, 32), 3, "latlon"
H, W = 4, 8  # latent grid


def _models(infonce=False):
    tcfg = models.preset("teacher-s2", "tiny", SHAPE, T_OUT, GRID)
    scfg = models.student_config("tiny", SHAPE, T_OUT, GRID, teacher=tcfg, infonce_head=infonce)
    return tcfg, models.build("student", scfg)


def _teacher_tensors(b=4, d=16, seed=0):
    """Fixed teacher outputs, as a cache would give them back."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(b, d, H, W, generator=g)
    low, high = band_split(latent, 0.25, (False, True))
    att = torch.softmax(torch.randn(b, H * W, generator=g) * 2, dim=-1).reshape(b, H, W)
    return {
        "forecast": torch.randn(b, T_OUT, *SHAPE[1:], generator=g),
        "latent": latent, "latent_low": low, "latent_high": high,
        "text_fused": torch.randn(b, d, H, W, generator=g),
        "attention": att,
        "text_pooled": torch.nn.functional.normalize(torch.randn(b, 384, generator=g), dim=-1),
    }


def _only(term, **kw):
    weights = {t: 0.0 for t in TERMS}
    weights[term] = 1.0
    return DistillConfig(method="none", weights=weights, **kw)


def _matching_student(t):
    return {"forecast": t["forecast"].clone(), "adapted": t["latent"].clone(),
            "adapted_low": t["latent_low"].clone(), "adapted_high": t["latent_high"].clone(),
            "semantic": t["text_fused"].clone() * 3.0,  # cosine ignores scale
            "absorbed_attention": t["attention"].clone() * 5.0,  # normalisation ignores scale
            "semantic_embedding": t["text_pooled"].clone()}


@pytest.mark.parametrize("term", ["task", "mae", "output", "feature", "spectral", "semantic", "attention", "fft"])
def test_term_is_zero_when_features_match(term):
    t = _teacher_tensors()
    s = _matching_student(t)
    target = t["forecast"].clone()
    total, terms = distill_loss(s, t, target, _only(term))
    assert set(terms) == {term}
    assert float(total) == pytest.approx(0.0, abs=1e-6)
    # ... and positive when they do not.
    s2 = {k: v + 0.3 * torch.randn_like(v) for k, v in s.items()}
    total2, _ = distill_loss(s2, t, target, _only(term))
    assert float(total2) > 1e-4


def test_hand_computed_values():
    t = _teacher_tensors(b=2)
    s = _matching_student(t)
    s["adapted_low"] = t["latent_low"] + 1.0
    s["adapted_high"] = t["latent_high"] + 2.0
    _, terms = distill_loss(s, t, t["forecast"], _only("spectral", alpha=0.5))
    assert float(terms["spectral"]) == pytest.approx(1.0 + 0.5 * 4.0)  # raw by default
    # energy normalisation divides by E = mean(low_t²) + mean(high_t²), computed here by hand
    energy = float((t["latent_low"] ** 2).mean() + (t["latent_high"] ** 2).mean())
    _, terms = distill_loss(s, t, t["forecast"], _only("spectral", alpha=0.5, feature_norm="energy"))
    assert float(terms["spectral"]) == pytest.approx((1.0 + 0.5 * 4.0) / energy, rel=1e-5)
    s["semantic"] = -t["text_fused"]
    _, terms = distill_loss(s, t, t["forecast"], _only("semantic"))
    assert float(terms["semantic"]) == pytest.approx(2.0)
    # attention: uniform student vs one-hot teacher on an N-cell grid: n(A_t) = N at one cell, 0 elsewhere.
    n = H * W
    a_t = torch.zeros(1, H, W)
    a_t[0, 1, 2] = 1.0
    a_s = torch.full((1, H, W), 1.0 / n)
    expected = ((n - 1) ** 2 + (n - 1) * 1.0) / n
    assert float(attention_term(a_s, a_t)) == pytest.approx(expected)
    assert float(normalize_map(torch.zeros(1, H, W)).mean()) == 1.0
    # output KD and task
    s["forecast"] = t["forecast"] + 0.5
    _, terms = distill_loss(s, t, t["forecast"] - 0.5, DistillConfig(method="output"))
    assert float(terms["task"]) == pytest.approx(1.0)
    assert float(terms["output"]) == pytest.approx(0.25)


def test_method_table_and_ablations():
    assert set(METHODS) == {"none", "output", "feature", "spectral", "s2kd", "s2kd-no-sem", "s2kd-no-att",
                            "s2kd-no-spec"}
    full = METHOD_WEIGHTS["s2kd"]
    for abl, term in [("s2kd-no-sem", "semantic"), ("s2kd-no-att", "attention"), ("s2kd-no-spec", "spectral")]:
        assert full[term] > 0 and METHOD_WEIGHTS[abl][term] == 0
        assert {k: v for k, v in METHOD_WEIGHTS[abl].items() if k != term} == {k: v for k, v in full.items() if k != term}
    t = _teacher_tensors()
    s = _matching_student(t)
    for method in METHODS:
        cfg = DistillConfig(method=method)
        _, terms = distill_loss(s, t, t["forecast"], cfg)
        assert set(terms) == {k for k, v in cfg.resolved_weights().items() if v > 0}
    # Terms with weight 0 are not computed: their inputs may be missing entirely.
    _, terms = distill_loss({"forecast": s["forecast"]}, None, t["forecast"], DistillConfig(method="none"))
    assert set(terms) == {"task"}
    with pytest.raises(ValueError, match="attention"):
        distill_loss(s, {k: v for k, v in t.items() if k != "attention"}, t["forecast"], DistillConfig())


def test_bands_are_split_here_when_not_supplied():
    t = _teacher_tensors()
    s = _matching_student(t)
    s["adapted"] = t["latent"] + 0.1 * torch.randn_like(t["latent"])
    lo, hi = band_split(s["adapted"], 0.25, (False, True))
    cfg = _only("spectral", alpha=2.0)
    _, a = distill_loss({"forecast": s["forecast"], "adapted_low": lo, "adapted_high": hi}, t, t["forecast"], cfg)
    _, b = distill_loss({"forecast": s["forecast"], "adapted": s["adapted"]},
                        {"latent": t["latent"]}, t["forecast"], cfg)
    torch.testing.assert_close(a["spectral"], b["spectral"])


def test_config_validation_and_round_trip():
    cfg = DistillConfig(method="s2kd-no-att", weights={"fft": 0.1}, alpha=2.0)
    assert DistillConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.resolved_weights()["fft"] == 0.1 and cfg.resolved_weights()["attention"] == 0
    with pytest.raises(ValueError, match="unknown method"):
        DistillConfig(method="s3kd")
    with pytest.raises(ValueError, match="unknown loss term"):
        DistillConfig(weights={"spectrum": 1.0})
    with pytest.raises(ValueError, match="unknown setting"):
        DistillConfig.from_dict({"method": "s2kd", "beta": 1})


@pytest.mark.parametrize("term", ["task", "output", "feature", "spectral", "semantic", "infonce", "attention", "fft"])
def test_each_term_decreases_in_a_short_optimisation(term):
    torch.manual_seed(0)
    _, student = _models(infonce=(term == "infonce"))
    t = _teacher_tensors(d=student.config.teacher_dim)
    x = torch.randn(4, *SHAPE)
    target = torch.randn(4, T_OUT, *SHAPE[1:])
    cfg = _only(term)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    values = []
    for _ in range(12):
        out = student(x, return_features=True)
        loss, terms = distill_loss(out, t, target, cfg)
        values.append(float(terms[term]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert values[-1] < 0.9 * values[0], values


def test_end_to_end_with_a_real_teacher_and_frozen_weights():
    tcfg, student = _models()
    teacher = models.build("teacher-s2", tcfg).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, *SHAPE)
    text = dict(text_tokens=torch.randn(2, 6, 384), text_mask=torch.ones(2, 6, dtype=torch.bool))
    with torch.no_grad():
        t_out = teacher(x, **text, return_features=True)
    s_out = student(x, return_features=True)
    total, terms = distill_loss(s_out, t_out, torch.randn(2, T_OUT, *SHAPE[1:]), DistillConfig(method="s2kd"))
    assert set(terms) == {"task", "output", "spectral", "semantic", "attention"}
    total.backward()
    for name in ("adapter_low.weight", "adapter_high.weight", "semantic_head.0.weight", "attention_head.weight"):
        assert dict(student.named_parameters())[name].grad.abs().sum() > 0, name
    assert all(p.grad is None for p in teacher.parameters())


def test_energy_normalised_latent_terms_are_scale_free():
    """Scaling teacher and student latents by k leaves the normalised feature/spectral terms unchanged,
    an all-zero student scores exactly 1 on both, and feature_norm="none" scales with k²."""
    t = _teacher_tensors(b=2)
    s = {k: v + 0.2 * torch.randn_like(v) for k, v in _matching_student(t).items()}
    for term in ("feature", "spectral"):
        base = float(distill_loss(s, t, t["forecast"], _only(term, feature_norm="energy"))[1][term])
        k = 7.0
        t_k = {**t, "latent": t["latent"] * k, "latent_low": t["latent_low"] * k, "latent_high": t["latent_high"] * k}
        s_k = {**s, "adapted": s["adapted"] * k, "adapted_low": s["adapted_low"] * k,
               "adapted_high": s["adapted_high"] * k}
        assert float(distill_loss(s_k, t_k, t["forecast"], _only(term, feature_norm="energy"))[1][term]) == pytest.approx(base, rel=1e-4)
        raw = float(distill_loss(s, t, t["forecast"], _only(term, feature_norm="none"))[1][term])
        raw_k = float(distill_loss(s_k, t_k, t["forecast"], _only(term, feature_norm="none"))[1][term])
        assert raw_k == pytest.approx(k * k * raw, rel=1e-4)
        zero = {key: torch.zeros_like(v) for key, v in s.items()}
        assert float(distill_loss(zero, t, t["forecast"], _only(term, feature_norm="energy"))[1][term]) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="feature_norm"):
        DistillConfig(feature_norm="layer")
