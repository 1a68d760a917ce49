#!/usr/bin/env python3
"""A ThingsBoard gateway made with the vendor's own SDK: tb-mqtt-client's
TBGatewayMqttClient, connecting sub-devices and answering every gateway RPC with
{"device": <device>, "method": <method>, "params": <params>, "by": "tb-gateway"}.

usage: tb_gateway.py --host 127.0.0.1 --port PORT --token TOKEN --device NAME
                     [--device NAME ...] [--verbose]

Prints `ready` on stdout once the broker acknowledged the gateway RPC subscription
and every sub-device's connect message, then runs until killed (SIGTERM or SIGINT:
disconnects and exits 0). Each answered request is logged on stderr.

SDK calls (tb-mqtt-client 1.13.14, site-packages/tb_gateway_mqtt.py; the class
extends TBDeviceMqttClient of site-packages/tb_device_mqtt.py):
- TBGatewayMqttClient(host, port, username=token): MQTT 5, client id "" (the broker
  assigns one), user name = token, no password.
- TBGatewayMqttClient._on_connect subscribes to GATEWAY_RPC_TOPIC 'v1/gateway/rpc'
  (QoS 1), besides 'v1/gateway/attributes', 'v1/gateway/attributes/response' and the
  device topics TBDeviceMqttClient._on_connect subscribes.
- TBGatewayMqttClient.gw_connect_device(name): publishes {"device":name,"type":"default"}
  on 'v1/gateway/connect'.
- TBGatewayMqttClient.gw_set_server_side_rpc_request_handler(handler): the handler
  is called as handler(client, body) by TBGatewayMqttClient._on_decoded_message for
  every message on 'v1/gateway/rpc'; the platform's request body is
  {"device":name,"data":{"id":id,"method":method,"params":params}}.
- TBGatewayMqttClient.gw_send_rpc_reply(device, req_id, resp): publishes
  {"device":device,"id":req_id,"data":resp} on the same topic 'v1/gateway/rpc'
  (QoS 1; GATEWAY_RPC_RESPONSE_TOPIC 'v1/gateway/rpc/response' is defined but unused).

Because the reply goes to the topic the gateway subscribes, a plain broker hands the
gateway its own reply; the handler tells it from a request (a reply carries "id" at
the top, a request in "data") and ignores it: answering it would loop forever.

Only loopback brokers are accepted: the tests never send traffic elsewhere.
"""

import argparse
import logging
import signal
import sys
import threading

from tb_gateway_mqtt import GATEWAY_RPC_TOPIC, TBGatewayMqttClient

LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("tb_gateway")


class Gateway(TBGatewayMqttClient):
    """TBGatewayMqttClient that notes when the broker acknowledged 'v1/gateway/rpc'."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rpc_subscribed = threading.Event()
        self._rpc_mid = None
        # The SDK's own SUBACK handler (TBGatewayMqttClient._on_subscribe) still runs.
        sdk_on_subscribe = self._client.on_subscribe

        def on_subscribe(client, userdata, mid, reason_codes, properties=None):
            sdk_on_subscribe(client, userdata, mid, reason_codes, properties)
            if mid == self._rpc_mid and all(not rc.is_failure for rc in reason_codes):
                self.rpc_subscribed.set()

        self._client.on_subscribe = on_subscribe

    def _subscribe_to_topic(self, topic, qos=None, timeout=5):
        result = super()._subscribe_to_topic(topic, qos=qos, timeout=timeout)
        if topic == GATEWAY_RPC_TOPIC:
            self._rpc_mid = result[1]
        return result


def request_fields(body):
    """(device, id, method, params) of a platform request, or None for anything else
    (the gateway's own replies, which come back on the same topic)."""
    if not isinstance(body, dict) or "id" in body:
        return None
    data = body.get("data")
    if not isinstance(data, dict) or "id" not in data or "method" not in data:
        return None
    return body.get("device"), data["id"], data["method"], data.get("params")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--device", action="append", default=[], metavar="NAME")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    if a.host not in LOOPBACK:
        sys.exit(f"tb_gateway: {a.host} is not a loopback address")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if a.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)

    gateway = Gateway(a.host, a.port, username=a.token)

    def on_rpc(client, body):
        fields = request_fields(body)
        if fields is None:
            log.debug("not a request: %r", body)
            return
        device, req_id, method, params = fields
        log.info("rpc %s device=%r method=%r", req_id, device, method)
        reply = {"device": device, "method": method, "params": params, "by": "tb-gateway"}
        client.gw_send_rpc_reply(device, req_id, reply)

    gateway.gw_set_server_side_rpc_request_handler(on_rpc)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    gateway.connect()
    while not gateway.rpc_subscribed.wait(0.1):
        if stop.is_set():
            return 0
    for name in a.device:
        # TBPublishInfo.get waits (up to 1 s) for the broker's PUBACK.
        rc = gateway.gw_connect_device(name).get()
        if rc != 0:
            log.warning("connecting %s: %r", name, rc)
    print("ready", flush=True)

    stop.wait()
    gateway.stop()
    gateway.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
