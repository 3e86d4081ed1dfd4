"""The numerically sensitive tests (marker ``numerics``) under every CPU code path torch takes.

Those tests compare two code paths' floats: a stacked model and the same model run alone,
vmap and the hand-batched MLP, a Flower client and the simulation. The paths round apart,
training amplifies it, and by how much depends on the kernels the CPU gets: ATen dispatches
its vectorized kernels by capability (DEFAULT, AVX2, AVX512), MKL (torch's BLAS in the
x86-64 wheels) its GEMMs by instruction set and CBWR mode, oneDNN its convolutions by ISA.
A bound tuned on one CPU failed on another twice (1e-5 against 6.3e-5 with AVX-512,
1e-6 against 3.1e-6 on CI's machine), so this test reruns the marked tests with each library
held to another instruction set: an AVX-512 machine also checks what an AVX2-only and a
baseline x86-64 CPU compute. Each run asserts that its process really ran those kernels.
All variants together take about two minutes on two cores.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REPORT_ENV = "AUDIT_CPU_PATHS_REPORT"
"""Where the ``numerics`` run of a variant writes what its process ran (JSON)."""
CONTROLS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
            "MKL_VERBOSE", "ONEDNN_VERBOSE", "DNNL_VERBOSE", "PYTEST_ADDOPTS")  # fmt: skip
"""Variables that pick kernels (or change pytest's run): cleared before each variant sets its own."""


def cpu_flags() -> set[str]:
    return set(_cpuinfo("flags").split())


def cpu_vendor() -> str:
    """GenuineIntel, AuthenticAMD, ... ('' where /proc/cpuinfo does not say)."""
    return _cpuinfo("vendor_id").strip()


def _cpuinfo(field: str) -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    line = next((ln for ln in text.splitlines() if ln.split(":")[0].strip() == field), "")
    return line.partition(":")[2]


# (id, variables, what the run must report, CPU flags it needs). ATen's AVX512 kernels need
# AVX-512 F/BW/VL/DQ; asked for more than the CPU has, ATen quietly falls back, so such a
# variant is skipped rather than run as something it is not.
AVX2 = ("avx2", "fma")
AVX512 = ("avx512f", "avx512bw", "avx512vl", "avx512dq")
VARIANTS = [
    ("aten-default", {"ATEN_CPU_CAPABILITY": "default"}, {"aten": "DEFAULT"}, ()),
    ("aten-avx2", {"ATEN_CPU_CAPABILITY": "avx2"}, {"aten": "AVX2"}, AVX2),
    ("aten-avx512", {"ATEN_CPU_CAPABILITY": "avx512"}, {"aten": "AVX512"}, AVX512),
    ("onednn-sse41", {"ONEDNN_MAX_CPU_ISA": "SSE41"}, {"onednn": "isa:Intel SSE4.1"}, ()),
    ("onednn-avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"onednn": "isa:Intel AVX2"}, AVX2),
    ("mkl-avx2", {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, {"mkl": "Intel(R) AVX2) enabled processors"}, AVX2),
    ("mkl-compatible", {"MKL_CBWR": "COMPATIBLE"}, {"mkl": "CNR:COMPATIBLE"}, ()),
]


def _stdout_of(fn) -> str:
    """What ``fn`` writes to file descriptor 1 (MKL and oneDNN print there, not to sys.stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def code_paths() -> dict[str, str | None]:
    """The kernels this process runs: ATen's capability, MKL's and oneDNN's verbose lines.
    The libraries print their ISA the first time verbose mode is on in a process."""

    def gemm():
        with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
            torch.mm(torch.randn(64, 32), torch.randn(32, 16))

    def conv():  # a grouped convolution: what vmap makes of a stacked CNN; oneDNN runs it
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            torch.nn.functional.conv2d(torch.randn(4, 4, 8, 8), torch.randn(8, 2, 3, 3), groups=2)

    mkl = _stdout_of(gemm) if torch.backends.mkl.is_available() else ""
    onednn = _stdout_of(conv) if torch.backends.mkldnn.is_available() else ""
    return {
        "aten": torch.backends.cpu.get_cpu_capability(),
        "mkl": " ".join(ln for ln in mkl.splitlines() if ln.startswith("MKL_VERBOSE")) or None,
        "onednn": " ".join(ln for ln in onednn.splitlines() if ",info,cpu," in ln) or None,
    }


@pytest.mark.numerics
def test_the_cpu_code_paths_in_use():
    """Runs with the other numerics tests: reports (to the variant's parent) what ran."""
    paths = code_paths()
    assert paths["aten"] in {"DEFAULT", "AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX", "ZVECTOR", "SVE256",
                             "SVE128", "VSX"}, paths  # fmt: skip
    if os.environ.get(REPORT_ENV):
        Path(os.environ[REPORT_ENV]).write_text(json.dumps(paths))


@pytest.mark.slow
@pytest.mark.parametrize("name,variables,expect,needs", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_numerics_under_every_cpu_code_path(tmp_path, name, variables, expect, needs):
    if os.environ.get(REPORT_ENV):
        pytest.skip("inside a variant's run: no recursion")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"the variants are x86-64 instruction sets; this is {platform.machine()}")
    missing = [f for f in needs if f not in cpu_flags()]
    if missing:
        pytest.skip(f"{name}: this CPU lacks {', '.join(missing)} (per /proc/cpuinfo), so the library would "
                    "quietly run an older instruction set instead")  # fmt: skip
    if "mkl" in expect and not torch.backends.mkl.is_available():
        pytest.skip(f"{name}: this torch does not use MKL")
    if "MKL_ENABLE_INSTRUCTIONS" in variables and cpu_vendor() != "GenuineIntel":
        # Measured on an AMD EPYC: MKL reports "Intel(R) Architecture processors" (its
        # generic path) with or without the variable; the default run covers that path.
        pytest.skip(f"{name}: MKL picks its kernels by instruction set only on Intel CPUs; on this "
                    f"{cpu_vendor() or 'unknown'} CPU it runs its generic path whatever MKL_ENABLE_INSTRUCTIONS "
                    "says")  # fmt: skip
    if "onednn" in expect and not torch.backends.mkldnn.is_available():
        pytest.skip(f"{name}: this torch has no oneDNN")
    report = tmp_path / "paths.json"
    env = {k: v for k, v in os.environ.items() if k not in CONTROLS}
    env.update(variables, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **{REPORT_ENV: str(report)})
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "numerics",
           "--deselect", "tests/test_cpu_code_paths.py::test_numerics_under_every_cpu_code_path"]  # fmt: skip
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    tail = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, f"{name} ({variables}): the numerics tests failed\n{tail}"
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) >= 40, f"{name}: too few numerics tests ran\n{tail}"
    assert report.is_file(), f"{name}: test_the_cpu_code_paths_in_use did not run\n{tail}"
    paths = json.loads(report.read_text())
    for library, want in expect.items():
        got = paths[library]
        assert got is not None and (got == want if library == "aten" else want in got), (
            f"{name}: {variables} was set but {library} reported {got!r}, not {want!r}"
        )
