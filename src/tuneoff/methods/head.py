"""Linear probe: the pretrained model is frozen; only the classification head trains.

"Head" is the new classifier (`classifier`/`score`) plus any weight the loader had to initialise
from scratch; a pretrained pooler (BERT) stays frozen with the rest of the model.

The frozen backbone (`model.base_model`) runs in eval mode (no dropout) and only once per training
example: at the start of training its outputs are computed (no_grad, batches of the eval batch
size) and kept per example, trimmed to the example's own tokens. Each step then runs the model's
own forward with the backbone's forward replaced by a lookup of those outputs, so the head,
its dropout and the model's pooling (e.g. a decoder's last non-pad token) are the model's own
code. The result equals the uncached probe with the backbone in eval mode, up to float rounding
(each example's features are computed in a different batch). The feature pass is training
compute: its tokens are counted once as forward-only tokens; the steps add none, since the
backbone sees no tokens in them. Where a weight inside the backbone trains (a pooler missing from
the checkpoint), nothing is cached and every step runs the backbone, still in eval mode.
"""
from __future__ import annotations

import contextlib

import torch

from tuneoff.methods import MethodOptions, register
from tuneoff.methods.base import batch_to
from tuneoff.methods.layers import PartialMethod

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class HeadOptions(MethodOptions):
    """No options: what trains is fixed (the classification head)."""


@register
class LinearProbe(PartialMethod):
    name = "head"
    description = "linear probe: frozen model in eval mode, its features computed once; only the head trains"
    Options = HeadOptions
    search_space = {"train.lr": [1e-3, 1e-2, 1e-1]}  # a lone linear layer needs large steps
    # 2: the frozen backbone in eval mode (no dropout), its features computed once. (3 on a task of
    # several text fields: a decoder reads them joined by the task's separator; ClassifierMethod.version_for)
    version = 2

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.features: dict[str, dict] = {}  # example id -> the backbone's outputs for its own tokens
        self.output_type = None  # the class of the backbone's output (a transformers ModelOutput)
        self.sequences: set[str] = set()  # its per-token outputs ([batch, tokens, ...]; kept trimmed)

    def trainable_names(self) -> set[str]:
        return set(self.head_names())

    @property
    def backbone(self) -> torch.nn.Module:
        return self.model.base_model

    def cacheable(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    # -- the loop's calls ------------------------------------------------------------------------
    def start_training(self, examples: list[dict]) -> int:
        tokens = 0
        if self.cacheable():  # in eval mode: the head's dropout draws nothing during the pass
            self.model.eval()
            tokens = self._feature_pass([ex for ex in examples if ex["id"] not in self.features])
        self.resume_training()
        return tokens

    def resume_training(self) -> None:
        self.model.train()
        self.backbone.eval()

    def collate(self, examples: list[dict]) -> dict:
        batch = super().collate(examples)
        if self.model.training and self.features and all(ex["id"] in self.features for ex in examples):
            # the backbone sees no token of this batch: under another name, the loop counts none
            mask = batch.pop("attention_mask")
            batch["feature_mask"] = mask
            batch["features"] = self._pad([self.features[ex["id"]] for ex in examples], mask)
        return batch

    def class_logits(self, batch: dict) -> torch.Tensor:
        if "features" not in batch:
            return super().class_logits(batch)
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        inputs["attention_mask"] = batch["feature_mask"]
        with self._backbone_returns(batch["features"]):
            return self.model(**inputs).logits

    # -- the features ----------------------------------------------------------------------------
    @torch.no_grad()
    def _feature_pass(self, examples: list[dict]) -> int:
        """The backbone's outputs for each example (captured from the model's own forward), kept
        trimmed to its tokens; returns the tokens it ran on."""
        got: list = []
        hook = self.backbone.register_forward_hook(lambda mod, args, out: got.append(out))
        tokens = 0
        fields = self.task.text_fields
        order = sorted(examples, key=lambda ex: sum(len(ex[f]) for f in fields))
        try:
            for i in range(0, len(order), self.ctx.eval_batch_size):
                chunk = order[i:i + self.ctx.eval_batch_size]
                batch = batch_to(super().collate(chunk), self.ctx.device)
                got.clear()
                super().class_logits(batch)
                out, mask = got[0], batch["attention_mask"].bool()
                self.output_type = type(out)
                tokens += int(mask.sum())
                kept = {k: v for k, v in out.items() if isinstance(v, torch.Tensor) and v.shape[0] == len(chunk)}
                self.sequences = {k for k, v in kept.items() if v.dim() == 3 and v.shape[1] == mask.shape[1]}
                for j, ex in enumerate(chunk):
                    self.features[ex["id"]] = {k: (v[j][mask[j]] if k in self.sequences else v[j]).clone()
                                               for k, v in kept.items()}
        finally:
            hook.remove()
        return tokens

    def _pad(self, rows: list[dict], mask: torch.Tensor) -> dict:
        """The cached outputs of a batch's examples, sequences placed on their tokens (zeros on padding)."""
        out = {}
        for k, first in rows[0].items():
            if k in self.sequences:
                full = first.new_zeros((*mask.shape, *first.shape[1:]))
                full[mask.bool().to(first.device)] = torch.cat([r[k] for r in rows])
                out[k] = full
            else:
                out[k] = torch.stack([r[k] for r in rows])
        return out

    @contextlib.contextmanager
    def _backbone_returns(self, features: dict):
        """The backbone's forward replaced, for one call of the model, by the batch's cached outputs."""
        backbone = self.backbone
        backbone.forward = lambda *args, **kwargs: self.output_type(**features)
        try:
            yield
        finally:
            del backbone.forward
