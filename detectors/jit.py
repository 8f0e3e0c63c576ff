"""Guard against stale compiled kernels in numba's on-disk cache.

The detector kernels are compiled with ``@njit(**KERNEL)`` (cache=True): the first process compiles
them (seconds) and later ones load the machine code from ``detectors/__pycache__``.
numba keys that cache on each kernel's own source file only, so editing a function a
kernel calls from another file (the decision step, say) would leave the old code in use.
:func:`check_cache` drops the cached kernels whenever any kernel source changed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Options of every per-reading kernel. ``_nrt=False``: no reference counting, so passing
# state arrays to the decision step costs nothing per call (with it, the atomic
# increments and decrements made one step ~100 ns instead of a few); these kernels
# allocate nothing and get their output buffers from the caller.
KERNEL = {"cache": True, "nogil": True, "_nrt": False}

KERNEL_MODULES = ("batch", "decision", "limits", "rate", "drift", "health", "exposure")
STAMP = "numba-kernels.sha256"


def check_cache(package: Path | None = None) -> bool:
    """Drop cached kernels if the kernel sources changed; True if it dropped any."""
    here = package or Path(__file__).parent
    digest = hashlib.sha256()
    for name in KERNEL_MODULES:
        digest.update((here / f"{name}.py").read_bytes())
    cache = here / "__pycache__"
    stamp = cache / STAMP
    try:
        if stamp.read_text() == digest.hexdigest():
            return False
    except OSError:
        pass  # no stamp yet
    dropped = False
    for f in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
        f.unlink(missing_ok=True)
        dropped = True
    try:
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError:
        pass  # read-only install: numba then caches elsewhere or not at all
    return dropped
