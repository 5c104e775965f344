"""Privileged teachers: ``teacher-s2`` (SDN + narrative) and ``teacher-vision`` (SDN only).

Data flow (DESIGN §2.1), ``x (B, T_in, C, H, W)``::

    frames folded into the batch → FrameEncoder (stride-2 convs, n_down times) → (B·T_in, hid_s, h, w)
    → frames stacked into channels, 1×1 conv → z0 (B, d, h, w)
    → SDN blocks (band split → global mixer on the low band [self-attention over the h·w tokens, or a
      learned Fourier filter with global_mixer="fourier"], local depth-wise convs on the high band, gated sum)
    → latent Z_t (B, d, h, w)        latent_low, latent_high = band_split(Z_t)   (same cut-off as the SDN)
    → [teacher-s2] cross-attention from latent tokens to narrative tokens (+ null token), FiLM(pooled)
    → text_fused S_t (B, d, h, w)      (teacher-vision: S_t = Z_t)
    → 1×1 conv to T_out·hid_s → FrameDecoder (PixelShuffle ×2 convs, skip from the last input frame)
    → forecast (B, T_out, C, H, W)

``forward(x, text_tokens=None, text_mask=None, text_pooled=None, return_features=False)`` returns
``{"forecast"}``, plus with ``return_features``: ``latent``, ``latent_low``, ``latent_high``,
``text_fused`` and — for ``teacher-s2`` when narrative tokens are given — ``attention (B, h, w)`` and
``attention_tokens (B, L, h, w)`` (see :class:`models.blocks.TextCrossAttention` for their definition)
and ``text_pooled (B, 384)`` (the pooled embedding used: given, or the masked mean of the tokens,
L2-normalised; the InfoNCE term of the loss reads it).  A sample whose ``text_mask`` row has no real
token is treated as having no narrative (its map is uniform, its per-token maps zero).
``teacher-vision`` never returns ``attention``: it has no text to ground a map in.

Narrative dropout (training only, per sample, ``narrative_dropout``) removes a sample's text
contribution entirely, exactly as if no narrative had been given; with no narrative at all the text path
is skipped and ``text_fused == latent``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from models.blocks import (FiLM, FrameDecoder, FrameEncoder, SDNBlock, TextCrossAttention, attention_maps,
                           decode_frames, encode_frames)
from models.configs import ModelConfig, check_divisible, check_size, periodic_for
from models.spectral import band_split


@dataclasses.dataclass(frozen=True)
class TeacherConfig(ModelConfig):
    """Teacher settings.  ``use_text`` distinguishes ``teacher-s2`` (True) from ``teacher-vision``."""

    hid_s: int = 16  # per-frame encoder/decoder width
    latent_dim: int = 64  # width d of the SDN latent
    n_down: int = 2  # latent grid = (H, W) / 2**n_down
    sdn_depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    local_kernels: tuple[int, ...] = (3, 5, 7)
    global_mixer: str = "attention"  # low-band mixer: "attention" (MHSA over tokens) or "fourier"
    cutoff: float = 0.25  # fraction of Nyquist
    learnable_cutoff: bool = False
    cutoff_sharpness: float = 20.0
    periodic: tuple[bool, bool] = (False, True)  # lat-lon; (False, False) for city grids
    use_text: bool = True
    text_dim: int = 384
    text_heads: int = 4
    narrative_dropout: float = 0.15

    def validate(self) -> None:
        check_divisible("TeacherConfig", self.grid_hw, 2 ** self.n_down)
        if self.latent_dim % self.heads or self.latent_dim % self.text_heads:
            raise ValueError(f"TeacherConfig: latent_dim {self.latent_dim} must be divisible by heads "
                             f"{self.heads} and text_heads {self.text_heads}")
        if not 0.0 < self.cutoff < 1.0 * 2 ** 0.5:
            raise ValueError(f"TeacherConfig: cutoff {self.cutoff} must be in (0, sqrt 2) (fraction of Nyquist)")
        if self.global_mixer not in ("attention", "fourier"):
            raise ValueError(f"TeacherConfig: global_mixer {self.global_mixer!r} must be 'attention' or 'fourier'")
        if not 0.0 <= self.narrative_dropout < 1.0:
            raise ValueError(f"TeacherConfig: narrative_dropout {self.narrative_dropout} must be in [0, 1)")
        if len(self.periodic) != 2:
            raise ValueError(f"TeacherConfig: periodic must be two booleans (H, W), got {self.periodic}")


_TEACHER_SIZES = {
    "tiny": dict(hid_s=4, latent_dim=16, sdn_depth=1, heads=2, text_heads=2, mlp_ratio=1.0, local_kernels=(3, 5)),
    "demo": dict(hid_s=16, latent_dim=64, sdn_depth=2, heads=4, text_heads=4, mlp_ratio=2.0),
    "bench": dict(hid_s=24, latent_dim=128, sdn_depth=3, heads=4, text_heads=4, mlp_ratio=2.0),
    "paper": dict(hid_s=64, latent_dim=256, sdn_depth=6, heads=8, text_heads=8, mlp_ratio=4.0),
}


def teacher_config(size: str, in_shape, t_out: int, grid: str = "latlon", text: bool = True,
                   **overrides) -> TeacherConfig:
    """Preset teacher config (``tiny``/``demo``/``bench``/``paper``) for ``in_shape = (T_in, C, H, W)``."""
    base = dict(_TEACHER_SIZES[check_size(size)])
    base.update(periodic=periodic_for(grid), use_text=bool(text))
    base.update(overrides)
    return TeacherConfig(in_shape=tuple(in_shape), t_out=int(t_out), **base)


class Teacher(nn.Module):
    """Spectral teacher; the text path exists only when ``config.use_text`` (``teacher-s2``)."""

    def __init__(self, config: TeacherConfig):
        super().__init__()
        self.config = config
        cfg = config
        t_in, c, _, _ = cfg.in_shape
        self.uses_text = bool(cfg.use_text)
        self.encoder = FrameEncoder(c, cfg.hid_s, cfg.n_down, periodic=cfg.periodic)
        self.fold = nn.Conv2d(t_in * cfg.hid_s, cfg.latent_dim, 1)
        self.sdn = nn.ModuleList([
            SDNBlock(cfg.latent_dim, cfg.heads, cfg.mlp_ratio, cfg.local_kernels, cfg.cutoff,
                     cfg.learnable_cutoff, cfg.cutoff_sharpness, cfg.periodic, cfg.global_mixer, cfg.latent_hw)
            for _ in range(cfg.sdn_depth)])
        if self.uses_text:
            self.cross = TextCrossAttention(cfg.latent_dim, cfg.text_dim, cfg.text_heads)
            self.film = FiLM(cfg.latent_dim, cfg.text_dim)
        self.unfold = nn.Conv2d(cfg.latent_dim, cfg.t_out * cfg.hid_s, 1)
        self.decoder = FrameDecoder(cfg.hid_s, c, cfg.n_down, periodic=cfg.periodic)

    # -- helpers --------------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or tuple(x.shape[1:]) != tuple(self.config.in_shape):
            raise ValueError(f"{type(self).__name__}: expected input (B, {', '.join(map(str, self.config.in_shape))}), "
                             f"got {tuple(x.shape)}")

    @property
    def cutoff(self) -> float:
        """The SDN's band cut-off (the learned value with ``learnable_cutoff``): give it to the student."""
        c = self.sdn[0].cutoff if self.sdn else self.config.cutoff
        return float(c.detach()) if isinstance(c, torch.Tensor) else float(c)

    def band_split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The SDN's band split (first block's cut-off) applied to ``z``."""
        if self.sdn:
            return self.sdn[0].split(z)
        return band_split(z, self.config.cutoff, self.config.periodic)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, C, H, W)`` → (SDN input ``z0 (B, d, h, w)``, last-frame skip ``(B, hid_s, H, W)``)."""
        return encode_frames(self.encoder, self.fold, x)

    def decode(self, s: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return decode_frames(self.decoder, self.unfold, s, skip, self.config.t_out, self.config.hid_s)

    def _text_gate(self, b: int, device, text_present: bool) -> torch.Tensor:
        gate = torch.full((b,), 1.0 if text_present else 0.0, device=device)
        p = self.config.narrative_dropout
        if self.training and text_present and p > 0:
            gate = gate * (torch.rand(b, device=device) >= p).to(gate.dtype)
        return gate

    # -- forward --------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, text_tokens: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None, text_pooled: torch.Tensor | None = None,
                return_features: bool = False) -> dict[str, torch.Tensor]:
        self._check_input(x)
        b = x.shape[0]
        z, skip = self.encode(x)
        for block in self.sdn:
            z = block(z)
        latent = z
        out: dict[str, torch.Tensor] = {}
        s = latent
        if self.uses_text and (text_tokens is not None or text_pooled is not None):
            tokens, mask, pooled = self._check_text(b, text_tokens, text_mask, text_pooled, x.device)
            gate = self._text_gate(b, x.device, True)
            if tokens is not None:  # a sample whose mask has no real token has no narrative
                gate = gate * mask.any(dim=1).to(gate.dtype)
            if tokens is not None:
                delta, weights = self.cross(s, tokens, mask)
                s = s + gate.to(s.dtype)[:, None, None, None] * delta
                if return_features:
                    att, att_tok = attention_maps(weights, mask, latent.shape[-2:])
                    out["attention"], out["attention_tokens"] = att, att_tok
            s = self.film(s, pooled, gate)
            if return_features:
                out["text_pooled"] = pooled
        out["forecast"] = self.decode(s, skip)
        if return_features:
            low, high = self.band_split(latent)
            out.update(latent=latent, latent_low=low, latent_high=high, text_fused=s)
        return out

    def _check_text(self, b, tokens, mask, pooled, device):
        d = self.config.text_dim
        if tokens is not None:
            if tokens.dim() != 3 or tokens.shape[0] != b or tokens.shape[2] != d:
                raise ValueError(f"teacher: text_tokens must be (B={b}, L, {d}), got {tuple(tokens.shape)}")
            if mask is None:
                mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=device)
            if tuple(mask.shape) != tuple(tokens.shape[:2]):
                raise ValueError(f"teacher: text_mask must be {tuple(tokens.shape[:2])}, got {tuple(mask.shape)}")
            mask = mask.to(torch.bool)
            if pooled is None:
                m = mask[:, :, None].to(tokens.dtype)
                pooled = (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
        if pooled is None or pooled.shape != (b, d):
            raise ValueError(f"teacher: text_pooled must be (B={b}, {d}), got "
                             f"{None if pooled is None else tuple(pooled.shape)}")
        return tokens, mask, pooled

    @torch.no_grad()
    def predict(self, x: torch.Tensor, text_tokens=None, text_mask=None, text_pooled=None) -> torch.Tensor:
        return self.forward(x, text_tokens, text_mask, text_pooled)["forecast"]
