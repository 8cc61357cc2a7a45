#!/usr/bin/python3
"""A customer's bot for the fork tests: a Python `websockets` server that receives a forked
call in the Twilio Media Streams protocol (LeadsCaller is the Twilio side) and logs every
message it gets and sends, one JSON line each with the wall clock (`t`, time.time()), so the
test can line its log up with a packet capture.

    bot_server.py PORT LOG MODE [CERT KEY]

With CERT and KEY (PEM files) it serves wss:// instead of ws://.

MODE:
  idle   only listen and log
  mark   0.3 s after `start`: send FRAMES (50 = 1 s) µ-law frames of a 1 kHz tone at once,
         then a mark "m1"
  clear  0.3 s after `start`: send 250 frames (5 s) of tone and a mark "end" at once, then
         1.5 s later a `clear`
  flood  0.3 s after `start`: send 250 frames (5 s) of tone and a mark "end" at once (more
         than the server's buffer cap in the flood test), and log the `error` event it gets
  deaf   on the first connection only: stop reading the socket right after `start` for
         2.5 s (pings pile up unanswered), then read again

Media payloads are not logged (only their size); everything else is logged whole.
Prints "listening" once the socket is bound.
"""

import asyncio
import base64
import json
import math
import ssl
import sys
import time

import websockets

PORT = int(sys.argv[1])
LOG = open(sys.argv[2], "a", buffering=1)
MODE = sys.argv[3]
TLS = sys.argv[4:6] if len(sys.argv) >= 6 else None
FRAMES = 50
CONNECTIONS = 0


def log(direction, msg):
    entry = {"t": time.time(), "dir": direction}
    entry.update(msg)
    if "media" in entry and isinstance(entry["media"], dict) and "payload" in entry["media"]:
        media = dict(entry["media"])
        media["bytes"] = len(base64.b64decode(media.pop("payload")))
        entry["media"] = media
    LOG.write(json.dumps(entry) + "\n")


def lin2ulaw(sample):
    """G.711 µ-law encoding of one 16-bit sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_frame(k):
    """Frame k (160 samples) of a continuous 1 kHz tone at about -12 dBFS."""
    return bytes(
        lin2ulaw(int(8000 * math.sin(2 * math.pi * 1000 * (k * 160 + i) / 8000)))
        for i in range(160)
    )


async def send(ws, msg):
    await ws.send(json.dumps(msg))
    log("out", msg)


async def play(ws, sid, frames, mark):
    for k in range(frames):
        payload = base64.b64encode(tone_frame(k)).decode()
        await send(ws, {"event": "media", "streamSid": sid, "media": {"payload": payload}})
    await send(ws, {"event": "mark", "streamSid": sid, "mark": {"name": mark}})


async def script(ws, sid):
    await asyncio.sleep(0.3)
    if MODE == "mark":
        await play(ws, sid, FRAMES, "m1")
    elif MODE == "flood":
        await play(ws, sid, 250, "end")
    elif MODE == "clear":
        await play(ws, sid, 250, "end")
        await asyncio.sleep(1.5)
        await send(ws, {"event": "clear", "streamSid": sid})


async def handler(ws, path=None):
    global CONNECTIONS
    CONNECTIONS += 1
    first = CONNECTIONS == 1
    log("conn", {"event": "open"})
    tasks = []
    try:
        async for text in ws:
            msg = json.loads(text)
            log("in", msg)
            if msg.get("event") == "start":
                tasks.append(asyncio.ensure_future(script(ws, msg["start"]["streamSid"])))
                if MODE == "deaf" and first:
                    log("conn", {"event": "deaf"})
                    ws.transport.pause_reading()
                    await asyncio.sleep(2.5)
                    ws.transport.resume_reading()
                    log("conn", {"event": "hearing"})
    except websockets.ConnectionClosed:
        pass
    finally:
        for t in tasks:
            t.cancel()
        log("conn", {"event": "closed", "code": ws.close_code})


async def main():
    ctx = None
    if TLS:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(TLS[0], TLS[1])
    async with websockets.serve(handler, "127.0.0.1", PORT, ssl=ctx, ping_interval=None):
        print("listening", flush=True)
        await asyncio.Future()


asyncio.run(main())
