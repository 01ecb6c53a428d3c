"""Read a checkpoint directory: config files, the safetensors index and headers; tensor data lazily.

Only files inside the directory are ever opened (index entries that point elsewhere are refused), and
nothing is unpickled: configs are JSON, weights are safetensors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from .errors import CheckpointError

# safetensors dtype strings -> torch dtypes (the ones quantized checkpoints use).
DTYPES: dict[str, torch.dtype] = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "F64": torch.float64,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I32": torch.int32,
    "I64": torch.int64,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "F8_E8M0": torch.float8_e8m0fnu,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_ITEMSIZE = {k: torch.empty(0, dtype=v).element_size() for k, v in DTYPES.items()}

WEIGHT_FILES = ("model.safetensors", "diffusion_pytorch_model.safetensors")
INDEX_FILES = ("model.safetensors.index.json", "diffusion_pytorch_model.safetensors.index.json")
MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: str  # safetensors dtype string, e.g. "BF16", "U8", "F8_E4M3"
    shape: tuple[int, ...]
    file: str  # file name inside the checkpoint directory

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def describe(self) -> str:
        return f"{self.dtype}{list(self.shape)}"


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: {what} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: {what} must be a JSON object, found {type(data).__name__}")
    return data


def read_safetensors_header(path: Path) -> dict[str, TensorMeta]:
    """Parse and validate one safetensors header without reading tensor data."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, no header length)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise CheckpointError(
                f"{path}: truncated or corrupt safetensors header (header length {n}, file {size} bytes)"
            )
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: safetensors header must be a JSON object")
    data_size = size - 8 - n
    metas: dict[str, TensorMeta] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry: {entry!r}") from None
        if dtype not in DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        numel = 1
        for d in shape:
            numel *= d
        if end - begin != numel * _ITEMSIZE[dtype] or begin < 0:
            raise CheckpointError(
                f"{path}: tensor {name!r} {dtype}{list(shape)} needs {numel * _ITEMSIZE[dtype]} bytes, "
                f"header gives offsets [{begin}, {end}]"
            )
        if end > data_size:
            raise CheckpointError(
                f"{path}: truncated file: tensor {name!r} ends at byte {end} of the data section, "
                f"which holds only {data_size} bytes"
            )
        metas[name] = TensorMeta(name, dtype, shape, path.name)
    return metas


class Checkpoint:
    """A checkpoint directory. Headers are read eagerly (cheap); tensor data on demand (mmap)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(f"{self.path}: not a checkpoint directory")
        self.root = self.path.resolve()
        self.config = read_json(self.path / "config.json", "config.json")
        hf_quant = self.path / "hf_quant_config.json"
        self.hf_quant_config = read_json(hf_quant, "hf_quant_config.json") if hf_quant.exists() else None
        self.files = self._weight_files()
        self.tensors: dict[str, TensorMeta] = {}
        for file in self.files:
            for name, meta in read_safetensors_header(self._inside(file)).items():
                if name in self.tensors:
                    raise CheckpointError(f"{self.path}: tensor {name!r} appears in {meta.file} and {self.tensors[name].file}")
                self.tensors[name] = meta
        self._check_index()
        self._handles: dict[str, Any] = {}

    # --- layout -------------------------------------------------------------------------------
    def _inside(self, name: str) -> Path:
        """Resolve a file name from the checkpoint, refusing anything outside the directory."""
        p = (self.root / name).resolve()
        if p.parent != self.root and self.root not in p.parents:
            raise CheckpointError(f"{self.path}: file {name!r} lies outside the checkpoint directory")
        if not p.is_file():
            raise CheckpointError(f"{self.path}: file {name!r} named by the checkpoint does not exist")
        return p

    def _weight_files(self) -> list[str]:
        for index in INDEX_FILES:
            if (self.path / index).exists():
                data = read_json(self.path / index, index)
                wm = data.get("weight_map")
                if not isinstance(wm, dict) or not wm:
                    raise CheckpointError(f"{self.path / index}: field 'weight_map' must be a non-empty object")
                self.index_file, self.weight_map = index, wm
                return sorted(set(wm.values()))
        self.index_file, self.weight_map = None, None
        for name in WEIGHT_FILES:
            if (self.path / name).exists():
                return [name]
        raise CheckpointError(f"{self.path}: no safetensors weights ({', '.join(WEIGHT_FILES + INDEX_FILES)})")

    def _check_index(self) -> None:
        for name, file in (self.weight_map or {}).items():
            meta = self.tensors.get(name)
            if meta is None:
                raise CheckpointError(f"{self.path / self.index_file}: tensor {name!r} is listed in {file} but not stored there")
            if meta.file != Path(file).name:
                raise CheckpointError(f"{self.path / self.index_file}: tensor {name!r} is listed in {file} but stored in {meta.file}")

    # --- data ---------------------------------------------------------------------------------
    def _handle(self, name: str):
        """The open safetensors file holding `name` (opened once per file, memory-mapped)."""
        meta = self.tensors.get(name)
        if meta is None:
            raise CheckpointError(f"{self.path}: no tensor {name!r}")
        handle = self._handles.get(meta.file)
        if handle is None:
            handle = self._handles[meta.file] = safe_open(str(self._inside(meta.file)), framework="pt")
        return handle

    def get(self, name: str) -> torch.Tensor:
        """One tensor's data (memory-mapped by safetensors; copy before mutating)."""
        return self._handle(name).get_tensor(name)

    def get_rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) of one tensor (first dimension), reading only those bytes: lets a
        weight update check and copy a large tensor a bounded chunk at a time."""
        return self._handle(name).get_slice(name)[start:stop]

    def fingerprint(self) -> str:
        """sha256 over the config files and every header: identifies a checkpoint without reading data
        (computed once: reports ask for it on every call)."""
        return self._fingerprint

    @functools.cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.config, sort_keys=True).encode())
        if self.hf_quant_config is not None:
            h.update(json.dumps(self.hf_quant_config, sort_keys=True).encode())
        for name in sorted(self.tensors):
            m = self.tensors[name]
            h.update(f"{name}:{m.dtype}:{m.shape}".encode())
        return h.hexdigest()
