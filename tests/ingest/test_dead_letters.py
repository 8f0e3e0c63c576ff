"""Dead letters stay bounded: a huge payload or a batch full of bad entries must not
turn into Kafka records too large to send (which would block the bridge) or into
thousands of copies of the payload."""

from __future__ import annotations

from pathlib import Path

from common.deadletter import DeadLetter
from common.registry import load_registry
from common.settings import load_settings
from ingest.bridge import DLQ_LETTERS_MAX, DLQ_PAYLOAD_MAX, Bridge, Inbound
from ingest.rejection import Rejection
from ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parents[2]


def bridge() -> Bridge:
    settings = load_settings(IngestSettings, environ={})
    return Bridge(settings, load_registry(ROOT / "examples" / "plant.yaml"))


def test_big_payloads_are_truncated_and_letters_capped() -> None:
    payload = b"x" * (DLQ_PAYLOAD_MAX * 3)
    rejections = [Rejection("wrong_type", f"entry {i} bad", i) for i in range(150)]
    records = bridge()._dead_letters(Inbound("a/b", payload, 1, 1, 0), rejections)
    assert len(records) == DLQ_LETTERS_MAX
    letters = [DeadLetter.from_json(v) for _t, _k, v in records]
    assert all(d.payload == payload[:DLQ_PAYLOAD_MAX] for d in letters)
    assert all("truncated to 65536 of 196608 bytes" in d.message for d in letters)
    assert "50 more rejected entries" in letters[-1].message
    assert [d.index for d in letters] == list(range(DLQ_LETTERS_MAX))
    assert max(len(v) for _t, _k, v in records) < 100_000


def test_small_payloads_are_kept_whole() -> None:
    records = bridge()._dead_letters(
        Inbound("a/b", b"{oops", 1, 1, 0), [Rejection("not_json", "payload is not JSON")]
    )
    (letter,) = [DeadLetter.from_json(v) for _t, _k, v in records]
    assert (letter.payload, letter.message, letter.index) == (b"{oops", "payload is not JSON", None)
