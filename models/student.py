"""The lightweight, vision-only student (DESIGN §2.2).

Inference path (and nothing else)::

    x (B, T_in, C, H, W) → FrameEncoder (per frame, stride-2 convs) → frames stacked, 1×1 conv
    → translator: gSTA blocks at width d_s on the latent grid (h, w)  → latent Z_s (B, d_s, h, w)
    → 1×1 conv to T_out·hid_s → FrameDecoder (skip from the last input frame) → forecast (B, T_out, C, H, W)

The latent grid ``(h, w) = (H, W) / 2**n_down`` equals the teacher's, so bands and maps align; the width
``d_s`` is smaller, hence the adapters.  Training-only heads (``kd_heads=True``), run only when
``return_features=True``:

- ``adapted_low = φ_low(B_low(Z_s))``, ``adapted_high = φ_high(B_high(Z_s))``: 1×1 convs to the teacher
  width ``teacher_dim`` applied to the student's own band split (same :func:`models.spectral.band_split`,
  same cut-off and periodicity as the teacher's SDN).  ``φ_high`` has no bias, so ``adapted_high`` stays a
  pure high band; as 1×1 convs commute with the band split, ``adapted_low = B_low(φ_low(Z_s))`` exactly.
- ``adapted = φ(Z_s)``: one 1×1 adapter on the whole latent (FitNets-style ``feature`` KD).
- ``semantic = ψ(Z_s)`` ``(B, teacher_dim, h, w)``: predicts the teacher's text-fused latent ``S_t`` at
  every location (same shape as the teacher's ``text_fused``; the loss compares them with a per-location
  cosine).  With ``infonce_head`` also ``semantic_embedding (B, text_dim)`` (spatial mean of ψ, linear,
  L2-normalised) for the optional in-batch InfoNCE against the pooled narrative embedding.
- ``absorbed_attention (B, h, w)``: 1×1 conv → softmax over space.  It costs ``d_s·h·w`` MACs (< 1 % of the
  inference FLOPs) and is kept for the dashboard: ``forward(x, return_attention=True)`` or
  :meth:`Student.attention_map` runs it without the KD heads.

``forward(x)`` / :meth:`predict` run the encoder, translator and decoder only, so their FLOPs equal those of
the same net built with ``kd_heads=False``; the student has no text input and no text parameters.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import FrameDecoder, FrameEncoder, GSTAStage, decode_frames, encode_frames
from models.configs import ModelConfig, check_divisible, check_size, periodic_for
from models.spectral import band_split


@dataclasses.dataclass(frozen=True)
class StudentConfig(ModelConfig):
    hid_s: int = 6
    latent_dim: int = 24  # d_s
    n_down: int = 2  # must equal the teacher's so that the latent grids match
    depth: int = 2  # gSTA blocks in the translator
    mlp_ratio: float = 2.0
    kernel_size: int = 21  # gSTA large-kernel receptive field
    periodic: tuple[bool, bool] = (False, True)
    cutoff: float = 0.25  # the band split of the adapters: use the teacher's SDN cut-off
    teacher_dim: int = 64  # teacher latent width (adapter / semantic head output)
    kd_heads: bool = True
    infonce_head: bool = False
    text_dim: int = 384  # only the optional InfoNCE projection uses it

    def validate(self) -> None:
        check_divisible("StudentConfig", self.grid_hw, 2 ** self.n_down)
        if self.depth < 1 or self.latent_dim < 1 or self.hid_s < 1:
            raise ValueError("StudentConfig: depth, latent_dim and hid_s must be >= 1")
        if len(self.periodic) != 2:
            raise ValueError(f"StudentConfig: periodic must be two booleans (H, W), got {self.periodic}")


_STUDENT_SIZES = {
    "tiny": dict(hid_s=2, latent_dim=8, depth=1, mlp_ratio=1.0, kernel_size=9),
    "demo": dict(hid_s=6, latent_dim=32, depth=2, mlp_ratio=2.0, kernel_size=21),
    "bench": dict(hid_s=8, latent_dim=32, depth=3, mlp_ratio=2.0, kernel_size=21),
    "paper": dict(hid_s=16, latent_dim=64, depth=4, mlp_ratio=4.0, kernel_size=21),
}


def student_config(size: str, in_shape, t_out: int, grid: str = "latlon", teacher=None, **overrides) -> StudentConfig:
    """Preset student config; ``teacher`` (a TeacherConfig) fixes ``teacher_dim``, ``n_down``, ``cutoff``, ``periodic``."""
    base = dict(_STUDENT_SIZES[check_size(size)])
    base["periodic"] = periodic_for(grid)
    if teacher is not None:
        base.update(teacher_dim=teacher.latent_dim, n_down=teacher.n_down, cutoff=teacher.cutoff,
                    periodic=tuple(teacher.periodic))
    else:
        from models.teacher import _TEACHER_SIZES
        base["teacher_dim"] = _TEACHER_SIZES[size]["latent_dim"]
    base.update(overrides)
    return StudentConfig(in_shape=tuple(in_shape), t_out=int(t_out), **base)


class Student(nn.Module):
    uses_text = False

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = cfg = config
        t_in, c, _, _ = cfg.in_shape
        self.encoder = FrameEncoder(c, cfg.hid_s, cfg.n_down, periodic=cfg.periodic)
        self.fold = nn.Conv2d(t_in * cfg.hid_s, cfg.latent_dim, 1)
        self.translator = nn.Sequential(*[
            GSTAStage(cfg.latent_dim, cfg.latent_dim, cfg.kernel_size, cfg.mlp_ratio, 0.0, "group", cfg.periodic)
            for _ in range(cfg.depth)])
        self.unfold = nn.Conv2d(cfg.latent_dim, cfg.t_out * cfg.hid_s, 1)
        self.decoder = FrameDecoder(cfg.hid_s, c, cfg.n_down, periodic=cfg.periodic)
        if cfg.kd_heads:
            d, dt = cfg.latent_dim, cfg.teacher_dim
            self.adapter = nn.Conv2d(d, dt, 1)
            self.adapter_low = nn.Conv2d(d, dt, 1)
            self.adapter_high = nn.Conv2d(d, dt, 1, bias=False)
            self.semantic_head = nn.Sequential(nn.Conv2d(d, dt, 1), nn.GELU(), nn.Conv2d(dt, dt, 1))
            self.attention_head = nn.Conv2d(d, 1, 1)
            if cfg.infonce_head:
                self.semantic_proj = nn.Linear(dt, cfg.text_dim)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or tuple(x.shape[1:]) != tuple(self.config.in_shape):
            raise ValueError(f"Student: expected input (B, {', '.join(map(str, self.config.in_shape))}), "
                             f"got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, C, H, W)`` → (latent ``(B, d, h, w)``, last-frame skip ``(B, hid_s, H, W)``)."""
        return encode_frames(self.encoder, self.fold, x)

    def decode(self, z: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return decode_frames(self.decoder, self.unfold, z, skip, self.config.t_out, self.config.hid_s)

    def _absorbed(self, latent: torch.Tensor) -> torch.Tensor:
        b, _, h, w = latent.shape
        return torch.softmax(self.attention_head(latent).reshape(b, h * w), dim=-1).reshape(b, h, w)

    def forward(self, x: torch.Tensor, return_features: bool = False,
                return_attention: bool = False) -> dict[str, torch.Tensor]:
        self._check_input(x)
        z, skip = self.encode(x)
        latent = self.translator(z)
        out = {"forecast": self.decode(latent, skip)}
        if return_attention or return_features:
            if not self.config.kd_heads:
                raise ValueError("Student: built with kd_heads=False, it has no attention head or adapters")
            out["absorbed_attention"] = self._absorbed(latent)
        if return_features:
            low, high = band_split(latent, self.config.cutoff, self.config.periodic)
            sem = self.semantic_head(latent)
            out.update(latent=latent, latent_low=low, latent_high=high,
                       adapted=self.adapter(latent),
                       adapted_low=self.adapter_low(low), adapted_high=self.adapter_high(high),
                       semantic=sem)
            if self.config.infonce_head:
                out["semantic_embedding"] = F.normalize(self.semantic_proj(sem.mean(dim=(-2, -1))), dim=-1)
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: ``decoder(translator(encoder(x)))``; frames only."""
        return self.forward(x)["forecast"]

    @torch.no_grad()
    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The absorbed attention map ``(B, h, w)`` (sums to one over space) for the dashboard."""
        return self.forward(x, return_attention=True)["absorbed_attention"]
