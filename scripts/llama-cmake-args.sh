#!/usr/bin/env bash
# Print the CMake arguments that build llama.cpp for this CPU: scripts/setup.sh uses them.
# Usage: scripts/llama-cmake-args.sh [CPUINFO_FILE]   (default /proc/cpuinfo)
#
# Not -march=native: the native build crashed on every multi-token prompt on AVX-512/AMX machines (AMX
# tiles are not usable in the VM), so AMX stays off. Each other extension is on only when the CPU lists
# it: AVX-512 gave 4.5x the AVX2 build's speed on an Intel host, and an extension the CPU lacks is an
# "Illegal instruction" at the first prompt (AVX-VNNI on AMD EPYC Zen 4, which has AVX512-VNNI only).
set -euo pipefail
cpu_flags=" $(grep -m1 '^flags' "${1:-/proc/cpuinfo}" 2>/dev/null | cut -d: -f2) "
on_if() {  # on_if GGML_OPTION CPUINFO_FLAG
  if [[ "$cpu_flags" == *" $2 "* ]]; then printf -- '-D%s=ON ' "$1"; else printf -- '-D%s=OFF ' "$1"; fi
}
printf -- '-DGGML_NATIVE=OFF '
on_if GGML_AVX avx
on_if GGML_AVX2 avx2
on_if GGML_FMA fma
on_if GGML_F16C f16c
on_if GGML_AVX512 avx512f
on_if GGML_AVX512_VBMI avx512vbmi
on_if GGML_AVX512_VNNI avx512_vnni
on_if GGML_AVX512_BF16 avx512_bf16
on_if GGML_AVX_VNNI avx_vnni
printf -- '-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF\n'
