"""The batched KV cache, ragged: every sequence keeps its own keys and values,
and attention runs per sequence over exactly its own tokens.

Why ragged rather than left padding: with left padding, a sequence's attention
sees a mask and padded key positions, and the reduction over keys then runs on
a different shape than when the sequence is alone (its keys shifted by the
padding), which changes the last bits of the result. Here a sequence's
attention call is the very call transformers' SDPA path makes for that sequence
alone (same shapes, no mask), while every matmul outside attention (projections,
MLP, LM head) runs once for the whole batch. Joining and leaving are O(1): no
batch-wide cache to re-pad or re-index. The cost is one SDPA call per sequence
and layer, cheap beside the matmuls for a batch of tens of sequences; a varlen
kernel (flash-attn's) would be the GPU upgrade for large batches.

It plugs into any transformers model whose attention goes through
`AttentionInterface` and `Cache.update` (Llama, Mistral, Qwen2/3, SmolLM ...):
`update` hands the attention function each sequence's keys and values (a list),
and the function registered under `ATTENTION` runs SDPA per sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

ATTENTION = "aiworker_ragged"
_GROWTH_STEP = 64  # tokens a buffer grows by at least (then doubling, up to its capacity)


class SequenceKV:
    """One sequence's keys and values for every layer, in one buffer of shape
    [layers, 2, kv_heads, allocated, head_dim] that grows (by doubling) up to
    `capacity` tokens (prompt + max_new_tokens)."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity: int, dtype, device) -> None:
        self.shape = (layers, 2, kv_heads, head_dim)
        self.capacity = capacity
        self.dtype, self.device = dtype, device
        self.length = 0  # tokens stored
        self._use(self._allocate(min(capacity, _GROWTH_STEP)))

    def _use(self, buffer: torch.Tensor) -> None:
        self.buffer = buffer
        # Per-layer views [kv_heads, allocated, head_dim], made once per allocation, not per step.
        self.keys = list(buffer[:, 0].unbind(0))
        self.values = list(buffer[:, 1].unbind(0))

    def _allocate(self, tokens: int) -> torch.Tensor:
        layers, two, heads, dim = self.shape
        return torch.empty((layers, two, heads, tokens, dim), dtype=self.dtype, device=self.device)

    def reserve(self, new_tokens: int) -> None:
        """Room for `new_tokens` more (called once per forward, before its layers write)."""
        needed = self.length + new_tokens
        if needed > self.buffer.shape[3]:
            if needed > self.capacity:
                raise RuntimeError(f"KV cache of {self.capacity} tokens is full")
            grown = self._allocate(min(self.capacity, max(needed, 2 * self.buffer.shape[3])))
            grown[:, :, :, : self.length] = self.buffer[:, :, :, : self.length]
            self._use(grown)


class RaggedCache:
    """What a forward pass gets as `cache`: the sequences of this pass, each
    adding `new_tokens` tokens (the prompt at prefill, one token when decoding)."""

    def __init__(self, sequences: Sequence[SequenceKV], new_tokens: int) -> None:
        self.sequences = sequences
        self.new_tokens = new_tokens
        for kv in sequences:
            kv.reserve(new_tokens)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """key/value_states: [batch, kv_heads, new_tokens, head_dim] → per-sequence views of everything stored."""
        keys, values = [], []
        for kv, new_keys, new_values in zip(self.sequences, key_states.unbind(0), value_states.unbind(0)):
            start, end = kv.length, kv.length + self.new_tokens
            layer_keys, layer_values = kv.keys[layer_idx], kv.values[layer_idx]
            layer_keys[:, start:end] = new_keys
            layer_values[:, start:end] = new_values
            keys.append(layer_keys[None, :, :end])
            values.append(layer_values[None, :, :end])
        if layer_idx == self.last_layer:
            for kv in self.sequences:
                kv.length += self.new_tokens
        return keys, values

    @property
    def last_layer(self) -> int:
        return self.sequences[0].shape[0] - 1

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.sequences[0].length if len(self.sequences) == 1 else 0


def ragged_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """SDPA per sequence: query [batch, heads, q_len, head_dim], key/value lists from RaggedCache.update.

    Each call is the one transformers' SDPA path makes for a lone unpadded
    sequence (no mask; causal for a prefill; GQA in the kernel), so a sequence
    alone gives bitwise the logits of stock `generate`."""
    if not isinstance(key, list):  # not called through RaggedCache: nothing ragged about it
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    causal = query.shape[2] > 1 and getattr(module, "is_causal", True)
    outputs = []
    for i, (k, v) in enumerate(zip(key, value)):
        q = query[i : i + 1]
        options = {}
        if groups > 1:
            if k.shape[-1] <= 256:
                options["enable_gqa"] = True
            else:
                k, v = _repeat_kv(k, groups), _repeat_kv(v, groups)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scaling, is_causal=causal, **options)
        outputs.append(out.transpose(1, 2).contiguous())
    return (outputs[0] if len(outputs) == 1 else torch.cat(outputs)), None


def _repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    batch, heads, length, dim = states.shape
    return states[:, :, None].expand(batch, heads, groups, length, dim).reshape(batch, heads * groups, length, dim)


def register() -> bool:
    """Makes `ATTENTION` a valid attn_implementation (idempotent); False without
    transformers (a model of one's own then calls ragged_attention itself)."""
    try:
        from transformers import AttentionInterface
    except ImportError:
        return False
    AttentionInterface.register(ATTENTION, ragged_attention)
    return True
