#!/usr/bin/env bash
# One device call (the device tool's H100): install qcert, then the named stages, results under $OUT.
#   bench: bench/bench_kernels.py     run: the full hardware run (qcert run --hardware cuda)
#   tests: the GPU-only kernel unit tests: tensor-core GEMV (plain and tile layout; bf16 and fp16), the other GEMV/GEMM
#          kernels compiled (split K; the fp16 tf32 and fp32 tf32x2 dots), compiled MoE routing, MoE in a CUDA graph (interpreted ones
#          stay in CPU CI: triton < 3.9's interpreter breaks compiled launches later in the same process)
#   wgmma: bench/wgmma_probe.py: the warpgroup-MMA GEMV's numbers and times against the mma.sync one
#   moesweep: prefill MoE tile configs (bench_kernels.py, BENCH_ONLY=moe_sweep)
#   probe: flashinfer's fp4 quantize on this GPU (bench/flashinfer_fp4_probe.py)
#   ncu: Nsight Compute on the tile-layout GEMV at M = 8 and 16 and the warpgroup-MMA one at M = 16 (MXFP4,
#        default configs): what M = 16 spends its time on (pipes, stall reasons per issued instruction,
#        occupancy, L1) next to M = 8
#   selftest: qcert selftest --hardware cuda (every mutant, or SELFTEST_ARGS="--mutant ID"; the GPU cases they
#             name run here)
#   certify: qcert certify --hardware cuda on a Kimi-K2.5 Quark MXFP4 fixture built here
#   configs: bench/gemv_configs.py: the GEMV's default config against others at M = 16 over shapes,
#        and the MoE decode's warps per grouped GEMM (MXFP4); CONFIGS_SHAPES=8192x8192: M = 16 at those
#        shapes only, MXFP4 and NVFP4
#   ab: bench/gemv_ab.py: the bf16 GEMV with .carry/old's code (an older tree's src/ and bench/, carried)
#       and this tree's, on the same machine
# flashinfer travels as .carry/fi/site.tar.xz (flashinfer-python 0.7.2 + apache-tvm-ffi, unpacked
# wheels); it is unpacked onto PYTHONPATH when present.
set -o pipefail
export PYTHONUNBUFFERED=1
out="${OUT:-out/device}"
mkdir -p "$out"
log="$out/log"
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -3 | tee -a "$log"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}  # in case the image's setuptools maps the editable src layout badly
if [ -f .carry/fi/site.tar.xz ]; then
  mkdir -p /tmp/fi && tar -C /tmp/fi -xJf .carry/fi/site.tar.xz && export PYTHONPATH=/tmp/fi${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee -a "$log"
python3 -c "import torch, triton, qcert; print('torch', torch.__version__, 'triton', triton.__version__, 'qcert', qcert.__file__)" 2>&1 | tee -a "$log"
python3 -c "import flashinfer; print('flashinfer', flashinfer.__version__)" 2>&1 | tail -1 | tee -a "$log"
for stage in "$@"; do
  start=$(date +%s)
  echo "=== stage $stage" | tee -a "$log"
  case "$stage" in
    bench) timeout "${BENCH_S:-420}" python3 bench/bench_kernels.py --out "$out/bench.md" 2>&1 | tee -a "$log" ;;
    kernels) timeout "${KERNELS_S:-200}" python3 -m pytest src/qcert/conformance/cases/test_kernels.py -k gpu --hardware cuda \
               -n 4 -rs -q 2>&1 | tail -40 | tee -a "$log" ;;
    run) timeout "${RUN_S:-300}" python3 -m qcert.conformance.cli run --hardware cuda -n 8 --json "$out/cuda.json" \
           --junit "$out/cuda.xml" --markdown "$out/cuda.md" 2>&1 | tail -60 | tee -a "$log" ;;
    tests) timeout "${TESTS_S:-200}" python3 -m pytest tests/kernels/test_fp4_gemv.py tests/kernels/test_fp4_gemm_split.py tests/kernels/test_dot_precision.py \
             tests/kernels/test_moe_routing.py -q -n 4 -k "(mma or graph or cuda or tiles or dot_precision) and not interpreted" 2>&1 | tail -15 | tee -a "$log" ;;
    wgmma) timeout "${WGMMA_S:-240}" python3 bench/wgmma_probe.py ${WGMMA_ARGS:-} 2>&1 | tee "$out/wgmma.txt" | tee -a "$log" ;;
    moesweep) timeout "${MOESWEEP_S:-150}" env BENCH_ONLY=moe_sweep python3 bench/bench_kernels.py --out "$out/moe_sweep.md" 2>&1 | tee -a "$log" ;;
    selftest) timeout "${SELFTEST_S:-300}" python3 -m qcert.conformance.cli selftest --hardware cuda --workers 4 \
                --json "$out/selftest.json" ${SELFTEST_ARGS:-} 2>&1 | tail -12 | tee -a "$log" ;;
    certify) { python3 -m qcert.conformance.cli fixtures build /tmp/kimi --family kimi-k2.5 --format quark-mxfp4 &&
               timeout "${CERTIFY_S:-200}" python3 -m qcert.conformance.cli certify /tmp/kimi --hardware cuda \
                 --markdown "$out/certify.md" --json "$out/certify.json"; } 2>&1 | tail -15 | tee -a "$log" ;;
    configs) if [ -n "${CONFIGS_SHAPES:-}" ]; then  # M = 16 at these shapes only, both formats
               for kind in mxfp4 nvfp4; do
                 timeout "${CONFIGS_S:-150}" python3 bench/gemv_configs.py --kind $kind --m 16 --shapes "$CONFIGS_SHAPES"
               done
             else
               timeout "${CONFIGS_S:-150}" python3 bench/gemv_configs.py --kind mxfp4 --m 16
               timeout "${CONFIGS_S:-150}" python3 bench/gemv_configs.py --kind mxfp4 --moe 1,16
             fi 2>&1 | tee -a "$log" ;;
    ab) timeout "${AB_S:-120}" python3 bench/gemv_ab.py .carry/old . 2>&1 | tee "$out/ab.md" | tee -a "$log" ;;
    probe) timeout "${PROBE_S:-120}" python3 bench/flashinfer_fp4_probe.py 2>&1 | tail -8 | tee -a "$log" ;;
    ncu) metrics="regex:smsp__average_warps_issue_stalled_[a-z_]+_per_issue_active\.ratio"
         metrics+=",regex:sm__inst_executed_pipe_[a-z_]+\.avg\.pct_of_peak_sustained_active"
         metrics+=",sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__warps_active.avg.per_cycle_active"
         metrics+=",breakdown:l1tex__throughput.avg.pct_of_peak_sustained_elapsed,l1tex__t_sector_hit_rate.pct"
         metrics+=",l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__inst_executed.sum,launch__registers_per_thread"
         for run in 8 16 16w; do  # 16w: the warpgroup-MMA GEMV; the stage's rc is the last echo's, each run's on its line
           m=${run%w}; what=--tiled; [ "$run" = 16w ] && what=--wgmma
           timeout "${NCU_S:-90}" ncu --kernel-name "regex:fp4_(gemv|wgmma)" --launch-skip 2 --launch-count 1 \
             --section SpeedOfLight --section Occupancy --section SchedulerStats --metrics "$metrics" \
             python3 bench/gemv_profile.py --kind mxfp4 --m "$m" $what > "$out/ncu_m$run.txt" 2>&1
           echo "ncu M=$run: rc $?, $(wc -l < "$out/ncu_m$run.txt") lines in ncu_m$run.txt" | tee -a "$log"
         done ;;
  esac
  echo "=== stage $stage: rc ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s" | tee -a "$log"
done
