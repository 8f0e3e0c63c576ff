"""paho-mqtt clients configured from settings (MQTT 5, auth and TLS optional)."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.settings import MqttSettings

# A persistent session outlives a restart of its client by this long (seconds).
SESSION_EXPIRY_S = 7 * 24 * 3600


def make_client(
    settings: MqttSettings,
    client_id: str,
    *,
    persistent: bool,
    manual_ack: bool = False,
    client_class: type[mqtt.Client] = mqtt.Client,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
) -> mqtt.Client:
    """A paho MQTT client, MQTT 5 unless ``protocol`` says otherwise; ``persistent``
    keeps the broker-side session across restarts.

    ``client_class`` is paho's ``Client`` or a subclass of it.
    """
    v5 = protocol == MQTTProtocolVersion.MQTTv5
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        # MQTT 5 asks for a clean start when connecting (``connect``), 3.1.1 here
        clean_session=None if v5 else not persistent,
        protocol=protocol,
        manual_ack=manual_ack,
    )
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls:
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            certfile=str(settings.cert_file) if settings.cert_file else None,
            keyfile=str(settings.key_file) if settings.key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.enable_logger()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.user_data_set({"persistent": persistent})
    return client


def connect_properties(persistent: bool, receive_maximum: int = 65535) -> Properties:
    """CONNECT properties: session expiry keeps QoS 1 messages queued while we are away."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
    # Let the broker keep many QoS 1 messages in flight: we ack only after Kafka has
    # them, and the broker's default window of 20 would throttle us to a crawl.
    # A consumer that acks late can lower it to bound the messages it holds in memory.
    props.ReceiveMaximum = receive_maximum
    return props


def connect(
    client: mqtt.Client,
    settings: MqttSettings,
    *,
    persistent: bool,
    receive_maximum: int = 65535,
) -> None:
    """Start connecting (paho's network loop must run); a persistent session resumes.

    MQTT 3.1.1 has neither CONNECT properties nor clean start: its session is the one
    ``make_client`` asked for.
    """
    if client.protocol != MQTTProtocolVersion.MQTTv5:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
        return
    client.connect_async(
        settings.host,
        settings.port,
        keepalive=settings.keepalive_s,
        clean_start=not persistent,
        properties=connect_properties(persistent, receive_maximum),
    )
