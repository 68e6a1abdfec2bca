"""Per-run memory against the order of runs: a small and a large configuration, run small, large,
small, large in one process. Prints each run's memory figures (whichever the installed version
records: the per-run `peak_memory_mb`, or the older whole-process `peak_rss_mb`).

    python benchmarks/memory_order.py slsl
"""
import os
import sys
import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification

from tuneoff.config import load_config
from tuneoff.models import tiny_tokenizer
from tuneoff.runner import run_record

FIGURES = ("peak_rss_mb", "peak_rss_delta_mb", "peak_memory_mb", "memory_run_mb")


def large_model() -> str:
    """A random 10M-parameter BERT in a local folder (built once)."""
    folder = os.path.join(tempfile.gettempdir(), "tuneoff-mid-bert")
    if not os.path.exists(os.path.join(folder, "config.json")):
        tok = tiny_tokenizer(["the food was good"], decoder=False)
        torch.manual_seed(0)
        cfg = BertConfig(vocab_size=8000, hidden_size=384, num_hidden_layers=4, num_attention_heads=4,
                         intermediate_size=1536, pad_token_id=tok.pad_token_id)
        BertForSequenceClassification(cfg).save_pretrained(folder)
        tok.save_pretrained(folder)
    return folder


def main(order: str) -> None:
    out = tempfile.mkdtemp(prefix="tuneoff-memory-")
    for c in order:
        model, method = ("tiny-bert", "head") if c == "s" else (large_model(), "finetune")
        cfg = load_config(None, [f"model={model}", f"method={method}", "train.max_steps=2", "train.batch_size=8",
                                 "device=cpu", "shots=8", "data_seed=0", "eval.max_examples=16", f"output_dir={out}"])
        res = run_record(cfg, out)["resources"]
        print(c, {k: res[k] for k in FIGURES if k in res}, flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "slsl")
