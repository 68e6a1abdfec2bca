"""The method registry: every lookup sees the built-in methods and any registered besides them, and
the config finds methods through it without importing the methods package."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuneoff import registry
from tuneoff.config import ConfigError, load_config
from tuneoff.methods import Method, MethodError
from tuneoff.registry import get_method, list_methods, register

SRC = Path(__file__).resolve().parents[1] / "src"


def _python(code: str) -> None:
    """Run `code` in a fresh interpreter (an empty registry) on this checkout's sources."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


def test_config_does_not_import_the_methods_package():
    for path in (SRC / "tuneoff" / "config").glob("*.py"):
        text = path.read_text()
        assert "from tuneoff.methods" not in text and "import tuneoff.methods" not in text, path
    _python("import sys, tuneoff.config\n"
            "assert not [m for m in sys.modules if m.startswith('tuneoff.methods')], 'config imported methods'")


def test_a_method_imported_or_registered_first_does_not_hide_the_built_in_ones():
    _python("import tuneoff.methods.icl\n"  # registers icl (and pattern) before any lookup
            "from tuneoff.registry import get_method, list_methods, register\n"
            "from tuneoff.methods import Method\n"
            "class Mine(Method):\n    name, description = 'mine', 'a plugin method'\n"
            "register(Mine)\n"
            "assert get_method('finetune').name == 'finetune'\n"
            "names = {m.name for m in list_methods()}\n"
            "assert {'mine', 'icl', 'finetune', 'lora', 'distill'} <= names, names\n")


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations go to a copy of the registry (the battery covers every registered method)."""
    list_methods()
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


def test_a_method_registered_after_the_first_lookup_is_found(scratch_registry):
    class Later(Method):
        name, description = "later", "registered after discovery"

    register(Later)
    assert get_method("later") is Later and Later in list_methods()
    assert load_config(None, ["method=later"]).method.name == "later"  # validated through the registry

    class Other(Method):
        name, description = "later", "another class under a taken name"

    with pytest.raises(MethodError, match="registered twice"):
        register(Other)


def test_unknown_method_names_the_known_ones():
    with pytest.raises(MethodError, match=r"unknown method 'nope'; known methods: .*distill.*finetune"):
        get_method("nope")
    with pytest.raises(ConfigError, match="unknown method 'nope'.*finetune"):
        load_config(None, ["method=nope"])


def test_method_options_are_parsed_once_by_validation(scratch_registry):
    from pydantic import model_validator

    from tuneoff.methods import MethodOptions

    parses = []

    class CountedOptions(MethodOptions):
        x: int = 1

        @model_validator(mode="after")
        def _count(self):
            parses.append(self.x)
            return self

    class Counted(Method):
        name, description, Options = "counted", "counts how often its options are parsed", CountedOptions

    register(Counted)
    cfg = load_config(None, ["method=counted", "method.x=3", "shots=8", "data_seed=0"])
    assert parses == [3]
    cfg.run_id(), cfg.uses_pattern, cfg.search_space(), cfg.method_version, cfg.expand()[0].method_options
    assert parses == [3] and cfg.method_options.x == 3
    with pytest.raises(ConfigError, match="'method.x'"):  # validation's message, as before
        load_config(None, ["method=counted", "method.x=many"])


def test_every_module_of_the_methods_package_is_listed_as_a_method_or_a_shared_piece(monkeypatch, tmp_path):
    import pkgutil

    import tuneoff.methods
    from tuneoff import registry

    found = {m.name for m in pkgutil.iter_modules(tuneoff.methods.__path__) if not m.name.startswith("_")}
    assert found == set(registry.BUILTIN_MODULES) | set(registry.SHARED_MODULES)
    (tmp_path / "newmethod.py").write_text("")  # a module added without being listed: said, not skipped
    monkeypatch.setattr(tuneoff.methods, "__path__", [*tuneoff.methods.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_discovered", False)
    with pytest.raises(registry.MethodError, match="newmethod"):
        registry.list_methods()
