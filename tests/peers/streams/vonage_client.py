#!/usr/bin/python3
"""Plays Vonage's side of a Voice API WebSocket: `websocket:connected` (audio/l16;rate=16000,
the token as a header), FRAMES binary frames of 20 ms 16-bit little-endian PCM in real time
(each frame's index in its first sample), a `websocket:dtmf`, then closes. Prints a JSON
object with the binary frames that came back (arrival time, hex) and the close code.

usage: vonage_client.py URL FRAMES [--secret S]
"""
import argparse
import asyncio
import hashlib
import hmac
import json
import struct
import time

import websockets


def token(secret: str, ttl: int = 300) -> str:
    head = f"v1.{int(time.time()) + ttl}"
    return f"{head}.{hmac.new(secret.encode(), head.encode(), hashlib.sha256).hexdigest()}"


def frame(i: int) -> bytes:
    samples = [1000 + i] + [((i * 37 + j * 101) % 4000) - 2000 for j in range(319)]
    return struct.pack("<320h", *samples)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("frames", type=int)
    ap.add_argument("--secret")
    a = ap.parse_args()
    out = {"media": [], "close_code": None}
    async with websockets.connect(a.url) as ws:
        hello = {"event": "websocket:connected", "content-type": "audio/l16;rate=16000",
                 "caller": "447700900123"}
        if a.secret:
            hello["token"] = token(a.secret)
        await ws.send(json.dumps(hello))

        async def reader():
            try:
                async for msg in ws:
                    if isinstance(msg, bytes):
                        out["media"].append([time.monotonic(), msg.hex()])
            except websockets.ConnectionClosed:
                pass

        r = asyncio.create_task(reader())
        t0 = time.monotonic()
        try:
            for i in range(a.frames):
                await ws.send(frame(i))
                if i == 5:
                    await ws.send(json.dumps({"event": "websocket:dtmf", "digit": "7", "duration": 200}))
                delay = t0 + (i + 1) * 0.020 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.sleep(0.5)
        except websockets.ConnectionClosed:
            pass
        await ws.close()
        await asyncio.wait_for(r, timeout=5)
        out["close_code"] = ws.close_code
    print(json.dumps(out))


asyncio.run(main())
