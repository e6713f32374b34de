"""Forward passes of a loaded transformers causal LM over ragged sequences
(svc_llm.ragged): a prefill for one newcomer, a decode step for many."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from svc_llm import ragged


class UnsupportedModel(Exception):
    """The model cannot run on the ragged batched cache (its attention bypasses it)."""


class BatchRunner:
    def __init__(self, model: Any, device: str) -> None:
        config = model.config
        layer_types = getattr(config, "layer_types", None) or []
        if any(kind != "full_attention" for kind in layer_types):
            raise UnsupportedModel(
                f"its layers are {sorted(set(layer_types))}; the batched engine runs full-attention layers only"
            )
        if ragged.register() and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(ragged.ATTENTION)
        self.model = model
        self.device = device
        heads = config.num_attention_heads
        self.layers = config.num_hidden_layers
        self.kv_heads = getattr(config, "num_key_value_heads", None) or heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        self.dtype = next(model.parameters()).dtype

    def new_kv(self, capacity: int) -> ragged.SequenceKV:
        return ragged.SequenceKV(self.layers, self.kv_heads, self.head_dim, capacity, self.dtype, self.device)

    @torch.inference_mode()
    def prefill(self, kv: ragged.SequenceKV, prompt_ids: torch.Tensor) -> torch.Tensor:
        """The prompt ([1, T]) into `kv`; the logits of its last position ([vocab])."""
        ids = prompt_ids.to(self.device)
        positions = torch.arange(ids.shape[1], device=self.device).unsqueeze(0)
        out = self.model(
            input_ids=ids, position_ids=positions, cache=ragged.RaggedCache([kv], ids.shape[1]), logits_to_keep=1
        )
        return out.logits[0, -1]

    @torch.inference_mode()
    def decode(self, kvs: Sequence[ragged.SequenceKV], tokens: Sequence[int]) -> torch.Tensor:
        """One new token per sequence, all in one forward pass; logits [batch, vocab]."""
        ids = torch.tensor(tokens, device=self.device).unsqueeze(1)
        positions = torch.tensor([kv.length for kv in kvs], device=self.device).unsqueeze(1)
        out = self.model(input_ids=ids, position_ids=positions, cache=ragged.RaggedCache(kvs, 1), logits_to_keep=1)
        return out.logits[:, -1]

    @torch.inference_mode()
    def choice_probabilities(self, prompt_ids: torch.Tensor, choices: Sequence[Sequence[int]]) -> list[float]:
        """P(the reply begins with each choice's tokens): one plain forward pass over the prompt
        for every single-token choice, one more over prompt + choice for each longer one."""
        ids = prompt_ids.to(self.device)
        last = self.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[0, -1]
        first = torch.log_softmax(last.float(), -1)
        out = []
        for tokens in choices:
            if len(tokens) == 1:
                out.append(float(first[tokens[0]].exp()))
                continue
            full = torch.cat([ids, torch.tensor([list(tokens[:-1])], device=self.device)], dim=1)
            logits = self.model(input_ids=full, use_cache=False, logits_to_keep=len(tokens)).logits[0]
            steps = torch.log_softmax(logits.float(), -1)  # row i predicts tokens[i]
            out.append(float(sum(steps[i, token] for i, token in enumerate(tokens)).exp()))
        return out

    @torch.inference_mode()
    def self_check(self, prompt_ids: torch.Tensor) -> None:
        """Prefill + one decode step through the ragged cache must give the logits
        of a plain forward pass over the same tokens (a model whose attention does
        not go through transformers' AttentionInterface and Cache.update fails here)."""
        try:
            kv = self.new_kv(prompt_ids.shape[1] + 1)
            first = self.prefill(kv, prompt_ids)
            token = int(first.argmax())
            second = self.decode([kv], [token])[0]
            ids = torch.cat([prompt_ids, torch.tensor([[token]])], dim=1).to(self.device)
            plain = self.model(input_ids=ids, use_cache=False).logits[0, -2:]
        except Exception as exc:  # any failure means the model does not fit
            raise UnsupportedModel(f"a forward pass on the batched cache failed: {exc!r}") from exc
        scale = float(plain.abs().max()) or 1.0
        worst = max(float((first - plain[0]).abs().max()), float((second - plain[1]).abs().max()))
        if worst > 1e-2 * scale:
            raise UnsupportedModel(
                f"logits on the batched cache differ from a plain forward pass by {worst:.3g} "
                f"(largest logit {scale:.3g}): its attention does not go through transformers' AttentionInterface"
            )
