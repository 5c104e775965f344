"""Run directories: weights + JSON round trip, resume state without pickle, corrupt files → DataError."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from core import checkpoint as ckpt
from core.errors import DataError


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))


def test_model_round_trip(tmp_path):
    m = net()
    ckpt.save_model(tmp_path, m.state_dict(), {"model": {"name": "x", "config": {"a": 1}}, "metrics": {"v": 0.5}})
    meta = ckpt.load_model_meta(tmp_path)
    assert meta["model"] == {"name": "x", "config": {"a": 1}} and meta["metrics"] == {"v": 0.5}
    assert meta["format"] == ckpt.FORMAT and meta["code_version"]
    m2 = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    ckpt.load_into(m2, ckpt.load_model_weights(tmp_path, meta), tmp_path / "model.safetensors")
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left


def test_weights_that_do_not_fit_are_a_data_error(tmp_path):
    ckpt.save_model(tmp_path, net().state_dict(), {"model": {"name": "x", "config": {}}})
    other = nn.Sequential(nn.Conv2d(2, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))
    with pytest.raises(DataError, match="shape"):
        ckpt.load_into(other, ckpt.load_model_weights(tmp_path), tmp_path / "model.safetensors")
    with pytest.raises(DataError, match="missing"):
        ckpt.load_into(nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.Conv2d(2, 2, 1)),
                       ckpt.load_model_weights(tmp_path), tmp_path / "model.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "missing"])
def test_corrupt_weights(tmp_path, damage):
    ckpt.save_model(tmp_path, net().state_dict(), {"model": {"name": "x", "config": {}}})
    path = tmp_path / "model.safetensors"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x04not a safetensors file" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(DataError) as info:
        ckpt.load_model_weights(tmp_path, ckpt.load_model_meta(tmp_path))
    assert "model.safetensors" in str(info.value) and "\n" not in str(info.value)


def test_altered_weights_fail_the_recorded_hash(tmp_path):
    ckpt.save_model(tmp_path, net().state_dict(), {"model": {"name": "x", "config": {}}})
    sd = net().state_dict()
    sd["0.weight"] = sd["0.weight"] + 1
    from safetensors.torch import save_file

    save_file(dict(sd), str(tmp_path / "model.safetensors"))
    with pytest.raises(DataError, match="do not match model.json"):
        ckpt.load_model_weights(tmp_path, ckpt.load_model_meta(tmp_path))


@pytest.mark.parametrize("text, needle", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"),
                                          ('{"format": "other"}', "unknown run format"),
                                          ('{"format": "s2kd-run/1", "model": 3}', "'model' must be")])
def test_malformed_model_json(tmp_path, text, needle):
    (tmp_path / "model.json").write_text(text)
    with pytest.raises(DataError, match=needle):
        ckpt.load_model_meta(tmp_path)


def test_resume_state_restores_optimizer_and_rng_exactly(tmp_path):
    m = net()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, betas=(0.8, 0.95))
    x = torch.randn(3, 2, 6, 6)
    for _ in range(2):
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(9)
    ckpt.save_state(tmp_path, m.state_dict(), opt, {"epoch": 1, "step_in_epoch": 4, "sums": {"loss": 0.1}})
    expected = (torch.rand(4), np.random.rand(3), random.random())
    # continue the original for one more step
    opt.zero_grad()
    m(x).pow(2).mean().backward()
    opt.step()
    ref = {k: v.clone() for k, v in m.state_dict().items()}

    # a fresh process-like restore
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    st = ckpt.load_state(tmp_path)
    assert st.progress == {"epoch": 1, "step_in_epoch": 4, "sums": {"loss": 0.1}}
    m2 = net()
    ckpt.load_into(m2, st.model, st.path)
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-2, betas=(0.8, 0.95))
    st.restore_optimizer(opt2)
    st.restore_rng()
    got = (torch.rand(4), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
    opt2.zero_grad()
    m2(x).pow(2).mean().backward()
    opt2.step()
    for k, v in m2.state_dict().items():
        assert torch.equal(v, ref[k]), k
    # the readable mirror says the same, and nothing in the folder is a pickle
    assert json.loads((tmp_path / "state.json").read_text())["progress"]["step_in_epoch"] == 4
    for f in tmp_path.iterdir():
        assert not f.read_bytes().startswith(b"\x80"), f  # pickle protocol header


@pytest.mark.parametrize("damage", ["truncate", "no-metadata", "bad-json"])
def test_corrupt_state_is_a_data_error(tmp_path, damage):
    m = net()
    opt = torch.optim.AdamW(m.parameters())
    ckpt.save_state(tmp_path, m.state_dict(), opt, {"epoch": 0})
    path = tmp_path / "state.safetensors"
    from safetensors.torch import save_file

    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "no-metadata":
        save_file({"a": torch.zeros(2)}, str(path))
    else:
        save_file({"rng.torch": torch.get_rng_state()}, str(path), metadata={"format": ckpt.STATE_FORMAT,
                                                                          "state": "{oops"})
    with pytest.raises(DataError) as info:
        ckpt.load_state(tmp_path)
    assert "state.safetensors" in str(info.value)


def test_metrics_log_skips_a_torn_last_line(tmp_path):
    ckpt.write_metrics(tmp_path, [{"epoch": 1}, {"epoch": 2}])
    assert [r["epoch"] for r in ckpt.read_metrics(tmp_path)] == [1, 2]
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "val')
    assert [r["epoch"] for r in ckpt.read_metrics(tmp_path)] == [1, 2]
