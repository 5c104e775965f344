"""Models: shapes, band split, teacher attention and narrative handling, student inference path, configs."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import models
from models.blocks import SDNBlock
from models.spectral import _extend, band_split, radial_frequency

LATLON = dict(in_shape=(4, 2, 32, 64), t_out=3, grid="latlon")
CITY = dict(in_shape=(3, 2, 32, 32), t_out=2, grid="city")
GRIDS = {"latlon": LATLON, "city": CITY}
NAMES = ["teacher-s2", "teacher-vision", "student", "simvp", "convlstm"]


def _cfg(name, size, spec):
    if name == "student":
        t = models.preset("teacher-s2", size, spec["in_shape"], spec["t_out"], spec["grid"])
        return models.student_config(size, spec["in_shape"], spec["t_out"], spec["grid"], teacher=t)
    return models.preset(name, size, spec["in_shape"], spec["t_out"], spec["grid"])


def _text(b, L=5, n_real=(5, 3), seed=1):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, L, 384, generator=g)
    mask = torch.zeros(b, L, dtype=torch.bool)
    for i in range(b):
        mask[i, : n_real[i % len(n_real)]] = True
    pooled = torch.nn.functional.normalize(torch.randn(b, 384, generator=g), dim=-1)
    return dict(text_tokens=tokens, text_mask=mask, text_pooled=pooled)


def _flops(fn):
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        fn()
    return fc.get_total_flops()


# ------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("grid", ["latlon", "city"])
@pytest.mark.parametrize("name", NAMES)
def test_forecast_shapes(name, grid):
    spec = GRIDS[grid]
    cfg = _cfg(name, "tiny", spec)
    m = models.build(name, cfg).eval()
    assert sum(p.numel() for p in m.parameters()) <= 50_000
    x = torch.randn(2, *spec["in_shape"])
    kw = _text(2) if name == "teacher-s2" else {}
    out = m(x, **kw)
    t_in, c, hh, ww = spec["in_shape"]
    assert out["forecast"].shape == (2, spec["t_out"], c, hh, ww)
    assert torch.isfinite(out["forecast"]).all()
    with pytest.raises(ValueError, match="expected input"):
        m(torch.randn(2, t_in, c + 1, hh, ww))


@pytest.mark.parametrize("grid", ["latlon", "city"])
def test_teacher_and_student_feature_shapes(grid):
    spec = GRIDS[grid]
    tcfg = _cfg("teacher-s2", "tiny", spec)
    teacher = models.build("teacher-s2", tcfg).eval()
    student = models.build("student", _cfg("student", "tiny", spec)).eval()
    x = torch.randn(2, *spec["in_shape"])
    h, w = spec["in_shape"][2] // 4, spec["in_shape"][3] // 4
    d = tcfg.latent_dim
    to = teacher(x, **_text(2), return_features=True)
    for k in ("latent", "latent_low", "latent_high", "text_fused"):
        assert to[k].shape == (2, d, h, w), k
    assert to["attention"].shape == (2, h, w)
    assert to["attention_tokens"].shape == (2, 5, h, w)
    torch.testing.assert_close(to["latent_low"] + to["latent_high"], to["latent"])
    so = student(x, return_features=True)
    for k in ("adapted", "adapted_low", "adapted_high", "semantic"):
        assert so[k].shape == to["latent"].shape, k
    assert so["semantic"].shape == to["text_fused"].shape
    assert so["absorbed_attention"].shape == (2, h, w)
    torch.testing.assert_close(so["absorbed_attention"].sum(dim=(1, 2)), torch.ones(2))
    vis = models.build("teacher-vision", _cfg("teacher-vision", "tiny", spec)).eval()
    vo = vis(x, return_features=True)
    assert "attention" not in vo and "attention_tokens" not in vo
    torch.testing.assert_close(vo["text_fused"], vo["latent"])


# ------------------------------------------------------------------------------------------ band split
@pytest.mark.parametrize("periodic", [(False, True), (False, False), (True, True)])
def test_band_split_exact_and_lowpass(periodic):
    z = torch.randn(3, 4, 16, 32, dtype=torch.float64)
    cutoff = 0.3
    low, high = band_split(z, cutoff, periodic)
    torch.testing.assert_close(low + high, z, rtol=0, atol=1e-12)
    # The low band, extended exactly as the split extends its input, has no power above the cut-off.
    ext = _extend(low, periodic)
    spec = torch.fft.rfft2(ext).abs() ** 2
    r = radial_frequency(*ext.shape[-2:], dtype=torch.float64)
    above = spec[..., r > cutoff + 1e-9].sum()
    assert above <= 1e-18 * spec.sum()
    assert (torch.fft.rfft2(_extend(high, periodic)).abs() ** 2)[..., r > cutoff + 1e-9].sum() > 0


def test_learnable_cutoff_gets_gradient():
    block = SDNBlock(8, heads=2, cutoff=0.3, learnable_cutoff=True, periodic=(False, True))
    y = block(torch.randn(2, 8, 8, 16))
    y.pow(2).mean().backward()
    assert block.cutoff_logit.grad is not None and block.cutoff_logit.grad.abs() > 0
    assert abs(float(block.cutoff.detach()) - 0.3) < 1e-6


# ------------------------------------------------------------------------------------------ teacher
def test_teacher_attention_sums_to_one_and_follows_the_narrative():
    cfg = _cfg("teacher-s2", "tiny", LATLON)
    teacher = models.build("teacher-s2", cfg).eval()
    x = torch.randn(2, *LATLON["in_shape"])
    text = _text(2, L=5, n_real=(5, 3))
    out = teacher(x, **text, return_features=True)
    torch.testing.assert_close(out["attention"].sum(dim=(1, 2)), torch.ones(2))
    assert (out["attention"] >= 0).all()
    tok = out["attention_tokens"].sum(dim=(2, 3))
    torch.testing.assert_close(tok, text["text_mask"].float())  # real tokens sum to 1, padding to 0
    assert out["attention"].std() > 0  # not a flat map (the null token makes it vary over space)
    other = _text(2, L=5, n_real=(5, 3), seed=7)
    out2 = teacher(x, **other, return_features=True)
    assert (out2["attention"] - out["attention"]).abs().max() > 1e-4
    assert (out2["forecast"] - out["forecast"]).abs().max() > 0
    # Per token: a longer narrative (one more real token) changes the map of sample 1.
    more = dict(text)
    more["text_mask"] = text["text_mask"].clone()
    more["text_mask"][1, 3] = True
    out3 = teacher(x, **more, return_features=True)
    assert (out3["attention"][1] - out["attention"][1]).abs().max() > 1e-6
    torch.testing.assert_close(out3["attention"][0], out["attention"][0])


def test_teacher_without_narrative():
    cfg = _cfg("teacher-s2", "tiny", CITY)
    teacher = models.build("teacher-s2", cfg).eval()
    x = torch.randn(2, *CITY["in_shape"])
    out = teacher(x, return_features=True)
    assert out["forecast"].shape == (2, 2, 2, 32, 32)
    assert "attention" not in out
    torch.testing.assert_close(out["text_fused"], out["latent"])
    pooled_only = teacher(x, text_pooled=_text(2)["text_pooled"], return_features=True)
    assert "attention" not in pooled_only
    # A sample with an all-False mask is a sample without narrative.
    text = _text(2)
    text["text_mask"][1] = False
    mixed = teacher(x, **text, return_features=True)
    torch.testing.assert_close(mixed["forecast"][1], out["forecast"][1])
    assert (mixed["forecast"][0] - out["forecast"][0]).abs().max() > 0
    torch.testing.assert_close(mixed["attention"][1], torch.full((8, 8), 1 / 64))
    assert mixed["text_pooled"].shape == (2, 384)
    with pytest.raises(ValueError, match="text_tokens"):
        teacher(x, text_tokens=torch.randn(2, 4, 100))


def test_narrative_dropout_is_per_sample_and_equals_no_narrative():
    cfg = _cfg("teacher-s2", "tiny", LATLON).replace(narrative_dropout=0.5)
    teacher = models.build("teacher-s2", cfg).train()
    torch.manual_seed(3)
    b = 16
    x = torch.randn(b, *LATLON["in_shape"])
    with torch.no_grad():
        no_text = teacher(x)["forecast"]
        with_text = teacher(x, **_text(b))["forecast"]
        teacher.eval()
        eval_text = teacher(x, **_text(b))["forecast"]
    same = (with_text - no_text).flatten(1).abs().amax(dim=1) == 0
    assert 0 < int(same.sum()) < b  # some samples dropped, some kept
    torch.testing.assert_close(with_text[~same], eval_text[~same])
    assert ((eval_text - no_text).flatten(1).abs().amax(dim=1) > 0).all()  # no dropout in eval


# ------------------------------------------------------------------------------------------ periodicity
def test_sdn_is_equivariant_to_longitude_shifts_and_latitude_does_not_wrap():
    torch.manual_seed(0)
    block = SDNBlock(8, heads=2, kernels=(3, 5, 7), periodic=(False, True)).eval()
    z = torch.randn(2, 8, 8, 16)
    for k in (1, 5):
        shifted = torch.roll(z, k, dims=-1)
        torch.testing.assert_close(block.local(shifted), torch.roll(block.local(z), k, dims=-1))
        torch.testing.assert_close(block(shifted), torch.roll(block(z), k, dims=-1), rtol=1e-5, atol=1e-5)
    # Local branch: a bump at longitude column 0 reaches the last column (wraps) ...
    base = block.local(z)
    bump = z.clone()
    bump[..., :, 0] += 1.0
    diff = (block.local(bump) - base).abs()
    assert diff[..., -1].max() > 1e-4
    # ... but a bump on the first latitude row does not reach the last row (kernel 7: reach 3 rows).
    bump = z.clone()
    bump[..., 0, :] += 1.0
    diff = (block.local(bump) - base).abs()
    assert diff[..., -1, :].max() == 0
    assert diff[..., 0, :].max() > 1e-4
    fourier = SDNBlock(8, heads=2, periodic=(False, True), global_mixer="fourier", hw=(8, 16)).eval()
    torch.testing.assert_close(fourier(torch.roll(z, 3, dims=-1)), torch.roll(fourier(z), 3, dims=-1),
                               rtol=1e-5, atol=1e-5)
    # City grids wrap in neither direction.
    city = SDNBlock(8, heads=2, kernels=(3, 5, 7), periodic=(False, False)).eval()
    bump = z.clone()
    bump[..., :, 0] += 1.0
    assert (city.local(bump) - city.local(z))[..., -1].abs().max() == 0


# ------------------------------------------------------------------------------------------ student
def test_student_inference_path_equals_bare_student():
    for spec in (LATLON, CITY):
        cfg = _cfg("student", "tiny", spec)
        full = models.build("student", cfg).eval()
        bare = models.build("student", cfg.replace(kd_heads=False)).eval()
        missing, unexpected = bare.load_state_dict(full.state_dict(), strict=False)
        assert not missing
        x = torch.randn(2, *spec["in_shape"])
        f_full = _flops(lambda: full(x))
        f_pred = _flops(lambda: full.predict(x))
        f_bare = _flops(lambda: bare(x))
        assert f_full == f_pred == f_bare > 0
        torch.testing.assert_close(full.predict(x), bare.predict(x))
        f_feat = _flops(lambda: full(x, return_features=True))
        assert f_feat > f_bare  # the heads do cost something when asked for
        f_att = _flops(lambda: full(x, return_attention=True)) - f_bare
        assert 0 < f_att < 0.01 * f_bare
        assert not [n for n, _ in full.named_parameters() if "text" in n]
        assert "text" not in " ".join(full.forward.__code__.co_varnames)
        # Every parameter the forecast depends on exists in the bare net.
        full.zero_grad()
        full(x)["forecast"].sum().backward()
        used = {n for n, p in full.named_parameters() if p.grad is not None}
        assert used <= set(dict(bare.named_parameters()))
        with pytest.raises(ValueError, match="kd_heads"):
            bare(x, return_features=True)


@pytest.mark.parametrize("data", ["weather", "taxibj"])
def test_demo_student_is_at_most_a_fifth_of_the_teacher(data):
    shape, t_out, grid = {"weather": ((12, 3, 32, 64), 12, "latlon"), "taxibj": ((4, 2, 32, 32), 4, "city")}[data]
    tcfg = models.preset("teacher-s2", "demo", shape, t_out, grid)
    teacher = models.build("teacher-s2", tcfg).eval()
    scfg = models.student_config("demo", shape, t_out, grid, teacher=tcfg)
    student = models.build("student", scfg).eval()
    x = torch.randn(1, *shape)
    text = _text(1, L=24, n_real=(24,))
    f_t = _flops(lambda: teacher(x, **text))
    f_s = _flops(lambda: student(x))
    p_t = sum(p.numel() for p in teacher.parameters())
    p_s_bare = sum(p.numel() for p in models.build("student", scfg.replace(kd_heads=False)).parameters())
    p_s_all = sum(p.numel() for p in student.parameters())
    assert f_s <= 0.2 * f_t, (f_s, f_t)
    assert p_s_bare <= 0.2 * p_t, (p_s_bare, p_t)
    assert p_s_all <= 0.2 * p_t, (p_s_all, p_t)  # even with the training-only heads


# ------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_rebuilds_the_same_model(name):
    cfg = _cfg(name, "tiny", LATLON)
    saved = json.loads(json.dumps({"model": name, "config": cfg.to_dict()}))
    again = models.config_class(saved["model"]).from_dict(saved["config"])
    assert again == cfg
    m1 = models.build(name, cfg).eval()
    m2 = models.build(saved["model"], saved["config"]).eval()
    m2.load_state_dict(m1.state_dict())
    x = torch.randn(1, *LATLON["in_shape"])
    kw = _text(1) if name == "teacher-s2" else {}
    torch.testing.assert_close(m1(x, **kw)["forecast"], m2(x, **kw)["forecast"])


def test_bad_configs_are_rejected():
    cfg = _cfg("teacher-s2", "tiny", LATLON)
    d = cfg.to_dict()
    d["hidden_size"] = 3
    with pytest.raises(ValueError, match="hidden_size"):
        models.build("teacher-s2", d)
    with pytest.raises(ValueError, match="unknown config key"):
        models.TeacherConfig.from_dict(d)
    with pytest.raises(ValueError, match="use_text"):
        models.build("teacher-vision", cfg)
    with pytest.raises(ValueError, match="StudentConfig"):
        models.build("student", cfg)
    with pytest.raises(ValueError, match="unknown model"):
        models.build("transformer-xl", cfg)
    with pytest.raises(ValueError, match="already registered"):
        models.register(models.MODELS["student"])
    with pytest.raises(ValueError, match="divisible"):
        models.preset("teacher-s2", "tiny", (4, 2, 30, 64), 3)
    with pytest.raises(ValueError, match="unknown model size"):
        models.preset("student", "huge", (4, 2, 32, 64), 3)
    with pytest.raises(ValueError, match="hid_s must be int"):
        models.build("teacher-s2", {**cfg.to_dict(), "hid_s": "16"})
    with pytest.raises(ValueError, match="use_text must be bool"):
        cfg.replace(use_text=1)
    assert isinstance(cfg, models.config_class("teacher-s2"))
    with pytest.raises(Exception):
        cfg.hid_s = 3  # frozen


@pytest.mark.parametrize("grid", ["latlon", "city"])
def test_fourier_global_mixer_teacher(grid):
    spec = GRIDS[grid]
    cfg = _cfg("teacher-s2", "tiny", spec).replace(global_mixer="fourier")
    teacher = models.build("teacher-s2", cfg)
    x = torch.randn(2, *spec["in_shape"])
    out = teacher(x, **_text(2), return_features=True)
    assert out["forecast"].shape == (2, spec["t_out"], *spec["in_shape"][1:])
    out["forecast"].pow(2).mean().backward()
    assert teacher.sdn[0].global_mixer.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="global_mixer"):
        cfg.replace(global_mixer="mamba")
