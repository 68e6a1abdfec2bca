"""In-context learning: tuneoff's icl against lm-evaluation-harness on the same prompts, in one process.

tuneoff's icl (k demonstrations per class, drawn by icl itself from one few-shot split) scores
binary MNLI's validation_matched inputs; lm-evaluation-harness's HFLM (batch 8) gets, for every
input and every answer word, a loglikelihood request whose context is exactly tuneoff's prompt text
(instruction + the same demonstrations in the same order + the query) and whose continuation is the
word. Both load the same safetensors folder in fp32 and predict the label whose word has the higher
log-probability. The inputs go in chunks, alternating between the two tools, so that drift in
machine load hits both alike; wall and CPU time are summed per tool (tuneoff's include building
its context cache). Printed: examples/s of each, the ratio, prediction agreement, and how many
requests lm-eval tokenizes to exactly tuneoff's token ids (both score the sum of the word's token
log-probs; where the tokens differ, so may the numbers). `--same-ids` hands lm-eval tuneoff's token
ids instead of the text (its `_loglikelihood_tokens`: the same engine, the same tokens).
`--tuneoff-threads auto` sets tuneoff's threads by its policy (`tuneoff.threads`) before each of its
chunks, lm-eval keeping torch's default; `--json FILE` writes the figures for
benchmarks/load_sensitivity.py's `--against` mode.

    PYTHONPATH=src .venv-bench/bin/python benchmarks/icl_vs_lmeval.py --data-dir ../shared/data --n 200
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from icl_growth import icl_prepared, timed  # noqa: E402

from tuneoff import evaluate, threads  # noqa: E402
from tuneoff.methods.icl import DemoContext  # noqa: E402


def tuneoff_ids(m, ex: dict) -> tuple[list[int], list[list[int]]]:
    """The token ids tuneoff scores for `ex`: context + query, and each answer word's."""
    row = m.scorer.encode([ex], m.prefix, inline=True)["input_ids"][0].tolist()
    return row, [list(a) for a in m.scorer.answers]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True, help="folder with mnli/")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=200, help="validation_matched examples (stratified cap)")
    ap.add_argument("--k", type=int, default=8, help="demonstrations per class")
    ap.add_argument("--shots", type=int, default=32, help="few-shot examples per class the demonstrations come from")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--chunk", type=int, default=40, help="inputs per turn of each tool")
    ap.add_argument("--same-ids", action="store_true", help="give lm-eval tuneoff's token ids, not the text")
    ap.add_argument("--tuneoff-threads", default="as-is",
                    help="as-is (torch's default, as lm-eval's), auto (tuneoff's policy, chosen per chunk) or a number")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tuneoff.models import resolve

    prep, exs = icl_prepared(a.data_dir, a.model, a.n, a.shots, a.k)
    m = prep.method
    folder = resolve(a.model)  # the safetensors folder tuneoff itself loads
    lm = HFLM(pretrained=str(folder), batch_size=a.batch_size, device="cpu", dtype="float32")
    words = m.scorer.words
    print(f"model {a.model} ({folder}), {len(exs)} inputs, {len(m.demos)} demonstrations "
          f"(context {len(m.prefix.ids)} tokens), batch {a.batch_size}, {torch.get_num_threads()} threads; "
          f"torch {torch.__version__}, lm-eval {lm_eval.__version__ if hasattr(lm_eval, '__version__') else '0.4.x'}",
          flush=True)

    same_tokens = 0
    requests = []
    for i, ex in enumerate(exs):
        ids, answers = tuneoff_ids(m, ex)
        text = m.prompt_example(ex)
        for word, ans in zip(words, answers):
            ctx_enc, cont_enc = lm._encode_pair(text, word)
            same_tokens += (ctx_enc + cont_enc) == ids + ans
            if a.same_ids:
                requests.append(((text, word), ids, ans))
            else:
                requests.append(Instance("loglikelihood", {}, (text, word), i * len(words)))

    chosen = []  # tuneoff's threads, chunk by chunk

    def run_tuneoff(chunk, first: bool):
        def go():
            if first:  # the context cache is built once, in tuneoff's time (the one built in set-up is dropped)
                m.context.free_cache()
                m.context = DemoContext.build(m.scorer, m.model, prep.task, m.demos, m.options, prep.few)
            return evaluate.predict(m, chunk, a.batch_size, prep.device)[0]
        setting = a.tuneoff_threads if a.tuneoff_threads in ("as-is", "auto") else int(a.tuneoff_threads)
        with contextlib.nullcontext() if setting == "as-is" else threads.applied(setting):  # chosen outside the timing
            chosen.append(torch.get_num_threads())
            return timed(go)

    def run_lmeval(reqs):
        if a.same_ids:
            return timed(lambda: lm._loglikelihood_tokens(reqs, disable_tqdm=True))
        return timed(lambda: lm.loglikelihood(reqs, disable_tqdm=True))

    t = {"tuneoff": [0.0, 0.0], "lm-eval": [0.0, 0.0]}
    probs, ll = [], []
    c = len(words)
    for turn, i in enumerate(range(0, len(exs), a.chunk)):
        chunk = exs[i:i + a.chunk]
        order = (("tuneoff", "lm-eval") if turn % 2 == 0 else ("lm-eval", "tuneoff"))
        for tool in order:
            if tool == "tuneoff":
                out, wall, cpu = run_tuneoff(chunk, turn == 0)
                probs.append(out)
            else:
                out, wall, cpu = run_lmeval(requests[i * c:(i + len(chunk)) * c])
                ll.append(np.array([s for s, _ in out], dtype=np.float64).reshape(-1, c))
            t[tool][0] += wall
            t[tool][1] += cpu
        print(f"  {i + len(chunk)}/{len(exs)}: tuneoff {t['tuneoff'][0]:.1f} s, lm-eval {t['lm-eval'][0]:.1f} s "
              "(wall, so far)", flush=True)
    probs, ll = np.concatenate(probs), np.concatenate(ll)
    n = len(exs)
    for tool, (wall, cpu) in t.items():
        print(f"{tool}: {wall:.1f} s wall, {cpu:.1f} s CPU; {n / wall:.2f} examples/s (wall), "
              f"{n / cpu:.2f} examples/s (CPU)")
    print(f"tuneoff / lm-eval examples/s: x{t['lm-eval'][0] / t['tuneoff'][0]:.1f} (wall), "
          f"x{t['lm-eval'][1] / t['tuneoff'][1]:.1f} (CPU)")
    agree = probs.argmax(-1) == ll.argmax(-1)
    margin_t = np.log(probs[:, 0]) - np.log(probs[:, 1])  # tuneoff's log-prob difference of the two words
    margin_l = ll[:, 0] - ll[:, 1]
    gold = np.array([ex["label"] for ex in exs])
    print(f"same predictions: {agree.mean():.3f} ({int(agree.sum())}/{n}); lm-eval's own tokenization of the text "
          f"gives tuneoff's ids in {same_tokens}/{len(requests)} requests; max |difference of the two words' log-prob margins| "
          f"{np.abs(margin_t - margin_l).max():.2e}; accuracy tuneoff {np.mean(probs.argmax(-1) == gold):.3f}, "
          f"lm-eval {np.mean(ll.argmax(-1) == gold):.3f}")
    print(f"threads: tuneoff {chosen} (chunk by chunk), lm-eval {torch.get_num_threads()}")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "n": n, "agree": float(agree.mean()), "tuneoff_threads": chosen, "other_threads": torch.get_num_threads(),
            **{tool: {"wall_s": wall, "cpu_s": cpu, "ex_s": n / wall, "ex_cpu_s": n / cpu} for tool, (wall, cpu) in t.items()}},
            indent=1))


if __name__ == "__main__":
    main()
