#!/usr/bin/env python3
"""Signed MQTT credentials as the vendors' own Python device SDKs compute them, for
fixed inputs: the expected values of the credential tests (src/credentials.rs).

Usage (a virtual environment keeps the SDKs and their pinned dependencies apart):

    python3 -m venv /tmp/vendor-sdk
    /tmp/vendor-sdk/bin/pip install --no-deps aliyun-iot-linkkit==1.2.13 tencent-iot-device==1.0.0
    /tmp/vendor-sdk/bin/pip install paho-mqtt==1.6.1 crcmod pycryptodome
    /tmp/vendor-sdk/bin/python scripts/vendor-vectors.py

Each SDK is driven through its own connection set-up with the clock (and, for
Tencent, the connection id's random draw) fixed, and the client id, user name and
password it hands to paho-mqtt are printed as one JSON object per line.
"""
import json
import random
import sys
import time
import types
from unittest import mock

import paho.mqtt.client as mqtt


def captured(run):
    """Runs `run` with paho's Client constructor and username_pw_set recorded."""
    seen = {}
    real_init = mqtt.Client.__init__

    def init(self, *args, **kwargs):
        seen["client_id"] = kwargs.get("client_id", args[0] if args else "")
        real_init(self, *args, **kwargs)

    def pw(self, username, password=None):
        seen["username"], seen["password"] = username, password

    with mock.patch.object(mqtt.Client, "__init__", init), mock.patch.object(
        mqtt.Client, "username_pw_set", pw
    ):
        run()
    return seen


def alibaba(pk, dn, secret, ts, region="cn-shanghai", instance_id=None, tls=True):
    """aliyun-iot-linkkit 1.2.13, LinkKit.__config_mqtt_client_internal: device-secret
    auth, client id {pk}&{dn}, hmacsha1, timestamp in seconds."""
    from linkkit import linkkit

    kit = linkkit.LinkKit(region, pk, dn, secret, instance_id=instance_id)
    kit.config_mqtt(secure="TLS" if tls else "")
    with mock.patch.object(time, "time", return_value=float(ts)):
        seen = captured(kit._LinkKit__config_mqtt_client_internal)
    seen["host"] = kit._LinkKit__host_name_internal
    seen.update(sdk="aliyun-iot-linkkit 1.2.13", pk=pk, dn=dn, secret=secret, ts=ts, tls=tls)
    return seen


def alibaba_sha256(pk, dn, secret, ts_ms, client_id):
    """aliyun-iot-linkkit 1.2.13, h2client.H2Client.__fill_auth_header: the same
    device-secret signature (clientId..deviceName..productKey..timestamp) with
    hmacsha256 and a millisecond timestamp, as LinkSDK C 4.x signs MQTT connects."""
    # The HTTP/2 transport (hyper) is not needed to sign, and does not import on
    # Python >= 3.10: a placeholder module stands in for it.
    sys.modules.setdefault("hyper", types.ModuleType("hyper"))
    from linkkit import h2client

    h2 = h2client.H2Client.__new__(h2client.H2Client)
    h2._H2Client__client_id = client_id
    h2._H2Client__device_name = dn
    h2._H2Client__product_key = pk
    h2._H2Client__device_secret = secret
    header = {}
    with mock.patch.object(time, "time", return_value=ts_ms / 1000.0):
        h2._H2Client__fill_auth_header(header)
    assert header["x-auth-param-timestamp"] == str(ts_ms)
    return dict(
        sdk="aliyun-iot-linkkit 1.2.13 (h2client)",
        pk=pk,
        dn=dn,
        secret=secret,
        ts=ts_ms,
        client_id=client_id,
        password=header["x-auth-param-sign"],
    )


def tencent(pid, dn, psk_b64, ts_ms, conn_id):
    """tencent-iot-device 1.0.0, hub.protocol.protocol.AsyncConnClient._generate_pwss:
    key auth, client id {pid}{dn}, sdkappid 21010406, expiry = time in ms, hmacsha1."""
    from hub.protocol.protocol import AsyncConnClient

    proto = AsyncConnClient.__new__(AsyncConnClient)
    with mock.patch.object(time, "time", return_value=ts_ms / 1000.0), mock.patch.object(
        random, "sample", return_value=list(conn_id)
    ):
        username, password = proto._generate_pwss(pid + dn, psk_b64)
    return dict(
        sdk="tencent-iot-device 1.0.0",
        pid=pid,
        dn=dn,
        psk=psk_b64,
        ts_ms=ts_ms,
        conn_id=conn_id,
        client_id=pid + dn,
        username=username,
        password=password,
    )


if __name__ == "__main__":
    for v in (
        alibaba("a1B2c3D4e5F", "sensor-01", "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U", 1700000000),
        alibaba("a1B2c3D4e5F", "sensor-01", "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U", 1700000000, tls=False),
        alibaba("hm1PqLz8Wc2", "valve_7", "0123456789abcdef0123456789abcdef", 1712345678,
                instance_id="iot-06z00abc1de2fgh"),
        alibaba_sha256("a1B2c3D4e5F", "sensor-01", "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U",
                       1700000000123, "a1B2c3D4e5F.sensor-01"),
        tencent("ABCDEFGHIJ", "dev001", "bXlfZGV2aWNlX3BzazEyMw==", 1700000000123, "Ab3dE"),
        tencent("Q7X0N2K1ZP", "pump-22", "c2VjcmV0LXBzay12YWx1ZS0wOTg3", 1712345678901, "z9Y8x"),
    ):
        print(json.dumps(v, sort_keys=True))
