"""The transformers backend loads a tiny local model folder offline and generates text."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.narratives import build_narrator
from core.narratives.transformers_backend import PROMPT_VERSION, TransformersNarrator
from tests.test_narratives import city_window, weather_window

WORDS = ("the a low high front pressure warm cold air moves east west north south over europe atlantic "
         "city flow rises falls evening morning rain wind").split()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A random 1-layer GPT-2 (a few KB of weights) with a WordLevel tokenizer, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    vocab = {"[UNK]": 0, "[PAD]": 1, "[EOS]": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(vocab), n_positions=512, n_embd=16, n_layer=1, n_head=2,
                     bos_token_id=2, eos_token_id=2, pad_token_id=1)
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():  # special tokens get zero logits, so greedy decoding emits words
        model.transformer.wte.weight[:3] = 0.0
    model.save_pretrained(folder)
    return folder


def test_generates_text_offline(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = build_narrator("transformers", model_dir=str(tiny_model_dir), max_new_tokens=12, min_new_tokens=5,
                       device="cpu")
    assert isinstance(n, TransformersNarrator)
    out = n.narrate(weather_window())
    words = out.text.split()
    assert not out.provenance.fallback, out.provenance.fallback_reason
    assert 1 <= len(words) <= 12 and all(w in WORDS or w == "[UNK]" for w in words)
    p = out.provenance
    assert (p.backend, p.model, p.prompt_version, p.fallback) == ("transformers", tiny_model_dir.name,
                                                                  PROMPT_VERSION, False)
    assert n.narrate(weather_window()).text == out.text  # greedy decoding: deterministic
    assert n.narrate(city_window()).text  # crowd-flow prompt too


def test_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        TransformersNarrator(tmp_path / "nothing-here")


def test_empty_generation_falls_back(tiny_model_dir, monkeypatch):
    n = TransformersNarrator(tiny_model_dir, device="cpu")
    monkeypatch.setattr(n, "_generate", lambda window, facts: "")
    out = n.narrate(weather_window())
    p = out.provenance
    assert p.fallback and p.fallback_reason == "empty generation" and p.requested_backend == "transformers"
    assert p.backend == "diagnostic" and "diagnostic narrator" in out.text.lower()
