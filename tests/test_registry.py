"""core.registry.LazyRegistry: lazy "module:attr" resolution and its error messages."""

from __future__ import annotations

import sys

import pytest

from core.data import SOURCES
from core.errors import ConfigError, DataError, UserError
from core.narratives import NARRATORS
from core.registry import LazyRegistry
from core.synth import SIMULATORS
from models.student import StudentConfig
from models.teacher import TeacherConfig


def test_resolves_lazily(tmp_path, monkeypatch):
    mod = "s2kd_registry_probe_mod"
    (tmp_path / f"{mod}.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = LazyRegistry("widget", KeyError)
    try:
        reg.register("probe", f"{mod}:VALUE")
        assert mod not in sys.modules  # registering imports nothing
        assert list(reg) == ["probe"] and reg["probe"] == f"{mod}:VALUE"
        assert reg.load("probe") == 42
        assert mod in sys.modules
    finally:
        sys.modules.pop(mod, None)


def test_unknown_name_lists_known_names():
    reg = LazyRegistry("widget", ConfigError, {"a": "os:sep", "b": "os.path:join"})
    with pytest.raises(ConfigError, match=r"unknown widget 'c'; choose from a, b"):
        reg.load("c")
    with pytest.raises(ValueError, match="widget 'a' registered twice"):
        reg.register("a", "os:sep")


def test_bad_targets_give_clear_errors():
    reg = LazyRegistry("widget", KeyError)
    with pytest.raises(ValueError, match="not of the form 'module:attr'"):
        reg.register("bad", "os.sep")
    reg["raw"] = "a:b:c"  # bypassing register is still caught at load time
    with pytest.raises(ValueError, match="'raw'.*not of the form"):
        reg.load("raw")
    reg.register("nomod", "s2kd_no_such_module_xyz:thing")
    with pytest.raises(ModuleNotFoundError, match="widget 'nomod': no module 's2kd_no_such_module_xyz'"):
        reg.load("nomod")
    reg.register("noattr", "os:no_such_attr_xyz")
    with pytest.raises(AttributeError, match="widget 'noattr': module 'os' has no attribute 'no_such_attr_xyz'"):
        reg.load("noattr")


def test_project_registries_keep_their_errors():
    for reg, err, msg in ((SOURCES, DataError, "unknown data source"), (NARRATORS, ConfigError, "unknown narrator"),
                          (SIMULATORS, UserError, "unknown data kind")):
        assert isinstance(reg, dict) and len(reg) >= 3
        with pytest.raises(err, match=msg):
            reg.load("nope")
    assert list(SIMULATORS) == ["weather", "taxibj", "taxibj+"]


def test_latent_hw_on_the_base_config():
    from models.baselines import SimVPConfig

    assert TeacherConfig(in_shape=(2, 1, 16, 32), t_out=1, n_down=2).latent_hw == (4, 8)
    assert StudentConfig(in_shape=(2, 1, 16, 32), t_out=1, n_down=1).latent_hw == (8, 16)
    cfg = SimVPConfig(in_shape=(2, 1, 16, 32), t_out=1)
    assert not hasattr(cfg, "latent_hw")
    with pytest.raises(AttributeError, match="SimVPConfig has no n_down"):
        cfg.latent_hw
