"""A Llama-shaped causal LM in plain PyTorch, for machines without transformers:
the same blocks as LlamaForCausalLM (RMSNorm, rotary positions, grouped-query
attention, SwiGLU MLP, tied LM head) and the forward signature svc_llm's
BatchRunner calls, with attention through svc_llm.ragged like the real thing."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

from svc_llm.ragged import ragged_attention


@dataclass
class LlamaShape:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    rope_theta: float = 100000.0
    rms_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class _RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _Attention(nn.Module):
    def __init__(self, shape: LlamaShape, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.head_dim = shape.head_dim
        self.num_key_value_groups = shape.num_attention_heads // shape.num_key_value_heads
        self.is_causal = True
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(shape.hidden_size, shape.num_attention_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(shape.hidden_size, shape.num_key_value_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(shape.hidden_size, shape.num_key_value_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(shape.num_attention_heads * self.head_dim, shape.hidden_size, bias=False)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache) -> torch.Tensor:
        batch, length, _ = h.shape
        shape = (batch, length, -1, self.head_dim)
        q = self.q_proj(h).view(shape).transpose(1, 2)
        k = self.k_proj(h).view(shape).transpose(1, 2)
        v = self.v_proj(h).view(shape).transpose(1, 2)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
            out, _ = ragged_attention(self, q, k, v, None, scaling=self.scaling)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, scale=self.scaling, is_causal=length > 1, enable_gqa=self.num_key_value_groups > 1
            ).transpose(1, 2)
        return self.o_proj(out.reshape(batch, length, -1))


class _Layer(nn.Module):
    def __init__(self, shape: LlamaShape, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = _RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        self.self_attn = _Attention(shape, layer_idx)
        self.post_attention_layernorm = _RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        self.gate_proj = nn.Linear(shape.hidden_size, shape.intermediate_size, bias=False)
        self.up_proj = nn.Linear(shape.hidden_size, shape.intermediate_size, bias=False)
        self.down_proj = nn.Linear(shape.intermediate_size, shape.hidden_size, bias=False)

    def forward(self, h, cos, sin, cache):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, cache)
        x = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TinyLlama(nn.Module):
    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.config = SimpleNamespace(**shape.__dict__, head_dim=shape.head_dim)
        self.embed_tokens = nn.Embedding(shape.vocab_size, shape.hidden_size)
        self.layers = nn.ModuleList(_Layer(shape, i) for i in range(shape.num_hidden_layers))
        self.norm = _RMSNorm(shape.hidden_size, shape.rms_norm_eps)
        inv_freq = 1.0 / (shape.rope_theta ** (torch.arange(0, shape.head_dim, 2).float() / shape.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, input_ids, position_ids=None, cache=None, logits_to_keep=0, use_cache=None):
        h = self.embed_tokens(input_ids)
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        freqs = position_ids.float().unsqueeze(-1) * self.inv_freq
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos().to(h.dtype), angles.sin().to(h.dtype)
        for layer in self.layers:
            h = layer(h, cos, sin, cache)
        h = self.norm(h)
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        return SimpleNamespace(logits=F.linear(h, self.embed_tokens.weight))
