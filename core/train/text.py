"""Narrative embeddings per training/validation window, for a text-conditioned teacher (``teacher-s2``).

Each window of the train and val splits is narrated (``[narratives] backend``/``scope``; cached by content
in the narratives' SafeCache, so a rerun or a second model does not narrate again) and its narrative is
embedded by the frozen sentence encoder (cached too).  The per-window token embeddings are kept in memory
and padded per batch: ``text_tokens (B, L, 384)``, ``text_mask (B, L)``, ``text_pooled (B, 384)``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np


class TextTable:
    """``lookup(split, indices)`` → the padded text tensors of those windows (indices of the parent dataset)."""

    def __init__(self, entries: Mapping[str, Mapping[int, tuple[np.ndarray, np.ndarray]]],
                 texts: Mapping[str, Mapping[int, str]] | None = None, provenance: Mapping[str, Any] | None = None):
        self.entries = {k: dict(v) for k, v in entries.items()}
        self.texts = {k: dict(v) for k, v in (texts or {}).items()}
        self.provenance = dict(provenance or {})

    def lookup(self, split: str, indices) -> dict[str, Any]:
        import torch

        idx = [int(i) for i in (indices.tolist() if hasattr(indices, "tolist") else indices)]
        table = self.entries[split]
        items = [table[i] for i in idx]
        length = max(1, max(t.shape[0] for t, _ in items))
        dim = items[0][0].shape[1]
        tokens = np.zeros((len(items), length, dim), dtype=np.float32)
        mask = np.zeros((len(items), length), dtype=bool)
        pooled = np.stack([p for _, p in items]).astype(np.float32)
        for k, (t, _) in enumerate(items):
            tokens[k, : t.shape[0]] = t
            mask[k, : t.shape[0]] = True
        return {"text_tokens": torch.from_numpy(tokens), "text_mask": torch.from_numpy(mask),
                "text_pooled": torch.from_numpy(pooled)}

    def text(self, split: str, index: int) -> str:
        return self.texts[split][int(index)]


def _parent(ds):
    """``(WindowDataset, parent indices)`` of a dataset or a :class:`core.train.data.WindowSubset`."""
    if hasattr(ds, "parent") and hasattr(ds, "indices"):
        return ds.parent, [int(i) for i in ds.indices]
    return ds, list(range(len(ds)))


def narrate_windows(cfg, data, splits: Sequence[str] = ("train", "val"), backend: str | None = None,
                    scope: str | None = None, encoder=None, log: Callable[[str], None] | None = None) -> TextTable:
    """Narrate and embed every window of ``splits`` of a :class:`DataBundle` (cached)."""
    from tqdm.auto import tqdm

    from core.cache import SafeCache
    from core.narratives import build_narrator, narrate_many
    from core.narratives.commands import dataset_context, default_cache_dir, window_input
    from core.semantics import SentenceEncoder

    backend = backend or cfg.narratives.backend
    scope = scope or cfg.narratives.scope
    root = data.description.get("root") or cfg.data.root
    cache_dir = Path(cfg.narratives.cache) if cfg.narratives.cache else default_cache_dir(root)
    narrator = build_narrator(backend, scope=scope)
    encoder = encoder or SentenceEncoder()
    events, clim = [], None
    if data.fields.get("train") is not None:
        events, clim = dataset_context(root, data.fields["train"], data.fields["train"])
    source = data.description.get("source") or ""
    entries: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    texts: dict[str, dict[int, str]] = {}
    fallbacks = 0
    with SafeCache(cache_dir) as cache:
        for split in splits:
            ds = getattr(data, split)
            parent, indices = _parent(ds)
            entries[split], texts[split] = {}, {}
            bar = tqdm(total=len(indices), desc=f"narrate {split}", unit="win", disable=None, file=sys.stderr)
            for start in range(0, len(indices), 64):
                chunk = indices[start: start + 64]
                inputs = [window_input(parent, i, events, clim, source) for i in chunk]
                results = narrate_many(narrator, inputs, cache)
                chunk_texts = [n.text for n, _ in results]
                fallbacks += sum(1 for n, _ in results if n.provenance.fallback)
                emb = encoder.encode_cached(chunk_texts, cache)
                tokens, mask, pooled = emb.tokens.numpy(), emb.mask.numpy(), emb.pooled.numpy()
                for k, i in enumerate(chunk):
                    n = int(mask[k].sum())
                    entries[split][i] = (np.ascontiguousarray(tokens[k, :n], dtype=np.float32),
                                         np.ascontiguousarray(pooled[k], dtype=np.float32))
                    texts[split][i] = chunk_texts[k]
                bar.update(len(chunk))
            bar.close()
    if fallbacks and log:
        log(f"s2kd: {fallbacks} narrative(s) came from the fallback narrator")
    return TextTable(entries, texts, {"backend": backend, "scope": scope, "model": getattr(narrator, "model", ""),
                                      "prompt_version": getattr(narrator, "prompt_version", ""),
                                      "fallbacks": fallbacks})


def attach_text(cfg, data, backend: str | None = None, scope: str | None = None, log=None) -> TextTable:
    """Narrate/embed the bundle's windows and attach the table as ``data.text``."""
    table = narrate_windows(cfg, data, backend=backend, scope=scope, log=log)
    data.text = table
    data.description = {**data.description, "narratives": {k: v for k, v in table.provenance.items()
                                                           if k != "fallbacks"}}
    return table
