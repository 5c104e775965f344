"""The one radial band split, shared by the SDN, the spectral KD loss and the spectral metrics.

For a field ``z`` of shape ``(..., H, W)``::

    Z_low  = irfft2(M ⊙ rfft2(ẑ))  cropped back to (H, W)
    Z_high = z − Z_low

where ``ẑ`` is ``z`` extended so that every axis is periodic: an axis marked periodic (longitude on a
lat-lon grid) is used as is, any other axis (latitude, city rows/columns) is mirror-extended to twice its
length (an even extension: no artificial jump at the edges, "pad, don't wrap").  ``M`` is a radial mask
on the normalised frequency

    r = sqrt((ky / (Ny/2))² + (kx / (Nx/2))²)      (r = 1 at the Nyquist frequency of each axis)

with ``M = 1[r ≤ cutoff]`` (sharp, the default) or ``M = sigmoid((cutoff − r) · sharpness)`` (smooth;
``cutoff`` may be a tensor, so it can be learned).  By construction ``low + high == z`` exactly.
"""

from __future__ import annotations

from typing import Sequence

import torch


def radial_frequency(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised radial frequency ``r`` of an ``rfft2`` grid of an ``(h, w)`` field: shape ``(h, w//2+1)``."""
    ky = torch.fft.fftfreq(h, device=device, dtype=dtype) * 2.0  # in [-1, 1), Nyquist = ±1
    kx = torch.fft.rfftfreq(w, device=device, dtype=dtype) * 2.0  # in [0, 1]
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def radial_mask(h: int, w: int, cutoff: float | torch.Tensor = 0.25, sharpness: float | None = None,
                device=None, dtype=torch.float32) -> torch.Tensor:
    """Low-pass mask ``M`` on the ``rfft2`` grid of an ``(h, w)`` field (1 = kept in the low band)."""
    r = radial_frequency(h, w, device=device, dtype=dtype)
    if sharpness is None:
        if isinstance(cutoff, torch.Tensor):
            cutoff = float(cutoff.detach())
        return (r <= cutoff + 1e-9).to(dtype)
    return torch.sigmoid((cutoff - r) * sharpness)


def _extend(z: torch.Tensor, periodic: Sequence[bool]) -> torch.Tensor:
    """Mirror-extend the non-periodic axes of ``(..., H, W)`` to ``2H`` / ``2W``."""
    if not periodic[0]:
        z = torch.cat([z, z.flip(-2)], dim=-2)
    if not periodic[1]:
        z = torch.cat([z, z.flip(-1)], dim=-1)
    return z


def lowpass(z: torch.Tensor, cutoff: float | torch.Tensor = 0.25, periodic: Sequence[bool] = (False, True),
            sharpness: float | None = None) -> torch.Tensor:
    """Low band of ``z`` ``(..., H, W)``: radial low-pass at ``cutoff`` (fraction of Nyquist)."""
    if z.dim() < 2:
        raise ValueError(f"lowpass needs (..., H, W), got shape {tuple(z.shape)}")
    h, w = z.shape[-2:]
    orig_dtype = z.dtype
    zf = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
    ext = _extend(zf, periodic)
    he, we = ext.shape[-2:]
    mask = radial_mask(he, we, cutoff, sharpness, device=z.device, dtype=zf.dtype)
    low = torch.fft.irfft2(torch.fft.rfft2(ext) * mask, s=(he, we))
    return low[..., :h, :w].to(orig_dtype)


def band_split(z: torch.Tensor, cutoff: float | torch.Tensor = 0.25, periodic: Sequence[bool] = (False, True),
               sharpness: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``z`` ``(..., H, W)`` into ``(low, high)`` with ``low + high == z``.

    ``periodic = (periodic_in_H, periodic_in_W)``: ``(False, True)`` for lat-lon grids (longitude wraps,
    latitude is mirror-padded), ``(False, False)`` for city grids.
    """
    low = lowpass(z, cutoff, periodic, sharpness)
    return low, z - low


def high_band_power_fraction(z: torch.Tensor, cutoff: float = 0.25, periodic: Sequence[bool] = (False, True)) -> torch.Tensor:
    """Fraction of the (mean-removed) power of ``z`` ``(..., H, W)`` in the high band; shape ``(...)``."""
    z = z - z.mean(dim=(-2, -1), keepdim=True)
    _, high = band_split(z, cutoff, periodic)
    total = (z.float() ** 2).sum(dim=(-2, -1)).clamp_min(1e-12)
    return (high.float() ** 2).sum(dim=(-2, -1)) / total
