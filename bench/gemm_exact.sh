#!/usr/bin/env bash
# Builds bench/gemm_exact.c with the kernel library (no PostgreSQL) and runs
# it: the exact GEMMs of src/kernels/dlk_gemm.c against OpenBLAS, one thread.
# Arguments go to the program (--lib, --seconds, --quick).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x bench/gemm_exact ] || [ -n "$(find bench/gemm_exact.c src/kernels -newer bench/gemm_exact -print -quit)" ]; then
	cc -O2 -Wall -std=c11 -o bench/gemm_exact bench/gemm_exact.c src/kernels/*.c -ldl -lm -lpthread
fi
exec bench/gemm_exact "$@"
