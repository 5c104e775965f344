"""Training configs: TOML → frozen dataclasses, strict checks, overrides, TOML round trip, presets."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from core.config import (Config, ConfigError, TrainSection, apply_overrides, config_from_dict, dumps_toml,
                         load_config, parse_override, resolved_dict, save_config, to_dict)

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_live_in_the_dataclasses_and_configs_are_frozen():
    cfg = load_config(None)
    assert cfg == Config(distill=cfg.distill)  # nothing but dataclass defaults
    assert cfg.train.epochs == TrainSection.epochs
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3  # type: ignore[misc]


def test_file_values_and_overrides(tmp_path):
    p = write(tmp_path, """
name = "x"
[data]
root = "data/tiny/weather"
variables = ["t2m", "z500"]
[train]
lr = 1e-3
epochs = 4
[model]
name = "student"
size = "demo"
[model.student]
latent_dim = 16
[distill]
method = "output"
teacher = "runs/t"
""")
    cfg = load_config(p, ["train.lr=3e-4", "data.root=data/demo/weather", 'model.student.depth=3',
                          "distill.weights.output=0.25"])
    assert cfg.train.lr == 3e-4 and cfg.train.epochs == 4
    assert cfg.data.variables == ("t2m", "z500") and cfg.data.root == "data/demo/weather"
    assert cfg.model.size == "demo" and cfg.model.options == {"latent_dim": 16, "depth": 3}
    assert cfg.distill.method == "output" and cfg.distill.teacher == "runs/t"
    assert cfg.distill.options["weights"] == {"output": 0.25}


@pytest.mark.parametrize("text, needle", [
    ("[train]\nepochz = 3\n", "unknown key 'train.epochz'"),
    ("[trian]\nepochs = 3\n", "unknown key 'trian'"),
    ("[train]\nepochs = 2.5\n", "train.epochs must be an integer"),
    ("[train]\nepochs = 0\n", "train.epochs must be >= 1"),
    ("[train]\nlr = -1.0\n", "train.lr must be > 0"),
    ("[train]\nlr = \"fast\"\n", "train.lr must be a number"),
    ("[runtime]\namp = 1\n", "runtime.amp must be true or false"),
    ("[narratives]\nscope = \"future\"\n", "narratives.scope must be one of"),
    ("[model]\nname = \"giant\"\n", "unknown model 'giant'"),
    ("[model.student]\nwidth = 3\n", "unknown key 'model.student.width'"),
    ("[model.student]\nlatent_dim = \"a\"\n", "model.student.latent_dim must be an integer"),
    ("[model.student]\nin_shape = [1, 2, 3, 4]\n", "unknown key 'model.student.in_shape'"),
    ("[distill]\nmethod = \"magic\"\n", "unknown method 'magic'"),
    ("[distill]\nlambda = 1.0\n", "unknown key 'distill.lambda'"),
    ("[distill.weights]\nbogus = 1.0\n", "bogus"),
    ("[train\n", "not valid TOML"),
])
def test_bad_configs_are_one_line_errors_naming_file_and_key(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/c.toml")


def test_override_syntax():
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("model.name=student") == (["model", "name"], "student")  # bare string
    assert parse_override('model.name="teacher-s2"') == (["model", "name"], "teacher-s2")
    assert parse_override("data.variables=[\"t2m\"]") == (["data", "variables"], ["t2m"])
    assert parse_override("runtime.amp=false") == (["runtime", "amp"], False)
    assert parse_override("data.root=data/tiny/weather") == (["data", "root"], "data/tiny/weather")
    for bad in ("train.lr", "=3", "data.variables=[t2m"):
        with pytest.raises(ConfigError):
            parse_override(bad)
    with pytest.raises(ConfigError, match="is not a table"):
        apply_overrides({"train": 3}, ["train.lr=1"])
    with pytest.raises(ConfigError, match="unknown key 'train.nope'"):
        load_config(None, ["train.nope=1"])


def test_toml_writer_round_trip(tmp_path):
    table = {"a": 1, "b": 2.5, "c": "q\"uo\\te\n", "d": [1, 2], "e": True, "weird key": "x",
             "t": {"x": [True, False], "u": {"v": 1e-9}}, "f": float("inf")}
    assert tomllib.loads(dumps_toml(table)) == table

    cfg = load_config(None, ["train.lr=0.00123", "model.student.latent_dim=12", "distill.method=none",
                             "data.variables=[\"a\", \"b\"]"])
    save_config(cfg, tmp_path / "config.toml")
    back = load_config(tmp_path / "config.toml")
    assert back.train == cfg.train and back.data == cfg.data and back.model == cfg.model
    assert back.distill.method == "none"
    assert config_from_dict(tomllib.loads(dumps_toml(to_dict(cfg)))) == cfg
    full = resolved_dict(cfg)
    assert full["distill"]["alpha"] == 1.0  # the loss's own default, filled in


PRESETS = sorted((ROOT / "configs").glob("*/*.toml"))


def test_presets_exist_for_every_setting_and_size():
    names = {(p.parent.name, p.stem) for p in PRESETS}
    for setting in ("weather", "weather-long", "taxibj", "taxibjplus"):
        for size in ("tiny", "demo", "bench", "paper"):
            assert (setting, size) in names, (setting, size)


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_presets_load_and_only_override_defaults(path):
    cfg = load_config(path)
    assert cfg.model.size == path.stem
    raw = tomllib.loads(path.read_text())
    defaults = to_dict(load_config(None))
    for section, values in raw.items():
        if not isinstance(values, dict) or section in ("model", "distill"):
            continue
        for key, value in values.items():  # a preset line that repeats the default is a second default
            assert defaults[section][key] != (tuple(value) if isinstance(value, list) else value), \
                f"{path}: {section}.{key} repeats the default"
