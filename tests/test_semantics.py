"""core.semantics.SentenceEncoder: all-MiniLM-L6-v2 offline, token + pooled embeddings, cached."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.cache import SafeCache
from core.semantics import EMBEDDING_NAMESPACE, SentenceEncoder

TEXTS = [
    "A deep low-pressure system over the North Atlantic pushes a cold front toward Europe.",
    "An Atlantic storm with a strong cold front is moving east toward the European coast.",
    "Evening rush hour: crowds leave the stadium after the football match and taxis queue downtown.",
    "Heavy traffic flows out of the business district as commuters head home after work.",
]


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(device="cpu")  # loaded once for the module


def test_shapes_mask_and_normalisation(encoder):
    out = encoder.encode(TEXTS, batch_size=3)
    b, length, d = out.tokens.shape
    assert (b, d) == (4, 384) and out.mask.shape == (4, length) and out.pooled.shape == (4, 384)
    assert out.mask.dtype == torch.bool and out.mask[:, 0].all()
    assert torch.allclose(out.pooled.norm(dim=1), torch.ones(4), atol=1e-5)
    # pooled = normalised mean of the returned token embeddings over the mask (recomputed here)
    m = out.mask.unsqueeze(-1).float()
    mean = (out.tokens * m).sum(1) / m.sum(1)
    assert torch.allclose(out.pooled, mean / mean.norm(dim=1, keepdim=True), atol=1e-5)
    assert (out.tokens[~out.mask] == 0).all()  # padding is zero


def test_related_sentences_are_closer(encoder):
    p = encoder.encode(TEXTS).pooled
    sim = p @ p.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[0, 3] + 0.2
    assert sim[2, 3] > sim[0, 2] and sim[2, 3] > sim[1, 3]


def test_batching_and_padding_do_not_change_embeddings(encoder):
    one = torch.cat([encoder.encode([t]).pooled for t in TEXTS])
    together = encoder.encode(TEXTS, batch_size=4).pooled
    assert torch.allclose(one, together, atol=1e-5)


def test_matches_the_sentence_transformers_recipe(encoder):
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(encoder.model_dir), device="cpu", local_files_only=True)
    except Exception as exc:  # pragma: no cover - depends on the optional package loading offline
        pytest.skip(f"sentence-transformers does not load offline here: {exc}")
    ref = torch.from_numpy(np.asarray(st.encode(TEXTS, normalize_embeddings=True)))
    assert torch.allclose(encoder.encode(TEXTS).pooled, ref, atol=1e-5)


def test_encode_cached_reuses_the_cache(encoder, tmp_path, monkeypatch):
    with SafeCache(tmp_path / "c") as cache:
        first = encoder.encode_cached(TEXTS[:2] + TEXTS[:1], cache)
        fresh = encoder.encode(TEXTS[:2] + TEXTS[:1])
        assert torch.allclose(first.pooled, fresh.pooled, atol=1e-6) and torch.equal(first.mask, fresh.mask)
        assert len(list(cache.keys(EMBEDDING_NAMESPACE))) == 2  # one entry per distinct text

        def boom(*a, **k):
            raise AssertionError("the model must not run for cached texts")

        monkeypatch.setattr(encoder, "_encode_items", boom)
        second = encoder.encode_cached(TEXTS[:2] + TEXTS[:1], cache)
    assert torch.equal(first.tokens, second.tokens) and torch.equal(first.mask, second.mask)
    assert torch.equal(first.pooled, second.pooled)
    assert torch.allclose(first.pooled[0], first.pooled[2])
