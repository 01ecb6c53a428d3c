#!/usr/bin/env bash
# Nightly on a ROCm GPU: kernel cases with --hardware rocm, then all cases.
set -euo pipefail
out="${QCERT_OUT:-out/nightly-rocm}"
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available() and torch.version.hip is not None, 'no ROCm device'"
python -m pytest src/qcert/conformance/cases/test_kernels.py -k gpu --hardware rocm -n 4 -rs \
  --qcert-json "$out/kernels.json" --qcert-junit "$out/kernels.xml" 2>&1 | tee "$out/kernels.log"
qcert run --hardware rocm 2>&1 | tee "$out/run.log"
qcert fixtures build "$out/kimi-k2.5-quark-mxfp4" --family kimi-k2.5 --format quark-mxfp4
qcert certify "$out/kimi-k2.5-quark-mxfp4" --hardware rocm --markdown "$out/certify.md" --json "$out/certify.json" \
  2>&1 | tee "$out/certify.log"
qcert selftest --hardware rocm --json "$out/selftest.json" 2>&1 | tee "$out/selftest.log"
