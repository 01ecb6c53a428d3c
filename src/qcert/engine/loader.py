"""Execute a load plan on a device, run post-load transforms and hooks, and update weights in place."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import torch

from .args import EngineArgs, normalize_args
from .checkpoint import Checkpoint
from .errors import PlanError, QuantConfigError, UpdateError
from .hooks import run_hooks
from .layers import Copy, Dequant
from .plan import LoadPlan, _sources, build_plan
from .quant.methods import dequantize


def _as_engine(t: torch.Tensor, src) -> torch.Tensor:
    if t.dtype == torch.float8_e8m0fnu:
        t = t.view(torch.uint8)  # e8m0 scales are kept as raw exponent bytes
    if src.convert == "reciprocal":
        t = 1.0 / t.float()
    return t


def read_source(ckpt: Checkpoint, tensor: str, src) -> torch.Tensor:
    """A checkpoint tensor as the engine stores it (scale conventions applied)."""
    return _as_engine(ckpt.get(tensor), src)


CHUNK = 1 << 18  # elements an update reads, checks and copies at a time (1 MiB as float32)


def read_chunks(ckpt: Checkpoint, tensor: str, src):
    """(row0, rows) chunks of one checkpoint tensor as the engine stores it, about CHUNK elements each
    (whole rows), so an update never holds a whole large tensor or a float copy of it. Reads are
    memory-mapped slices: file pages, not anonymous memory."""
    meta = ckpt.tensors[tensor]
    if len(meta.shape) == 0 or src.convert is not None:  # scalars / reciprocal global scales: tiny
        yield 0, read_source(ckpt, tensor, src)
        return
    step = max(1, CHUNK // max(1, math.prod(meta.shape[1:])))
    for r in range(0, meta.shape[0], step):
        yield r, _as_engine(ckpt.get_rows(tensor, r, r + step), src)


def check_expert_global_scales(ckpt: Checkpoint, jobs, live: dict | None = None) -> None:
    """Stacked NVFP4 experts: an expert's shards (gate, up) must carry one global scale, since MoE
    kernels take one per expert (FORMATS.md; sglang takes shard 0's and warns). Checked on the
    checkpoint's values before anything is written, at load and at update, so forward needs no
    check (and no host sync). `live`: a running model's parameters, for the shards a partial update
    leaves as they are."""
    seen: dict = {}
    for job in jobs:
        if isinstance(job, Copy) and job.expert is not None and job.shard is not None \
                and job.param.endswith(".weight_scale_2"):
            value = float(read_source(ckpt, job.tensor, job.source).reshape(-1)[0])
            seen.setdefault((job.param, job.expert), {})[job.shard] = (job.tensor.rsplit(".", 1)[0], value)
    bad = []
    for (param, e), shards in seen.items():
        if live is not None:
            for s, v in enumerate(live[param].detach()[e].float().tolist()):
                shards.setdefault(s, (f"{param}[{e}, {s}] (loaded)", v))
        if len({v for _, v in shards.values() if v == v}) > 1:  # NaN scales are the data checks' to report
            bad.append((e, shards))
    if bad:
        e, shards = bad[0]
        named = ", ".join(f"{m} = {v:.6g}" for _, (m, v) in sorted(shards.items()))
        raise QuantConfigError(f"NVFP4 experts: the shards of expert {e} carry different global scales ({named}); "
                               f"an NVFP4 MoE kernel takes one global scale per expert ({len(bad)} experts differ)")


def _target(params: dict, job: Copy) -> torch.Tensor:
    t = params[job.param].data
    if job.expert is not None:
        t = t[job.expert]
    if job.rows is not None:
        return t[job.rows[0]: job.rows[1]]
    return t[job.shard] if job.shard is not None else t


def _write(ckpt: Checkpoint, params: dict, job) -> None:
    if isinstance(job, Copy):
        dst = _target(params, job)
        if tuple(ckpt.tensors[job.tensor].shape) == tuple(dst.shape) and dst.dim():
            for r, chunk in read_chunks(ckpt, job.tensor, job.source):  # row by row: no whole-tensor temporary
                dst[r: r + chunk.shape[0]].copy_(chunk)
            return
        value = read_source(ckpt, job.tensor, job.source)
        dst.copy_(value.reshape(dst.shape).to(dst.dtype))
    else:
        parts = {p: read_source(ckpt, t, s) for (p, t), s in zip(job.tensors.items(), job.sources)}
        w = dequantize(job.scheme, parts)
        params[job.param].data.copy_(w.to(params[job.param].dtype))


def _is_e8m0(src) -> bool:
    return "F8_E8M0" in src.dtypes


def _validate(ckpt: Checkpoint, job) -> None:
    """Data checks before anything is written: weights finite; scales finite, global scales > 0,
    block scales >= 0 (an all-zero block has scale 0); e8m0 scales not NaN (0xFF). Reads one chunk
    of one tensor at a time (read_chunks): validation memory is a small constant."""
    for tensor, src, param in _sources(job):
        is_scale = "scale" in src.param
        block = src.param == "weight_scale" and "F8_E4M3" in src.dtypes  # NVFP4 per-16 block scales
        try:
            for _, t in read_chunks(ckpt, tensor, src):
                if t.dtype == torch.uint8:
                    if is_scale and _is_e8m0(src) and bool((t == 255).any()):
                        raise UpdateError(f"{ckpt.path}: tensor {tensor!r} holds NaN e8m0 scales (0xFF)")
                    continue
                f = t.float()
                if not bool(torch.isfinite(f).all()):
                    raise UpdateError(f"{ckpt.path}: tensor {tensor!r} holds non-finite values (NaN or inf)")
                if is_scale and not bool((f >= 0).all() if block else (f > 0).all()):
                    raise UpdateError(f"{ckpt.path}: tensor {tensor!r} holds scales that are not positive")
                del f, t
        except UpdateError:
            raise
        except Exception as e:  # unreadable data (safetensors error, I/O error)
            raise UpdateError(f"{ckpt.path}: tensor {tensor!r} cannot be read: {e}") from None


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
        unexpected = plan.unexpected()
        if unexpected:
            raise PlanError(f"{plan.checkpoint.path}: tensors no engine parameter claims: {unexpected[:5]}"
                            + (f" (and {len(unexpected) - 5} more)" if len(unexpected) > 5 else ""))
        check_expert_global_scales(plan.checkpoint, plan.jobs)
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
        """Inputs may live anywhere: they go to the model's device, the result comes back to the
        device of the first tensor input (a caller on the CPU gets CPU tensors from a GPU model)."""
        device = self.args.torch_device
        home = next((a.device for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), device)
        move = lambda a: a.to(device) if isinstance(a, torch.Tensor) else a  # noqa: E731
        out = self.model(*map(move, args), **{k: move(v) for k, v in kwargs.items()})
        return out.to(home)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        ids = input_ids.to(self.args.torch_device)
        for _ in range(max_new_tokens):
            nxt = self.model(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
        return ids.to(input_ids.device)

    # --- weight update -------------------------------------------------------------------------
    @torch.no_grad()
    def update_weights_from_disk(self, checkpoint, tensors: Iterable[str] | None = None) -> None:
        """Validate the whole new checkpoint, then write into the same storages and rerun the
        post-load transforms and hooks. Any problem raises one UpdateError before anything is
        written, so every parameter stays bit-identical. `tensors` restricts the update to the jobs
        those checkpoint tensors feed."""
        new, jobs = self._validate_update(checkpoint, tensors)
        self._write_update(new, jobs)

    def _validate_update(self, checkpoint, tensors) -> tuple[LoadPlan, list]:
        def refuse(msg: str):
            raise UpdateError(f"update refused, weights unchanged: {msg}")

        try:
            new = build_plan(Checkpoint(checkpoint), self.args)
        except (ValueError, OSError) as e:
            refuse(str(e))
        self._check_compatible(new)
        jobs = new.jobs
        if tensors is not None:
            wanted = set(tensors)
            unknown = wanted - set(new.checkpoint.tensors)
            if unknown:
                refuse(f"{checkpoint}: no tensors {sorted(unknown)[:5]}")
            jobs = [j for j in jobs if wanted & {t for t, _, _ in _sources(j)}]
            missing = [m["tensor"] for m in new.missing if m["param"] in {j.param for j in jobs}]
        else:
            missing = [m["tensor"] for m in new.missing]
            unexpected = new.unexpected()
            if unexpected:
                refuse(f"{checkpoint}: tensors no engine parameter claims: {unexpected[:5]}")
        if missing:
            refuse(f"{checkpoint}: missing tensors {missing[:5]}")
        for job in jobs:
            try:
                _validate(new.checkpoint, job)
            except UpdateError as e:
                refuse(str(e))
        try:
            check_expert_global_scales(new.checkpoint, jobs, self.parameters() if tensors is not None else None)
        except QuantConfigError as e:
            refuse(str(e))
        return new, jobs

    def _write_update(self, new: LoadPlan, jobs: list) -> None:
        """Validation passed: write. Layers in a kernel layout go back to the plain layout first, in
        place, so a partial update lands in the right rows; then the same transforms run again."""
        from .quant import methods

        params = self.parameters()
        touched = {j.param.rsplit(".", 1)[0] for j in jobs}
        methods.to_plain_layout(self.model, touched)
        for job in jobs:
            _write(new.checkpoint, params, job)
        self._rerun_transforms()

    def _rerun_transforms(self) -> None:
        from .quant import methods

        merged = {r["param"]: r for r in self.transforms}
        merged.update({r["param"]: r for r in methods.post_load(self.model)})
        self.transforms = list(merged.values())
        run_hooks(self.model, self.plan.hooks)

    def _check_compatible(self, new: LoadPlan) -> None:
        live = {n: (tuple(p.shape), p.dtype) for n, p in self.model.named_parameters()}
        fresh = {n: (tuple(p.shape), p.dtype) for n, p in new.model.named_parameters()}
        why = None
        if live != fresh:
            why = f"parameters differ: {sorted(set(live.items()) ^ set(fresh.items()), key=str)[:3]}"
        else:
            old_s = {d.module: str(d.resolution.scheme) for d in self.plan.declared}
            new_s = {d.module: str(d.resolution.scheme) for d in new.declared}
            diff = [(m, old_s.get(m), new_s.get(m)) for m in sorted(set(old_s) | set(new_s)) if old_s.get(m) != new_s.get(m)]
            if diff:
                why = f"quantization schemes differ (module, loaded, new): {diff[:3]}"
            elif (self.plan.ctx.fusion or {}).get("shared_experts") != (new.ctx.fusion or {}).get("shared_experts"):
                why = f"shared-expert fusion differs: loaded {self.plan.ctx.fusion}, new {new.ctx.fusion}"
        if why:
            raise UpdateError(f"update refused, weights unchanged: {new.checkpoint.path} does not match the "
                              f"loaded model (config or quantization differs): {why}")


def load(path: str | Path, device: str | None = None, **engine_args) -> LoadedModel:
    """`qcert.engine.load(path, device=..., **engine_args) -> LoadedModel`."""
    return LoadedModel.load(path, normalize_args(device=device, **engine_args))


def plan(path: str | Path, device: str | None = None, **engine_args) -> dict:
    """The static load report from config files and headers only."""
    return build_plan(path, normalize_args(device=device, **engine_args)).report()
