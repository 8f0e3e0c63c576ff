"""The decision layer shared by every detector: score in, condition transitions out.

A detector scores readings; this layer turns the per-reading verdicts ``set`` (score
past the threshold) and ``reset`` (score back past threshold and deadband) into alarm
transitions, per sensor, with ISA-18.2 practice:

1. k-of-n: ``set`` counts only when at least k of the sensor's last n readings set.
2. Deadband (hysteresis): the latched condition turns on at ``set`` and off at ``reset``;
   in between it holds (a forward fill over the sensor's rows).
3. On-delay / off-delay in source time: the alarm goes active once the latched condition
   has held for ``on_delay`` since it turned on (judged at each reading), and clears once
   it has been off for ``off_delay``. A run shorter than its delay changes nothing, so the
   alarm state is again a forward fill, over the rows where a run "qualifies".

State per sensor (arrays): latched condition, start of the current run, activation time
of the alarm (0 = inactive) and a bit history of the last n-1 ``set`` verdicts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.batch import ffill, group_ends, group_starts, position, previous, segmented_cumsum

MAX_WINDOW = 64  # k-of-n history lives in one uint64 per sensor


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
        if len(s) == 0:
            e = np.array([], np.int64)
            return e, np.array([], bool), e
        starts, ends = group_starts(s), group_ends(s)
        set_ = np.asarray(set_, bool)
        if self.window > 1:
            set_ = self._k_of_n(s, set_, starts, ends)
        reset = np.asarray(reset, bool) & ~set_
        latch0 = self.latch[s]
        latch = ffill(set_ | reset, set_, starts, latch0)
        change = latch != previous(latch, starts, latch0)
        run_start = ffill(change, t, starts, self.run_start[s])
        elapsed = t - run_start
        q_on = latch & (elapsed >= self.on_ns[s])
        q_off = ~latch & (elapsed >= self.off_ns[s])
        since0 = self.active_since[s]
        out = ffill(q_on | q_off, q_on, starts, since0 != 0)
        prev = previous(out, starts, since0 != 0)
        rises, falls = out & ~prev, ~out & prev
        activated = ffill(rises, t, starts, since0)
        last = s[ends]
        self.latch[last] = latch[ends]
        self.run_start[last] = run_start[ends]
        self.active_since[last] = np.where(out[ends], activated[ends], 0)
        rows = np.flatnonzero(rises | falls)
        return rows, rises[rows], activated[rows]

    def _k_of_n(
        self, s: np.ndarray, flags: np.ndarray, starts: np.ndarray, ends: np.ndarray
    ) -> np.ndarray:
        n, k = self.window, self.k
        pos = position(starts)
        cs = segmented_cumsum(flags.astype(np.float64), starts)
        back = np.arange(len(s)) - n
        inside = pos >= n
        count = cs - np.where(inside, cs[np.maximum(back, 0)], 0.0)
        need = np.clip(n - 1 - pos, 0, n - 1).astype(np.uint64)  # history bits still in window
        mask = (np.uint64(1) << need) - np.uint64(1)
        count += np.bitwise_count(self.hist[s] & mask)
        hit = count >= k
        # New history: bit j = the verdict j readings before the group's last one.
        end_rows = np.flatnonzero(ends)
        length = pos[end_rows] + 1
        old = self.hist[s[end_rows]]
        new = np.zeros(len(end_rows), np.uint64)
        for j in range(n - 1):  # loop over history bits, not readings
            from_batch = j < length
            bit_batch = flags[np.maximum(end_rows - j, 0)].astype(np.uint64)
            shift = np.clip(j - length, 0, 63).astype(np.uint64)
            bit_old = (old >> shift) & np.uint64(1)
            bit = np.where(from_batch, bit_batch, bit_old)
            new |= bit << np.uint64(j)
        self.hist[s[end_rows]] = new
        return np.asarray(hit, bool)


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
