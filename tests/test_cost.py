"""core.cost: hand-counted parameters and FLOPs, latency/throughput bookkeeping, peak memory, keyword inputs."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from core.cost import count_flops, count_parameters, make_inputs, measure_cost, peak_memory  # noqa: E402
from core.errors import ConfigError  # noqa: E402


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)  # 12 + 3
        self.b = nn.Linear(3, 2)  # 6 + 2
        self.b.weight.requires_grad_(False)

    def forward(self, x):
        return {"forecast": self.b(torch.relu(self.a(x)))}


def test_parameters_hand_counted_and_shared_once():
    total, trainable = count_parameters(TwoLayer())
    assert (total, trainable) == (23, 17)
    shared = nn.Linear(5, 5, bias=False)
    tied = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(tied) == (25, 25)


@pytest.mark.parametrize("batch", [1, 7])
def test_flops_of_linear_is_two_in_out_batch(batch):
    lin = nn.Linear(16, 10)
    assert count_flops(lin, (16,), batch_size=batch) == 2 * 16 * 10 * batch


def test_flops_of_conv_hand_counted():
    conv = nn.Conv2d(2, 4, kernel_size=3, padding=1)
    # per output element: 2 · C_in · k² FLOPs; output 4 × 8 × 8
    assert count_flops(conv, (2, 8, 8)) == 2 * 2 * 9 * 4 * 8 * 8


class WithKeywords(nn.Module):
    """forward(x, *, text_tokens=None, text_mask=None, scale=1.0): an extra path when text is given."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.txt = nn.Linear(6, 8)
        self.seen = {}

    def forward(self, x, text_tokens=None, text_mask=None, scale=1.0):
        self.seen = {"mask_dtype": None if text_mask is None else text_mask.dtype, "scale": scale,
                     "batch": x.shape[0], "training": self.training,
                     "grad": torch.is_grad_enabled()}
        y = self.lin(x)
        if text_tokens is not None:
            t = self.txt(text_tokens)  # (B, L, 8)
            t = (t * text_mask[..., None]).sum(1)
            y = y + t
        return {"forecast": y * scale}


def test_keyword_inputs_are_built_and_passed():
    m = WithKeywords()
    extra = {"text_tokens": (5, 6), "text_mask": torch.ones(1, 5, dtype=torch.bool), "scale": 2.0}
    args, kwargs = make_inputs((8,), 3, extra)
    assert args[0].shape == (3, 8) and kwargs["text_tokens"].shape == (3, 5, 6)
    assert kwargs["text_mask"].dtype == torch.bool and kwargs["text_mask"].shape == (3, 5)
    # FLOPs include the text path: 2·8·8 + 2·5·6·8 (text projection over 5 tokens)
    assert count_flops(m, (8,), extra) == 2 * 8 * 8 + 2 * 5 * 6 * 8
    assert count_flops(m, (8,)) == 2 * 8 * 8
    with pytest.raises(ConfigError, match="leading batch dim"):
        make_inputs((8,), 3, {"text_mask": torch.ones(2, 5)})
    called = []
    make_inputs(None, 4, {"x": lambda b: called.append(b) or torch.zeros(b, 8)})
    assert called == [4]


def test_measure_cost_report():
    m = WithKeywords()
    m.train()
    extra = {"text_tokens": (5, 6), "text_mask": torch.ones(1, 5, dtype=torch.bool)}
    rep = measure_cost(m, (8,), extra_inputs=extra, warmup=1, repeats=3)
    assert m.training  # restored
    assert m.seen["training"] is False and m.seen["grad"] is False and m.seen["mask_dtype"] == torch.bool
    assert rep.params == 8 * 8 + 8 + 6 * 8 + 8 and rep.params_trainable == rep.params
    assert rep.flops == 2 * 8 * 8 + 2 * 5 * 6 * 8
    assert set(rep.latency_ms) == {"b1", "b32"} and all(v > 0 for v in rep.latency_ms.values())
    assert rep.throughput == pytest.approx(32 / (rep.latency_ms["b32"] / 1000.0))
    assert rep.device == "cpu" and rep.threads >= 1 and rep.batch_sizes == [1, 32]
    assert set(rep.peak_memory_bytes) == {"b1", "b32"}
    out = rep.to_json()
    json.dumps(out, allow_nan=False)
    assert out["latency_ms"]["b32"] == rep.latency_ms["b32"] and "MACs" in out["flops_note"]
    with pytest.raises(ConfigError):
        measure_cost(m, (8,), batch_sizes=(0,))


def test_cpu_peak_memory_counts_the_live_activations():
    m = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 10))
    peak = peak_memory(m, (256,), 32)
    act = 32 * 1024 * 4  # one float32 (32, 1024) activation
    # the Linear output and the ReLU output are alive together; the input and weights are not counted
    assert 2 * act <= peak < 4 * act
    assert peak_memory(m, (256,), 64) >= 2 * peak - 1024
