"""The process a run happens in: the library versions and hardware recorded with every run, and
the one-time warm-up that keeps a process's first run from paying costs that later runs do not."""
from __future__ import annotations

import os
import platform

import psutil
import torch

from tuneoff import models


# Distributions whose release can change a run's numbers (the embedded models' packages are the
# models themselves; gguf dequantizes smollm2), recorded in every run's `env`.
VERSIONED = ("torch", "transformers", "tokenizers", "peft", "accelerate", "datasets", "safetensors", "gguf",
             *sorted(e.dist for e in models.EMBEDDED.values()))


def versions() -> dict[str, str | None]:
    """Installed version of each distribution of VERSIONED (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for dist in VERSIONED:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def environment(device: torch.device) -> dict:
    env = {"python": platform.python_version(), **versions(), "torch": torch.__version__,
           "platform": platform.platform(),
           "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
           "cpu_count": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
           "device": str(device)}
    if device.type == "cuda":
        env["cuda"] = torch.cuda.get_device_name(device)
    return env


_WARM: list[bool] = []


def warm_up() -> None:
    """Pay once per process what only a process's first run would otherwise pay (torch's kernels
    and thread pool, autograd, the optimizer, the transformers model code), so that no run's memory
    depends on being first. The memory baseline's child process runs this too."""
    if _WARM:
        return
    loaded = models.load("tiny-bert", "classifier", 2, vocab_texts=["a b c"], seed=0)
    model = loaded.model
    opt = torch.optim.AdamW(model.parameters())
    batch = dict(loaded.tokenizer(["a b c", "b c"], padding=True, return_tensors="pt"))
    model(**batch).logits.log_softmax(-1).sum().backward()
    opt.step()
    with torch.no_grad():
        (torch.randn(256, 256) @ torch.randn(256, 256)).softmax(-1)
    _WARM.append(True)
