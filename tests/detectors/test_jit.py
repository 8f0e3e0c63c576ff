"""The guard that keeps numba's kernel cache in step with the kernel sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import detectors
from detectors.jit import KERNEL_MODULES, STAMP, check_cache

SOURCES = Path(detectors.__file__).parent


def test_cached_kernels_are_dropped_when_a_kernel_source_changes(tmp_path: Path) -> None:
    pkg = tmp_path / "detectors"
    pkg.mkdir()
    for name in KERNEL_MODULES:
        shutil.copy(SOURCES / f"{name}.py", pkg / f"{name}.py")
    cache = pkg / "__pycache__"
    cache.mkdir()
    check_cache(pkg)
    assert (cache / STAMP).exists()
    (cache / "limits._limits-1.py311.nbi").write_bytes(b"index")
    (cache / "limits._limits-1.py311.1.nbc").write_bytes(b"code")
    assert not check_cache(pkg)  # sources unchanged: the cache stays
    assert len(list(cache.glob("*.nb?"))) == 2
    with (pkg / "decision.py").open("a") as f:  # a callee changes, not the kernel's file
        f.write("\n# edited\n")
    assert check_cache(pkg)
    assert list(cache.glob("*.nb?")) == []
    assert not check_cache(pkg)
