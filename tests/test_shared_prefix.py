"""The context shared by every row of a batch (methods/shared_prefix.py): the attention itself,
icl and its fallback on tiny random Llamas (distill's teacher: test_distill.py)."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from test_lm_methods import prep, words_task  # noqa: E402, F401  (words_task: a fixture)


def test_shared_prefix_attention_equals_attention_over_the_whole_sequence():
    """Grouped-query heads (6 query heads on 2 kv heads), 3 rows sharing one 7-token context."""
    from tuneoff.methods import shared_prefix as sp

    torch.manual_seed(0)
    n, heads, kv, length, p, d = 3, 6, 2, 5, 7, 8
    q, k, v = torch.randn(n, heads, length, d), torch.randn(n, kv, length, d), torch.randn(n, kv, length, d)
    kp, vp = torch.randn(1, kv, p, d), torch.randn(1, kv, p, d)

    class Layer(torch.nn.Module):
        layer_idx = 0

    layer = Layer().eval()
    got, _ = sp.shared_prefix_attention(layer, q, k, v, None, scaling=d ** -0.5, **{sp.KWARG: [(kp, vp)]})
    keys = torch.cat([kp.expand(n, -1, -1, -1), k], 2).repeat_interleave(heads // kv, 1)
    values = torch.cat([vp.expand(n, -1, -1, -1), v], 2).repeat_interleave(heads // kv, 1)
    mask = torch.ones(length, p + length, dtype=torch.bool)
    mask[:, p:] = torch.ones(length, length, dtype=torch.bool).tril()
    want = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask).transpose(1, 2)
    assert got.shape == (n, length, heads, d) and torch.allclose(got, want, atol=1e-5)
    out, lse = sp._attend(q, keys, values, False, d ** -0.5)  # the fused kernel's log-sum-exp is the real one
    assert torch.allclose(lse, torch.logsumexp((q @ keys.transpose(-1, -2)) * d ** -0.5, -1), atol=1e-5)


def test_icl_scores_through_the_shared_prefix_and_matches_the_copied_cache():
    p = prep("method=icl", "method.k=3")
    m, exs = p.method, p.evals["in_domain"][:10]
    with torch.no_grad():
        shared = m.class_logits(m.collate(exs))
        assert m.scorer._shared_ok is True  # the first batch checked the shared path against the cache path
        m.scorer._shared_ok = False  # the previous path: the context copied into every row's cache
        copied = m.class_logits(m.collate(exs))
    assert torch.allclose(shared, copied, atol=1e-5)


def gqa_llama(vocab_size: int, pad_id: int):
    """A tiny random Llama with grouped-query heads (4 query heads on 2 kv heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
                      pad_token_id=pad_id, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("multi", [False, True])
def test_shared_prefix_predictions_equal_uncached_scoring_with_grouped_query_heads(multi, words_task):
    """Batches of different padding after a context of a few demonstrations, on a grouped-query Llama:
    the shared context gives the uncached scorer's numbers (the whole text run for every query)."""
    from tuneoff.methods.icl import DemoContext
    from tuneoff.methods.pattern import scorer_for

    p = prep(f"task={words_task}", "method=icl", "pattern=multi", "method.k=2") if multi else \
        prep("method=icl", "method.k=3", "method.calibrate=true")
    m, exs = p.method, sorted(p.evals[next(iter(p.evals))][:12], key=lambda ex: len(ex["text"]))
    model = gqa_llama(m.model.config.vocab_size, m.tokenizer.pad_token_id)
    scorer = scorer_for(m)
    ctx = DemoContext.build(scorer, model, p.task, m.demos, m.options, p.few)
    shared, plain = [], []
    with torch.no_grad():
        for chunk in (exs[:5], exs[5:7], exs[7:]):  # three batches, each padded to its own width
            batch = ctx.encode(chunk)
            assert batch["attention_mask"].sum(1).unique().numel() > 1 or len(chunk) < 3
            shared.append(ctx.scores(batch))
            assert scorer._shared_ok is True  # checked against the cache path on the first batch, and kept
            plain.append(ctx.scores(ctx.encode(chunk, cached=False), cached=False))
    shared, plain = torch.cat(shared), torch.cat(plain)
    assert torch.allclose(shared, plain, atol=1e-5)
    assert torch.equal(shared.argmax(-1), plain.argmax(-1))


def test_shared_prefix_falls_back_to_the_cache_where_it_does_not_fit(monkeypatch):
    from tuneoff.methods import shared_prefix as sp

    def unfit(*a, **kw):
        raise TypeError("an attention the shared path does not know")

    monkeypatch.setattr(sp, "shared_prefix_attention", unfit)
    p = prep("method=icl", "method.k=3")
    m, exs = p.method, p.evals["in_domain"][:6]
    with torch.no_grad():
        cached = m.class_logits(m.collate(exs))
        assert m.scorer._shared_ok is False
        m.options.use_cache = False
        plain = m.class_logits(m.collate(exs))
    assert torch.allclose(cached, plain, atol=1e-5)
