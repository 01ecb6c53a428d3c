"""MoE references: per-channel fp8 expert scales, dynamic per-token fp8 activations, NVFP4 W4A4."""

import torch
import torch.nn.functional as F

from qcert.kernels import ops
from qcert.kernels.fp8 import dequantize_fp8, qdq_fp8_per_token, quantize_fp8_per_channel
from qcert.kernels.nvfp4 import dequantize_nvfp4, qdq_nvfp4, quantize_nvfp4
from qcert.kernels.tolerances import assert_close_rel

T, H, I, E, K = 6, 64, 32, 4, 2


def g(seed):
    return torch.Generator().manual_seed(seed)


def routing(seed):
    ids = torch.stack([torch.randperm(E, generator=g(seed + t))[:K] for t in range(T)])
    return torch.rand(T, K, generator=g(seed)), ids


def dense(x, w13, w2, tw, ti, act=lambda a: a):
    out = torch.zeros(T, H)
    for t in range(T):
        for j in range(K):
            e = int(ti[t, j])
            gate, up = (act(x[t:t + 1]) @ w13[e].t()).chunk(2, dim=-1)
            out[t] += tw[t, j] * (act(F.silu(gate) * up) @ w2[e].t())[0]
    return out


def test_fp8_moe_per_channel_and_dynamic():
    x = torch.randn(T, H, generator=g(1))
    q13 = [quantize_fp8_per_channel(torch.randn(2 * I, H, generator=g(10 + e))) for e in range(E)]
    q2 = [quantize_fp8_per_channel(torch.randn(H, I, generator=g(20 + e))) for e in range(E)]
    w13, s13 = torch.stack([q[0] for q in q13]), torch.stack([q[1] for q in q13])  # s13 [E, 2I, 1]
    w2, s2 = torch.stack([q[0] for q in q2]), torch.stack([q[1] for q in q2])
    d13, d2 = torch.stack([dequantize_fp8(*q) for q in q13]), torch.stack([dequantize_fp8(*q) for q in q2])
    tw, ti = routing(3)
    assert_close_rel(ops.fp8_moe(x, w13, s13, w2, s2, tw, ti), dense(x, d13, d2, tw, ti), "fp32")
    assert torch.equal(ops.fp8_moe(x, w13, s13.squeeze(-1), w2, s2.squeeze(-1), tw, ti),
                       ops.fp8_moe(x, w13, s13, w2, s2, tw, ti))  # [E, rows] == [E, rows, 1]
    dyn = ops.fp8_moe(x, w13, s13, w2, s2, tw, ti, act_dynamic=True)
    assert_close_rel(dyn, dense(x, d13, d2, tw, ti, qdq_fp8_per_token), "fp32")
    assert not torch.equal(dyn, ops.fp8_moe(x, w13, s13, w2, s2, tw, ti))


def test_fp8_linear_dynamic_per_token():
    x = torch.randn(5, H, generator=g(4)) * torch.arange(1, 6).view(5, 1)  # per-token magnitudes differ
    wq, s = quantize_fp8_per_channel(torch.randn(16, H, generator=g(5)))
    out = ops.fp8_linear(x, wq, s, act_dynamic=True)
    assert_close_rel(out, qdq_fp8_per_token(x) @ dequantize_fp8(wq, s).t(), "fp32")
    assert not torch.equal(out, ops.fp8_linear(x, wq, s))


def test_nvfp4_moe_w4a4_input_scales():
    x = torch.randn(T, H, generator=g(6))
    q13 = [quantize_nvfp4(torch.randn(2 * I, H, generator=g(30 + e))) for e in range(E)]
    q2 = [quantize_nvfp4(torch.randn(H, I, generator=g(40 + e))) for e in range(E)]
    st = lambda qs, i: torch.stack([q[i] for q in qs])  # noqa: E731
    d13, d2 = torch.stack([dequantize_nvfp4(*q) for q in q13]), torch.stack([dequantize_nvfp4(*q) for q in q2])
    tw, ti = routing(7)
    a13, a2 = torch.full((E,), 4.0 / 2688), torch.full((E,), 1.0 / 2688)
    out = ops.nvfp4_moe(x, st(q13, 0), st(q13, 1), st(q13, 2), st(q2, 0), st(q2, 1), st(q2, 2), tw, ti,
                        w13_input_scale=a13, w2_input_scale=a2)
    ref = torch.zeros(T, H)
    for t in range(T):
        for j in range(K):
            e = int(ti[t, j])
            gate, up = (qdq_nvfp4(x[t:t + 1], a13[e]) @ d13[e].t()).chunk(2, dim=-1)
            ref[t] += tw[t, j] * (qdq_nvfp4(F.silu(gate) * up, a2[e]) @ d2[e].t())[0]
    assert_close_rel(out, ref, "fp32")
