#!/usr/bin/env python3
"""An Azure IoT Hub device made with the vendor's own SDK: azure-iot-device's
IoTHubDeviceClient, answering every direct method with status 200 and the payload
{"method": <name>, "payload": <request payload>, "by": "azure"}.

usage: azure_device.py --connection-string 'HostName=H;DeviceId=D;SharedAccessKey=K'
                       --ca CA.pem --port PORT [--verbose]

The connection string may carry GatewayHostName=localhost: the SDK then connects
there while HostName stays in the MQTT user name and the SAS token (as with an IoT
Edge gateway). The host it connects to must be loopback (localhost, 127.0.0.1, ::1);
anything else is refused before a socket is opened. The broker's certificate must be
signed by CA.pem and name that host (the SDK checks the host name).

Prints `ready` on stdout once connected and the method subscription is acknowledged,
then runs until killed (SIGTERM or SIGINT: shuts the client down and exits 0). Each
answered method is logged on stderr.

SDK calls (azure-iot-device 2.14.0, site-packages/azure/iot/device/):
- iothub/abstract_clients.py AbstractIoTHubClient.create_from_connection_string
  (cs, server_verification_cert=PEM text): the SAS token (common/auth/sastoken.py
  RenewableSasToken, uri '{HostName}/devices/{DeviceId}') is the MQTT password.
- iothub/sync_clients.py IoTHubDeviceClient.connect, then the
  on_method_request_received setter (GenericIoTHubClient._generic_receive_handler_setter
  -> _enable_feature: blocks until the SUBACK of '$iothub/methods/POST/#', QoS 1,
  iothub/pipeline/mqtt_topic_iothub.py get_method_topic_for_subscribe).
- iothub/models/methods.py MethodResponse.create_from_method_request(request, 200,
  payload), sent by IoTHubDeviceClient.send_method_response: published on
  '$iothub/methods/res/200/?$rid={rid}' (mqtt_topic_iothub.get_method_topic_for_publish)
  with payload json.dumps(payload) (iothub/pipeline/pipeline_stages_iothub_mqtt.py
  IoTHubMQTTTranslationStage._run_op, SendMethodResponseOperation).

The port: common/mqtt_transport.py MQTTTransport.connect calls paho's
Client.connect(host=..., port=8883) (443 with websockets=True), a constant; no
client option, keyword or connection-string field sets another port. So that many
brokers can run side by side on free ports, this script wraps paho.mqtt.client.Client
.connect in its own process and replaces port 8883 by --port (and refuses a
non-loopback host). Everything else is the SDK's own code path.
"""

import argparse
import logging
import signal
import sys
import threading

import paho.mqtt.client as paho

LOOPBACK = ("127.0.0.1", "localhost", "::1")
AZURE_MQTT_PORT = 8883
log = logging.getLogger("azure_device")


def redirect_paho_connect(local_port):
    """Makes paho's Client.connect, as the SDK calls it (host=..., port=8883,
    keepalive=...), go to `local_port` on loopback."""
    sdk_connect = paho.Client.connect

    def connect(self, host, port=1883, *args, **kwargs):
        if host not in LOOPBACK:
            raise ConnectionRefusedError(f"azure_device: {host} is not a loopback host")
        if port == AZURE_MQTT_PORT:
            port = local_port
        return sdk_connect(self, host, port, *args, **kwargs)

    paho.Client.connect = connect


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connection-string", required=True)
    p.add_argument("--ca", required=True, help="PEM file of the CA that signed the broker")
    p.add_argument("--port", type=int, default=AZURE_MQTT_PORT)
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if a.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)
    redirect_paho_connect(a.port)

    # Imported after the wrap only for clarity: the SDK looks paho's Client up at
    # connect time either way.
    from azure.iot.device import IoTHubDeviceClient, MethodResponse

    with open(a.ca, encoding="ascii") as f:
        ca = f.read()
    client = IoTHubDeviceClient.create_from_connection_string(
        a.connection_string, server_verification_cert=ca
    )

    def on_method(request):
        log.info("method %s rid=%s", request.name, request.request_id)
        payload = {"method": request.name, "payload": request.payload, "by": "azure"}
        client.send_method_response(
            MethodResponse.create_from_method_request(request, 200, payload)
        )

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    client.connect()
    client.on_method_request_received = on_method
    print("ready", flush=True)

    stop.wait()
    client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
