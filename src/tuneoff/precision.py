"""What a run computes in, and what the device it runs on can do: the dtype of the model's weights
(`model_dtype`), base weights quantized to 4 or 8 bits (`quantization`, bitsandbytes on a CUDA GPU),
the attention implementation (`attn_implementation`), activation checkpointing
(`train.gradient_checkpointing`), and the autocast context of a forward pass.

One rule keeps 16-bit weights from spoiling training: the weights that train are float32 (master
weights), whatever `model_dtype` says; only the frozen weights are stored in 16 bits, and every
forward pass (training, scoring, the forgetting probe) runs under autocast of that dtype. A full
fine-tune in bfloat16 is therefore the same computation as `train.precision=bf16`, while a frozen
base (LoRA, the linear probe, in-context learning) takes half the memory. Pure 16-bit weights
would round away the small updates of few-shot learning rates (a bfloat16 weight keeps 8 bits of
mantissa: an update below 0.4% of the weight is lost).

What the device cannot do is refused before any run (`check`, which `runner.preflight` calls): a
CPU without native bfloat16, float16 on a CPU, quantization or FlashAttention without CUDA, and
bitsandbytes or flash-attn not installed.
"""
from __future__ import annotations

import contextlib
import importlib.util
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from tuneoff.config import RunConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# modules a quantized load leaves in full precision: the heads that train or score (bitsandbytes
# would otherwise quantize a new classification head, which then could not train)
UNQUANTIZED = ["score", "classifier", "pre_classifier", "lm_head", "cls", "pooler"]
QUANTIZATION_EXTRA = "pip install 'tuneoff[quantization]'"  # bitsandbytes


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively (a CUDA GPU that has it; a CPU with AVX-512
    BF16 or AMX, as oneDNN reports): elsewhere bf16 autocast is emulated and slower than fp32."""
    try:
        if device.type == "cuda":
            return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if device.type == "cpu":
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (RuntimeError, AttributeError):
        pass
    return False


def resolve_dtype(setting: str, device: str) -> str:
    """The dtype name `model_dtype` stands for on `device` (a config's `device`: auto, cpu, cuda):
    `auto` is float32 on a CPU (the dtype of every run before the key) and bfloat16 on a CUDA GPU that
    has it (float32 on one that does not); an explicit dtype is itself."""
    if setting != "auto":
        return setting
    if device == "cpu" or not torch.cuda.is_available():
        return "float32"
    return "bfloat16" if bf16_supported(torch.device("cuda")) else "float32"


def check(cfg: "RunConfig", device: torch.device) -> None:
    """ValueError naming the key, before any run starts, for what `device` cannot do."""
    dtype = cfg.model_dtype
    if dtype == "bfloat16" and not bf16_supported(device):
        raise ValueError(f"model_dtype=bfloat16 but the {device.type} device has no native bfloat16 (a CUDA GPU "
                         "with bf16, or a CPU with AVX-512 BF16/AMX); use model_dtype=float32 (or auto)")
    if dtype == "float16" and device.type != "cuda":
        raise ValueError("model_dtype=float16 needs a CUDA GPU: a CPU has no float16 arithmetic to speak of "
                         "(it is emulated, slower than float32); use model_dtype=auto, float32, or bfloat16 on a CPU "
                         "with AVX-512 BF16/AMX")
    if cfg.quantization is not None:
        _check_quantization(cfg, device)
    if cfg.attn_implementation == "flash_attention_2":
        if device.type != "cuda":
            raise ValueError("attn_implementation=flash_attention_2 needs a CUDA GPU; use auto, sdpa or eager here")
        if dtype == "float32":
            raise ValueError("attn_implementation=flash_attention_2 computes in 16 bits only; set model_dtype=bfloat16 "
                             "or float16 (or auto on a GPU with bf16)")
        if importlib.util.find_spec("flash_attn") is None:
            raise ValueError("attn_implementation=flash_attention_2 needs the flash-attn package "
                             "(pip install flash-attn --no-build-isolation); or use sdpa")


def _check_quantization(cfg: "RunConfig", device: torch.device) -> None:
    what = f"quantization={cfg.quantization}"
    if device.type != "cuda":
        raise ValueError(f"{what} needs a CUDA GPU (bitsandbytes' 4-bit and 8-bit kernels) and this run's device is "
                         f"{device.type}; leave quantization unset (null) here, or run it where a GPU is (device=auto "
                         f"or cuda) with {QUANTIZATION_EXTRA}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"{what} needs the bitsandbytes package, which is not installed: {QUANTIZATION_EXTRA}")


def quantization_config(kind: str, compute: torch.dtype):
    """transformers' BitsAndBytesConfig for `quantization` (4bit: NF4 with double quantization, the
    QLoRA recipe; 8bit: LLM.int8), the heads left in full precision."""
    from transformers import BitsAndBytesConfig

    if kind == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=UNQUANTIZED)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=UNQUANTIZED)


def autocast(dtype: torch.dtype, device: torch.device, precision: str = "fp32"):
    """The context of a forward pass: autocast to the weights' 16-bit dtype, else bfloat16 autocast
    for `train.precision=bf16` (training only), else nothing at all."""
    if dtype != torch.float32:
        return torch.autocast(device_type=device.type, dtype=dtype)
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def is_norm(module: torch.nn.Module) -> bool:
    """A normalisation layer (LayerNorm, RMSNorm, a model's own *Norm class)."""
    return isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.RMSNorm)) or \
        type(module).__name__.endswith("Norm")


def master_weights(model: torch.nn.Module) -> None:
    """Before training: the weights that train in float32 (see the module's docstring), with every
    other weight of a module that holds one (a frozen matrix beside a trained bias), and every
    normalisation layer (a few numbers each; a trained embedding's float32 output may reach a frozen
    norm, and autocast does not cover norms on a CPU). Each parameter stays the same object (an
    optimizer built on them is unaffected)."""
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if is_norm(module) or any(p.requires_grad for p in own):
            for p in own:
                if p.is_floating_point() and p.dtype != torch.float32:
                    p.data = p.data.float()


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Activation checkpointing on every transformers model inside `model` (peft's and a method's
    wrappers included): each layer's activations are recomputed in the backward pass instead of kept,
    with the same random state (dropout), so the gradients are the same and the memory smaller.
    ValueError where no part of the model supports it."""
    from transformers import PreTrainedModel

    found = [m for m in model.modules() if isinstance(m, PreTrainedModel) and m.supports_gradient_checkpointing]
    if not found:
        raise ValueError(f"train.gradient_checkpointing=true but {type(model).__name__} holds no transformers model "
                         "that supports it; set train.gradient_checkpointing=false")
    outer = [m for m in found if not any(m is not o and m in set(o.modules()) for o in found)]
    for m in outer:
        enable = getattr(m, "activation_checkpointing_enable", None) or m.gradient_checkpointing_enable
        enable({"use_reentrant": False})  # frozen inputs (LoRA) need no input gradients this way


def is_out_of_memory(e: BaseException) -> bool:
    """Whether `e` is an allocation that failed: CUDA's OutOfMemoryError, or the CPU allocator's."""
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(e))


def free_cached(device: torch.device) -> None:
    """Give the allocator's cached blocks back after an out-of-memory error (CUDA; nothing on a CPU)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
