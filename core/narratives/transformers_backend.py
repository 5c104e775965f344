"""Narrator backed by a local ``transformers`` model folder, loaded offline.

Text models: ``AutoTokenizer`` + ``AutoModelForCausalLM`` (``local_files_only=True``), greedy decoding
of a prompt that carries the diagnostic facts (chat template used when the tokenizer has one).
Vision-language models (a config with a ``vision_config``): ``AutoProcessor`` +
``AutoModelForImageTextToText`` with the rendered frames as images.  Nothing is downloaded: the folder
must hold the weights and tokenizer.  An empty or failed generation falls back to the diagnostic
narrator, recorded in the provenance.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Mapping

from core.errors import ConfigError
from core.narratives import MAX_WORDS, BaseNarrator, NarrationInput, Narrative, limit_words
from core.narratives.diagnostic import DiagnosticNarrator
from core.narratives.facts import compute_facts
from core.narratives.openai_backend import SCOPE_RULES, SYSTEM_PROMPT, USER_PROMPT, _expert

__all__ = ["TransformersNarrator", "PROMPT_VERSION"]

log = logging.getLogger(__name__)

PROMPT_VERSION = "transformers-v1"


class TransformersNarrator(BaseNarrator):
    """Generates narratives with a local causal LM (or vision-language model) folder."""

    backend = "transformers"
    prompt_version = PROMPT_VERSION

    def __init__(self, model_dir: str | os.PathLike, scope: str = "context", max_new_tokens: int = 180,
                 min_new_tokens: int = 0, device: str = "auto", max_words: int = MAX_WORDS, images: bool = True,
                 max_frames: int = 3):
        super().__init__(scope)
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise ConfigError("not a transformers model folder (config.json missing)", path=self.model_dir)
        self.model = self.model_dir.name
        self.max_new_tokens = int(max_new_tokens)
        self.min_new_tokens = int(min_new_tokens)
        self.device_name = device
        self.max_words = int(max_words)
        self.images = bool(images)
        self.max_frames = int(max_frames)
        self._diagnostic = DiagnosticNarrator(scope=scope, max_words=max_words)
        self._loaded: tuple[Any, Any, str, bool] | None = None
        self._lock = threading.Lock()  # one generate at a time per loaded model

    def _load(self):
        if self._loaded is not None:
            return self._loaded
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import transformers

        cfg = json.loads((self.model_dir / "config.json").read_text())
        vision = "vision_config" in cfg
        from core.device import pick_device

        device = pick_device(self.device_name)
        try:
            if vision:
                processor = transformers.AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
                model = transformers.AutoModelForImageTextToText.from_pretrained(self.model_dir, local_files_only=True)
            else:
                processor = transformers.AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
                model = transformers.AutoModelForCausalLM.from_pretrained(self.model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot load the model offline: {exc}", path=self.model_dir) from None
        model.to(device).eval()
        self._loaded = (processor, model, device, vision)
        return self._loaded

    def _prompt(self, window: NarrationInput, facts: Mapping[str, Any]) -> tuple[str, str]:
        system = SYSTEM_PROMPT.format(expert=_expert(window.kind), max_words=self.max_words,
                                      scope_rule=SCOPE_RULES[self.scope])
        user = USER_PROMPT.format(
            kind=window.kind, channels=", ".join(window.channels), grid=window.grid, t0=window.input_times[0],
            t1=window.input_times[-1], t2=window.target_times[-1] if window.target_times else window.input_times[-1],
            facts=json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        return system, user

    def _generate(self, window: NarrationInput, facts: Mapping[str, Any]) -> str:
        import torch

        processor, model, device, vision = self._load()
        system, user = self._prompt(window, facts)
        gen_kwargs = dict(max_new_tokens=self.max_new_tokens, do_sample=False)
        if self.min_new_tokens:
            gen_kwargs["min_new_tokens"] = self.min_new_tokens
        with self._lock, torch.inference_mode():
            if vision:
                import io

                from PIL import Image

                from core.narratives.render import render_pngs

                images = [Image.open(io.BytesIO(p)).convert("RGB")
                          for p in render_pngs(window, max_frames=self.max_frames)] if self.images else []
                messages = [{"role": "system", "content": [{"type": "text", "text": system}]},
                            {"role": "user", "content": [{"type": "image"} for _ in images]
                             + [{"type": "text", "text": user}]}]
                prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
                inputs = processor(text=prompt, images=images or None, return_tensors="pt").to(device)
                tokenizer = processor.tokenizer
            else:
                tokenizer = processor
                if getattr(tokenizer, "chat_template", None):
                    prompt = tokenizer.apply_chat_template(
                        [{"role": "system", "content": system}, {"role": "user", "content": user}],
                        tokenize=False, add_generation_prompt=True)
                else:
                    prompt = f"{system}\n\n{user}\n\nNarrative:"
                inputs = tokenizer(prompt, return_tensors="pt").to(device)
                max_pos = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
                if max_pos:  # keep the end of an over-long prompt (the instructions come last)
                    keep = max(1, int(max_pos) - self.max_new_tokens)
                    if inputs["input_ids"].shape[1] > keep:
                        inputs = {k: v[:, -keep:] for k, v in inputs.items()}
            if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
                gen_kwargs["pad_token_id"] = tokenizer.eos_token_id
            out = model.generate(**inputs, **gen_kwargs)
        new_tokens = out[0, inputs["input_ids"].shape[1]:]
        return " ".join(tokenizer.decode(new_tokens, skip_special_tokens=True).split())

    def _narrate(self, window: NarrationInput) -> Narrative:
        facts = compute_facts(window)
        try:
            text = self._generate(window, facts)
        except ConfigError:
            raise
        except (RuntimeError, ValueError, IndexError) as exc:  # generation failures: fall back, say why
            reason = f"generation failed ({type(exc).__name__})"
            log.warning("transformers narrator: %s; falling back to the diagnostic narrator", reason)
            return self._diagnostic.from_facts(facts, fallback=True, fallback_reason=reason,
                                               requested_backend=self.backend)
        if not text:
            return self._diagnostic.from_facts(facts, fallback=True, fallback_reason="empty generation",
                                               requested_backend=self.backend)
        return Narrative(text=limit_words(text, self.max_words), provenance=self.provenance(facts))
