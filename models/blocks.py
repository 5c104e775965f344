"""Shared building blocks: grid-aware padding, conv stacks, gSTA blocks, the SDN, cross-attention.

Padding convention ("pad, don't wrap"): every spatial convolution here pads explicitly through
:func:`grid_pad`.  An axis marked periodic (longitude on a lat-lon grid) is padded circularly; any other
axis (latitude, city rows/columns) is zero-padded.  ``periodic = (periodic_in_H, periodic_in_W)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.spectral import band_split


# ----------------------------------------------------------------------------------------------- padding
def _wrap(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    n = x.shape[dim]
    idx = torch.arange(-before, n + after, device=x.device) % n
    return x.index_select(dim, idx)


def grid_pad(x: torch.Tensor, pad_h: tuple[int, int], pad_w: tuple[int, int],
             periodic: Sequence[bool] = (False, False)) -> torch.Tensor:
    """Pad ``(..., H, W)``: circular along periodic axes (any width), zeros along the others."""
    if periodic[1] and (pad_w[0] or pad_w[1]):
        x = _wrap(x, -1, *pad_w)
        pad_w = (0, 0)
    if periodic[0] and (pad_h[0] or pad_h[1]):
        x = _wrap(x, -2, *pad_h)
        pad_h = (0, 0)
    if any(pad_h) or any(pad_w):
        x = F.pad(x, (pad_w[0], pad_w[1], pad_h[0], pad_h[1]))
    return x


class PadConv2d(nn.Conv2d):
    """``nn.Conv2d`` with "same"-style explicit padding that wraps only the periodic axes."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, bias: bool = True, periodic: Sequence[bool] = (False, False)):
        super().__init__(in_ch, out_ch, kernel_size, stride=stride, padding=0, dilation=dilation,
                         groups=groups, bias=bias)
        total = dilation * (kernel_size - 1) - (stride - 1)
        total = max(total, 0)
        self._pad = (total // 2, total - total // 2)
        self.periodic = tuple(bool(p) for p in periodic)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(grid_pad(x, self._pad, self._pad, self.periodic))


def group_norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with 2 groups when possible (as OpenSTL's ConvSC), else 1 group."""
    return nn.GroupNorm(2 if ch % 2 == 0 else 1, ch)


class ConvNormAct(nn.Module):
    """3×3 conv (stride 1/2, or ×2 upsampling through PixelShuffle) → GroupNorm → SiLU: OpenSTL's ConvSC."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, mode: str = "same",
                 periodic: Sequence[bool] = (False, False)):
        super().__init__()
        if mode == "down":
            self.conv = PadConv2d(in_ch, out_ch, kernel_size, stride=2, periodic=periodic)
            self.shuffle = None
        elif mode == "up":
            self.conv = PadConv2d(in_ch, out_ch * 4, kernel_size, periodic=periodic)
            self.shuffle = nn.PixelShuffle(2)
        elif mode == "same":
            self.conv = PadConv2d(in_ch, out_ch, kernel_size, periodic=periodic)
            self.shuffle = None
        else:
            raise ValueError(f"ConvNormAct: unknown mode {mode!r}")
        self.norm = group_norm(out_ch)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.shuffle is not None:
            x = self.shuffle(x)
        return self.act(self.norm(x))


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode or with p = 0)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


# ------------------------------------------------------------------------------- per-frame encoder/decoder
class FrameEncoder(nn.Module):
    """Per-frame spatial encoder: stem conv, then ``n_down`` stride-2 convs (frames folded into the batch).

    ``(B*T, C, H, W) -> latent (B*T, hid, H/2^n, W/2^n), skip (B*T, hid, H, W)``.
    """

    def __init__(self, in_ch: int, hid: int, n_down: int, kernel_size: int = 3,
                 periodic: Sequence[bool] = (False, False)):
        super().__init__()
        self.stem = ConvNormAct(in_ch, hid, kernel_size, "same", periodic)
        self.down = nn.ModuleList([ConvNormAct(hid, hid, kernel_size, "down", periodic) for _ in range(n_down)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.stem(x)
        z = skip
        for layer in self.down:
            z = layer(z)
        return z, skip


class FrameDecoder(nn.Module):
    """Per-frame decoder: ``n_up`` PixelShuffle ×2 convs, add the full-resolution skip, conv, 1×1 readout."""

    def __init__(self, hid: int, out_ch: int, n_up: int, kernel_size: int = 3,
                 periodic: Sequence[bool] = (False, False)):
        super().__init__()
        self.up = nn.ModuleList([ConvNormAct(hid, hid, kernel_size, "up", periodic) for _ in range(n_up)])
        self.last = ConvNormAct(hid, hid, kernel_size, "same", periodic)
        self.readout = nn.Conv2d(hid, out_ch, 1)

    def forward(self, z: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.up:
            z = layer(z)
        if skip is not None:
            z = z + skip
        return self.readout(self.last(z))


def encode_frames(encoder: FrameEncoder, fold: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (B, T, C, H, W)`` → (``fold`` of the per-frame encodings stacked on channels ``(B, d, h, w)``,
    the last frame's full-resolution skip ``(B, hid, H, W)``).  Shared by the student and the teacher."""
    b, t, c, hh, ww = x.shape
    z, skip = encoder(x.reshape(b * t, c, hh, ww))
    _, hid, h, w = z.shape
    return fold(z.reshape(b, t * hid, h, w)), skip.reshape(b, t, hid, hh, ww)[:, -1]


def decode_frames(decoder: FrameDecoder, unfold: nn.Module, z: torch.Tensor, skip: torch.Tensor, t_out: int,
                  hid: int) -> torch.Tensor:
    """``z (B, d, h, w)`` → ``(B, T_out, C, H, W)``: ``unfold`` to ``T_out`` latents of ``hid`` channels, each
    decoded with the same last-frame ``skip (B, hid, H, W)``.  Shared by the student and the teacher."""
    b, _, h, w = z.shape
    z = unfold(z).reshape(b * t_out, hid, h, w)
    skip = skip[:, None].expand(b, t_out, *skip.shape[1:]).reshape(b * t_out, *skip.shape[1:])
    y = decoder(z, skip)
    return y.reshape(b, t_out, *y.shape[1:])


# ---------------------------------------------------------------------------------------- gSTA (SimVP v2)
class LargeKernelGate(nn.Module):
    """gSTA's gated large-kernel attention: depth-wise conv → depth-wise dilated conv → 1×1 → f·σ(g).

    A ``kernel_size`` receptive field is decomposed as in SimVP v2 / VAN: a (2d−1) depth-wise conv and a
    ⌊k/d⌋ (made odd) depth-wise conv with dilation ``d = 3``.
    """

    def __init__(self, dim: int, kernel_size: int = 21, dilation: int = 3,
                 periodic: Sequence[bool] = (False, False)):
        super().__init__()
        d_k = 2 * dilation - 1
        dd_k = kernel_size // dilation
        dd_k = dd_k if dd_k % 2 == 1 else dd_k - 1
        dd_k = max(dd_k, 1)
        self.conv0 = PadConv2d(dim, dim, d_k, groups=dim, periodic=periodic)
        self.conv_spatial = PadConv2d(dim, dim, dd_k, dilation=dilation, groups=dim, periodic=periodic)
        self.conv1 = nn.Conv2d(dim, 2 * dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, g = self.conv1(self.conv_spatial(self.conv0(x))).chunk(2, dim=1)
        return torch.sigmoid(g) * f


class MixMlp(nn.Module):
    """1×1 conv → 3×3 depth-wise conv → GELU → 1×1 conv."""

    def __init__(self, dim: int, hidden: int, periodic: Sequence[bool] = (False, False)):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dw = PadConv2d(hidden, hidden, 3, groups=hidden, periodic=periodic)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dw(self.fc1(x))))


def _norm2d(kind: str, dim: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(dim)
    if kind == "group":
        return nn.GroupNorm(1, dim)
    raise ValueError(f"unknown norm {kind!r} (batch or group)")


class GSTABlock(nn.Module):
    """One gated spatiotemporal attention (gSTA) block of SimVP v2, with layer scale and stochastic depth.

    ``x = x + s1 · proj2(gate(GELU(proj1(norm1 x)))) + … ; x = x + s2 · MLP(norm2 x)``.
    ``norm = "batch"`` as published; ``"group"`` (LayerNorm over C,H,W) keeps the result independent of
    how a batch is split across processes (used by our student).
    """

    def __init__(self, dim: int, kernel_size: int = 21, mlp_ratio: float = 8.0, drop_path: float = 0.0,
                 norm: str = "batch", periodic: Sequence[bool] = (False, False)):
        super().__init__()
        self.norm1 = _norm2d(norm, dim)
        self.proj1 = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.gate = LargeKernelGate(dim, kernel_size, periodic=periodic)
        self.proj2 = nn.Conv2d(dim, dim, 1)
        self.norm2 = _norm2d(norm, dim)
        self.mlp = MixMlp(dim, max(1, int(dim * mlp_ratio)), periodic)
        self.drop_path = DropPath(drop_path)
        self.scale1 = nn.Parameter(1e-2 * torch.ones(dim))
        self.scale2 = nn.Parameter(1e-2 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        y = self.proj2(self.gate(self.act(self.proj1(y)))) + y  # attention shortcut, as in gSTA
        x = x + self.drop_path(self.scale1[:, None, None] * y)
        x = x + self.drop_path(self.scale2[:, None, None] * self.mlp(self.norm2(x)))
        return x


class GSTAStage(nn.Module):
    """A translator layer: a gSTA block at ``in_ch`` followed by a 1×1 reduction when ``out_ch`` differs."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 21, mlp_ratio: float = 8.0,
                 drop_path: float = 0.0, norm: str = "batch", periodic: Sequence[bool] = (False, False)):
        super().__init__()
        self.block = GSTABlock(in_ch, kernel_size, mlp_ratio, drop_path, norm, periodic)
        self.reduction = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.block(x))


# ------------------------------------------------------------------------------------------------- SDN
class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of ``(B, C, H, W)`` (per location)."""

    def __init__(self, dim: int):
        super().__init__()
        self.ln = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GlobalMixer(nn.Module):
    """Low-band branch: multi-head self-attention over all ``h·w`` latent tokens, plus an MLP.

    Position enters through a 3×3 depth-wise conv (conditional positional encoding) with the grid's
    padding, so the branch is equivariant to circular longitude shifts on lat-lon grids.
    """

    def __init__(self, dim: int, heads: int = 4, mlp_ratio: float = 2.0, periodic: Sequence[bool] = (False, False)):
        super().__init__()
        if dim % heads:
            raise ValueError(f"GlobalMixer: width {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.pos = PadConv2d(dim, dim, 3, groups=dim, periodic=periodic)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, int(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x + self.pos(x)
        t = x.flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(self.norm1(t)).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // self.heads), dim=-1)  # (B, nh, N, N)
        t = t + self.proj((att @ v).transpose(1, 2).reshape(b, h * w, c))
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class FourierMixer(nn.Module):
    """Low-band branch, spectral variant: a learned global filter on the retained (low) modes, as in
    global-filter / FNO layers, then a 1×1 channel mix and an MLP.

    The field is extended exactly as :func:`models.spectral.band_split` extends it (mirror along
    non-periodic axes), ``rfft2``-transformed, each channel's modes with ``r ≤ cutoff`` are multiplied by
    a learned complex weight (initialised to 1), the rest are dropped, and the result is cropped back.
    A product in Fourier space is a circular convolution, so the branch is equivariant to longitude shifts.
    """

    def __init__(self, dim: int, hw: tuple[int, int], cutoff: float = 0.25, mlp_ratio: float = 2.0,
                 periodic: Sequence[bool] = (False, False)):
        super().__init__()
        from models.spectral import radial_mask

        self.periodic = tuple(bool(p) for p in periodic)
        h, w = hw
        he, we = h * (1 if self.periodic[0] else 2), w * (1 if self.periodic[1] else 2)
        self.ext_hw = (he, we)
        self.register_buffer("keep", radial_mask(he, we, cutoff) > 0, persistent=False)
        n_modes = int(self.keep.sum())
        self.weight = nn.Parameter(torch.stack([torch.ones(dim, n_modes), torch.zeros(dim, n_modes)], dim=-1))
        self.mix = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.norm = ChannelNorm(dim)
        hidden = max(1, int(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from models.spectral import _extend

        h, w = x.shape[-2:]
        ext = _extend(x.float(), self.periodic)
        if tuple(ext.shape[-2:]) != self.ext_hw:
            raise ValueError(f"FourierMixer: built for a {self.ext_hw} extended grid, got {tuple(ext.shape[-2:])}")
        spec = torch.fft.rfft2(ext)
        filt = torch.zeros(spec.shape[1:], dtype=spec.dtype, device=spec.device)  # (C, he, we//2+1)
        filt[:, self.keep] = torch.view_as_complex(self.weight.float().contiguous())
        y = torch.fft.irfft2(spec * filt, s=self.ext_hw)[..., :h, :w].to(x.dtype)
        x = x + self.mix(self.act(y))
        return x + self.mlp(self.norm(x))


class LocalMixer(nn.Module):
    """High-band branch: inception of depth-wise convs (kernels e.g. 3, 5, 7) → GELU → 1×1 conv.

    Translation-equivariant: circular padding along periodic axes, zeros along the others.
    """

    def __init__(self, dim: int, kernels: Sequence[int] = (3, 5, 7), periodic: Sequence[bool] = (False, False)):
        super().__init__()
        self.branches = nn.ModuleList([PadConv2d(dim, dim, k, groups=dim, periodic=periodic) for k in kernels])
        self.act = nn.GELU()
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum(branch(x) for branch in self.branches)
        return x + self.proj(self.act(y))


class SDNBlock(nn.Module):
    """Spectral decoupling block: band split → global mixer (low) / local mixer (high) → gated fusion.

    ``global_mixer``: ``"attention"`` (multi-head self-attention over latent tokens, the default) or
    ``"fourier"`` (learned global filter on the low modes; needs ``hw``, the latent grid).

    ``low, high = band_split(z)``; ``l = G(low)``, ``s = L(high)``; ``g = σ(W_g [l; s])``;
    ``z' = z + W_o (g ⊙ l + (1 − g) ⊙ s)``; then ``z' + MLP(norm z')`` (1×1 convs).
    The cut-off is a fraction of Nyquist; with ``learnable_cutoff`` it is a parameter (logit-space) and
    the mask is the smooth sigmoid mask of :func:`models.spectral.radial_mask`.
    """

    def __init__(self, dim: int, heads: int = 4, mlp_ratio: float = 2.0, kernels: Sequence[int] = (3, 5, 7),
                 cutoff: float = 0.25, learnable_cutoff: bool = False, sharpness: float = 20.0,
                 periodic: Sequence[bool] = (False, False), global_mixer: str = "attention",
                 hw: tuple[int, int] | None = None):
        super().__init__()
        self.periodic = tuple(bool(p) for p in periodic)
        if global_mixer == "attention":
            self.global_mixer = GlobalMixer(dim, heads, mlp_ratio, periodic)
        elif global_mixer == "fourier":
            if hw is None:
                raise ValueError("SDNBlock: the fourier mixer needs the latent grid size hw")
            self.global_mixer = FourierMixer(dim, hw, cutoff, mlp_ratio, periodic)
        else:
            raise ValueError(f"SDNBlock: unknown global mixer {global_mixer!r} (attention or fourier)")
        self.local = LocalMixer(dim, kernels, periodic)
        self.gate = nn.Conv2d(2 * dim, dim, 1)
        self.out = nn.Conv2d(dim, dim, 1)
        self.norm = ChannelNorm(dim)
        hidden = max(1, int(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))
        self.learnable_cutoff = bool(learnable_cutoff)
        self.sharpness = float(sharpness)
        if self.learnable_cutoff:
            c = min(max(float(cutoff), 1e-3), 1 - 1e-3)
            self.cutoff_logit = nn.Parameter(torch.tensor(math.log(c / (1 - c))))
        else:
            self.cutoff_value = float(cutoff)

    @property
    def cutoff(self) -> float | torch.Tensor:
        return torch.sigmoid(self.cutoff_logit) if self.learnable_cutoff else self.cutoff_value

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.learnable_cutoff:
            return band_split(z, self.cutoff, self.periodic, sharpness=self.sharpness)
        return band_split(z, self.cutoff_value, self.periodic)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        low, high = self.split(z)
        l, s = self.global_mixer(low), self.local(high)
        g = torch.sigmoid(self.gate(torch.cat([l, s], dim=1)))
        z = z + self.out(g * l + (1 - g) * s)
        return z + self.mlp(self.norm(z))


# ------------------------------------------------------------------------------------------ text fusion
class TextCrossAttention(nn.Module):
    """Latent spatial tokens (queries) attend to narrative tokens (keys/values), with a learned null token.

    Softmax runs over ``[null, token_1 … token_L]``: a location that finds nothing relevant in the text puts
    its weight on the null token.  Hence ``Σ_heads Σ_l w[head, x, l]`` (real tokens only) varies over
    space and, normalised to sum to one over space, is the text-grounded attention map ``A_t (B, h, w)``.
    Per-token maps ``Σ_heads w[head, x, l]`` are normalised over space per token (zeros for padding).
    Without the null token every location would give weight 1 to the text and the map would be flat.
    """

    def __init__(self, dim: int, text_dim: int = 384, heads: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"TextCrossAttention: width {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(text_dim, 2 * dim)
        self.null_kv = nn.Parameter(torch.zeros(2, dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, z: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor):
        """``z (B, C, h, w)``, ``tokens (B, L, D)``, ``mask (B, L)`` bool → ``delta (B, C, h, w)``, weights.

        ``weights`` is ``(B, heads, h·w, L)``: the attention paid to each real token (padding → 0).
        """
        b, c, h, w = z.shape
        nh, dh = self.heads, c // self.heads
        t = z.flatten(2).transpose(1, 2)  # (B, N, C)
        q = self.q(self.norm(t)).reshape(b, h * w, nh, dh).transpose(1, 2)  # (B, nh, N, dh)
        kv = self.kv(tokens)  # (B, L, 2C)
        kv = torch.cat([self.null_kv.reshape(1, 1, 2 * c).expand(b, 1, 2 * c), kv], dim=1)  # (B, 1+L, 2C)
        k, v = kv.reshape(b, -1, 2, nh, dh).permute(2, 0, 3, 1, 4)  # (B, nh, 1+L, dh) each
        scores = q @ k.transpose(-2, -1) / math.sqrt(dh)  # (B, nh, N, 1+L)
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)  # null token always visible
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        att = torch.softmax(scores, dim=-1)
        out = (att @ v).transpose(1, 2).reshape(b, h * w, c)
        delta = self.proj(out).transpose(1, 2).reshape(b, c, h, w)
        return delta, att[..., 1:]


def attention_maps(weights: torch.Tensor, mask: torch.Tensor, hw: tuple[int, int]):
    """Text-grounded maps from cross-attention ``weights (B, heads, N, L)`` and ``mask (B, L)``.

    Returns ``attention (B, h, w)`` (sum over heads and real tokens, normalised to sum to one over space;
    uniform for a sample without any real token) and ``attention_tokens (B, L, h, w)`` (sum over heads,
    each real token's map normalised over space; padding tokens are zero maps).
    """
    h, w = hw
    b, _, n, L = weights.shape
    per_token = weights.sum(dim=1).transpose(1, 2) * mask[:, :, None].to(weights.dtype)  # (B, L, N)
    tok_sum = per_token.sum(dim=-1, keepdim=True)
    per_token = torch.where(tok_sum > 0, per_token / tok_sum.clamp_min(1e-12), torch.zeros_like(per_token))
    total = (weights.sum(dim=1) * mask[:, None, :].to(weights.dtype)).sum(dim=-1)  # (B, N)
    tsum = total.sum(dim=-1, keepdim=True)
    total = torch.where(tsum > 0, total / tsum.clamp_min(1e-12), torch.full_like(total, 1.0 / n))
    return total.reshape(b, h, w), per_token.reshape(b, L, h, w)


class FiLM(nn.Module):
    """Feature-wise modulation from the pooled sentence embedding: ``z · (1 + γ) + β`` (zero-initialised)."""

    def __init__(self, dim: int, text_dim: int = 384):
        super().__init__()
        self.lin = nn.Linear(text_dim, 2 * dim)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, z: torch.Tensor, pooled: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.lin(pooled).chunk(2, dim=-1)  # (B, C) each
        gate = gate.to(z.dtype)[:, None, None, None]
        return z * (1 + gate * gamma[:, :, None, None]) + gate * beta[:, :, None, None]
