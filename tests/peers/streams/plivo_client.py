#!/usr/bin/python3
"""Plays Plivo's side of an audio stream (Plivo "Audio Streaming Protocol Reference") against
a server, with the `websockets` library.

Sends `start` (callId, streamId, accountId, tracks, mediaFormat audio/x-mulaw 8000, and
`extra_headers`), FRAMES `media` events of 20 ms base64 µ-law in real time (each tagged with
its index in its first two bytes, as twilio_client.py does), a `dtmf`, then closes the socket
(Plivo has no `stop` event: its status callback reports the end).

It plays what the server sends as Plivo would: `playAudio` goes into a real-time playback
queue; a `checkpoint` is answered with `playedStream` (same name) when the audio queued before
it has played; `clearAudio` empties the queue, drops the checkpoints still waiting and is
answered with `clearedAudio`.

With --secret S the token goes in `extra_headers` as `tokenExpiry=<expiry>,tokenSig=<hex>`
(Plivo allows only letters and digits there). With --wav FILE --at S the frames carry silence,
except from S seconds on, where they carry the µ-law data of FILE.

Prints one JSON object: `media` ([arrival, payload base64]), `checkpoints` ([arrival, name]),
`played` ([sent, name]), `clears` ([arrival]), `sent` (send time of each media), `close_code`.

usage: plivo_client.py URL FRAMES [--secret S] [--wav FILE --at S] [--linger S]
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import time

import websockets

CALL = "12345678-1234-1234-1234-123456789abc"
STREAM = "87654321-4321-4321-4321-cba987654321"


def token_parts(secret: str, ttl: int = 300) -> tuple:
    expiry = int(time.time()) + ttl
    sig = hmac.new(secret.encode(), f"v1.{expiry}".encode(), hashlib.sha256).hexdigest()
    return expiry, sig


def frame(i: int) -> bytes:
    tag = bytes([0x10 + i // 100 % 100, 0x10 + i % 100])
    return tag + bytes(0x80 + (i * 13 + j * 7) % 0x7F for j in range(158))


def ulaw_data(path: str) -> bytes:
    b = open(path, "rb").read()
    i = 12
    while i + 8 <= len(b):
        size = int.from_bytes(b[i + 4:i + 8], "little")
        if b[i:i + 4] == b"data":
            return b[i + 8:i + 8 + size]
        i += 8 + size + (size & 1)
    raise SystemExit(f"{path}: no data chunk")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("frames", type=int)
    ap.add_argument("--secret")
    ap.add_argument("--wav")
    ap.add_argument("--at", type=float, default=0.0)
    ap.add_argument("--linger", type=float, default=0.5)
    a = ap.parse_args()
    speech = ulaw_data(a.wav) if a.wav else None

    def payload(i: int) -> bytes:
        if speech is None:
            return frame(i)
        start = int(a.at * 8000)
        if i * 160 < start:
            return b"\xff" * 160
        chunk = speech[i * 160 - start:(i + 1) * 160 - start]
        return chunk + b"\xff" * (160 - len(chunk))

    headers = "callerId=15550100"
    if a.secret:
        expiry, sig = token_parts(a.secret)
        headers += f",tokenExpiry={expiry},tokenSig={sig}"
    out = {"media": [], "checkpoints": [], "played": [], "clears": [], "sent": [],
           "close_code": None}
    seq = 0

    def next_seq() -> int:
        nonlocal seq
        seq += 1
        return seq

    async with websockets.connect(a.url) as ws:
        # Plivo's playback: when the audio queued so far will have played.
        play_end = time.monotonic()
        waiting = []  # checkpoint tasks

        async def answer_checkpoint(name: str, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await ws.send(json.dumps({"event": "playedStream", "sequenceNumber": next_seq(),
                                      "streamId": STREAM, "name": name}))
            out["played"].append([time.monotonic(), name])

        async def reader():
            nonlocal play_end
            try:
                async for msg in ws:
                    t = time.monotonic()
                    m = json.loads(msg)
                    ev = m.get("event")
                    if ev == "playAudio":
                        media = m["media"]
                        assert m["streamId"] == STREAM, m
                        assert media["contentType"] == "audio/x-mulaw", m
                        assert media["sampleRate"] == 8000, m
                        audio = base64.b64decode(media["payload"])
                        out["media"].append([t, media["payload"]])
                        play_end = max(play_end, t) + len(audio) / 8000
                    elif ev == "checkpoint":
                        assert m["streamId"] == STREAM, m
                        out["checkpoints"].append([t, m["name"]])
                        waiting.append(asyncio.create_task(answer_checkpoint(m["name"], play_end)))
                    elif ev == "clearAudio":
                        assert m["streamId"] == STREAM, m
                        out["clears"].append(t)
                        play_end = t
                        for w in waiting:
                            w.cancel()
                        waiting.clear()
                        await ws.send(json.dumps({"event": "clearedAudio",
                                                  "sequenceNumber": next_seq(),
                                                  "streamId": STREAM}))
            except websockets.ConnectionClosed:
                pass

        await ws.send(json.dumps({
            "event": "start",
            "sequenceNumber": next_seq(),
            "start": {
                "callId": CALL,
                "streamId": STREAM,
                "accountId": "MAXXXXXXXXXXXXXXXXXX",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            },
            "extra_headers": headers,
        }))
        r = asyncio.create_task(reader())
        t0 = time.monotonic()
        try:
            for i in range(a.frames):
                await ws.send(json.dumps({
                    "event": "media",
                    "sequenceNumber": next_seq(),
                    "streamId": STREAM,
                    "media": {"track": "inbound", "timestamp": str(int(time.time() * 1000)),
                              "chunk": i + 1,
                              "payload": base64.b64encode(payload(i)).decode()},
                    "extra_headers": headers,
                }))
                out["sent"].append(time.monotonic())
                if i == 10:
                    await ws.send(json.dumps({"event": "dtmf", "sequenceNumber": next_seq(),
                                              "streamId": STREAM,
                                              "dtmf": {"digit": "5", "track": "inbound"},
                                              "extra_headers": headers}))
                delay = t0 + (i + 1) * 0.020 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.sleep(a.linger)
        except websockets.ConnectionClosed:
            pass
        for w in waiting:
            if not w.done():
                try:
                    await asyncio.wait_for(w, timeout=5)
                except (asyncio.TimeoutError, asyncio.CancelledError, websockets.ConnectionClosed):
                    pass
        await ws.close()
        try:
            await asyncio.wait_for(r, timeout=5)
        except asyncio.TimeoutError:
            pass
        out["close_code"] = ws.close_code
    print(json.dumps(out))


asyncio.run(main())
