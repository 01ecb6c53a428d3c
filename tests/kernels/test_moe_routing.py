"""MoE routing (kernels/triton/moe_routing) and the triton MoE under CUDA-graph capture.

The routing runs without a host sync: its padded length is a bound, and the blocks past the used
ones carry expert -1. Decode-sized routing is one triton kernel (interpreted here), larger routing
torch's sort: both must satisfy the same properties and agree exactly. On a GPU the whole triton
MoE is captured in a CUDA graph and replayed on new routing data, which only works if no step
reads a device value on the host."""

import pytest
import torch

moe = pytest.importorskip("qcert.kernels.triton.moe")
from qcert.kernels.triton import moe_routing as mr  # noqa: E402

SHAPES = [(5, 2, 8, 16), (64, 4, 32, 8), (3, 1, 40, 64), (0, 2, 4, 16), (16, 4, 256, 8), (1, 8, 384, 8),
          (7, 3, 5, 16), (9, 7, 2, 8)]


def _check(r, ids, e, block_m):
    flat = ids.reshape(-1)
    k = ids.shape[1]
    assert r.sorted_slot.numel() == mr.padded_rows(flat.numel(), e, block_m)
    assert r.block_expert.numel() == r.sorted_slot.numel() // block_m
    real = r.sorted_slot >= 0
    assert sorted(r.sorted_slot[real].tolist()) == list(range(flat.numel()))  # every pair exactly once
    assert torch.equal(r.sorted_slot[r.slot_row.long()], torch.arange(flat.numel(), device=flat.device))  # slot_row: the inverse
    row_expert = r.block_expert.long().repeat_interleave(block_m)
    assert torch.equal(row_expert[real], flat[r.sorted_slot[real]].long())  # each pair sits in a block of its expert
    assert torch.equal(r.token[real].long(), r.sorted_slot[real] // k) and bool((r.token[~real] == -1).all())
    used = r.block_expert >= 0
    assert bool(used[: int(used.sum())].all())  # the unused blocks (-1) come last
    counts = torch.bincount(flat.long(), minlength=e)
    assert int(used.sum()) == int(((counts + block_m - 1) // block_m).sum())


@pytest.mark.parametrize("t,k,e,block_m", SHAPES)
def test_align_routing_blocks_hold_one_expert_each(t, k, e, block_m):
    ids = torch.randint(0, e, (t, k), generator=torch.Generator().manual_seed(t * e + k), dtype=torch.int32)
    _check(mr.align_routing(ids, e, block_m), ids, e, block_m)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="the compiled routing kernel needs a GPU"))])
@pytest.mark.parametrize("t,k,e,block_m", [s for s in SHAPES if 0 < s[0] * s[1] <= mr.SMALL_PAIRS])
def test_one_program_routing_equals_the_sorted_one(t, k, e, block_m, device):
    """The decode-size triton kernel (interpreted on CPU, compiled on a GPU) and torch's sort give
    the same Routing, field by field."""
    ids = torch.randint(0, e, (t, k), generator=torch.Generator().manual_seed(7 * t + e), dtype=torch.int32)
    ids = ids.to(device)
    flat, p = ids.reshape(-1), mr.padded_rows(t * k, e, block_m)
    small = mr._align_small(flat, k, e, block_m, p)
    _check(small, ids, e, block_m)
    ref = mr._align_sorted(flat.long(), k, e, block_m, p)
    for field in ("sorted_slot", "token", "slot_row", "block_expert"):
        assert torch.equal(getattr(small, field), getattr(ref, field)), field


def test_align_routing_refuses_out_of_range_ids():
    with pytest.raises(ValueError, match=r"topk_ids out of range \[0, 4\)"):
        mr.align_routing(torch.tensor([[0, 4]]), 4, 16)


def test_combine_sums_each_tokens_pairs_in_fp32():
    """The weighted sum gathers each token's k rows through slot_row; a row of -1 adds nothing."""
    gen = torch.Generator().manual_seed(1)
    y = torch.randn(12, 40, generator=gen)
    w = torch.rand(3, 2, generator=gen)
    slot_row = torch.tensor([4, 0, 11, -1, 7, 2], dtype=torch.int32)
    out = moe.combine(y, w, slot_row, torch.empty(3, 40))  # fp32 out: the interpreter's bf16 cast truncates
    want = torch.stack([w[0, 0] * y[4] + w[0, 1] * y[0], w[1, 0] * y[11], w[2, 0] * y[7] + w[2, 1] * y[2]])
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)


def test_silu_mul_rounds_to_the_model_dtype():
    gu = torch.randn(20, 2 * 480, generator=torch.Generator().manual_seed(2)) * 4
    got = moe.silu_mul(gu, torch.bfloat16)
    want = (torch.nn.functional.silu(gu[:, :480]) * gu[:, 480:]).to(torch.bfloat16)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), rtol=2 ** -8, atol=1e-6)
    # rounded to nearest, as on the GPU (a truncating cast differs in about half the elements); the
    # overflow-free SiLU may differ from torch's by an fp32 ulp and tip a rare tie
    assert (got != want).float().mean() < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need an NVIDIA GPU")
def test_triton_moe_replays_in_a_cuda_graph():
    from qcert.kernels.mxfp4 import quantize_mxfp4

    t, h, i, e, k = 12, 256, 128, 8, 2
    gen = torch.Generator(device="cuda").manual_seed(0)
    w13p, w13s = quantize_mxfp4(torch.randn(e, 2 * i, h, device="cuda", generator=gen))
    w2p, w2s = quantize_mxfp4(torch.randn(e, h, i, device="cuda", generator=gen))
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16, generator=gen)
    ids = torch.randint(0, e, (t, k), device="cuda", generator=gen, dtype=torch.int32)
    tw = torch.softmax(torch.randn(t, k, device="cuda", generator=gen), -1)
    run = lambda: moe.mxfp4_moe(x, w13p, w13s, w2p, w2s, tw, ids)  # noqa: E731
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        run()  # compile and warm up outside the capture
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = run()
    for seed in (1, 2):  # new tokens and routing, same buffers
        g2 = torch.Generator(device="cuda").manual_seed(seed)
        x.copy_(torch.randn(t, h, device="cuda", dtype=torch.bfloat16, generator=g2))
        ids.copy_(torch.randint(0, e, (t, k), device="cuda", generator=g2, dtype=torch.int32))
        graph.replay()
        torch.cuda.synchronize()
        want = run()
        assert torch.equal(y, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the tensor-core GEMV runs on an NVIDIA GPU only")
@pytest.mark.parametrize("kind,act_qdq", [("mxfp4", False), ("mxfp4", True), ("nvfp4", False), ("nvfp4", True)])
def test_decode_moe_on_the_mma_gemv_matches_reference(kind, act_qdq, monkeypatch):
    """Decode-sized MoE (T * k <= 64, bf16): both grouped GEMMs on the tensor-core GEMV, 8-row blocks
    with gathered rows, unused blocks, and a ragged K (H = 320, I = 160: 2.5 and 1.25 steps of 128);
    equal to the reference, and to the general grouped kernel. NVFP4 W4A4 takes its activations
    unscaled (bf16) with the global scale folded into the GEMMs' column scales."""
    from qcert.conformance.cases import test_kernels as tk
    from qcert.kernels import ops as ref
    from qcert.kernels.tolerances import assert_close_rel

    t, h, i, e, k = 5, 320, 160, 8, 4
    shape = dict(t=t, h=h, i=i, e=e, k=k, dtype=torch.bfloat16)
    if kind == "mxfp4":
        args, kw, _ = tk.mxfp4_moe_inputs(tk._gen(3, "cuda"), "cuda", **shape, act_qdq=act_qdq)
    else:  # W4A4: the case's input scales, calibrated on these inputs over all experts
        args, kw, _ = tk.nvfp4_moe_inputs(tk._gen(3, "cuda"), "cuda", **shape, input_scale=act_qdq)
    x = args[0]
    run = lambda: getattr(moe, f"{kind}_moe")(*args, **kw)  # noqa: E731
    want = getattr(ref, f"{kind}_moe")(*args, **kw)
    assert moe._decode_gemv(x, t * k)
    got = run()
    fmt = "nvfp4" if kind == "nvfp4" and act_qdq else "bf16"  # activation code flips (tolerances.py)
    assert_close_rel(got, want, fmt)
    # the same weights in layouts.fp4_words: the word map's decode gives the same weights, paired
    # (2j, 2j + 1) instead of (j, j + 4) in each mma, whose sums then differ in the last bits
    wargs = tk.layout_args(f"{kind}_moe", "fp4_words", args)
    run_words = lambda: getattr(moe, f"{kind}_moe")(*wargs, **kw, words=True)  # noqa: E731
    assert_close_rel(run_words(), got, fmt)
    monkeypatch.setattr(moe, "_decode_gemv", lambda *a: False)
    general = run()
    assert_close_rel(got, general, fmt)
    assert torch.equal(run_words(), general)


@pytest.mark.parametrize("kind", ["mxfp4", "nvfp4"])
def test_moe_on_word_mapped_weights_equals_the_plain_layout(kind):
    """Both expert weights in layouts.fp4_words (words=True): the grouped GEMMs decode the word map
    (interpreted here; the GPU test above covers the tensor-core GEMV) to the same numbers."""
    from qcert.conformance.cases import test_kernels as tk

    shape = dict(t=6, h=256, i=128, e=4, k=2, dtype=torch.bfloat16)
    if kind == "mxfp4":
        args, kw, _ = tk.mxfp4_moe_inputs(tk._gen(5, "cpu"), "cpu", **shape, act_qdq=False)
    else:
        args, kw, _ = tk.nvfp4_moe_inputs(tk._gen(5, "cpu"), "cpu", **shape)
    wargs = tk.layout_args(f"{kind}_moe", "fp4_words", args)
    for j in (1, 3) if kind == "mxfp4" else (1, 4):
        assert not torch.equal(wargs[j], args[j])
    fn = getattr(moe, f"{kind}_moe")
    assert torch.equal(fn(*wargs, **kw, words=True), fn(*args, **kw))
