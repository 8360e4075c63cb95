"""What the teacher benchmark records about its host: load average, whether a GPU is there, the CPU."""

from __future__ import annotations

import os
from pathlib import Path


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def has_gpu() -> bool:
    from shutil import which

    return which("nvidia-smi") is not None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
                return f"{line.split(':', 1)[1].strip()} ({isa})"
    except OSError:
        pass
    return "unknown CPU"
