#!/usr/bin/env python3
"""A ThingsBoard device made with the vendor's own SDK: tb-mqtt-client's
TBDeviceMqttClient, answering every server-side RPC with
{"method": <method>, "params": <params>, "by": "tb-device"}.

usage: tb_device.py --host 127.0.0.1 --port PORT --token TOKEN [--verbose]

Prints `ready` on stdout once the broker acknowledged the RPC subscription (and the
SDK's own session-limits request has come back, see below), then runs until killed
(SIGTERM or SIGINT: disconnects and exits 0). Each answered request is logged on
stderr.

SDK calls (tb-mqtt-client 1.13.14, site-packages/tb_device_mqtt.py):
- TBDeviceMqttClient(host, port, username=token): a paho Client(protocol=5,
  client_id=""), username_pw_set(token, password=None).
- TBDeviceMqttClient.set_server_side_rpc_request_handler(handler): the handler is
  called as handler(request_id, body) by TBDeviceMqttClient._on_decoded_message for
  a message on RPC_REQUEST_TOPIC + id, 'v1/devices/me/rpc/request/<id>' (subscribed
  as 'v1/devices/me/rpc/request/+' in TBDeviceMqttClient._on_connect); body is the
  JSON payload decoded by TBDeviceMqttClient._decode (orjson.loads).
- TBDeviceMqttClient.send_rpc_reply(req_id, resp): publishes orjson.dumps(resp) on
  RPC_RESPONSE_TOPIC + req_id, 'v1/devices/me/rpc/response/<id>', QoS 1.

On connecting, the SDK's service loop also sends a client-side RPC of its own,
TBDeviceMqttClient.request_service_configuration: {"method":"getSessionLimits",
"params":{"timeout":5000}} on 'v1/devices/me/rpc/request/1'. On a plain broker that
request comes back to the device's own subscription and this handler answers it on
'v1/devices/me/rpc/response/1' like any other. `ready` waits for that (at most 5 s)
so that nothing unsolicited follows it.

Only loopback brokers are accepted: the tests never send traffic elsewhere.
"""

import argparse
import logging
import signal
import sys
import threading

from tb_device_mqtt import TBDeviceMqttClient

RPC_REQUEST_SUBSCRIPTION = "v1/devices/me/rpc/request/+"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
log = logging.getLogger("tb_device")


class Device(TBDeviceMqttClient):
    """TBDeviceMqttClient that notes when the broker acknowledged its RPC subscription."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rpc_subscribed = threading.Event()
        self._rpc_mid = None
        self._client.on_subscribe = self._on_suback

    def _subscribe_to_topic(self, topic, qos=None, timeout=5):
        result = super()._subscribe_to_topic(topic, qos=qos, timeout=timeout)
        if topic == RPC_REQUEST_SUBSCRIPTION:
            self._rpc_mid = result[1]
        return result

    def _on_suback(self, client, userdata, mid, reason_codes, properties=None):
        # Runs on paho's network thread, after _on_connect sent the SUBSCRIBEs.
        if mid == self._rpc_mid and all(not rc.is_failure for rc in reason_codes):
            self.rpc_subscribed.set()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    if a.host not in LOOPBACK:
        sys.exit(f"tb_device: {a.host} is not a loopback address")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if a.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)

    client = Device(a.host, a.port, username=a.token)
    session_limits = threading.Event()

    def on_rpc(request_id, body):
        method = body.get("method") if isinstance(body, dict) else None
        params = body.get("params") if isinstance(body, dict) else body
        log.info("rpc %s method=%r", request_id, method)
        client.send_rpc_reply(request_id, {"method": method, "params": params, "by": "tb-device"})
        if method == "getSessionLimits":
            session_limits.set()

    client.set_server_side_rpc_request_handler(on_rpc)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    client.connect()
    while not client.rpc_subscribed.wait(0.1):
        if stop.is_set():
            return 0
    if not session_limits.wait(5):
        log.warning("the SDK's getSessionLimits request did not come back")
    print("ready", flush=True)

    stop.wait()
    client.stop()
    client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
