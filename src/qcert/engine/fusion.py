"""Shared-expert fusion: whether the shared expert becomes routed expert slot `n_routed_experts`.

One decision function per family, each returning a `Fusion` with the reason, recorded in the report.
Fusing is only sound when the shared expert is stored like the routed experts; qcert also requires
the resolved schemes to match (beyond upstream, which fused a BF16 shared expert into MXFP4 buffers).
"""

from __future__ import annotations

from dataclasses import dataclass

from .quant.scheme import Scheme

# DeepSeek family: n_routed_experts values validated with fusion (pre-#25390 upstream allowed only 256).
# One entry per value naming what validated it; this is the only place the list lives.
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


def same_scheme(routed: Scheme, shared: Scheme) -> bool:
    """qcert's rule for both families: the shared expert is stored exactly like the routed experts."""
    return routed == shared


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
    if not same_scheme(routed, shared):
        return Fusion(0, f"scheme mismatch: routed experts {routed}, shared expert {shared}")
    return Fusion(1, f"on: {FUSION_ALLOW_LIST[n_routed]}")


def excludes_shared_expert(entry: str) -> bool:
    """Upstream's Qwen rule on one exclude entry, a substring test (so plural `shared_experts` and
    `re:` entries count): it names the shared expert, unless it names only its scalar gate
    (`shared_expert_gate`, a router-like linear that stays BF16 anyway) or an MTP layer (`mtp.`,
    loaded by the draft model, not fused)."""
    return "shared_expert" in entry and "shared_expert_gate" not in entry and not entry.startswith("mtp.")


def qwen_fusion(mode: str, shared_inter, moe_inter: int, exclude_entries: list[str], routed: Scheme,
                shared: Scheme) -> Fusion:
    """Qwen MoE (Qwen2-MoE, Qwen3.5-MoE): one gated shared expert, fused as slot n_routed with weight
    sigmoid(shared_expert_gate(x)). `force` skips the exclusion and scheme checks, never the size
    checks (a shared expert of another size cannot share the routed tensor)."""
    off = _mode(mode)
    if off:
        return off
    if not isinstance(shared_inter, int) or shared_inter <= 0:
        return Fusion(0, f"shared_expert_intermediate_size={shared_inter!r} is not positive (no shared expert)")
    if shared_inter != moe_inter:
        return Fusion(0, f"shared_expert_intermediate_size={shared_inter} differs from moe_intermediate_size={moe_inter}")
    if mode == "force":
        return Fusion(1, "forced by engine argument shared_expert_fusion='force' (exclusion and scheme checks skipped)")
    hits = [e for e in exclude_entries if excludes_shared_expert(e)]
    if hits:
        return Fusion(0, f"shared expert excluded from quantization by exclude entry {hits[0]!r}")
    if not same_scheme(routed, shared):
        return Fusion(0, f"scheme mismatch: routed experts {routed}, shared expert {shared}")
    return Fusion(1, "on: shared expert fused as routed slot n_routed, weighted by sigmoid(shared_expert_gate(x))")
