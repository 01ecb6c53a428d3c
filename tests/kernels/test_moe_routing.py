"""MoE routing (kernels/triton/moe.align_routing) and the triton MoE under CUDA-graph capture.

The routing runs without a host sync: its padded length is a bound, and the blocks past the used
ones carry expert -1. On a GPU the whole triton MoE is captured in a CUDA graph and replayed on new
routing data, which only works if no step reads a device value on the host."""

import pytest
import torch

moe = pytest.importorskip("qcert.kernels.triton.moe")


@pytest.mark.parametrize("t,k,e,block_m", [(5, 2, 8, 16), (64, 4, 32, 8), (3, 1, 40, 64), (0, 2, 4, 16)])
def test_align_routing_blocks_hold_one_expert_each(t, k, e, block_m):
    ids = torch.randint(0, e, (t, k), generator=torch.Generator().manual_seed(t * e + k))
    r = moe.align_routing(ids, e, block_m)
    flat = ids.reshape(-1)
    assert r.sorted_slot.numel() % block_m == 0 and r.block_expert.numel() == r.sorted_slot.numel() // block_m
    real = r.sorted_slot >= 0
    assert sorted(r.sorted_slot[real].tolist()) == list(range(flat.numel()))  # every pair exactly once
    row_expert = r.block_expert.long().repeat_interleave(block_m)
    assert torch.equal(row_expert[real], flat[r.sorted_slot[real]])  # each pair sits in a block of its expert
    assert torch.equal(r.token[real].long(), r.sorted_slot[real] // k) and bool((r.token[~real] == -1).all())
    used = r.block_expert >= 0
    assert bool(used[: int(used.sum())].all())  # the unused blocks (-1) come last
    counts = torch.bincount(flat, minlength=e)
    assert int(used.sum()) == int(((counts + block_m - 1) // block_m).sum())


def test_align_routing_refuses_out_of_range_ids():
    with pytest.raises(ValueError, match=r"topk_ids out of range \[0, 4\)"):
        moe.align_routing(torch.tensor([[0, 4]]), 4, 16)


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
@pytest.mark.parametrize("kind,act_qdq", [("mxfp4", False), ("mxfp4", True), ("nvfp4", False)])
def test_decode_moe_on_the_mma_gemv_matches_reference(kind, act_qdq, monkeypatch):
    """Decode-sized MoE (T * k <= 64, bf16): both grouped GEMMs on the tensor-core GEMV, 8-row blocks
    with gathered rows, unused blocks, and a ragged K (H = 320, I = 160: 2.5 and 1.25 steps of 128);
    equal to the reference, and to the general grouped kernel."""
    from qcert.kernels import ops as ref
    from qcert.kernels.mxfp4 import quantize_mxfp4
    from qcert.kernels.nvfp4 import quantize_nvfp4
    from qcert.kernels.tolerances import assert_close_rel

    t, h, i, e, k = 5, 320, 160, 8, 4
    gen = torch.Generator(device="cuda").manual_seed(3)
    w13 = torch.randn(e, 2 * i, h, device="cuda", generator=gen)
    w2 = torch.randn(e, h, i, device="cuda", generator=gen)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16, generator=gen)
    ids = torch.stack([torch.randperm(e, device="cuda", generator=gen)[:k] for _ in range(t)]).to(torch.int32)
    tw = torch.softmax(torch.randn(t, k, device="cuda", generator=gen), -1)
    if kind == "mxfp4":
        (w13p, w13s), (w2p, w2s) = quantize_mxfp4(w13), quantize_mxfp4(w2)
        run = lambda: moe.mxfp4_moe(x, w13p, w13s, w2p, w2s, tw, ids, act_qdq=act_qdq)  # noqa: E731
        want = ref.mxfp4_moe(x, w13p, w13s, w2p, w2s, tw, ids, act_qdq=act_qdq)
    else:
        (w13p, w13s, a2), (w2p, w2s, b2) = quantize_nvfp4(w13), quantize_nvfp4(w2)
        run = lambda: moe.nvfp4_moe(x, w13p, w13s, a2, w2p, w2s, b2, tw, ids)  # noqa: E731
        want = ref.nvfp4_moe(x, w13p, w13s, a2, w2p, w2s, b2, tw, ids)
    assert moe._decode_gemv(x, t * k, moe.mxfp4_qdq if act_qdq else None, moe.mxfp4_qdq if act_qdq else None)
    got = run()
    assert_close_rel(got, want, "bf16")
    monkeypatch.setattr(moe, "_decode_gemv", lambda *a: False)
    assert_close_rel(got, run(), "bf16")
