"""Load a run directory and forecast with it: the one loading API for the evaluator, the app and the CLI.

    fc = load_forecaster("runs/weather-teacher")
    y = fc.predict(x)                       # x (B, T_in, C, H, W) or (T_in, C, H, W), normalised units
    y = fc.predict(x, "A blocking high ...")   # a text teacher with a narrative (str or list of str)
    da = fc.predict(window)                 # xarray (time, channel, lat, lon) in physical units → same
    low, high = fc.bands(x)                 # latent bands (B, d, h, w)
    a = fc.attention(x, narrative)          # teacher: text-grounded map; student: absorbed map (B, h, w)

Input whose channels or grid differ from the training data is refused with a one-line
:class:`core.errors.DataError`; so are text for a model without a text path and malformed run folders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from core import checkpoint as ckpt
from core.errors import DataError, UserError


@runtime_checkable
class Forecaster(Protocol):
    """What the evaluator and the app use for every model (trained nets and baselines)."""

    name: str
    t_in: int
    t_out: int
    channels: Sequence[str]

    def predict(self, x: Any, narrative: str | Sequence[str] | None = None) -> Any: ...


def _text_batch(encoded, device) -> dict[str, Any]:
    """Normalise the output of ``SentenceEncoder.encode`` to the teacher's text keyword arguments."""
    import torch

    if isinstance(encoded, Mapping):
        get = encoded.get
    else:
        get = lambda k, d=None: getattr(encoded, k, d)  # noqa: E731
    tokens = get("tokens", None)
    if tokens is None:
        tokens = get("text_tokens", None)
    mask = get("mask", None)
    if mask is None:
        mask = get("text_mask", None)
    pooled = get("pooled", None)
    if pooled is None:
        pooled = get("text_pooled", None)
    if tokens is None or pooled is None:
        raise TypeError("the sentence encoder returned no tokens/pooled embedding")
    out = {"text_tokens": torch.as_tensor(np.asarray(tokens) if not isinstance(tokens, torch.Tensor) else tokens,
                                          dtype=torch.float32).to(device),
           "text_pooled": torch.as_tensor(np.asarray(pooled) if not isinstance(pooled, torch.Tensor) else pooled,
                                          dtype=torch.float32).to(device)}
    if mask is not None:
        out["text_mask"] = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask,
                                           dtype=torch.bool).to(device)
    return out


class ModelForecaster:
    """A trained model loaded from a run directory (see the module docstring)."""

    def __init__(self, run_dir: Path, module, meta: Mapping[str, Any], runtime, encoder=None):
        from core.data.normalize import Normalizer

        self.run_dir = Path(run_dir)
        self.module = module
        self.meta = dict(meta)
        self.runtime = runtime
        self.name = str(meta["model"]["name"])
        self.config = dict(meta["model"].get("config") or {})
        self.description = dict(meta.get("data") or {})
        norm = meta.get("normalizer")
        self.normalizer = Normalizer.from_json(norm, source=self.run_dir / ckpt.MODEL_JSON) if norm else None
        self.t_in = int(self.description.get("t_in") or self.config["in_shape"][0])
        self.t_out = int(self.description.get("t_out") or self.config["t_out"])
        self.channels = list(self.description.get("channels") or [])
        self.uses_text = bool(getattr(module, "uses_text", False) or self.config.get("use_text", False))
        self._encoder = encoder

    # ------------------------------------------------------------------ helpers
    @property
    def in_shape(self) -> tuple[int, int, int, int]:
        if "in_shape" in self.config:
            return tuple(int(v) for v in self.config["in_shape"])  # type: ignore[return-value]
        d = self.description
        return (self.t_in, len(self.channels), *[len(v) for v in d["coords"].values()])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.meta.get("metrics") or {})

    def history(self) -> list[dict[str, Any]]:
        """The per-epoch training log (``metrics.jsonl``)."""
        return ckpt.read_metrics(self.run_dir)

    def _encoder_or_load(self):
        if self._encoder is None:
            from core.semantics import SentenceEncoder

            self._encoder = SentenceEncoder()
        return self._encoder

    def _as_batch(self, x) -> tuple[Any, bool]:
        """``x`` → float tensor (B, T_in, C, H, W) on the device; returns (tensor, had_batch_dim)."""
        import torch

        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
        if t.dim() == 4:
            t, batched = t.unsqueeze(0), False
        elif t.dim() == 5:
            batched = True
        else:
            raise DataError(f"{self.name}: input must be (T_in, C, H, W) or (B, T_in, C, H, W), got shape "
                            f"{tuple(t.shape)}")
        want = self.in_shape
        if tuple(t.shape[1:]) != tuple(want):
            t_in, c, h, w = want
            got = tuple(t.shape[1:])
            if got[1] != c:
                what = f"{got[1]} channels, the model was trained on {c} {self.channels}"
            elif got[2:] != (h, w):
                what = f"a {got[2]}x{got[3]} grid, the model was trained on {h}x{w}"
            else:
                what = f"{got[0]} input frames, the model takes {t_in}"
            raise DataError(f"{self.name} ({self.run_dir}): input has {what}")
        return self.runtime.to(t.float()), batched

    def _text(self, narrative, batch: int) -> dict[str, Any]:
        if narrative is None:
            return {}
        if not self.uses_text:
            raise UserError(f"{self.name} has no text path: it forecasts from frames only (drop the narrative)")
        texts = [narrative] * batch if isinstance(narrative, str) else list(narrative)
        if len(texts) != batch:
            raise UserError(f"got {len(texts)} narratives for {batch} input windows")
        return _text_batch(self._encoder_or_load().encode(texts), self.runtime.device)

    def outputs(self, x, narrative: str | Sequence[str] | None = None, features: bool = True) -> dict[str, Any]:
        """All named outputs of the model (normalised units), batch dimension kept."""
        import torch

        from core.train.loop import call_model

        xb, _ = self._as_batch(x)
        batch = {"x": xb, **self._text(narrative, xb.shape[0])}
        with torch.no_grad(), self.runtime.autocast():
            out = call_model(self.module, batch, features=features and self._has_features(), uses_text=self.uses_text)
        return {k: v.float() if hasattr(v, "float") else v for k, v in out.items()}

    def _has_features(self) -> bool:
        import inspect

        try:
            return "return_features" in inspect.signature(self.module.forward).parameters
        except (TypeError, ValueError):  # pragma: no cover
            return False

    # ------------------------------------------------------------------ public API
    def predict(self, x, narrative: str | Sequence[str] | None = None):
        """Forecast.  Tensor/array input in normalised units → tensor (B, T_out, C, H, W) (batch dim as
        given); an xarray window ``(time, channel, H, W)`` in physical units → a DataArray of the
        ``T_out`` target frames in physical units (times continue the input's cadence)."""
        import torch

        try:
            import xarray as xr
        except ImportError:  # pragma: no cover
            xr = None
        if xr is not None and isinstance(x, xr.DataArray):
            return self._predict_fields(x, narrative)
        xb, batched = self._as_batch(x)
        out = self.outputs(xb, narrative, features=False)["forecast"]
        out = out if batched else out[0]
        return out if isinstance(x, torch.Tensor) else out.cpu().numpy()

    def _predict_fields(self, window, narrative):
        import xarray as xr

        from core.data.windows import canonical_fields, parse_cadence
        from core.train.data import check_compatible

        window = canonical_fields(window, what="input window")
        if self.description:
            check_compatible(self.description, window, what="input window")
        if window.sizes["time"] != self.t_in:
            raise DataError(f"input window has {window.sizes['time']} frames, {self.name} takes {self.t_in}")
        if self.normalizer is None:
            raise DataError(f"{self.run_dir}: the run has no normaliser statistics")
        x = self.normalizer.apply(np.asarray(window.values, dtype=np.float32))
        y = self.predict(x, narrative)
        y = self.normalizer.invert(y).astype(np.float32)
        times = np.asarray(window["time"].values).astype("datetime64[ns]")
        cadence = window.attrs.get("cadence") or self.description.get("cadence")
        step = int(self.description.get("step", 1))
        delta = parse_cadence(cadence) * step if cadence else (times[-1] - times[-2] if times.size > 1 else None)
        if delta is None:
            raise DataError("cannot infer the forecast times: the input has one frame and no cadence")
        target = times[-1] + delta * np.arange(1, self.t_out + 1)
        coords = {"time": target, "channel": window["channel"].values}
        for d in window.dims[2:]:
            coords[d] = window[d].values
        if "units" in window.coords:
            coords["units"] = ("channel", window["units"].values)
        return xr.DataArray(y, dims=window.dims, coords=coords, name="forecast",
                            attrs={**window.attrs, "model": self.name, "run": str(self.run_dir)})

    def bands(self, x, narrative=None) -> tuple[Any, Any]:
        """The latent low and high bands ``(B, d, h, w)``."""
        out = self.outputs(x, narrative)
        if "latent_low" not in out:
            raise UserError(f"{self.name} does not expose latent bands")
        return out["latent_low"], out["latent_high"]

    def attention(self, x, narrative=None):
        """Teacher with a narrative: the text-grounded map; student: the absorbed map.  ``(B, h, w)``."""
        out = self.outputs(x, narrative)
        for key in ("attention", "absorbed_attention"):
            if key in out:
                return out[key]
        if self.uses_text and narrative is None:
            raise UserError(f"{self.name}: the attention map needs a narrative")
        raise UserError(f"{self.name} has no attention map")

    def attention_tokens(self, x, narrative):
        """Per-token maps ``(B, L, h, w)`` of a text teacher."""
        out = self.outputs(x, narrative)
        if "attention_tokens" not in out:
            raise UserError(f"{self.name} has no per-token attention (a text teacher with a narrative has)")
        return out["attention_tokens"]

    def __repr__(self) -> str:
        return f"ModelForecaster({self.name!r}, run={str(self.run_dir)!r}, in_shape={self.in_shape}, t_out={self.t_out})"


def load_forecaster(run_dir: str | os.PathLike, device: str = "auto", *,
                    builder: Callable[[str, Mapping[str, Any]], Any] | None = None, encoder=None) -> ModelForecaster:
    """Load ``run_dir`` (``model.json`` + ``model.safetensors``) into an eval-mode :class:`ModelForecaster`.

    ``builder(name, config)`` builds the module (default: ``models.build``).  A missing, truncated or
    malformed run folder raises :class:`DataError` naming the file.
    """
    from core.device import Runtime

    run_dir = Path(run_dir)
    meta = ckpt.load_model_meta(run_dir)
    name, config = meta["model"]["name"], meta["model"].get("config") or {}
    from core.baselines import BASELINES, load_baseline

    if name in BASELINES and builder is None:
        return load_baseline(run_dir, meta)
    if builder is None:
        import models

        def builder(n, c):
            return models.build(n, c)
    try:
        module = builder(name, config)
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(f"cannot rebuild model {name!r} from its saved config ({exc})",
                        path=run_dir / ckpt.MODEL_JSON) from None
    weights = ckpt.load_model_weights(run_dir, meta)
    ckpt.load_into(module, weights, run_dir / ckpt.MODEL_WEIGHTS)
    runtime = Runtime.create(device, amp=False)
    module = runtime.prepare(module).eval()
    return ModelForecaster(run_dir, module, meta, runtime, encoder=encoder)
