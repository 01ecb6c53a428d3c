"""Does flashinfer's NVFP4 quantize really run on this GPU? (the silent-no-op check, on a device)

On Hopper (sm90) flashinfer's fp4 kernels are built for sm100+; a call that returns without an
error but leaves its outputs unwritten would hand an engine garbage. We cannot pass flashinfer a
poisoned `out=`, so we poison the caching allocator instead: blocks of the output sizes are filled
with 0xFF (an all-NaN e4m3 scale byte / code 15 = -6 nibbles) and freed right before the call,
so an output flashinfer allocates and never writes comes back full of 0xFF. Then the packed
result is dequantized with qcert's reference and compared with the input.

  python bench/flashinfer_fp4_probe.py      -> one line: raised / unwritten / wrong / ok
"""

from __future__ import annotations

import sys

import torch


def main() -> int:
    import flashinfer

    from qcert.kernels import nvfp4 as nv

    torch.manual_seed(0)
    m, k = 256, 1024
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    amax = x.float().abs().max()
    global_sf = (448.0 * 6.0 / amax).reshape(1).to(torch.float32)
    cc = torch.cuda.get_device_capability()
    poison = [torch.full((m, k // 2), 0xFF, dtype=torch.uint8, device="cuda"),
              torch.full((m, k // 16), 0xFF, dtype=torch.uint8, device="cuda")]
    del poison  # freed into the caching allocator: the next allocations of these sizes reuse them
    try:
        q, sf = flashinfer.fp4_quantize(x, global_sf, 16, False, False)
        torch.cuda.synchronize()
    except Exception as e:  # the honest outcome: a clear error
        print(f"flashinfer fp4_quantize on cc {cc}: raised {type(e).__name__}: {str(e)[:300]}")
        return 0
    q = q.view(torch.uint8).reshape(m, k // 2)
    sf = sf.view(torch.uint8).reshape(-1)[: m * k // 16].reshape(m, k // 16)
    poisoned = float((q == 0xFF).float().mean())
    try:
        deq = nv.dequantize_nvfp4(q, sf.view(torch.float8_e4m3fn), (1.0 / global_sf).reshape(()), torch.float32)
        err = float((deq - x.float()).norm() / x.float().norm())
    except Exception as e:
        err = float("nan")
        print(f"dequantize failed: {type(e).__name__}: {e}")
    verdict = "unwritten (poison survived)" if poisoned > 0.5 else ("ok" if err < 0.2 else "wrong values")
    print(f"flashinfer fp4_quantize on cc {cc}: returned without error; bytes still 0xFF: {poisoned:.1%}; "
          f"rel. err of dequantized result vs input: {err:.3g} -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
