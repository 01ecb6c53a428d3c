"""The load plan: every checkpoint tensor -> engine parameter (and shard), every parameter -> its
sources, checked against each module's scheme from config files and safetensors headers alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .args import EngineArgs
from .checkpoint import Checkpoint
from .errors import PlanError
from .hooks import plan_hooks
from .layers import Copy, Declared, Dequant
from .models import BuildContext, find_family
from .quant.base import QuantConfig, detect, shape_ok


# The report's reason for a checkpoint tensor that nothing claims and no family declared skipped.
UNCLAIMED = "no engine parameter claims this tensor"


@dataclass
class LoadPlan:
    checkpoint: Checkpoint
    family: object
    qc: QuantConfig
    model: torch.nn.Module  # on the meta device until executed
    ctx: BuildContext
    declared: list[Declared]
    jobs: list
    unclaimed: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    hooks: list[dict] = field(default_factory=list)

    @property
    def architectures(self):
        return self.checkpoint.config.get("architectures")

    def report(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint.path),
            "fingerprint": self.checkpoint.fingerprint(),
            "architecture": self.family.architecture(self.checkpoint.config),
            "architectures": self.architectures,
            "family": self.family.name,
            "quant_method": None if self.qc.method == "none" else self.qc.method,
            "modules": [
                {"name": d.module, "kind": d.kind, "scheme": str(d.resolution.scheme), "sources": d.sources,
                 "excluded_by": d.resolution.excluded_by, "decided_by": d.resolution.decided_by,
                 "dequantized_at_load": d.dequantized_at_load}
                for d in self.declared
            ],
            "fused_modules": self.ctx.packed,
            "fusion": self.ctx.fusion or {"shared_experts": 0, "reason": "model has no shared experts"},
            "post_load_hooks": self.hooks,
            "unclaimed": self.unclaimed,
            "missing": self.missing,
            "exclude_entries": self.qc.exclude_entries,
            "unmatched_exclude_entries": self.qc.unmatched_exclude_entries(),
            "backends": {},
            "transforms": [],
            "notes": self.ctx.notes,
        }

    def unexpected(self) -> list[str]:
        """Tensors no module claims and no family skipped with a reason: load and update refuse them."""
        return [u["tensor"] for u in self.unclaimed if u["reason"] == UNCLAIMED]

    def raise_if_incomplete(self) -> None:
        if self.missing:
            first = self.missing[:5]
            more = f" (and {len(self.missing) - 5} more)" if len(self.missing) > 5 else ""
            raise PlanError(f"{self.checkpoint.path}: missing tensors: "
                            + "; ".join(f"{m['tensor']} for {m['param']}" for m in first) + more)


def config_for_quant(config: dict) -> dict:
    """Wrappers may keep quantization_config beside or inside text_config."""
    if "quantization_config" in config or "compression_config" in config:
        return config
    tc = config.get("text_config")
    return tc if isinstance(tc, dict) and ("quantization_config" in tc or "compression_config" in tc) else config


def build_plan(path, args: EngineArgs) -> LoadPlan:
    ckpt = path if isinstance(path, Checkpoint) else Checkpoint(path)
    family = find_family(ckpt.config)
    qc = detect(config_for_quant(ckpt.config), ckpt.hf_quant_config, family.name)
    ctx = BuildContext(packed=family.packed_modules())
    qc.bind(family.mapper(ckpt.config))
    model = family.build(ckpt.config, qc, args, ctx)
    declared = [m.declare(name, qc) for name, m in model.named_modules() if hasattr(m, "declare")]
    jobs = [j for d in declared for j in d.jobs]
    plan = LoadPlan(ckpt, family, qc, model, ctx, declared, jobs)
    _check(plan, {d.module: d for d in declared})
    plan.hooks = plan_hooks(ckpt.config.get("architectures"), qc.method)
    return plan


def _sources(job):
    return [(job.tensor, job.source, job.param)] if isinstance(job, Copy) else \
        [(t, s, job.param) for t, s in zip(job.tensors.values(), job.sources)]


def _check(plan: LoadPlan, by_module: dict) -> None:
    metas = plan.checkpoint.tensors
    claimed: set[str] = set()
    errors: list[str] = []
    for job in plan.jobs:
        for tensor, src, param in _sources(job):
            claimed.add(tensor)
            meta = metas.get(tensor)
            if meta is None:
                if not src.optional:
                    plan.missing.append({"tensor": tensor, "param": param})
                continue
            if meta.dtype not in src.dtypes or not shape_ok(src.shape, meta.shape):
                module = param.rsplit(".", 1)[0]
                d = by_module.get(module)
                why = job.decided_by if isinstance(job, Dequant) else (d.resolution.decided_by if d else "?")
                scheme = job.scheme if isinstance(job, Dequant) else (d.resolution.scheme if d else "?")
                errors.append(
                    f"tensor {tensor!r} ({meta.file}): expected {'/'.join(src.dtypes)}{list(src.shape)} for "
                    f"scheme {scheme} of {module} (decided by {why}), found {meta.describe()}"
                )
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise PlanError(f"{plan.checkpoint.path}: " + "; ".join(errors[:3]) + more)
    for name in sorted(set(metas) - claimed):
        reason = next((why for prefix, why in plan.ctx.skipped.items() if name.startswith(prefix)), UNCLAIMED)
        plan.unclaimed.append({"tensor": name, "reason": reason})
