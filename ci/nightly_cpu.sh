#!/usr/bin/env bash
# Nightly on a CPU machine: every case and test with many hypothesis examples, the slow tests
# (full-size replica certification), the interpreted triton kernels, and the mutant selftest.
# Results land in ${QCERT_OUT:-out/nightly-cpu}.
set -euo pipefail
out="${QCERT_OUT:-out/nightly-cpu}"
mkdir -p "$out"
python -m pytest -n "${QCERT_WORKERS:-2}" -m "slow or not slow" --hypothesis-profile nightly \
  --qcert-json "$out/cases.json" --qcert-junit "$out/cases.xml" --qcert-markdown "$out/cases.md" \
  2>&1 | tee "$out/pytest.log"
qcert selftest --json "$out/selftest.json" 2>&1 | tee "$out/selftest.log"
