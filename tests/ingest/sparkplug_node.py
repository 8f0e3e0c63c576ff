"""A tiny Sparkplug B edge node for tests: builds births, data and deaths with aliases."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common import sparkplug_b_pb2 as pb

DOUBLE = 10
INT64 = 4
INT16 = 2


@dataclass
class EdgeNode:
    """Encodes the messages of one edge node; ``seq`` advances like a real node's."""

    group: str
    edge: str
    bdseq: int = 0
    seq: int = -1
    aliases: dict[str, int] = field(default_factory=dict)

    def topic(self, kind: str, device: str | None = None) -> str:
        return f"spBv1.0/{self.group}/{kind}/{self.edge}" + (f"/{device}" if device else "")

    def _payload(self, *, with_seq: bool = True) -> pb.Payload:
        p = pb.Payload(timestamp=int(time.time() * 1000))
        if with_seq:
            self.seq = (self.seq + 1) % 256
            p.seq = self.seq
        return p

    def _metric(self, p: pb.Payload, name: str | None, value: float, *, birth: bool) -> None:
        m = p.metrics.add()
        if (birth or name not in self.aliases) and name is not None:
            m.name = name
        if name in self.aliases:
            m.alias = self.aliases[name]
        m.datatype = DOUBLE
        m.double_value = value
        m.timestamp = p.timestamp

    def nbirth(self, values: dict[str, float]) -> bytes:
        """Birth: seq restarts at 0, bdSeq and every metric with its alias."""
        self.seq = -1
        p = self._payload()
        bd = p.metrics.add()
        bd.name, bd.datatype, bd.long_value = "bdSeq", INT64, self.bdseq
        rb = p.metrics.add()
        rb.name, rb.datatype, rb.boolean_value = "Node Control/Rebirth", 11, False
        for name, value in values.items():
            self.aliases.setdefault(name, 100 + len(self.aliases))
            self._metric(p, name, value, birth=True)
        return p.SerializeToString()

    def dbirth(self, values: dict[str, float]) -> bytes:
        p = self._payload()
        for name, value in values.items():
            self.aliases.setdefault(name, 100 + len(self.aliases))
            self._metric(p, name, value, birth=True)
        return p.SerializeToString()

    def data(self, values: dict[str, float]) -> bytes:
        """NDATA/DDATA: metrics by alias only (the point of aliases)."""
        p = self._payload()
        for name, value in values.items():
            self._metric(p, name, value, birth=False)
        return p.SerializeToString()

    def raw_alias(self, alias: int, value: float) -> bytes:
        p = self._payload()
        m = p.metrics.add()
        m.alias, m.datatype, m.double_value = alias, DOUBLE, value
        return p.SerializeToString()

    def ddeath(self) -> bytes:
        return self._payload().SerializeToString()

    def ndeath(self, bdseq: int | None = None) -> bytes:
        """The will message: bdSeq of the session it belongs to, no seq."""
        p = self._payload(with_seq=False)
        m = p.metrics.add()
        m.name, m.datatype, m.long_value = "bdSeq", INT64, self.bdseq if bdseq is None else bdseq
        return p.SerializeToString()
