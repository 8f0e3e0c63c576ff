"""What every long-running process needs: logging, /metrics + /healthz, clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

log = logging.getLogger(__name__)


def setup_logging(level: str) -> None:
    """One-line log records with time, level and logger name."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds would flood the log."""


class HealthServer:
    """Serves ``/metrics`` (Prometheus) and ``/healthz`` from a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        healthy: Callable[[], bool],
        details: Callable[[], dict[str, object]] | None = None,
    ) -> None:
        """``details``, when given, is served as the JSON body of /healthz."""
        metrics = make_wsgi_app()

        def app(
            environ: dict[str, object], start_response: Callable[..., object]
        ) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/healthz":
                ok = healthy()
                status = "200 OK" if ok else "503 Service Unavailable"
                if details is not None:
                    doc = json.dumps({"ok": ok} | details()).encode() + b"\n"
                    start_response(status, [("Content-Type", "application/json")])
                    return [doc]
                start_response(status, [("Content-Type", "text/plain")])
                return [b"ok\n" if ok else b"unhealthy\n"]
            body: Iterable[bytes] = metrics(environ, start_response)
            return body

        self._server: WSGIServer = make_server(host, port, app, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        return int(self._server.server_port)

    def __enter__(self) -> HealthServer:
        self._thread.start()
        log.info("metrics and health on http://%s:%d", self._server.server_name, self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so loops can finish their batch and exit cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
