"""Render a window's frames as PNG images for a multimodal model (matplotlib, headless, thread-safe).

One PNG per channel: a row of up to ``max_frames`` input frames (first … last; in privileged scope the
last target frame is appended) on one colour scale, with titles giving the channel, units and time.
Built on :class:`matplotlib.figure.Figure` (no pyplot state), so batch narration threads can render at
once.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from core.narratives import NarrationInput

__all__ = ["render_pngs", "frame_indices"]


def frame_indices(n: int, max_frames: int) -> list[int]:
    """Up to ``max_frames`` evenly spaced indices of ``n`` frames, always including the first and last."""
    if n <= max_frames:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, max_frames)})


def render_pngs(window: NarrationInput, max_frames: int = 3, channels: Sequence[int] | None = None,
                dpi: int = 72, panel_inches: float = 2.6) -> list[bytes]:
    """PNG bytes, one image per channel (default: at most the first 3 channels)."""
    from matplotlib.figure import Figure

    chans = list(channels) if channels is not None else list(range(min(3, len(window.channels))))
    idx = frame_indices(window.frames.shape[0], max_frames)
    images = []
    h, w = window.frames.shape[-2:]
    aspect = h / w
    for c in chans:
        panels = [(window.frames[i, c], f"input {window.input_times[i][:16].replace('T', ' ')}") for i in idx]
        if window.targets is not None:  # only present in privileged scope
            panels.append((window.targets[-1, c], f"target {window.target_times[-1][:16].replace('T', ' ')}"))
        stack = np.stack([np.nan_to_num(p[0]) for p in panels])
        vmin, vmax = float(np.percentile(stack, 1)), float(np.percentile(stack, 99))
        if vmax <= vmin:
            vmax = vmin + 1.0
        fig = Figure(figsize=(panel_inches * len(panels) + 0.8, panel_inches * aspect + 0.6), dpi=dpi)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        extent = None
        if window.grid == "latlon":
            extent = (float(window.xs[0]), float(window.xs[-1]), float(window.ys[0]), float(window.ys[-1]))
        im = None
        for ax, (data, title) in zip(axes, panels):
            im = ax.imshow(data, origin="lower", cmap="viridis" if window.grid == "city" else "RdBu_r",
                           vmin=vmin, vmax=vmax, extent=extent, aspect="auto", interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.tick_params(labelsize=6)
        fig.colorbar(im, ax=list(axes), shrink=0.8).ax.tick_params(labelsize=6)
        fig.suptitle(f"{window.channels[c]} [{window.units[c]}]", fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        images.append(buf.getvalue())
    return images
