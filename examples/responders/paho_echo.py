#!/usr/bin/python3
"""A request/response service written with Eclipse Paho for Python
(Debian's python3-paho-mqtt 1.6): no code of mqtt-rr-bench in it, so that
loadgen-v2 is shown to load a service it did not write.

usage: paho_echo.py HOST PORT MODE [FILTER]

  MODE v5    MQTT 5: answers every request on its Response Topic with its
             Correlation Data (MQTT 5.0 section 4.10), payload {"status":"ok"}.
  MODE json  MQTT 3.1.1: a request {"id": ..., "reply_to": TOPIC, ...} is
             answered on TOPIC with {"id": <the same>, "status": "ok"}.
  FILTER     the request subscription (default req/+).

Prints "ready" on stdout once subscribed; runs until killed.
Load it with, for example:
  MQTT_VERSION=5 VIRTUAL_CLIENTS=200 INTERVAL_MS=500 DURATION=5s bin/loadgen-v2
  CORRELATE=json:id REQUEST_TEMPLATE='{"id":"{{id}}","reply_to":"{{reply}}"}' bin/loadgen-v2
"""
import json
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    filt = sys.argv[4] if len(sys.argv) > 4 else "req/+"
    v5 = mode == "v5"
    client = mqtt.Client(client_id="paho-python-echo-" + mode,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    answered = {"bad": 0}

    def on_connect(c, userdata, flags, rc, properties=None):
        c.subscribe(filt, qos=0)

    def on_subscribe(c, userdata, mid, granted, properties=None):
        print("ready", flush=True)

    def on_message(c, userdata, msg):
        if v5:
            props = getattr(msg, "properties", None)
            topic = getattr(props, "ResponseTopic", None)
            if not topic:
                answered["bad"] += 1
                return
            reply = Properties(PacketTypes.PUBLISH)
            if hasattr(props, "CorrelationData"):
                reply.CorrelationData = props.CorrelationData
            c.publish(topic, b'{"status":"ok"}', qos=0, properties=reply)
            return
        try:
            req = json.loads(msg.payload)
            topic, rid = req["reply_to"], req["id"]
        except (ValueError, KeyError, TypeError):
            answered["bad"] += 1
            return
        c.publish(topic, json.dumps({"id": rid, "status": "ok"}), qos=0)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_forever()


if __name__ == "__main__":
    main()
