"""Reference baselines, our own implementations: SimVP with the gSTA translator, and ConvLSTM.

**SimVP (gSTA)**, following SimVP v2 as configured in OpenSTL: a per-frame encoder of ``N_S`` ConvSC layers
(3×3 conv → GroupNorm(2) → SiLU; strides ``[1, 2, 1, 2, …]``, so the latent grid is ``(H, W)/2^(N_S/2)``),
frames stacked into ``T_in·hid_S`` channels, a translator of ``N_T`` gSTA blocks (the first and last change
the width to/from ``hid_T`` with a 1×1 reduction; batch norm, layer scale, MLP ratio 8, stochastic depth
rising linearly to ``drop_path``), and a mirrored decoder (PixelShuffle ×2) with the first encoder layer's
output added before the last layer, then a 1×1 readout.  The ``paper`` preset is OpenSTL's setting for
both WeatherBench t2m 5.625° and TaxiBJ (``configs/weather/t2m_5_625/SimVP_gSTA.py``,
``configs/taxibj/simvp/SimVP_gSTA.py``): ``hid_S=32, hid_T=256, N_S=2, N_T=8``, 3×3 kernels,
``drop_path=0.1``.  When ``T_out ≠ T_in`` the last translator layer outputs ``T_out·hid_S`` channels and
the skip of the last input frame is used for every output frame (OpenSTL requires ``T_out = T_in``).
Zero padding everywhere, as published.

**ConvLSTM** (Shi et al. 2015), encoder–forecaster without teacher forcing: frames are cut into
``patch_size²`` patches (space-to-depth, as OpenSTL does), a stack of ConvLSTM cells reads the ``T_in``
input frames; for each of the ``T_out`` output steps the previous prediction is fed back in, and a 1×1 conv
on the top hidden state (then depth-to-space) gives the frame.

Both return ``{"forecast"}`` (and ``latent`` with ``return_features=True``).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import GSTAStage
from models.configs import ModelConfig, check_divisible, check_size


# ------------------------------------------------------------------------------------------------ SimVP
@dataclasses.dataclass(frozen=True)
class SimVPConfig(ModelConfig):
    hid_s: int = 16
    hid_t: int = 128
    n_s: int = 2
    n_t: int = 4
    mlp_ratio: float = 8.0
    kernel_enc: int = 3
    kernel_dec: int = 3
    lka_kernel: int = 21
    drop_path: float = 0.0

    def validate(self) -> None:
        if self.n_s < 1 or self.n_t < 2:
            raise ValueError("SimVPConfig: need n_s >= 1 and n_t >= 2")
        check_divisible("SimVPConfig", self.grid_hw, 2 ** (self.n_s // 2))


_SIMVP_SIZES = {  # scaled with the teacher below `paper`; `paper` = OpenSTL gSTA (weather t2m & TaxiBJ)
    "tiny": dict(hid_s=4, hid_t=16, n_s=2, n_t=2, mlp_ratio=2.0, lka_kernel=9),
    "demo": dict(hid_s=16, hid_t=64, n_s=2, n_t=4, mlp_ratio=2.0),
    "bench": dict(hid_s=24, hid_t=128, n_s=2, n_t=6, mlp_ratio=8.0, drop_path=0.1),
    "paper": dict(hid_s=32, hid_t=256, n_s=2, n_t=8, mlp_ratio=8.0, drop_path=0.1),
}


def simvp_config(size: str, in_shape, t_out: int, grid: str = "latlon", **overrides) -> SimVPConfig:
    """Preset SimVP-gSTA config (``grid`` is accepted for a uniform signature; SimVP pads with zeros)."""
    base = dict(_SIMVP_SIZES[check_size(size)])
    base.update(overrides)
    return SimVPConfig(in_shape=tuple(in_shape), t_out=int(t_out), **base)


class ConvSC(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, mode: str):
        super().__init__()
        stride = 2 if mode == "down" else 1
        pad = (k - stride + 1) // 2
        if mode == "up":
            self.conv = nn.Sequential(nn.Conv2d(cin, cout * 4, k, 1, pad), nn.PixelShuffle(2))
        else:
            self.conv = nn.Conv2d(cin, cout, k, stride, pad)
        self.norm = nn.GroupNorm(2, cout)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


def _samplings(n: int) -> list[bool]:
    return ([False, True] * ((n + 1) // 2))[:n]


class SimVP(nn.Module):
    uses_text = False

    def __init__(self, config: SimVPConfig):
        super().__init__()
        self.config = cfg = config
        t_in, c, _, _ = cfg.in_shape
        s = _samplings(cfg.n_s)
        self.enc = nn.ModuleList([ConvSC(c if i == 0 else cfg.hid_s, cfg.hid_s, cfg.kernel_enc, "down" if d else "same")
                                  for i, d in enumerate(s)])
        self.dec = nn.ModuleList([ConvSC(cfg.hid_s, cfg.hid_s, cfg.kernel_dec, "up" if u else "same")
                                  for u in reversed(s)])
        self.readout = nn.Conv2d(cfg.hid_s, c, 1)
        cin, cout = t_in * cfg.hid_s, cfg.t_out * cfg.hid_s
        dpr = torch.linspace(1e-2, cfg.drop_path, cfg.n_t).tolist() if cfg.drop_path > 0 else [0.0] * cfg.n_t
        widths = [cin] + [cfg.hid_t] * (cfg.n_t - 1) + [cout]
        self.translator = nn.Sequential(*[
            GSTAStage(widths[i], widths[i + 1], cfg.lka_kernel, cfg.mlp_ratio, dpr[i], "batch")
            for i in range(cfg.n_t)])

    def forward(self, x: torch.Tensor, return_features: bool = False) -> dict[str, torch.Tensor]:
        cfg = self.config
        if x.dim() != 5 or tuple(x.shape[1:]) != tuple(cfg.in_shape):
            raise ValueError(f"SimVP: expected input (B, {', '.join(map(str, cfg.in_shape))}), got {tuple(x.shape)}")
        b, t, c, hh, ww = x.shape
        z = x.reshape(b * t, c, hh, ww)
        skip = None
        for i, layer in enumerate(self.enc):
            z = layer(z)
            if i == 0:
                skip = z
        _, hid, h, w = z.shape
        latent = self.translator(z.reshape(b, t * hid, h, w))
        y = latent.reshape(b * cfg.t_out, hid, h, w)
        if cfg.t_out == t:
            skip_o = skip
        else:
            last = skip.reshape(b, t, *skip.shape[1:])[:, -1]
            skip_o = last[:, None].expand(b, cfg.t_out, *last.shape[1:]).reshape(b * cfg.t_out, *last.shape[1:])
        for layer in self.dec[:-1]:
            y = layer(y)
        y = self.readout(self.dec[-1](y + skip_o))
        out = {"forecast": y.reshape(b, cfg.t_out, c, hh, ww)}
        if return_features:
            out["latent"] = latent
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)["forecast"]


# --------------------------------------------------------------------------------------------- ConvLSTM
@dataclasses.dataclass(frozen=True)
class ConvLSTMConfig(ModelConfig):
    hidden: tuple[int, ...] = (32, 32)
    filter_size: int = 5
    patch_size: int = 4

    def validate(self) -> None:
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("ConvLSTMConfig: hidden must list at least one positive width")
        if self.filter_size % 2 == 0:
            raise ValueError(f"ConvLSTMConfig: filter_size must be odd, got {self.filter_size}")
        check_divisible("ConvLSTMConfig", self.grid_hw, self.patch_size)


_CONVLSTM_SIZES = {  # `paper`: OpenSTL's ConvLSTM setting (4 layers of 128 hidden, 5×5 filters)
    "tiny": dict(hidden=(8, 8), filter_size=3, patch_size=4),
    "demo": dict(hidden=(32, 32), filter_size=3, patch_size=4),
    "bench": dict(hidden=(64, 64, 64), filter_size=5, patch_size=4),
    "paper": dict(hidden=(128, 128, 128, 128), filter_size=5),
}


def convlstm_config(size: str, in_shape, t_out: int, grid: str = "latlon", **overrides) -> ConvLSTMConfig:
    """Preset ConvLSTM config; ``paper`` uses 2×2 patches on lat-lon grids and 4×4 on city grids."""
    base = dict(_CONVLSTM_SIZES[check_size(size)])
    base.setdefault("patch_size", 2 if grid == "latlon" else 4)
    base.update(overrides)
    return ConvLSTMConfig(in_shape=tuple(in_shape), t_out=int(t_out), **base)


class ConvLSTMCell(nn.Module):
    def __init__(self, cin: int, hidden: int, k: int):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(cin + hidden, 4 * hidden, k, padding=k // 2)

    def forward(self, x, state):
        h, c = state
        i, f, o, g = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    uses_text = False

    def __init__(self, config: ConvLSTMConfig):
        super().__init__()
        self.config = cfg = config
        _, c, _, _ = cfg.in_shape
        p = cfg.patch_size
        cin = c * p * p
        widths = (cin,) + tuple(cfg.hidden)
        self.cells = nn.ModuleList([ConvLSTMCell(widths[i], widths[i + 1], cfg.filter_size)
                                    for i in range(len(cfg.hidden))])
        self.head = nn.Conv2d(cfg.hidden[-1], cin, 1)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> dict[str, torch.Tensor]:
        cfg = self.config
        if x.dim() != 5 or tuple(x.shape[1:]) != tuple(cfg.in_shape):
            raise ValueError(f"ConvLSTM: expected input (B, {', '.join(map(str, cfg.in_shape))}), got {tuple(x.shape)}")
        b, t, c, hh, ww = x.shape
        p = cfg.patch_size
        xp = F.pixel_unshuffle(x.reshape(b * t, c, hh, ww), p).reshape(b, t, c * p * p, hh // p, ww // p)
        states = [(xp.new_zeros(b, n, hh // p, ww // p), xp.new_zeros(b, n, hh // p, ww // p)) for n in cfg.hidden]

        def step(frame):
            inp = frame
            for i, cell in enumerate(self.cells):
                states[i] = cell(inp, states[i])
                inp = states[i][0]
            return self.head(inp)

        pred = None
        for k in range(t):
            pred = step(xp[:, k])
        outs = [pred]
        for _ in range(cfg.t_out - 1):
            pred = step(pred)  # no teacher forcing: feed the forecast back
            outs.append(pred)
        y = torch.stack(outs, dim=1).reshape(b * cfg.t_out, c * p * p, hh // p, ww // p)
        out = {"forecast": F.pixel_shuffle(y, p).reshape(b, cfg.t_out, c, hh, ww)}
        if return_features:
            out["latent"] = states[-1][0]
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)["forecast"]
