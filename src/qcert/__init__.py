"""qcert: a conformance suite for loading quantized checkpoints, and the reference engine it drives.

Subpackages: conformance (cases, mutants, harness), engine, kernels, fixtures. The sources live
under src/ so that the repository root on sys.path (as `python -m pytest` puts it) cannot shadow
installed distributions that share a subpackage's short name (`kernels` is a transformers
dependency).
"""
