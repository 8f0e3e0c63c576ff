"""Detector tools: ``chemwatch evaluate skab`` and ``chemwatch bench detectors``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_SKAB = Path("..") / "shared" / "datasets" / "skab"


def add_evaluate(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``evaluate skab``."""
    ev = sub.add_parser("evaluate", help="measure detection quality on labelled data")
    ev_sub = ev.add_subparsers(dest="evaluate_what", required=True, metavar="DATASET")
    skab = ev_sub.add_parser(
        "skab",
        help="stream SKAB through the detectors; F1/FAR/MAR, NAB, plots",
        description=__doc__,
    )
    skab.add_argument(
        "--data", type=Path, default=DEFAULT_SKAB, help=f"SKAB folder (default {DEFAULT_SKAB})"
    )
    skab.add_argument("--out", type=Path, default=Path("skab-results"), help="PNG output folder")
    skab.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    skab.add_argument("--files", type=int, default=0, help="only the first N files (0 = all)")
    skab.add_argument("--json", action="store_true", help="print one JSON object")
    skab.set_defaults(func=_evaluate_skab)


def add_bench(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``detectors`` under ``chemwatch bench``."""
    b = sub.add_parser("detectors", help="throughput of the detector suite (one core)")
    b.add_argument("--sensors", type=int, default=10_000)
    b.add_argument("--readings", type=int, default=1_000_000)
    b.add_argument("--batches", type=int, default=10)
    b.add_argument("--reference-readings", type=int, default=20_000)
    b.add_argument("--no-river", action="store_true", help="skip river's equivalents")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="pin to this CPU (default: the first CPU this process may use)",
    )
    b.add_argument(
        "--plot",
        type=Path,
        default=Path("reports") / "bench" / "detectors.png",
        help="PNG bar chart of µs per reading (default reports/bench/detectors.png)",
    )
    b.add_argument("--no-plot", action="store_true", help="skip the PNG")
    b.add_argument(
        "--repeat", type=int, default=3, help="passes over the data; the fastest is reported"
    )
    b.set_defaults(func=_bench)


def _progress(enabled: bool) -> Any:
    def say(msg: str) -> None:
        if enabled:
            print(msg, file=sys.stderr, flush=True)

    return say


def _evaluate_skab(args: argparse.Namespace) -> int:
    from detectors import skab

    say = _progress(True)
    if not (args.data / "data").is_dir():
        print(f"error: no SKAB data under {args.data} (use --data)", file=sys.stderr)
        return 2
    experiments = skab.load(args.data)
    if args.files:
        experiments = experiments[: args.files]
    say(f"streaming {len(experiments)} SKAB files through {len(skab.SPECS)} detectors")
    results = skab.evaluate(experiments)
    if not args.no_plots:
        written = skab.plot(experiments, results, args.out)
        say(f"wrote {len(written)} plots to {args.out}")
    if args.json:
        clean = {k: {kk: vv for kk, vv in v.items() if kk != "_preds"} for k, v in results.items()}
        print(json.dumps(clean))
    else:
        print(skab.table(results))
    return 0


def one_core(cpu: int | None) -> int | None:
    """Pin this process to one CPU and its thread pools to one thread; return the CPU."""
    # Thread-pool sizes are read by the libraries when their pools start (numba's on
    # first parallel use, which the single-threaded kernels never make).
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if not hasattr(os, "sched_setaffinity"):
        return None
    chosen = cpu if cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {chosen})
    return chosen


def _bench(args: argparse.Namespace) -> int:
    one_core(args.cpu)
    from detectors import bench

    say = _progress(True)
    result = bench.run(
        args.sensors,
        args.readings,
        args.batches,
        args.reference_readings,
        river=not args.no_river,
        progress=say,
        repeat=max(args.repeat, 1),
    )
    if not args.no_plot:
        result["plot"] = str(bench.plot(result, args.plot))
        say(f"wrote {result['plot']}")
    print(json.dumps(result) if args.json else bench.table(result))
    return 0


def add_detectors(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``detectors train``."""
    from common.cli import add_common_arguments

    d = sub.add_parser("detectors", help="detector administration (train models)")
    d_sub = d.add_subparsers(dest="detectors_command", required=True, metavar="COMMAND")
    tr = d_sub.add_parser(
        "train", help="fit a unit's PCA T2/Q model on a normal window; store a new version"
    )
    add_common_arguments(tr)
    tr.add_argument("--unit", required=True, help="unit id from the plant registry")
    tr.add_argument("--from", dest="start", required=True, help="window start (ISO 8601)")
    tr.add_argument("--to", dest="end", required=True, help="window end (ISO 8601)")
    tr.add_argument("--variance", type=float, default=0.9, help="variance kept by the PCA")
    tr.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from datetime import datetime

    import psycopg

    from common.migrate import migrate
    from common.process import guarded, settings_from_args
    from common.registry import load_registry
    from common.settings import BaseProcessSettings
    from detectors.train import train_unit

    def main() -> int:
        settings = settings_from_args(BaseProcessSettings, args)
        registry = load_registry(settings.plant)
        start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
        migrate(settings.database)
        with psycopg.connect(settings.database.conninfo()) as conn:
            version, model = train_unit(conn, registry, args.unit, start, end, args.variance)
        print(
            f"{args.unit}: model version {version}, {model.n_train} rows, "
            f"{model.components.shape[1]} of {len(model.sensors)} components, "
            f"T2 limit {model.t2_limit:.3g}, Q limit {model.q_limit:.3g}"
        )
        return 0

    return guarded(main)
