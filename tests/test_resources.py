"""Cost figures: the per-run memory figure does not depend on the runs before it in the process,
and every phase is timed on the wall clock and in process CPU time."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from tuneoff.config import load_config  # noqa: E402
from tuneoff.resources import PeakMemory, Timer, tensor_bytes  # noqa: E402
from tuneoff.runner import run_record  # noqa: E402


@pytest.fixture(scope="module")
def mid_bert(tmp_path_factory):
    """A random 10M-parameter BERT saved as a local model folder: large next to tiny-bert."""
    from transformers import BertConfig, BertForSequenceClassification

    from tuneoff.models import tiny_tokenizer
    from tuneoff.tasks import get_task

    folder = tmp_path_factory.mktemp("mid-bert")
    tok = tiny_tokenizer([ex for ex in ["the food was good", "the service was bad"]], decoder=False)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=8000, hidden_size=384, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1536, max_position_embeddings=512, pad_token_id=tok.pad_token_id)
    BertForSequenceClassification(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    assert get_task("demo")
    return str(folder)


def _memory(model: str, method: str, tmp_path) -> dict:
    cfg = load_config(None, [f"model={model}", f"method={method}", "train.max_steps=2", "train.batch_size=8",
                             "device=cpu", "shots=8", "data_seed=0", "eval.max_examples=16",
                             f"output_dir={tmp_path}"])
    rec = run_record(cfg, tmp_path / "run")
    assert rec["status"] == "done", rec.get("error")
    return rec["resources"]


def test_per_run_memory_is_the_same_in_either_order(mid_bert, tmp_path):
    """small, large, small, large in one process: each figure repeats, whatever ran before it."""
    small = ("tiny-bert", "head")
    large = (mid_bert, "finetune")
    got = {"small": [], "large": []}
    for name in ("small", "large", "small", "large"):
        res = _memory(*(small if name == "small" else large), tmp_path)
        got[name].append(res["memory_run_mb"])
        assert res["peak_memory_mb"] == pytest.approx(res["memory_baseline_mb"] + res["memory_run_mb"], abs=0.2)
    (s1, s2), (l1, l2) = got["small"], got["large"]
    # 10M parameters trained with AdamW: weights, gradients and two moments, ~160 MB; the whole
    # process's peak RSS, the figure before, grew with every run (each run's model stayed resident)
    assert l1 - s1 > 120 and l2 - s2 > 120, got
    # what is left is the allocator's noise: a few MB for the small run, up to ~25 MB for the large one
    # on a loaded machine, well under the ~160 MB that a leftover large run would add
    assert abs(s1 - s2) < 15 and abs(l1 - l2) < max(15, 0.25 * l1), got


def test_a_reused_model_is_charged_to_the_run():
    """A model loaded before the block (kept across runs) counts toward the run that uses it."""
    model = torch.nn.Linear(1000, 1000)  # 4 MB of weights, resident before the block
    assert tensor_bytes(model) == (1000 * 1000 + 1000) * 4
    with PeakMemory(torch.device("cpu"), baseline=False) as plain:
        pass
    with PeakMemory(torch.device("cpu"), baseline=False) as charged:
        charged.charge(model)
    assert charged.result()["memory_run_mb"] - plain.result()["memory_run_mb"] == pytest.approx(3.8, abs=0.2)


def test_peak_is_the_blocks_own():
    """A 200 MB buffer allocated and freed inside the block is its peak; one freed before is not."""
    before = torch.ones(50 * 2**20 // 4 * 4)  # 200 MB, freed before the block
    del before
    with PeakMemory(torch.device("cpu"), baseline=False) as m:
        x = torch.ones(50 * 2**20)  # 200 MB
        del x
    assert 190 < m.result()["memory_run_mb"] < 260


def test_timer_counts_process_cpu_time_beside_wall_time():
    with Timer() as t:
        sum(i * i for i in range(2_000_000))
    assert t.seconds > 0 and t.cpu_seconds > 0
    assert t.cpu_seconds < 5 * t.seconds + 0.05
