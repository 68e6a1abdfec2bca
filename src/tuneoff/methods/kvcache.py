"""The key/value cache under whichever name this transformers release gives it.

transformers 5.24 renamed the forward argument and the output field `past_key_values` to `cache`
(the old name still works with a FutureWarning, and goes in 5.40); earlier 5.x releases know only
`past_key_values`. The name is read off the model's forward signature, so tuneoff passes the
current one on either release and nothing warns. Shared by the prefix cache of the LM scorer (icl,
distill's teacher) and by prefix tuning.
"""
from __future__ import annotations

import inspect

import torch

from tuneoff.methods.base import MethodError

NAMES = ("cache", "past_key_values")  # current name first


def cache_arg(model: torch.nn.Module) -> str:
    """The keyword under which `model.forward` takes a key/value cache. A head model whose forward
    passes its cache on through **kwargs (e.g. BertForSequenceClassification) is read through its
    backbone (`model.base_model`)."""
    for module in (model, getattr(model, "base_model", model)):
        params = inspect.signature(module.forward).parameters
        for name in NAMES:
            if name in params:
                return name
    raise MethodError(f"{type(model).__name__} takes no key/value cache (it has no `cache` or "
                      "`past_key_values` argument), which this method needs")


def cache_of(output) -> object:
    """The cache a forward pass returned (`output.cache`, or `output.past_key_values` before 5.24)."""
    for name in NAMES:
        if name in output:  # a ModelOutput holds the fields that are set
            return output[name]
    raise MethodError(f"the model returned no key/value cache ({type(output).__name__})")


def dynamic_cache(layers: list[tuple[torch.Tensor, torch.Tensor]], config) -> object:
    """A transformers DynamicCache filled with the given per-layer (keys, values)."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers, config=config)
