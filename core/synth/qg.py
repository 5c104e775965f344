"""Two-layer quasi-geostrophic (Phillips) model on a pole-to-pole channel periodic in longitude.

The dynamics of the synthetic atmosphere (:mod:`core.synth.weather`).  Written with torch so that it
runs on CPU (float64, deterministic) and on GPU.

Equations, for layers ``k = 1`` (upper, ~250 hPa) and ``2`` (lower, ~750 hPa) of equal depth, with a
prescribed, slowly varying zonal background flow ``U_k(y, t)`` and a perturbation streamfunction ``ψ_k``::

    q_1 = ∇²ψ_1 + F (ψ_2 − ψ_1),        q_2 = ∇²ψ_2 + F (ψ_1 − ψ_2) (+ η, topographic PV)
    ∂q_k/∂t + (U_k + u_k) ∂q_k/∂x + v_k ∂q_k/∂y + v_k ∂Q_k/∂y
        = ± (F/τ_r) (τ − τ_eq)           (Newtonian cooling of the interface, τ = ψ_1 − ψ_2)
          − δ_k2 r ∇²ψ_2                 (Ekman drag on the lower layer)
          + S_k                          (PV sources: blocking and other episodes)
    ∂Q_1/∂y = β(y) − U_1'' + F (U_1 − U_2),   ∂Q_2/∂y = β(y) − U_2'' − F (U_1 − U_2)

with ``F = 1 / (2 L_d²)`` (``L_d`` the baroclinic deformation radius) and ``β(y) = 2Ω cos φ / a``.

Numerics: the channel spans latitude −90…90 (``ny`` points, half-cell offset, so the walls sit at the
poles) and is periodic in ``x``.  Free-slip walls (``ψ = 0``, no normal flow) are imposed by the method
of images: every field is extended to a doubly periodic domain of twice the meridional length by odd
reflection (the background flow and ``β`` by even reflection), which turns the channel problem into an
exact Fourier (sine-series) problem.  PV inversion is then diagonal in spectral space (barotropic and
baroclinic modes), advection is evaluated pseudo-spectrally in flux form, time stepping is third-order
Adams–Bashforth with the exponential spectral filter of Arbic & Flierl / pyqg as the small-scale sink,
and the reflection symmetry is re-imposed after every output step so round-off cannot break it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

EARTH_RADIUS = 6.371e6  # m
OMEGA = 7.292e-5  # s^-1


@dataclass(frozen=True)
class QGConfig:
    """Grid, time step and physical constants of :class:`TwoLayerQG`."""

    nx: int = 128  #: points in longitude
    ny: int = 64  #: points pole to pole
    dt: float = 1800.0  #: time step, s
    ld: float = 7.0e5  #: baroclinic deformation radius, m
    lx: float = 2 * math.pi * EARTH_RADIUS * math.cos(math.radians(45.0))  #: zonal period, m
    drag_days: float = 4.0  #: lower-layer Ekman drag time scale, days
    relax_days: float = 15.0  #: Newtonian cooling time scale of the interface, days
    beta_scale: float = 1.0  #: multiplies β(y) = 2Ω cos φ / a
    filter_factor: float = 23.6  #: exponential filter strength (pyqg's default)
    filter_cutoff: float = 0.65 * math.pi  #: filter starts at this non-dimensional wavenumber

    @property
    def ly(self) -> float:
        """Meridional length of the channel (pole to pole), m."""
        return math.pi * EARTH_RADIUS

    @property
    def F(self) -> float:  # noqa: N802 - the usual symbol
        return 1.0 / (2.0 * self.ld ** 2)

    def lat(self) -> np.ndarray:
        """Latitudes of the grid rows (degrees, ascending, half-cell offset from the poles)."""
        return -90.0 + (np.arange(self.ny) + 0.5) * 180.0 / self.ny


def mirror_odd(a: torch.Tensor) -> torch.Tensor:
    """Extend ``(..., ny, nx)`` to ``(..., 2ny, nx)`` by odd reflection about the northern wall."""
    return torch.cat([a, -torch.flip(a, dims=(-2,))], dim=-2)


def _mirror_even_profile(a: torch.Tensor) -> torch.Tensor:
    """Even reflection of a meridional profile ``(..., ny)`` → ``(..., 2ny)``."""
    return torch.cat([a, torch.flip(a, dims=(-1,))], dim=-1)


class TwoLayerQG:
    """The model state and its time stepping.

    ``q`` (the perturbation PV) is kept in spectral space, shape ``(2, 2ny, nx//2+1)`` complex.
    Time-dependent inputs are set with :meth:`set_background`, :meth:`set_relaxation_target` and
    :meth:`set_pv_source` between steps; :meth:`step` advances one ``dt``.
    """

    def __init__(self, cfg: QGConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64):
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = dtype
        nx, ny2 = cfg.nx, 2 * cfg.ny
        self.dy = cfg.ly / cfg.ny
        self.dx = cfg.lx / nx
        kw = dict(device=self.device, dtype=dtype)
        kx = 2 * math.pi / cfg.lx * torch.arange(nx // 2 + 1, **kw)
        ky = 2 * math.pi / (2 * cfg.ly) * torch.fft.fftfreq(ny2, d=1.0 / ny2).to(**kw)
        self.kx = kx[None, :]  # (1, nkx)
        self.ky = ky[:, None]  # (ny2, 1)
        self.k2 = self.kx ** 2 + self.ky ** 2
        self.ikx = (1j * self.kx).to(torch.complex128 if dtype == torch.float64 else torch.complex64)
        self.iky = (1j * self.ky).to(self.ikx.dtype)
        F = cfg.F
        self.F = F
        k2 = self.k2.clone()
        k2[0, 0] = 1.0
        inv_bt = -1.0 / k2
        inv_bt[0, 0] = 0.0
        self.inv_bt = inv_bt
        self.inv_bc = -1.0 / (self.k2 + 2 * F)
        wv = torch.sqrt((self.kx * self.dx) ** 2 + (self.ky * self.dy) ** 2)
        filt = torch.exp(-cfg.filter_factor * (wv - cfg.filter_cutoff) ** 4)
        self.filter = torch.where(wv <= cfg.filter_cutoff, torch.ones_like(filt), filt)
        lat = torch.as_tensor(cfg.lat(), **kw)
        beta = cfg.beta_scale * 2 * OMEGA * torch.cos(torch.deg2rad(lat)) / EARTH_RADIUS
        self.beta = _mirror_even_profile(beta)  # (ny2,)
        self.r_drag = 1.0 / (cfg.drag_days * 86400.0)
        self.tau_r = cfg.relax_days * 86400.0
        self.qh = torch.zeros((2, ny2, nx // 2 + 1), dtype=self.ikx.dtype, device=self.device)
        self.U = torch.zeros((2, ny2), **kw)
        self.Qy = torch.zeros((2, ny2), **kw)
        self.eta = torch.zeros((ny2, nx), **kw)
        self.tau_eq_h = torch.zeros((ny2, nx // 2 + 1), dtype=self.ikx.dtype, device=self.device)
        self.source_h = torch.zeros_like(self.qh)
        self._hist: list[torch.Tensor] = []
        self.steps = 0

    # ---------------------------------------------------------------- inputs
    def set_background(self, u1: np.ndarray | torch.Tensor, u2: np.ndarray | torch.Tensor) -> None:
        """Set the background zonal flow of both layers, profiles of shape ``(ny,)`` in m/s."""
        kw = dict(device=self.device, dtype=self.dtype)
        U = torch.stack([torch.as_tensor(u1, **kw), torch.as_tensor(u2, **kw)])  # (2, ny)
        Ue = _mirror_even_profile(U)
        # U'' by second differences on the mirrored (periodic) profile
        upp = (torch.roll(Ue, -1, dims=-1) - 2 * Ue + torch.roll(Ue, 1, dims=-1)) / self.dy ** 2
        shear = Ue[0] - Ue[1]
        self.U = Ue
        self.Qy = torch.stack([self.beta - upp[0] + self.F * shear, self.beta - upp[1] - self.F * shear])

    def set_topography(self, eta: np.ndarray | torch.Tensor) -> None:
        """Topographic PV ``η = f0 h / H`` of the lower layer, ``(ny, nx)`` in s^-1 (0 at the poles)."""
        self.eta = mirror_odd(torch.as_tensor(eta, device=self.device, dtype=self.dtype))

    def set_relaxation_target(self, tau_eq: np.ndarray | torch.Tensor) -> None:
        """Equilibrium interface streamfunction ``τ_eq = (ψ1 − ψ2)_eq`` anomaly, ``(ny, nx)`` in m²/s."""
        t = mirror_odd(torch.as_tensor(tau_eq, device=self.device, dtype=self.dtype))
        self.tau_eq_h = torch.fft.rfft2(t)

    def set_pv_source(self, source: np.ndarray | torch.Tensor) -> None:
        """PV tendency of each layer, ``(2, ny, nx)`` in s^-2."""
        s = mirror_odd(torch.as_tensor(source, device=self.device, dtype=self.dtype))
        self.source_h = torch.fft.rfft2(s)

    # ---------------------------------------------------------------- state
    def randomize(self, rng: np.random.Generator, amplitude: float = 2e-6) -> None:
        """Start from small random PV (synoptic and larger scales) in both layers."""
        ny, nx = self.cfg.ny, self.cfg.nx
        noise = torch.as_tensor(rng.standard_normal((2, ny, nx)), device=self.device, dtype=self.dtype)
        qh = torch.fft.rfft2(mirror_odd(noise))
        kmax = 2 * math.pi / 2.0e6  # keep wavelengths longer than ~2000 km
        qh = qh * (self.k2 <= kmax ** 2)
        q = torch.fft.irfft2(qh, s=(2 * ny, nx))
        q = q / q.std().clamp_min(1e-30) * amplitude
        self.qh = torch.fft.rfft2(q)
        self._hist = []

    def get_state(self) -> np.ndarray:
        """The perturbation PV on the physical half, ``(2, ny, nx)`` float64 (a restart state)."""
        ny, nx = self.cfg.ny, self.cfg.nx
        return torch.fft.irfft2(self.qh, s=(2 * ny, nx))[:, :ny].cpu().numpy().astype(np.float64)

    def set_state(self, q: np.ndarray, rng: np.random.Generator | None = None, noise: float = 0.0) -> None:
        """Start from the restart state ``q`` ``(2, ny, nx)``, plus ``noise`` × its std of large-scale
        random PV drawn from ``rng`` (so that different seeds give different weather)."""
        ny, nx = self.cfg.ny, self.cfg.nx
        q = torch.as_tensor(np.asarray(q, dtype=np.float64), device=self.device, dtype=self.dtype)
        if tuple(q.shape) != (2, ny, nx):
            raise ValueError(f"restart state has shape {tuple(q.shape)}, expected {(2, ny, nx)}")
        qh = torch.fft.rfft2(mirror_odd(q))
        if rng is not None and noise > 0:
            pert = torch.as_tensor(rng.standard_normal((2, ny, nx)), device=self.device, dtype=self.dtype)
            ph = torch.fft.rfft2(mirror_odd(pert)) * (self.k2 <= (2 * math.pi / 2.0e6) ** 2)
            pert = torch.fft.irfft2(ph, s=(2 * ny, nx))
            qh = qh + torch.fft.rfft2(pert / pert.std().clamp_min(1e-30) * noise * float(q.std()))
        self.qh = qh
        self._hist = []

    def invert(self, qh: torch.Tensor | None = None) -> torch.Tensor:
        """Streamfunction (spectral) of PV ``qh``, shape ``(2, 2ny, nkx)``."""
        qh = self.qh if qh is None else qh
        bt = 0.5 * (qh[0] + qh[1]) * self.inv_bt
        bc = 0.5 * (qh[0] - qh[1]) * self.inv_bc
        return torch.stack([bt + bc, bt - bc])

    def _rhs(self, qh: torch.Tensor) -> torch.Tensor:
        ny2, nx = 2 * self.cfg.ny, self.cfg.nx
        s = (ny2, nx)
        ph = self.invert(qh)
        u = torch.fft.irfft2(-self.iky * ph, s=s) + self.U[:, :, None]
        v = torch.fft.irfft2(self.ikx * ph, s=s)
        q = torch.fft.irfft2(qh, s=s)
        q = torch.stack([q[0], q[1] + self.eta])
        rhs = -(self.ikx * torch.fft.rfft2(u * q) + self.iky * torch.fft.rfft2(v * q))
        rhs = rhs - torch.fft.rfft2(v * self.Qy[:, :, None])
        relax = (self.F / self.tau_r) * ((ph[0] - ph[1]) - self.tau_eq_h)
        drag = self.r_drag * self.k2 * ph[1]
        rhs = rhs + torch.stack([relax, -relax + drag]) + self.source_h
        return rhs

    def step(self) -> None:
        """Advance one time step (AB3; Euler then AB2 to start)."""
        dt = self.cfg.dt
        rhs = self._rhs(self.qh)
        self._hist.insert(0, rhs)
        del self._hist[3:]
        h = self._hist
        if len(h) == 1:
            inc = h[0]
        elif len(h) == 2:
            inc = 1.5 * h[0] - 0.5 * h[1]
        else:
            inc = (23.0 * h[0] - 16.0 * h[1] + 5.0 * h[2]) / 12.0
        self.qh = self.filter * (self.qh + dt * inc)
        self.steps += 1

    def symmetrize(self) -> None:
        """Re-impose the odd reflection symmetry (removes round-off drift)."""
        ny, nx = self.cfg.ny, self.cfg.nx
        q = torch.fft.irfft2(self.qh, s=(2 * ny, nx))
        q = 0.5 * (q - torch.flip(q, dims=(-2,)))
        self.qh = torch.fft.rfft2(q)

    # ---------------------------------------------------------------- output
    def psi(self) -> torch.Tensor:
        """Perturbation streamfunction of both layers on the physical half, ``(2, ny, nx)``, m²/s."""
        ny, nx = self.cfg.ny, self.cfg.nx
        return torch.fft.irfft2(self.invert(), s=(2 * ny, nx))[:, :ny]

    def velocity(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Total ``(u, v)`` (background + perturbation) on the physical half, each ``(2, ny, nx)``."""
        ny, nx = self.cfg.ny, self.cfg.nx
        ph = self.invert()
        u = torch.fft.irfft2(-self.iky * ph, s=(2 * ny, nx)) + self.U[:, :, None]
        v = torch.fft.irfft2(self.ikx * ph, s=(2 * ny, nx))
        return u[:, :ny], v[:, :ny]

    def energy(self) -> tuple[float, float]:
        """Domain-mean perturbation kinetic and available potential energy per unit mass (m²/s²)."""
        ny, nx = self.cfg.ny, self.cfg.nx
        ph = self.invert()
        p = torch.fft.irfft2(ph, s=(2 * ny, nx))
        u = torch.fft.irfft2(-self.iky * ph, s=(2 * ny, nx))
        v = torch.fft.irfft2(self.ikx * ph, s=(2 * ny, nx))
        ke = 0.25 * float((u ** 2 + v ** 2).mean(dim=(-2, -1)).sum())
        ape = 0.25 * self.F * float(((p[0] - p[1]) ** 2).mean())
        return ke, ape
