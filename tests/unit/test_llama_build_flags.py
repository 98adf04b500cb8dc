"""scripts/llama-cmake-args.sh: llama.cpp is built only with the extensions the CPU lists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "llama-cmake-args.sh"
BASE = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c"
# What /proc/cpuinfo lists on the two hosts these machines came as (SIMD flags only).
AVX512 = "avx512f avx512dq avx512bw avx512vl avx512vbmi avx512_vnni avx512_bf16"
INTEL_SAPPHIRE_RAPIDS = f"{BASE} avx_vnni {AVX512} amx_tile"
AMD_EPYC_ZEN4 = f"{BASE} {AVX512}"


def cmake_args(tmp_path: Path, flags: str) -> set[str]:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\nbugs\t\t:\n")
    out = subprocess.run(["bash", str(SCRIPT), str(cpuinfo)], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize(
    ("flags", "on", "off"),
    [
        (INTEL_SAPPHIRE_RAPIDS, {"GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX_VNNI"}, set()),
        # Zen 4 has AVX512-VNNI but not AVX-VNNI: building with the latter crashed at the first prompt.
        (AMD_EPYC_ZEN4, {"GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX512_BF16"}, {"GGML_AVX_VNNI"}),
        (BASE, {"GGML_AVX2", "GGML_FMA"}, {"GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX_VNNI"}),
    ],
)
def test_extensions_follow_the_cpu(tmp_path: Path, flags: str, on: set[str], off: set[str]) -> None:
    args = cmake_args(tmp_path, flags)
    assert {f"-D{name}=ON" for name in on} <= args
    assert {f"-D{name}=OFF" for name in off} <= args
    assert "-DGGML_NATIVE=OFF" in args
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= args  # never AMX


def test_a_flag_is_matched_whole(tmp_path: Path) -> None:
    """``avx512_vnni`` must not switch on AVX-VNNI (``avx_vnni``), nor ``avx512f`` count as ``avx``."""
    args = cmake_args(tmp_path, "avx512f avx512_vnni")
    assert "-DGGML_AVX_VNNI=OFF" in args
    assert "-DGGML_AVX=OFF" in args
