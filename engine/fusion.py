"""Shared-expert fusion: whether the shared expert becomes routed expert slot `n_routed_experts`.

One decision function per family, each returning a `Fusion` with the reason, recorded in the report.
Fusing is only sound when the shared expert is stored like the routed experts; qcert also requires
the resolved schemes to match (beyond upstream, which fused a BF16 shared expert into MXFP4 buffers).
"""

from __future__ import annotations

from dataclasses import dataclass

from .quant.scheme import Scheme

# n_routed_experts values validated with fusion; one line per value naming what validated it.
FUSION_ALLOW_LIST = {
    256: "DeepSeek-V3/R1 and GLM-5 (256 routed experts)",
    384: "Kimi-K2.5 (384 routed experts), validated only with Quark MXFP4 (sglang#25390)",
}
QUARK_ONLY = {384}  # a compressed-tensors Kimi-K2.5 scored GSM8K 0.000 with fusion on


@dataclass(frozen=True)
class Fusion:
    shared_experts: int  # number of shared experts fused into the routed tensor (0 = off)
    reason: str

    def as_dict(self) -> dict:
        return {"shared_experts": self.shared_experts, "reason": self.reason}


def _mode(mode: str) -> Fusion | None:
    if mode == "off":
        return Fusion(0, "disabled by engine argument shared_expert_fusion='off'")
    return None


def deepseek_fusion(mode: str, architectures, expected_arch: str, n_routed: int, n_shared: int,
                    quant_method: str, routed: Scheme, shared: Scheme) -> Fusion:
    off = _mode(mode)
    if off:
        return off
    if mode == "force":
        return Fusion(1, "forced by engine argument shared_expert_fusion='force' (checks skipped)")
    if not architectures:
        return Fusion(0, "config.architectures is empty or missing")
    if architectures[0] != expected_arch:
        return Fusion(0, f"architecture {architectures[0]!r} is not {expected_arch!r}")
    if n_routed not in FUSION_ALLOW_LIST:
        return Fusion(0, f"n_routed_experts={n_routed} is not in the validated allow-list {sorted(FUSION_ALLOW_LIST)}")
    if n_shared != 1:
        return Fusion(0, f"n_shared_experts={n_shared} (fusion needs exactly 1)")
    if n_routed in QUARK_ONLY and quant_method != "quark":
        return Fusion(0, f"n_routed_experts={n_routed} is validated only with quark, not {quant_method!r}")
    if routed != shared:
        return Fusion(0, f"scheme mismatch: routed experts {routed}, shared expert {shared}")
    return Fusion(1, f"on: {FUSION_ALLOW_LIST[n_routed]}")
