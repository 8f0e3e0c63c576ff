"""The decision layer shared by every detector: score in, condition transitions out.

A detector scores readings; this layer turns the per-reading verdicts ``set`` (score
past the threshold) and ``reset`` (score back past threshold and deadband) into alarm
transitions, per sensor, with ISA-18.2 practice:

1. k-of-n: ``set`` counts only when at least k of the sensor's last n readings set.
2. Deadband (hysteresis): the latched condition turns on at ``set`` and off at ``reset``;
   in between it holds.
3. On-delay / off-delay in source time: the alarm goes active once the latched condition
   has held for ``on_delay`` since it turned on (judged at each reading), and clears once
   it has been off for ``off_delay``. A run shorter than its delay changes nothing.

State per sensor (arrays): latched condition, start of the current run, activation time
of the alarm (0 = inactive) and a bit history of the last n-1 ``set`` verdicts.

The step is one compiled function (:func:`step`, numba) that the detectors' kernels call
for each reading as they walk the sensor-sorted batch; a detector's conditions share one
:class:`Bank` (2-D state arrays, condition x sensor) whose rows are the
:class:`Decision` objects' arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from detectors.jit import KERNEL

MAX_WINDOW = 64  # k-of-n history lives in one uint64 per sensor
_FIELDS = ("latch", "run_start", "active_since", "hist")

# ``active_since`` of an alarm activated at time 0 (0 itself means inactive).
AT_ZERO = np.iinfo(np.int64).min


class Decision:
    """Alarm decisions of one condition for every sensor (state held as arrays)."""

    def __init__(
        self,
        n: int,
        on_delay_s: np.ndarray | float = 0.0,
        off_delay_s: np.ndarray | float = 0.0,
        k: int = 1,
        window: int = 1,
    ) -> None:
        if not 1 <= k <= window <= MAX_WINDOW:
            raise ValueError(f"k-of-n needs 1 <= k <= n <= {MAX_WINDOW}, got {k}-of-{window}")
        self.on_ns = np.round(np.broadcast_to(on_delay_s, (n,)) * 1e9).astype(np.int64)
        self.off_ns = np.round(np.broadcast_to(off_delay_s, (n,)) * 1e9).astype(np.int64)
        self.k, self.window = k, window
        self.latch = np.zeros(n, bool)
        self.run_start = np.zeros(n, np.int64)
        self.active_since = np.zeros(n, np.int64)  # 0 = inactive
        self.hist = np.zeros(n, np.uint64)

    def state(self) -> dict[str, np.ndarray]:
        """The arrays a snapshot must hold (first axis = sensor)."""
        return {
            "latch": self.latch,
            "run_start": self.run_start,
            "active_since": self.active_since,
            "hist": self.hist,
        }

    def decide(
        self, s: np.ndarray, t: np.ndarray, set_: np.ndarray, reset: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance with rows sorted by (sensor, time); return (rows, rises, activated_ns).

        ``rows`` index the transitions; ``rises`` is True for "became active", False for
        "cleared"; ``activated_ns`` is the activation time of the occurrence.
        """
        # One condition: its arrays as a (1, n) bank (views, no copy).
        dec = (
            *(getattr(self, f)[None, :] for f in _FIELDS),
            self.on_ns[None, :],
            self.off_ns[None, :],
            np.array([self.k], np.int64),
            np.array([self.window], np.int64),
        )
        rows = np.empty(len(s), np.int64)
        rises = np.empty(len(s), bool)
        activated = np.empty(len(s), np.int64)
        k = _decide_rows(
            dec,
            np.ascontiguousarray(s, np.int64),
            np.ascontiguousarray(t, np.int64),
            np.ascontiguousarray(set_, np.bool_),
            np.ascontiguousarray(reset, np.bool_),
            rows,
            rises,
            activated,
        )
        return rows[:k], rises[:k], activated[:k]


class Bank:
    """The decisions of one detector's conditions as 2-D arrays (condition x sensor).

    Building a bank copies each decision's state into the 2-D arrays and rebinds the
    decision's arrays to rows of them (views), so snapshots, restores and resets through
    the :class:`Decision` objects keep working on the same memory the kernels update.
    """

    def __init__(self, decisions: list[Decision]) -> None:
        self.decisions = list(decisions)
        stacked = []
        for f in _FIELDS:
            arr = np.stack([getattr(d, f) for d in decisions])
            for i, d in enumerate(decisions):
                setattr(d, f, arr[i])
            stacked.append(arr)
        self.arrays: tuple[Any, ...] = (
            *stacked,
            np.stack([d.on_ns for d in decisions]),
            np.stack([d.off_ns for d in decisions]),
            np.array([d.k for d in decisions], np.int64),
            np.array([d.window for d in decisions], np.int64),
        )

    def current(self, decisions: list[Decision]) -> bool:
        """Whether this bank still holds exactly these decision objects."""
        return len(decisions) == len(self.decisions) and all(
            a is b for a, b in zip(decisions, self.decisions, strict=True)
        )


@njit(**KERNEL)
def step(dec, c, s, t, set_, reset):
    """One reading of sensor ``s`` through condition ``c``'s decision.

    Returns 1 (became active at ``t``), -1 (cleared; the occurrence's activation time is
    then returned too) or 0, and the activation time.
    """
    latch, run_start, since, hist, on_ns, off_ns, k, window = dec
    w = window[c]
    if w > 1:
        mask = (np.uint64(1) << np.uint64(w - 1)) - np.uint64(1)
        h = hist[c, s]
        count = set_ + _popcount(h & mask)
        hist[c, s] = ((h << np.uint64(1)) | np.uint64(set_)) & mask
        set_ = count >= k[c]
    reset = reset and not set_
    old = latch[c, s]
    new = set_ or (old and not reset)
    if new != old:
        run_start[c, s] = t
        latch[c, s] = new
    elapsed = t - run_start[c, s]
    act = since[c, s]
    if new and act == 0 and elapsed >= on_ns[c, s]:
        since[c, s] = t if t != 0 else AT_ZERO
        return 1, t
    if not new and act != 0 and elapsed >= off_ns[c, s]:
        since[c, s] = 0
        return -1, act if act != AT_ZERO else 0
    return 0, act


@njit(**KERNEL)
def idle(dec, c, s):
    """Whether condition ``c`` of sensor ``s`` is at rest: a step without ``set`` is a no-op.

    At rest = not latched, not active, no ``set`` in the k-of-n history. Kernels skip the
    step for readings that do not set a resting condition (most readings, most of the
    time), and use this after each step they do take.
    """
    latch, _, since, hist, _, _, _, _ = dec
    return not latch[c, s] and since[c, s] == 0 and hist[c, s] == 0


@njit(**KERNEL)
def _popcount(x):
    n = 0
    while x:
        x &= x - np.uint64(1)
        n += 1
    return n


def new_out(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Output buffers for at most ``rows`` transitions.

    One row per transition. Integers: sensor, condition, rises (0/1), ts, activated;
    floats: value, threshold. Sized for the worst case (every reading a transition of
    every condition): untouched pages of ``np.empty`` cost no memory, and a buffer that
    never grows keeps the kernels small (numba compiles a growable one several times
    slower).
    """
    return np.empty((rows, 5), np.int64), np.empty((rows, 2), np.float64)


@njit(**KERNEL)
def emit(ib, fb, k, s, c, rise, ts, act, value, threshold):
    """Write one transition at row ``k``."""
    ib[k, 0] = s
    ib[k, 1] = c
    ib[k, 2] = rise
    ib[k, 3] = ts
    ib[k, 4] = act
    fb[k, 0] = value
    fb[k, 1] = threshold


@njit(**KERNEL)
def _decide_rows(dec, s, t, set_, reset, rows, rises, activated):
    k = 0
    for i in range(len(s)):
        code, act = step(dec, 0, s[i], t[i], set_[i], reset[i])
        if code != 0:
            rows[k] = i
            rises[k] = code > 0
            activated[k] = act
            k += 1
    return k


def reference_decide(
    state: dict[str, Any],
    t: int,
    set_: bool,
    reset: bool,
    on_ns: int,
    off_ns: int,
    k: int = 1,
    window: int = 1,
) -> tuple[bool, bool, int] | None:
    """Per-reading reference of :meth:`Decision.decide` (tests and benchmarks only).

    ``state`` is one sensor's dict; returns (is_transition, rises, activated) or None.
    """
    hist: list[bool] = state.setdefault("hist", [])
    if window > 1:
        recent = [*hist[-(window - 1) :], set_]
        hist.append(set_)
        del hist[: -(window - 1)]
        set_ = sum(recent) >= k
    reset = reset and not set_
    latch = state.get("latch", False)
    new_latch = True if set_ else (False if reset else latch)
    if new_latch != latch:
        state["run_start"] = t
    state["latch"] = new_latch
    elapsed = t - state.get("run_start", 0)
    since = state.get("since", 0)
    active = since != 0
    if new_latch and elapsed >= on_ns and not active:
        state["since"] = t
        return (True, True, t)
    if not new_latch and elapsed >= off_ns and active:
        state["since"] = 0
        return (True, False, since)
    return None
