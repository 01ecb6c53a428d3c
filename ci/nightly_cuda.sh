#!/usr/bin/env bash
# Nightly on a CUDA GPU: kernel cases on the device (and interpreted), all cases, flashinfer probes, the benchmark.
# Results land in ${QCERT_OUT:-out/nightly-cuda}.
set -euo pipefail
out="${QCERT_OUT:-out/nightly-cuda}"
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available() and torch.version.hip is None, 'no CUDA device'"
# GPU kernel cases alone first (quick signal); in hardware runs the interpreted CPU kernel cases skip
# themselves where triton < 3.9 would break compiled kernels in the same process.
python -m pytest src/qcert/conformance/cases/test_kernels.py -k gpu --hardware cuda -n 4 -rs \
  --qcert-json "$out/kernels.json" --qcert-junit "$out/kernels.xml" 2>&1 | tee "$out/kernels.log"
qcert run --hardware cuda --json "$out/cuda.json" --junit "$out/cuda.xml" --markdown "$out/cuda.md" 2>&1 | tee "$out/run.log"
# a vendor's certification on the GPU: a fixture checkpoint loaded, run and reloaded on the device
qcert fixtures build "$out/kimi-k2.5-quark-mxfp4" --family kimi-k2.5 --format quark-mxfp4
qcert certify "$out/kimi-k2.5-quark-mxfp4" --hardware cuda --markdown "$out/certify.md" --json "$out/certify.json" \
  2>&1 | tee "$out/certify.log"
# every mutant, the GPU cases they name included
qcert selftest --hardware cuda --json "$out/selftest.json" 2>&1 | tee "$out/selftest.log"
# informative: flashinfer's fp4_quantize is a silent no-op before sm100 (the log shows it)
python bench/flashinfer_fp4_probe.py 2>&1 | tee "$out/flashinfer_probe.log" || true
# a check: qcert's TRT-LLM FP4 MoE layout must equal flashinfer's own preparation (skips without flashinfer)
python bench/flashinfer_layout_probe.py 2>&1 | tee "$out/flashinfer_layout.log"
python bench/bench_kernels.py --out "$out/bench.md" 2>&1 | tee "$out/bench.log"
