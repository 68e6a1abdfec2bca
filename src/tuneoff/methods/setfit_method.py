"""SetFit (Tunstall et al., 2022) through the setfit and sentence-transformers libraries: the
encoder is fine-tuned contrastively on pairs made from the few labelled examples (same label: the
embeddings are pulled together; different labels: pushed apart), then a logistic regression on its
sentence embeddings is the classifier.

Why tuneoff's loop trains it, not setfit's Trainer: the body phase is ordinary gradient descent on
pairs, which the one loop runs as it runs every method (AdamW, warm-up, clipping, `train.lr`,
`epochs`/`max_steps`, `batch_size`, precision, the seeded order), so its time, CPU time, memory,
tokens and FLOPs are counted by the same code, and a search's rungs score it at the same lengths
as the others. Only the pieces are setfit's and sentence-transformers' own: the pairs are setfit's
`ContrastiveDataset` (its sampling strategies and `num_iterations`), the pair loss is the
sentence-transformers loss setfit uses (CosineSimilarityLoss by default), computed from the
embeddings (`compute_loss_from_embeddings`), and the embedding is the model's backbone followed by
sentence-transformers' `Pooling` (and `Normalize`) as the model's own sentence-transformers config
has them. An epoch is one pass over the pair set, setfit's `num_epochs`: `train.epochs=1` is
setfit's default length; a step of `train.batch_size` pairs runs 2 x batch_size texts.

The head is setfit's default, scikit-learn's `LogisticRegression` (its C and max_iter are options),
fitted each time the loop stops (`finish_training`: the end, or a search's rung) on the trained
encoder's embeddings of the few-shot examples, in eval mode. Its fitted `coef_`/`intercept_` are the
parameters of a small torch module on the model, so they are saved as safetensors with the encoder
and the evaluator scores through them: a label's logit is sklearn's decision function (two labels:
0 and w.x + b, whose softmax is `predict_proba`). setfit's differentiable head is not offered: it
would be a second training loop after the first.

Trainable: every weight of the backbone that the embedding uses (a BERT pooler is not: it is
frozen) and the head's coef and intercept (fitted, not stepped: the optimizer never holds them).
The model's own classification head is frozen and unused.

A decoder (smollm2) runs with mean pooling, as any pooling sentence-transformers offers except
`cls`, which a decoder refuses: its first token attends to nothing after it, so every text would
get nearly the same embedding. Mean-pooled decoder states are a working sentence embedding (SGPT;
sentence-transformers pools decoder models the same way), so the comparison on a decoder stays
possible.

The libraries (the `setfit` extra) are imported with this module, that is when the registry finds
the methods, before any run is measured: the first setfit run of a process is then charged no
import that later runs are not.
"""
from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from tuneoff.methods import ClassifierMethod, MethodError, MethodOptions, register
from tuneoff.methods.base import batch_to, set_trainable
from tuneoff.methods.layers import head_modules, load_exact
from tuneoff.models import TINY
from tuneoff.space import Length, Range

try:  # the `setfit` extra
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    from setfit.compat import losses
    from setfit.sampler import ContrastiveDataset
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    MISSING = None
except ImportError as e:  # registered all the same; refused when built, with what to install
    MISSING = e.name or str(e)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_MARGIN = 0.5  # sentence-transformers' (the margin setfit leaves its pair losses)


class SetFitOptions(MethodOptions):
    sampling: Literal["oversampling", "undersampling", "unique"] | None = Field(
        None, description="setfit's pair sampling: oversampling (as many positive as negative pairs, the fewer "
                          "repeated), undersampling, unique (each pair once); null = oversampling, setfit's default, "
                          "unless num_iterations is set")
    num_iterations: int | None = Field(
        None, ge=1, description="setfit's num_iterations: this many positive and as many negative pairs per "
                                "example, instead of a sampling strategy; null = use sampling")
    loss: Literal["cosine", "contrastive", "online-contrastive"] = Field(
        "cosine", description="pair loss (sentence-transformers): cosine = CosineSimilarityLoss, setfit's default "
                              "(cosine similarity regressed onto 1/0); contrastive = ContrastiveLoss; "
                              "online-contrastive = OnlineContrastiveLoss (hard pairs of each batch)")
    distance: Literal["cosine", "euclidean", "manhattan"] | None = Field(
        None, description="distance of a contrastive loss; null = cosine (loss=cosine is cosine by definition)")
    margin: float | None = Field(
        None, gt=0, description=f"margin of a contrastive loss; null = {DEFAULT_MARGIN} (sentence-transformers')")
    pooling: Literal["model", "mean", "cls", "max", "lasttoken", "weightedmean", "mean_sqrt_len_tokens"] = Field(
        "model", description="token states -> sentence embedding (sentence-transformers' Pooling); model = the "
                             "model's own sentence-transformers pooling (minilm-l6: mean), mean where it has none")
    normalize: bool | None = Field(
        None, description="L2-normalise the embeddings; null = as the model's sentence-transformers config says "
                          "(minilm-l6: yes), else no")
    head_c: float = Field(1.0, gt=0, description="inverse L2 strength C of the logistic-regression head "
                                                   "(scikit-learn's and setfit's default 1)")
    head_max_iter: int = Field(100, ge=1, description="iterations of the head's lbfgs solver (scikit-learn's "
                                                        "default 100)")

    @model_validator(mode="after")
    def _consistent(self) -> "SetFitOptions":
        if self.sampling is not None and self.num_iterations is not None:
            raise MethodError(f"setfit: give sampling ({self.sampling}) or num_iterations ({self.num_iterations}), "
                              "not both: num_iterations replaces the sampling strategy")
        if self.loss == "cosine" and (self.distance not in (None, "cosine") or self.margin is not None):
            raise MethodError("setfit: distance and margin are options of loss=contrastive or online-contrastive; "
                              "loss=cosine regresses the cosine similarity and has neither")
        return self


class LogisticHead(nn.Module):
    """A fitted scikit-learn LogisticRegression as tensors: `coef` [k, dim] and `intercept` [k], k = 1
    for two labels (sklearn's binary form), else one row per label (its multinomial form)."""

    def __init__(self, dim: int, num_labels: int):
        super().__init__()
        rows = 1 if num_labels == 2 else num_labels
        self.num_labels = num_labels
        self.coef = nn.Parameter(torch.zeros(rows, dim))  # zeros: every label equally likely until fitted
        self.intercept = nn.Parameter(torch.zeros(rows))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        z = embeddings @ self.coef.T + self.intercept  # sklearn's decision_function
        return torch.cat([torch.zeros_like(z), z], -1) if self.num_labels == 2 else z

    @torch.no_grad()
    def set_from(self, fitted) -> None:
        self.coef.copy_(torch.as_tensor(fitted.coef_, dtype=self.coef.dtype))
        self.intercept.copy_(torch.as_tensor(fitted.intercept_, dtype=self.intercept.dtype))


def sentence_modules(loaded) -> list[dict]:
    """The entries of the model's sentence-transformers `modules.json` ([] where it ships none)."""
    source = loaded.info.get("source")
    if loaded.name in TINY or not source:
        return []
    from transformers.utils import cached_file

    try:
        path = cached_file(source, "modules.json", _raise_exceptions_for_missing_entries=False)
    except (OSError, ValueError):
        return []
    return json.loads(Path(path).read_text()) if path else []


def pair_loss(options: SetFitOptions) -> nn.Module:
    """The sentence-transformers loss of the options. It is handed the embeddings of each batch
    (`compute_loss_from_embeddings`) and runs no model itself, hence model=None."""
    if options.loss == "cosine":
        return losses.CosineSimilarityLoss(model=None)
    metric = getattr(losses.SiameseDistanceMetric, {"cosine": "COSINE_DISTANCE", "euclidean": "EUCLIDEAN",
                                                    "manhattan": "MANHATTAN"}[options.distance or "cosine"])
    cls = losses.ContrastiveLoss if options.loss == "contrastive" else losses.OnlineContrastiveLoss
    return cls(model=None, distance_metric=metric, margin=options.margin or DEFAULT_MARGIN)


@register
class SetFit(ClassifierMethod):
    name = "setfit"
    description = ("SetFit: the sentence encoder fine-tuned contrastively on pairs of the few-shot examples, "
                   "then a logistic-regression head on its embeddings")
    Options = SetFitOptions
    # the encoder's learning rate (setfit's default body rate, 2e-5, lies inside); the head has none
    search_space = {"train.lr": [1e-5, 3e-5, 1e-4]}
    # the optuna search: the encoder's rate widened as the grid's, and the head's regularisation,
    # which decides how far a few examples may pull the boundary (cheap: no gradient step)
    search_ranges = {"train.lr": Range(1e-5 / 3, 1e-4 * 3, limits=(1e-8, 1e-2)),
                     "method.head_c": Range(0.01, 100.0, limits=(1e-4, 1e4))}
    # epochs over the pair set, whose size grows with the square of the shots (oversampling: about
    # N^2/2 pairs of N examples): 1 epoch is setfit's default, inside the rungs 1/9, 1/3, 1, 3
    search_length = Length(1 / 9, 3, 27, 3)
    version = 1  # (2 on a task of several text fields, as every classification head's: version_for)

    def __init__(self, options: SetFitOptions, ctx):
        super().__init__(options, ctx)
        if MISSING:
            raise MethodError(f"setfit needs the setfit extra (module {MISSING!r} is missing): "
                              "pip install 'tuneoff[setfit]'")
        modules = sentence_modules(ctx.loaded)
        self.pooling = self._pooling(modules)
        use_norm = options.normalize
        if use_norm is None:
            use_norm = any(m.get("type", "").endswith(".Normalize") for m in modules)
        self.normalize = Normalize() if use_norm else None
        other = [m.get("type", "?").rpartition(".")[2] for m in modules
                 if not m.get("type", "").endswith((".Transformer", ".Pooling", ".Normalize"))]
        if other:
            self.notes.append(f"setfit: the model's sentence-transformers modules {other} are not used; its "
                              "embedding here is the backbone's states pooled (and normalised)")
        self.backbone_inputs = set(inspect.signature(self.backbone.forward).parameters) & set(MODEL_INPUTS)
        self.head = LogisticHead(self.pooling.get_embedding_dimension(), self.task.num_labels).to(ctx.device)
        self.model.add_module("setfit_head", self.head)
        self.pair_loss = pair_loss(options)
        self.few: list[dict] = []
        self.fitted_steps = -1  # the body steps the head was last fitted after (-1: not fitted)
        self.steps = 0  # loss evaluations so far: a change of the body since the last fit

    @property
    def backbone(self) -> nn.Module:
        return self.model.base_model

    def _pooling(self, modules: list[dict]):
        """The options' pooling, or the model's own (its modules.json's Pooling), mean by default."""
        hidden = self.model.config.hidden_size
        mode = self.options.pooling
        own = next((m for m in modules if m.get("type", "").endswith(".Pooling")), None)
        if mode == "model" and own is not None:
            pooling = Pooling.load(self.ctx.loaded.info["source"], subfolder=own.get("path", ""))
            if pooling.embedding_dimension != hidden:
                raise MethodError(f"setfit: the model's sentence-transformers pooling expects "
                                  f"{pooling.embedding_dimension}-dimensional token states, the model gives {hidden}; "
                                  "set method.pooling=mean")
        else:
            pooling = Pooling(hidden, "mean" if mode == "model" else mode)
        modes = (pooling.pooling_mode,) if isinstance(pooling.pooling_mode, str) else pooling.pooling_mode
        if self.ctx.loaded.is_decoder and "cls" in modes:
            raise MethodError(f"setfit: pooling=cls reads the first token, which in a decoder such as "
                              f"{self.ctx.loaded.name!r} sees no other token; use method.pooling=mean (or lasttoken)")
        return pooling

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self, train, pool):
        missing = sorted(set(range(self.task.num_labels)) - {ex["label"] for ex in train})
        if missing:
            raise MethodError(f"setfit's head needs an example of every label; the training set has none of "
                              f"{[self.task.label_names[k] for k in missing]}")
        self.few = list(train)
        unused = {id(p) for n in head_modules(self.model) for p in getattr(self.model, n).parameters()}
        pooler = getattr(self.backbone, "pooler", None)  # BERT's dense+tanh over [CLS]: no part of the embedding
        unused |= {id(p) for p in pooler.parameters()} if isinstance(pooler, nn.Module) else set()
        body = {id(p) for p in self.backbone.parameters()} - unused
        set_trainable(self.model, {n for n, p in self.model.named_parameters()
                                   if id(p) in body or n.startswith("setfit_head.")})

    def train_examples(self, few: list[dict]) -> list[dict]:
        """setfit's pairs of the few-shot examples: {"pair": (a, b), "label": 1.0 same label, 0.0 not}."""
        opts = self.options
        pairs = ContrastiveDataset(list(range(len(few))), [ex["label"] for ex in few], multilabel=False,
                                   num_iterations=opts.num_iterations,
                                   sampling_strategy=opts.sampling or "oversampling")
        return [{"id": f"{few[p['sentence_1']]['id']}|{few[p['sentence_2']]['id']}",
                 "pair": (few[p["sentence_1"]], few[p["sentence_2"]]), "label": float(p["label"])} for p in pairs]

    # -- the loop's and the evaluator's calls ----------------------------------------------------
    def collate(self, examples: list[dict]) -> dict:
        if not (examples and "pair" in examples[0]):
            return super().collate(examples)
        # both sides of every pair in one padded batch: one forward of 2 x batch texts
        batch = self.encode([p["pair"][0] for p in examples] + [p["pair"][1] for p in examples])
        batch["labels"] = torch.tensor([p["label"] for p in examples], dtype=torch.float32)
        return batch

    def embed(self, batch: dict) -> torch.Tensor:
        """Sentence embeddings: the backbone's last hidden states, pooled (and normalised) as
        sentence-transformers does."""
        out = self.backbone(**{k: v for k, v in batch.items() if k in self.backbone_inputs})
        features = self.pooling({"token_embeddings": out.last_hidden_state, "attention_mask": batch["attention_mask"]})
        if self.normalize is not None:
            features = self.normalize(features)
        return features["sentence_embedding"]

    def class_logits(self, batch: dict) -> torch.Tensor:
        return self.head(self.embed(batch).float())

    def loss(self, batch: dict) -> torch.Tensor:
        first, second = self.embed(batch).chunk(2)
        self.steps += 1
        return self.pair_loss.compute_loss_from_embeddings([first, second], batch["labels"])

    def param_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """The encoder's weights only: the head is fitted (`finish_training`), never stepped."""
        head = {id(p) for p in self.head.parameters()}
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in head]}
                  for g in super().param_groups(lr, weight_decay)]
        return [g for g in groups if g["params"]]

    def finish_training(self) -> int:
        """Fit the logistic-regression head on the encoder as trained so far (once per change)."""
        if self.fitted_steps == self.steps:
            return 0
        embeddings, tokens = self._embeddings(self.few)
        labels = np.array([ex["label"] for ex in self.few])
        head = LogisticRegression(C=self.options.head_c, max_iter=self.options.head_max_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            head.fit(embeddings, labels)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            note = (f"setfit: the logistic-regression head did not converge in head_max_iter="
                    f"{self.options.head_max_iter} iterations")
            self.notes += [] if note in self.notes else [note]
        self.head.set_from(head)
        self.fitted_steps = self.steps
        return tokens

    @torch.no_grad()
    def _embeddings(self, examples: list[dict]) -> tuple[np.ndarray, int]:
        """Embeddings [N, dim] of `examples` in eval mode, and the tokens it ran."""
        was = self.model.training
        self.model.eval()
        rows, tokens, size = [], 0, self.ctx.eval_batch_size
        try:
            for i in range(0, len(examples), size):
                batch = batch_to(self.encode(examples[i:i + size]), self.ctx.device)
                rows.append(self.embed(batch).float().cpu())
                tokens += int(batch["attention_mask"].sum())
        finally:
            self.model.train(was)
        return torch.cat(rows).numpy(), tokens

    def load(self, folder: Path) -> None:
        load_exact(self.model, folder)
        self.fitted_steps = self.steps  # the saved head belongs to the saved encoder
