"""tuneoff's training loop against the Hugging Face Trainer (+ peft for LoRA), side by side.

Each (tool, case) trains in a fresh subprocess, so its peak memory is that process's own peak RSS
(`ru_maxrss`, model load included); the parent interleaves the tools, repeats, and prints the
best-of-N examples/s (wall and process CPU), peak memory, the final training loss (mean of the last
epoch's steps) and the ratios tuneoff / Trainer.

Both tools get the same weights (smollm2-135m: tuneoff's safetensors folder; minilm-l6: the folder
`tuneoff.models` finds), the same few-shot split (tuneoff's sampler: binary MNLI, 32 per class,
data seed 0), the same seed, head init and example order (the Trainer's sampler yields tuneoff's
permutation of each epoch), batch 8, max_length 128, dynamic right padding to the longest in the
batch, linear decay without warm-up, no weight decay, clipping at 1.0, the same torch threads, and
nothing but training inside the timed part. The Trainer keeps its own default optimizer.

    PYTHONPATH=$PWD/src .venv-bench/bin/python benchmarks/train_vs_trainer.py [--repeats 2]
        [--cases ft-minilm,lora-minilm,ft-smollm,lora-smollm,pattern-smollm] [--epochs 5] [--eval 200]
        [--tools tuneoff,tuneoff-fused,trainer]   (tuneoff-fused: train.optimizer=adamw_fused)
        [--tuneoff-threads auto]   (tuneoff's threads by its policy, `tuneoff.threads`; the Trainer's: --threads)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SMOLLM = str(Path.home() / ".cache/tuneoff/models/smollm2-135m")
DATA = os.environ.get("TUNEOFF_BENCH_DATA", "/work/shared/data")
# case -> (model, tuneoff method, learning rate)
CASES = {
    "ft-minilm": ("minilm-l6", "finetune", 2e-5),
    "lora-minilm": ("minilm-l6", "lora", 5e-4),
    "ft-smollm": (SMOLLM, "finetune", 2e-5),
    "lora-smollm": (SMOLLM, "lora", 5e-4),
    "pattern-smollm": (SMOLLM, "pattern", 2e-5),
}
# tuneoff with its default optimizer (train.optimizer=adamw), with adamw_fused, and the Trainer; any of
# them with "-bf16" appended trains in bf16 autocast (tuneoff: train.precision=bf16; the Trainer: bf16=True)
TOOLS = ("tuneoff", "tuneoff-fused", "trainer")


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2 ** 20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_config(case: str, epochs: float, precision: str, optimizer: str = "adamw", n_eval: int = 0):
    from tuneoff.config import load_config

    model, method, lr = CASES[case]
    overrides = [f"task=mnli", f"data_dir={DATA}", f"model={model}", f"method={method}", "shots=32",
                 "data_seed=0", "seed=0", "max_length=128", f"train.epochs={epochs}", "train.batch_size=8",
                 f"train.lr={lr}", "train.warmup_ratio=0", "train.weight_decay=0", "train.max_grad_norm=1.0",
                 "device=cpu", "forgetting.enabled=false", f"eval.max_examples={n_eval or 8}",
                 "eval.sets=[validation_matched]"]
    if method == "lora":
        overrides += ["method.r=8", "method.alpha=16", "method.dropout=0.1"]
    if precision != "fp32":
        overrides.append(f"train.precision={precision}")
    if optimizer != "adamw":
        overrides.append(f"train.optimizer={optimizer}")
    return load_config(None, overrides)


def child_tuneoff(case: str, epochs: float, precision: str, optimizer: str = "adamw", n_eval: int = 0) -> dict:
    from tuneoff.pipeline import Toolbox, prepare
    from tuneoff.train import train

    cfg = run_config(case, epochs, precision, optimizer, n_eval)
    prep = prepare(cfg)
    method = prep.method
    loaded_rss = rss_mb()
    w0, c0 = time.perf_counter(), time.process_time()
    stats = train(method, method.train_examples(prep.few), cfg.train, cfg.seed, Toolbox.shared().accelerator(prep.device))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    out = {"wall_s": wall, "cpu_s": cpu, "examples": stats.examples, "losses": stats.losses,
           "loaded_rss_mb": loaded_rss}
    if n_eval:  # after the timed part and the peak of training
        from tuneoff.evaluate import predict

        exs = next(iter(prep.evals.values()))
        out["peak_before_eval_mb"] = peak_mb()
        probs, _ = predict(method, exs, 32, prep.device)
        out["predictions"] = probs.argmax(1).tolist()
        out["eval_accuracy"] = sum(int(p == ex["label"]) for p, ex in zip(out["predictions"], exs)) / len(exs)
    return out


class _Order:
    """tuneoff's example order: a fresh permutation per epoch from one generator seeded with the seed."""

    def __init__(self, n: int, seed: int):
        import torch

        self.n, self.gen = n, torch.Generator().manual_seed(seed)

    def __len__(self):
        return self.n

    def __iter__(self):
        import torch

        return iter(torch.randperm(self.n, generator=self.gen).tolist())


def child_trainer(case: str, epochs: float, precision: str) -> dict:
    import tempfile

    import torch
    import torch.nn.functional as F
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainingArguments)

    from tuneoff import models
    from tuneoff.pipeline import Toolbox

    cfg = run_config(case, epochs, precision)
    split = Toolbox.shared().split(cfg)
    task, few = split.task, split.few
    model_spec, method, lr = CASES[case]
    path = models.resolve(model_spec)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    torch.manual_seed(cfg.seed)  # the new head's init, as tuneoff's loader seeds it
    if method == "pattern":
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=task.num_labels,
                                                                   dtype=torch.float32, use_safetensors=True)
    model.config.pad_token_id = tok.pad_token_id
    if method == "lora":
        from peft import LoraConfig, get_peft_model
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

        torch.manual_seed(cfg.seed)
        model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1,
                                                 target_modules=TABLE[model.config.model_type]))
    scorer = None
    if method == "pattern":
        from tuneoff.methods.pattern import LMScorer, window_of

        scorer = LMScorer(task, task.pattern(None), tok, True, cfg.max_length, window_of(model))
        data, collate = few, scorer.encode  # tuneoff's own encoding and verbalizer scoring
    else:
        a, b = task.text_fields[0], task.text_fields[1:]
        data = [{**tok(ex[a], " ".join(ex[f] for f in b) if b else None, truncation=True,
                       max_length=cfg.max_length), "labels": ex["label"]} for ex in few]
        collate = DataCollatorWithPadding(tok)  # to the longest in the batch, the tokenizer's side
    losses: list[float] = []

    class Bench(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return _Order(len(data), cfg.seed)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if scorer is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            return F.cross_entropy(scorer.scores(model, inputs), inputs["labels"])

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            losses.append(loss.item())
            return loss

    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-trainer-"), per_device_train_batch_size=8,
        num_train_epochs=epochs, learning_rate=lr, warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        lr_scheduler_type="linear", seed=cfg.seed, report_to=[], save_strategy="no", eval_strategy="no",
        logging_strategy="no", dataloader_num_workers=0, disable_tqdm=True, use_cpu=True,
        remove_unused_columns=False, bf16=precision == "bf16")
    trainer = Bench(model=model, args=args, train_dataset=data, data_collator=collate)
    loaded_rss = rss_mb()
    w0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "examples": len(losses) * 8 if len(data) % 8 == 0 else None,
            "losses": losses, "loaded_rss_mb": loaded_rss, "optim": args.optim}


def child(tool: str, case: str, epochs: float, threads: int, n_eval: int, tuneoff_threads: str = "as-is") -> None:
    import torch

    torch.set_num_threads(threads)
    if tuneoff_threads != "as-is" and not tool.startswith("trainer"):  # chosen before the timed part, as a run does
        from tuneoff.threads import choose

        torch.set_num_threads(choose(tuneoff_threads if tuneoff_threads == "auto" else int(tuneoff_threads)).threads)
    precision = "bf16" if tool.endswith("-bf16") else "fp32"
    if tool.startswith("trainer"):
        out = child_trainer(case, epochs, precision)
    else:
        out = child_tuneoff(case, epochs, precision, "adamw_fused" if "-fused" in tool else "adamw", n_eval)
    out.update(tool=tool, case=case, peak_rss_mb=peak_mb(), threads=torch.get_num_threads())
    print("RESULT " + json.dumps(out), flush=True)


def final_loss(losses: list[float], epochs: float) -> float:
    per_epoch = max(1, round(len(losses) / epochs))
    tail = losses[-per_epoch:]
    return sum(tail) / len(tail)


def spawn(tool: str, case: str, a) -> dict:
    cmd = [sys.executable, __file__, "--child", tool, case, "--epochs", str(a.epochs), "--threads",
           str(a.threads), "--eval", str(a.eval), "--tuneoff-threads", a.tuneoff_threads]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((ln for ln in p.stdout.splitlines()[::-1] if ln.startswith("RESULT ")), None)
    if p.returncode or line is None:
        raise RuntimeError(f"{tool} {case} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    r = json.loads(line[len("RESULT "):])
    r["ex_s"] = r["examples"] / r["wall_s"]
    r["ex_cpu_s"] = r["examples"] / r["cpu_s"]
    r["final_loss"] = final_loss(r["losses"], a.epochs)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--eval", type=int, default=0, help="tuneoff tools: predict this many validation examples "
                    "after the timed part (the agreement of each tool's predictions with the first tool's)")
    ap.add_argument("--json", help="also write every measurement to this file")
    ap.add_argument("--tuneoff-threads", default="as-is", help="tuneoff's tools: as-is (--threads, as the Trainer), "
                    "auto (tuneoff's policy, chosen as the child starts) or a number")
    a = ap.parse_args()
    if a.child:
        return child(*a.child, a.epochs, a.threads, a.eval, a.tuneoff_threads)
    cases, tools = a.cases.split(","), a.tools.split(",")
    runs: dict[tuple[str, str], list[dict]] = {}
    for rep in range(a.repeats):
        for case in cases:
            for tool in (tools if (rep + cases.index(case)) % 2 == 0 else tools[::-1]):  # interleaved
                r = spawn(tool, case, a)
                runs.setdefault((case, tool), []).append(r)
                print(f"  rep {rep} {case:15s} {tool:13s} {r['ex_s']:6.2f} ex/s wall {r['ex_cpu_s']:6.2f} ex/CPU-s "
                      f"peak {r['peak_rss_mb']:7.0f} MB (loaded {r['loaded_rss_mb']:6.0f}) "
                      f"loss {r['final_loss']:.4f}", flush=True)
    trainer_optim = runs[(cases[0], "trainer")][0]["optim"] if "trainer" in tools else "-"
    print(f"\nbest of {a.repeats} (speed: highest; memory: lowest), threads={a.threads}, "
          f"epochs={a.epochs}; the Trainer's optimizer: {trainer_optim}")
    print("| case | tool | examples/s wall (CPU) | vs Trainer wall (CPU) | peak MB | vs Trainer | final loss | vs Trainer |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases:
        best = {t: (max(x["ex_s"] for x in runs[(case, t)]), max(x["ex_cpu_s"] for x in runs[(case, t)]),
                    min(x["peak_rss_mb"] for x in runs[(case, t)]), runs[(case, t)][0]["final_loss"]) for t in tools}
        ref = best.get("trainer")
        for t in tools:
            w, c, m, loss = best[t]
            vs = (f"{w / ref[0]:.2f}× ({c / ref[1]:.2f}×) | {m:.0f} | {m / ref[2]:.2f}× | {loss:.4f} | "
                  f"{(loss - ref[3]) / ref[3] * 100:+.1f}%") if ref else f"- | {m:.0f} | - | {loss:.4f} | -"
            print(f"| {case} | {t} | {w:.2f} ({c:.2f}) | {vs} |")
    if a.eval:
        print(f"\nprediction agreement on {a.eval} validation examples (with the first tool listed, first repeat)")
        for case in cases:
            got = {t: runs[(case, t)][0] for t in tools if "predictions" in runs[(case, t)][0]}
            if got:
                first = next(iter(got.values()))["predictions"]
                print(f"  {case}: " + ", ".join(
                    f"{t} acc {r['eval_accuracy']:.3f} agree {sum(x == y for x, y in zip(first, r['predictions'])) / len(first):.3f}"
                    for t, r in got.items()))
    if a.json:
        Path(a.json).write_text(json.dumps({f"{c}/{t}": v for (c, t), v in runs.items()}, indent=1))


if __name__ == "__main__":
    main()
