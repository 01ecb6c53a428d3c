"""Does qcert's TRT-LLM FP4 MoE layout (kernels/layouts.py) equal what flashinfer's own layout helpers
produce, and do those helpers run on this GPU? (GPU machine with flashinfer; prints one line each.)

flashinfer prepares TRT-LLM FP4 MoE weights per expert with `reorder_rows_for_gated_act_gemm` (the
gated-act interleave), `shuffle_matrix_a(w, 128)` (the 32-row shuffle) and `shuffle_matrix_sf_a(s, 128)`
(the same shuffle, then `block_scale_interleave`, the 128x4 interleave, a compiled kernel). A layout
backend qcert binds must equal `trtllm_fp4_w13_layout` / `trtllm_fp4_w2_layout`; this checks that
before anything is bound. The scale output is compared after poisoning the CUDA caching allocator
(0xFF), so an interleave that never writes its output shows as unwritten, not as a lucky zero match.
"""

from __future__ import annotations

import torch

from qcert.kernels import layouts


def main() -> int:
    """0 when every layout matches (or flashinfer is absent), 1 when one differs or fails."""
    try:
        import flashinfer
        from flashinfer.fused_moe.core import reorder_rows_for_gated_act_gemm
    except ImportError as ex:
        print(f"flashinfer not importable ({ex}): nothing to compare")
        return 0

    g = torch.Generator().manual_seed(0)
    e, i2, h = 2, 256, 128  # experts, 2 * intermediate, hidden
    w13 = torch.randint(0, 256, (e, i2, h // 2), generator=g, dtype=torch.uint8)
    s13 = torch.randint(1, 120, (e, i2, h // 16), generator=g, dtype=torch.uint8)
    w2 = torch.randint(0, 256, (e, h, i2 // 4), generator=g, dtype=torch.uint8)
    s2 = torch.randint(1, 120, (e, h, i2 // 32), generator=g, dtype=torch.uint8)
    ours_w13, ours_s13 = layouts.trtllm_fp4_w13_layout(w13, s13)
    ours_w2, ours_s2 = layouts.trtllm_fp4_w2_layout(w2, s2)
    cap = torch.cuda.get_device_capability()
    print(f"flashinfer {flashinfer.__version__} on cc {cap}")

    same13 = all(torch.equal(flashinfer.shuffle_matrix_a(reorder_rows_for_gated_act_gemm(w13[x]), 128), ours_w13[x])
                 for x in range(e))
    print(f"w13 weights (gated interleave + shuffle_matrix_a): {'equal' if same13 else 'DIFFER'} to trtllm_fp4_w13_layout")
    same2 = all(torch.equal(flashinfer.shuffle_matrix_a(w2[x], 128), ours_w2[x]) for x in range(e))
    print(f"w2 weights (shuffle_matrix_a): {'equal' if same2 else 'DIFFER'} to trtllm_fp4_w2_layout")
    ok = same13 and same2

    for name, src, ours, gated in (("w13", s13, ours_s13, True), ("w2", s2, ours_s2, False)):
        results = []
        for x in range(e):
            torch.cuda.empty_cache()
            torch.full((64 << 20,), 0xFF, dtype=torch.uint8, device="cuda")  # poison freed blocks
            s = src[x].cuda()
            s = reorder_rows_for_gated_act_gemm(s) if gated else s
            try:
                got = flashinfer.shuffle_matrix_sf_a(s, 128).reshape(-1).cpu()
            except Exception as ex:  # noqa: BLE001 -- report any failure of the library call
                results.append(f"raised {type(ex).__name__}: {str(ex)[:120]}")
                continue
            want = ours[x].reshape(-1)
            if got.numel() != want.numel():
                results.append(f"{got.numel()} bytes, expected {want.numel()}")
            elif torch.equal(got, want):
                results.append("equal")
            else:
                poisoned = float((got == 0xFF).float().mean())
                results.append(f"DIFFER ({(got != want).float().mean():.0%} of bytes; 0xFF poison in {poisoned:.0%})")
        print(f"{name} block scales (shuffle_matrix_sf_a): {'; '.join(results)}")
        ok = ok and all(r == "equal" for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
