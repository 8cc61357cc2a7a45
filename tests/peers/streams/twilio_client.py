#!/usr/bin/python3
"""Plays Twilio's side of a Media Stream against a server, with the `websockets` library.

Sends `connected`, `start` (with an optional signed token in customParameters), FRAMES
`media` messages of 20 ms µ-law in real time (each tagged with its index in its first two
bytes), a `dtmf`, optionally some broken frames, then `stop`. Prints one JSON object: the
media and marks that came back (arrival time, payload) and the close code.

With --wav FILE --at S the frames carry silence, except from S seconds on, where they carry
the µ-law data of FILE (an 8 kHz µ-law WAV): a caller saying something.

With --dialect telnyx it speaks Telnyx's variant instead (snake_case names, `stream_id`,
`call_control_id`, PCMU `media_format`) and, with --shuffle, sends every pair of media frames
in swapped order, as a network that reorders would.

With --dialect telnyx and --secret, --token-via says where the token goes, as Telnyx would
carry it: `custom` (start.custom_parameters, from Call Control `custom_parameters` or TeXML
`<Parameter>`; the default), `connected` (connected.x-telnyx-streaming-auth-token and the
same HTTP header, from Call Control `stream_auth_token`), `header` (only that HTTP header on
the WebSocket upgrade) or `client_state` (base64 of it).

Like Twilio, it plays the server's `media` in real time from a buffer and echoes each `mark`
once the audio sent before it has played (a `clear` empties the buffer and echoes the marks
still waiting at once); the echoes are listed in `echoed` ([time, name]), and `closed_at` is
when the socket closed. --no-echo-marks
turns that off (a carrier that never echoes); --play-delay S adds S seconds of buffering
before playout starts (a carrier with a deeper jitter buffer).

With a wss:// URL, --cafile PEM is the root to trust (a self-signed test certificate).

With --deaf S it sends `connected` and `start`, then stops reading the socket (and sends
nothing) for S seconds, as a peer whose process hangs would; then it reads again and reports
how the server closed the stream (`close_code`, `closed_after` seconds since `start`).
With --quiet as well it keeps reading (so its library answers pings) and sends `stop` after
S seconds.

usage: twilio_client.py URL FRAMES [--secret S] [--bad] [--wav FILE --at S]
                        [--dialect twilio|telnyx] [--shuffle] [--cafile PEM] [--deaf S]
                        [--token-via custom|connected|header|client_state]
                        [--no-echo-marks] [--play-delay S]
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import time

import websockets

SID = "MZ0123456789abcdef0123456789abcdef"


def token(secret: str, ttl: int = 300) -> str:
    head = f"v1.{int(time.time()) + ttl}"
    sig = hmac.new(secret.encode(), head.encode(), hashlib.sha256).hexdigest()
    return f"{head}.{sig}"


def ulaw_data(path: str) -> bytes:
    b = open(path, "rb").read()
    i = 12
    while i + 8 <= len(b):
        size = int.from_bytes(b[i + 4:i + 8], "little")
        if b[i:i + 4] == b"data":
            return b[i + 8:i + 8 + size]
        i += 8 + size + (size & 1)
    raise SystemExit(f"{path}: no data chunk")


def frame(i: int) -> bytes:
    # 0x7f is the one µ-law code that does not survive decode + encode (it becomes 0xff).
    tag = bytes([0x10 + i // 100 % 100, 0x10 + i % 100])
    body = bytes(0x80 + (i * 13 + j * 7) % 0x7F for j in range(158))
    return tag + body


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("frames", type=int)
    ap.add_argument("--secret")
    ap.add_argument("--bad", action="store_true")
    ap.add_argument("--wav")
    ap.add_argument("--at", type=float, default=0.0)
    ap.add_argument("--dialect", default="twilio", choices=["twilio", "telnyx"])
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--cafile")
    ap.add_argument("--deaf", type=float)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--token-via", default="custom",
                    choices=["custom", "connected", "header", "client_state"])
    ap.add_argument("--no-echo-marks", action="store_true")
    ap.add_argument("--play-delay", type=float, default=0.0)
    a = ap.parse_args()
    kw = {}
    if a.url.startswith("wss://"):
        kw["ssl"] = ssl.create_default_context(cafile=a.cafile)
    if a.deaf is not None:
        kw["ping_interval"] = None
    telnyx = a.dialect == "telnyx"
    tok = token(a.secret) if a.secret else None
    hello = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    telnyx_start = {}
    if telnyx and tok:
        if a.token_via == "custom":
            telnyx_start["custom_parameters"] = {"token": tok}
        elif a.token_via == "connected":
            hello["x-telnyx-streaming-auth-token"] = tok
            kw["extra_headers"] = {"x-telnyx-streaming-auth-token": tok}
        elif a.token_via == "header":
            kw["extra_headers"] = {"x-telnyx-streaming-auth-token": tok}
        else:
            telnyx_start["client_state"] = base64.b64encode(tok.encode()).decode()
    speech = ulaw_data(a.wav) if a.wav else None

    def payload(i: int) -> bytes:
        if speech is None:
            return frame(i)
        start = int(a.at * 8000)
        chunk = speech[max(0, i * 160 - start):max(0, (i + 1) * 160 - start)] if i * 160 >= start else b""
        return chunk + b"\xff" * (160 - len(chunk))
    out = {"media": [], "marks": [], "echoed": [], "clears": 0, "close_code": None, "sent": []}
    async with websockets.connect(a.url, **kw) as ws:
        seq = 1

        held = []

        async def send(obj, hold=False):
            nonlocal seq
            if telnyx:
                obj.pop("streamSid", None)
                obj["stream_id"] = SID
                obj["sequence_number"] = str(seq)
            else:
                obj["sequenceNumber"] = str(seq)
            seq += 1
            if hold:
                held.append(json.dumps(obj))
                return
            await ws.send(json.dumps(obj))
            while held:
                await ws.send(held.pop())

        await ws.send(json.dumps(hello))
        params = {"token": tok} if tok else {}
        if telnyx:
            await send({
                "event": "start",
                "start": {
                    "call_control_id": "v3:test-call",
                    "client_state": "",
                    "from": "+13122010094",
                    "to": "+13122123456",
                    "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
                    **telnyx_start,
                },
            })
        else:
          await send({
            "event": "start",
            "streamSid": SID,
            "start": {
                "accountSid": "AC0123456789abcdef0123456789abcdef",
                "streamSid": SID,
                "callSid": "CA0123456789abcdef0123456789abcdef",
                "tracks": ["inbound"],
                "customParameters": params,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        })

        # Twilio's playout: when the audio received so far will have played, and the marks
        # waiting for it (name, echo task).
        play_end = 0.0
        waiting = []

        async def echo(name: str, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            waiting[:] = [w for w in waiting if w[0] != name]
            await echo_now(name)

        async def echo_now(name: str) -> None:
            out["echoed"].append([time.monotonic(), name])
            try:
                await send({"event": "mark", "streamSid": SID, "mark": {"name": name}})
            except websockets.ConnectionClosed:
                pass

        async def reader():
            nonlocal play_end
            try:
                async for msg in ws:
                    t = time.monotonic()
                    m = json.loads(msg)
                    ev = m.get("event")
                    if ev == "media":
                        out["media"].append([t, m["media"]["payload"]])
                        n = len(base64.b64decode(m["media"]["payload"]))
                        play_end = max(play_end, t + a.play_delay) + n / 8000
                    elif ev == "mark":
                        name = m["mark"]["name"]
                        out["marks"].append([t, name])
                        if not a.no_echo_marks:
                            waiting.append((name, asyncio.create_task(echo(name, play_end))))
                    elif ev == "clear":
                        out["clears"] += 1
                        play_end = t
                        for name, task in list(waiting):
                            task.cancel()
                            await echo_now(name)
                        waiting.clear()
            except websockets.ConnectionClosed:
                pass
            out["closed_at"] = time.monotonic()

        if a.deaf is not None:
            t_start = time.monotonic()
            if a.quiet:
                # Silent but listening: the library answers the server's pings.
                await asyncio.sleep(a.deaf)
                await send({"event": "stop", "streamSid": SID,
                            "stop": {"accountSid": "AC0123456789abcdef0123456789abcdef",
                                     "callSid": "CA0123456789abcdef0123456789abcdef"}})
            else:
                ws.transport.pause_reading()
                await asyncio.sleep(a.deaf)
                ws.transport.resume_reading()
            try:
                await asyncio.wait_for(ws.wait_closed(), timeout=5)
            except asyncio.TimeoutError:
                pass
            out["close_code"] = ws.close_code
            out["closed_after"] = time.monotonic() - t_start
            print(json.dumps(out))
            return

        r = asyncio.create_task(reader())
        try:
            t0 = time.monotonic()
            for i in range(a.frames):
                await send({
                    "event": "media",
                    "streamSid": SID,
                    "media": {
                        "track": "inbound",
                        "chunk": str(i + 1),
                        "timestamp": str(i * 20),
                        "payload": base64.b64encode(payload(i)).decode(),
                    },
                })
                out["sent"].append(time.monotonic())
                if i == 10:
                    await send({"event": "dtmf", "streamSid": SID,
                                "dtmf": {"track": "inbound_track", "digit": "5"}})
                if a.bad and i == 20:
                    await ws.send("this is not json")
                    await send({"event": "media", "streamSid": SID,
                                "media": {"track": "inbound", "chunk": "0", "timestamp": "0",
                                          "payload": "!!not base64!!"}})
                    await send({"event": "no-such-event", "streamSid": SID})
                delay = t0 + (i + 1) * 0.020 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.sleep(0.5)
            await send({"event": "stop", "streamSid": SID,
                        "stop": {"accountSid": "AC0123456789abcdef0123456789abcdef",
                                 "callSid": "CA0123456789abcdef0123456789abcdef"}})
            try:
                await asyncio.wait_for(r, timeout=5)
            except asyncio.TimeoutError:
                pass

        except websockets.ConnectionClosed:
            await asyncio.wait_for(r, timeout=5)
        out["close_code"] = ws.close_code
    print(json.dumps(out))


asyncio.run(main())
