"""A training's state kept on disk as it goes, so that a process stopped mid-training (killed, its
machine gone) loses at most the last few minutes of it, not the whole training: the next process that
makes the same run or selection fit goes on from the last state kept, and trains to the very weights
an unstopped training reaches (tests/test_resume.py compares them bit for bit).

The state is everything the next steps read: the trained weights, the optimizer's and the schedule's
state, the random states (torch's, numpy's, Python's, and the loop's own order over the examples) and
where the loop is in its current pass, and the counts so far. Tensors go to one safetensors file,
the rest to JSON, each replaced atomically and paired by a token written into both. A fingerprint
(what is trained, the release, the schedule's steps, the seed, the training settings, the method, the
examples and the trained parameters' names and shapes) is checked on reading: a state that does not
fit the training about to start, or a torn one, is removed, never loaded.

A training keeps its state every `train.resume_every` seconds (not part of a run's id: it changes no
result) under `<output_dir>/resume/<key>/` (the key: the run's id, or a selection fold's key), and
once more at its end if it kept one before; the caller clears it once the result is kept. Methods
whose state between steps lies outside these (AdaLoRA's rank allocation) are not resumed.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from tuneoff import __version__
from tuneoff.identity import digest

STATE, TENSORS = "state.json", "state.safetensors"


def fingerprint(steps: int, seed: int, examples: list[dict], model: torch.nn.Module, train: dict,
                method: str, identity: str = "") -> dict:
    """What a kept state must match to be loaded into a training: what it trains (`identity`: the
    chosen config's run id, which holds every method option and the method's version; a fold's fit
    key), the release, its schedule's steps, seed, training settings (`train`, without how often it
    keeps its state) and method, its examples and its trained parameters."""
    ids = [ex.get("id", i) for i, ex in enumerate(examples)]
    params = [[n, list(p.shape)] for n, p in model.named_parameters() if p.requires_grad]
    settings = {k: v for k, v in train.items() if k != "resume_every"}
    return {"identity": identity, "release": __version__, "steps": steps, "seed": seed, "method": method,
            "train": digest(settings, 16), "examples": digest(ids, 16), "params": digest(params, 16)}


def point_under(folder: str | Path, key: str, every: float, identity: str) -> "ResumePoint | None":
    """The point of the training `key` names (a run's id, a fold's key) under a results folder:
    `<folder>/resume/<key>/`; none where `every` (`train.resume_every`) is 0."""
    if not every:
        return None
    return ResumePoint(Path(folder) / "resume" / key.replace(":", "-"), every, identity)


class ResumePoint:
    """Where one training keeps its state, and how often (`every` seconds; 0: it loads a state kept
    before and keeps none; `train.resume_every=0` makes no point at all, so nothing is kept or
    loaded). `identity` names what is trained (the chosen config's run id, a fold's fit key) and
    enters the fingerprint."""

    def __init__(self, folder: str | Path, every: float, identity: str = ""):
        self.folder, self.every, self.identity = Path(folder), float(every), identity
        self.last = time.monotonic()
        self.kept = False  # a state was written by this training
        self.failed: str | None = None  # why keeping a state failed (then none is kept any more)

    def start(self) -> None:
        """The training starts: the first state is due `every` seconds from now."""
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.every > 0 and self.failed is None and time.monotonic() - self.last >= self.every

    def save(self, training) -> None:
        """Write `training`'s state (a `train.Training` between two steps), replacing the last. A
        disk that cannot take it (full, gone) stops the keeping, not the training: `failed` says why."""
        tensors, meta = _state(training)
        meta["token"] = uuid.uuid4().hex  # in both files: a JSON and tensors written by different saves never pair
        tag = f".{os.getpid()}.tmp"  # each process its own temporary files
        tmp_t, tmp_j = self.folder / (TENSORS + tag), self.folder / (STATE + tag)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_safetensors(tensors, tmp_t, {"token": meta["token"]})
            tmp_j.write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp_t, self.folder / TENSORS)  # the tensors first: the JSON names the step they are at
            os.replace(tmp_j, self.folder / STATE)
        except OSError as e:
            for tmp in (tmp_t, tmp_j):
                tmp.unlink(missing_ok=True)
            self.failed = f"the training state could not be kept in {self.folder} ({e}); the training went on without"
            return
        self.kept, self.last = True, time.monotonic()

    def load(self, training, expect: dict) -> bool:
        """Put the kept state into `training` if there is one and it fits `expect` (`fingerprint`).
        A state shown not to fit (another training's, or torn) is removed; one that cannot be read
        now (a disk error) is left as it is. Whether one was loaded."""
        meta_path, tensor_path = self.folder / STATE, self.folder / TENSORS
        if not (meta_path.is_file() and tensor_path.is_file()):
            return False
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            f = safe_open(str(tensor_path), framework="pt")  # one open: the token and its tensors
            token = (f.metadata() or {}).get("token")
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        except (ValueError, SafetensorError):  # torn or not JSON (JSONDecodeError is a ValueError)
            self.clear()
            return False
        except OSError:
            return False
        if not (isinstance(meta, dict) and meta.get("fingerprint") == expect and meta.get("check") == _check(shapes)
                and token is not None and meta.get("token") == token):
            self.clear()
            return False
        try:
            _restore(training, f, meta)
        except Exception as e:  # the weights may be half loaded: this training cannot go on
            raise RuntimeError(f"the training state kept in {self.folder} could not be loaded ({type(e).__name__}: "
                               f"{e}); it is left as it is: run again, or with train.resume_every=0 to train from "
                               "the start without reading it") from e
        self.last = time.monotonic()
        return True

    def clear(self) -> None:
        """Remove the kept state, and the folder of states if it is left empty."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.parent.rmdir()
        except OSError:
            pass  # other states there, or none


_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
           torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """`tensors` to `path` in the safetensors format, one tensor at a time from its own memory:
    `safetensors.torch.save_file` copies them all into bytes first, which would add the whole
    state to the run's peak memory each time it is kept. Read back with `safetensors.torch.load_file`."""
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset, order = 0, sorted(tensors)
    for name in order:
        t = tensors[name]
        size = t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name in order:
            t = tensors[name].detach().cpu().contiguous()
            if t.numel():
                f.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        f.flush()
        os.fsync(f.fileno())


def _check(shapes: dict) -> str:
    """Which tensors a state holds (name -> shape), and their sizes: the JSON and the tensors belong together."""
    return digest(sorted((k, list(v)) for k, v in shapes.items()), 16)


def _state(t) -> tuple[dict, dict]:
    tensors = {f"param.{n}": p.detach() for n, p in t.model.named_parameters() if p.requires_grad}
    opt = t.optimizer.state_dict()
    for idx, st in opt["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{idx}.{k}"] = v.detach()
    opt_rest = {str(idx): {k: v for k, v in st.items() if not torch.is_tensor(v)} for idx, st in opt["state"].items()}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.order"] = t.order.get_state()
    device = t.accelerator.device
    if device.type == "cuda":  # the training's own GPU only: no other is touched, and it may be the only one
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.int64))
    s = t.stats
    meta = {"fingerprint": t.fingerprint, "check": _check({k: v.shape for k, v in tensors.items()}), "step": s.steps,
            "stats": {"steps": s.steps, "examples": s.examples, "tokens": s.tokens, "forward_tokens": s.forward_tokens,
                      "losses": s.losses},
            "spent": {"seconds": t.spent_s(), "cpu_seconds": t.spent_cpu_s()},
            "stream": {"perm": t.perm, "pos": t.pos},
            "optimizer": {"param_groups": opt["param_groups"], "state": opt_rest},
            "scheduler": t.scheduler.state_dict(),
            "rng": {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
                    "python": _py_state(random.getstate())}}
    return tensors, meta


def _py_state(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _restore(t, f, meta: dict) -> None:
    """`meta` and the tensors of the open safetensors file `f` into the training `t`: each weight read
    and copied in one at a time (a resumed run's peak memory holds one weight more, not all of them);
    the optimizer's tensors become its state as they are read."""
    params = dict(t.model.named_parameters())
    names = list(f.keys())
    with torch.no_grad():
        for key in names:
            if key.startswith("param."):
                params[key[len("param."):]].copy_(f.get_tensor(key))
    state: dict = {}
    for key in names:
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = f.get_tensor(key)
    tensors = {k: f.get_tensor(k) for k in names if k.startswith("rng.")}
    for idx, rest in meta["optimizer"]["state"].items():
        state.setdefault(int(idx), {}).update(rest)
    t.optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    t.scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    t.order.set_state(tensors["rng.order"])
    if "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], t.accelerator.device)
    name, pos, has_gauss, gauss = meta["rng"]["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, g = meta["rng"]["python"]
    random.setstate((version, tuple(internal), g))
    s = meta["stats"]
    t.stats.steps, t.stats.examples, t.stats.tokens = s["steps"], s["examples"], s["tokens"]
    t.stats.forward_tokens, t.stats.losses = s["forward_tokens"], list(s["losses"])
    t.perm, t.pos = list(meta["stream"]["perm"]), int(meta["stream"]["pos"])
    t.stats.earlier_s, t.stats.earlier_cpu_s = float(meta["spent"]["seconds"]), float(meta["spent"]["cpu_seconds"])
