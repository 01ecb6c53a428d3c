"""Execute a load plan on a device, run post-load transforms and hooks, and update weights in place."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from .args import EngineArgs, normalize_args
from .checkpoint import Checkpoint
from .errors import PlanError, UpdateError
from .hooks import run_hooks
from .layers import Copy, Dequant
from .plan import LoadPlan, _sources, build_plan
from .quant.methods import dequantize

UNEXPECTED = "no engine parameter claims this tensor"


def read_source(ckpt: Checkpoint, tensor: str, src) -> torch.Tensor:
    """A checkpoint tensor as the engine stores it (scale conventions applied)."""
    t = ckpt.get(tensor)
    if t.dtype == torch.float8_e8m0fnu:
        t = t.view(torch.uint8)  # e8m0 scales are kept as raw exponent bytes
    if src.convert == "reciprocal":
        t = 1.0 / t.float()
    return t


def _target(params: dict, job: Copy) -> torch.Tensor:
    t = params[job.param].data
    if job.expert is not None:
        t = t[job.expert]
    if job.rows is not None:
        return t[job.rows[0]: job.rows[1]]
    return t[job.shard] if job.shard is not None else t


def _write(ckpt: Checkpoint, params: dict, job) -> None:
    if isinstance(job, Copy):
        value = read_source(ckpt, job.tensor, job.source)
        dst = _target(params, job)
        dst.copy_(value.reshape(dst.shape).to(dst.dtype))
    else:
        parts = {p: read_source(ckpt, t, s) for (p, t), s in zip(job.tensors.items(), job.sources)}
        w = dequantize(job.scheme, parts)
        params[job.param].data.copy_(w.to(params[job.param].dtype))


def _validate(ckpt: Checkpoint, job) -> None:
    """Data checks before anything is written: scales finite and positive, weights finite."""
    for tensor, src, param in _sources(job):
        t = read_source(ckpt, tensor, src)
        if t.dtype == torch.uint8:
            if "scale" in src.param and "mxfp4" in str(getattr(job, "scheme", "")) and (t == 255).any():
                raise UpdateError(f"{ckpt.path}: tensor {tensor!r} holds NaN e8m0 scales (0xFF)")
            continue
        f = t.float()
        if not torch.isfinite(f).all():
            raise UpdateError(f"{ckpt.path}: tensor {tensor!r} holds non-finite values")
        if "scale" in src.param and not (f > 0).all():
            raise UpdateError(f"{ckpt.path}: tensor {tensor!r} holds scales that are not positive")


class LoadedModel:
    """A loaded model: forward, generate, report, parameters, update_weights_from_disk."""

    def __init__(self, plan: LoadPlan, args: EngineArgs):
        self.plan, self.args, self.model = plan, args, plan.model
        self.transforms: list[dict] = []

    # --- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path, args: EngineArgs) -> "LoadedModel":
        plan = build_plan(path, args)
        plan.raise_if_incomplete()
        unexpected = [u["tensor"] for u in plan.unclaimed if u["reason"] == UNEXPECTED]
        if unexpected:
            raise PlanError(f"{plan.checkpoint.path}: tensors no engine parameter claims: {unexpected[:5]}"
                            + (f" (and {len(unexpected) - 5} more)" if len(unexpected) > 5 else ""))
        plan.model.to_empty(device=args.torch_device)
        params = dict(plan.model.named_parameters())
        for job in plan.jobs:
            _write(plan.checkpoint, params, job)
        self = cls(plan, args)
        self._post_load()
        return self

    def _post_load(self) -> None:
        from .quant.methods import post_load

        for name, module in self.model.named_modules():
            module.backend_requests = dict(self.args.backends)
        self.transforms = post_load(self.model)
        run_hooks(self.model, self.plan.hooks)

    # --- contract ------------------------------------------------------------------------------
    def report(self) -> dict:
        r = self.plan.report()
        r["backends"] = self._backends()
        r["transforms"] = self.transforms
        r["device"] = str(self.args.torch_device)
        return r

    def _backends(self) -> dict:
        used: dict[str, set] = {}
        for m in self.model.modules():
            for op, b in m.__dict__.get("backends_used", {}).items():
                used.setdefault(op, set()).add(b)
        return {op: sorted(b) if len(b) > 1 else next(iter(b)) for op, b in sorted(used.items())}

    def parameters(self) -> dict[str, torch.Tensor]:
        return dict(self.model.named_parameters())

    @torch.no_grad()
    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.model(*args, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        ids = input_ids
        for _ in range(max_new_tokens):
            nxt = self.model(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
        return ids

    # --- weight update -------------------------------------------------------------------------
    @torch.no_grad()
    def update_weights_from_disk(self, checkpoint, tensors: Iterable[str] | None = None) -> None:
        """Validate the whole new checkpoint, then write into the same storages and rerun the
        post-load transforms. Any problem raises UpdateError and leaves every parameter unchanged."""
        from .quant.methods import post_load, to_plain_layout

        try:
            new = build_plan(Checkpoint(checkpoint), self.args)
        except (ValueError, OSError) as e:
            raise UpdateError(f"update refused, weights unchanged: {e}") from None
        self._check_compatible(new)
        jobs = new.jobs
        if tensors is not None:
            wanted = set(tensors)
            unknown = wanted - set(new.checkpoint.tensors)
            if unknown:
                raise UpdateError(f"update refused, weights unchanged: {checkpoint}: no tensors {sorted(unknown)[:5]}")
            jobs = [j for j in jobs if wanted & {t for t, _, _ in _sources(j)}]
        else:
            if new.missing:
                raise UpdateError(f"update refused, weights unchanged: {checkpoint}: missing tensors "
                                  f"{[m['tensor'] for m in new.missing[:5]]}")
        for job in jobs:
            try:
                _validate(new.checkpoint, job)
            except UpdateError as e:
                raise UpdateError(f"update refused, weights unchanged: {e}") from None
        # Validation passed: write. Layers in a kernel layout go back to the plain layout first so
        # a partial update lands in the right place, then the same transforms run again.
        params = self.parameters()
        touched = {j.param.rsplit(".", 1)[0] for j in jobs}
        to_plain_layout(self.model, touched)
        for job in jobs:
            _write(new.checkpoint, params, job)
        self.transforms = post_load(self.model)
        run_hooks(self.model, self.plan.hooks)

    def _check_compatible(self, new: LoadPlan) -> None:
        live = {n: (tuple(p.shape), p.dtype) for n, p in self.model.named_parameters()}
        fresh = {n: (tuple(p.shape), p.dtype) for n, p in new.model.named_parameters()}
        if live != fresh:
            diff = sorted(set(live.items()) ^ set(fresh.items()))[:3]
            raise UpdateError(f"update refused, weights unchanged: {new.checkpoint.path} does not match the "
                              f"loaded model's parameters (config or quantization differs): {diff}")


def load(path: str | Path, device: str | None = None, **engine_args) -> LoadedModel:
    """`qcert.engine.load(path, device=..., **engine_args) -> LoadedModel`."""
    return LoadedModel.load(path, normalize_args(device=device, **engine_args))


def plan(path: str | Path, device: str | None = None, **engine_args) -> dict:
    """The static load report from config files and headers only."""
    return build_plan(path, normalize_args(device=device, **engine_args)).report()
