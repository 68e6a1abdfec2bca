"""Attention over a context shared by every row of a batch, without copying it per row.

A batch of queries after one context (icl's demonstrations, distillation's teacher context) used to
get the context's keys/values expanded to every row of a DynamicCache: each layer concatenated them
with the queries' own (a copy per row), and grouped-query attention repeated them per head (another
copy). Here the context stays one [1, kv_heads, P, head_dim] tensor per layer. Every query row of
every example attends to it in one call per batch, and to its own tokens causally; the two parts
are merged exactly through their log-sum-exps (one softmax over both). The result equals attention over the
concatenated sequence (a test checks it against the uncached scorer).

It runs as an attention implementation of transformers' `AttentionInterface`, switched on only for
the forward pass that scores against the context (`attend_with`), and receives the context through
the keyword arguments that transformers passes down to the attention function. The queries must be
right-padded (the LM scorer's encoding): under a causal mask a real token never sees the pads after
it, so no padding mask is needed. `LMScorer` checks once per model that this path gives the same
logits as the cache path, and falls back to the cache for architectures it does not fit (sliding
windows, soft-capped or sink attention).
"""
from __future__ import annotations

import contextlib

import torch

NAME = "tuneoff_shared_prefix"
KWARG = "tuneoff_shared_prefix"  # the keyword that carries the per-layer (keys, values) of the context


def _attend(q, k, v, causal: bool, scale: float):
    """Softmax attention of q [B, H, L, d] over k, v [B, H, Lk, d] and the log-sum-exp of its scores
    [B, H, L] (what merging two parts of one softmax needs). On the CPU, torch's fused kernel gives
    both; elsewhere they are computed directly."""
    fused = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if q.device.type == "cpu" and fused is not None:
        out, lse = fused(q, k, v, 0.0, causal, scale=scale)
        return out, lse
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).tril(), float("-inf"))
    lse = torch.logsumexp(s, -1)
    return torch.matmul(torch.exp(s - lse[..., None]), v), lse


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """query [n, H, L, d]; key/value [n, Hkv, L, d] (the rows' own tokens); the context's per-layer
    (keys, values) [1, Hkv, P, d] in kwargs[KWARG]. Returns ([n, L, H, d], None) as transformers'
    attention functions do."""
    if module.training and dropout:
        raise RuntimeError("shared-prefix attention is for scoring: the model must be in eval mode")
    keys_p, values_p = kwargs[KWARG][module.layer_idx]
    n, heads, length, dim = query.shape
    kv_heads = keys_p.shape[1]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim ** -0.5
    # the context: every row, grouped head and position of a kv head is one query of a single call
    q_ctx = query.view(n, kv_heads, groups, length, dim).transpose(0, 1).reshape(1, kv_heads, -1, dim)
    out_ctx, lse_ctx = _attend(q_ctx, keys_p, values_p, False, scale)
    out_ctx = out_ctx.view(kv_heads, n, groups, length, dim).transpose(0, 1).reshape(n, heads, length, dim)
    lse_ctx = lse_ctx.view(kv_heads, n, groups, length).transpose(0, 1).reshape(n, heads, length)
    # the rows' own tokens, causally (their keys are few: repeating them per grouped head is cheap)
    out_own, lse_own = _attend(query, key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1),
                               True, scale)
    # one softmax over both parts
    m = torch.maximum(lse_ctx, lse_own)
    w_ctx, w_own = torch.exp(lse_ctx - m)[..., None], torch.exp(lse_own - m)[..., None]
    out = (out_ctx * w_ctx + out_own * w_own) / (w_ctx + w_own)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, shared_prefix_attention)


@contextlib.contextmanager
def attend_with(lm):
    """The model's attention runs `shared_prefix_attention` inside the block (its config is restored after)."""
    _register()
    config = lm.config
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
