#!/usr/bin/python3
"""Barge-in latency on the wire, p50/p95 over many turns.

Starts `leadscaller serve` (release build) with the scripted appointment-setter agent on
the Twilio stream endpoint, then runs tests/peers/streams/twilio_client.py RUNS times: the
caller (real-time 20 ms µ-law frames) says "Please stop calling me." over the agent's
greeting, starting at a different point of it each run (AT_FROM..AT_TO seconds after the
stream starts). For each run the latency is the time from the caller's speech onset (the
first frame of the utterance above RMS 300, as sent) to the last frame of agent audio that
reached the caller before the first gap over 100 ms, as the client saw it. Prints each run,
then p50 / p95 / max, for each `barge_in_ms` in BARGE_IN (a `[streams] barge_in_ms`; the
word "default" leaves it unset).

Usage:  benches/load/barge-in.py
        RUNS=20 BARGE_IN="default 0" benches/load/barge-in.py

Environment (all optional):
  RUNS=12            runs per setting
  BARGE_IN="default 0"
  AT_FROM=1.5 AT_TO=4.5   the caller's start, spread evenly over the runs (s)
  BIN=...            the binary (default $CARGO_TARGET_DIR or target, release/leadscaller)
  PORT=18480         the HTTP port (loopback only)

Only 127.0.0.1 is used; nothing is downloaded. Results: docs/agent.md (barge-in latency).
"""
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
BIN = os.environ.get("BIN", os.path.join(TARGET, "release", "leadscaller"))
RUNS = int(os.environ.get("RUNS", "12"))
BARGE_IN = os.environ.get("BARGE_IN", "default 0").split()
AT_FROM = float(os.environ.get("AT_FROM", "1.5"))
AT_TO = float(os.environ.get("AT_TO", "4.5"))
PORT = int(os.environ.get("PORT", "18480"))
SECRET = "barge-in-bench-secret-0123456789"
WAV = os.path.join(REPO, "..", "shared", "audio", "stop__flite.wav")
CLIENT = os.path.join(REPO, "tests", "peers", "streams", "twilio_client.py")
FLOW = os.path.join(REPO, "sip-config", "agents", "appointment-setter.toml")


def ulaw_to_linear(b: int) -> int:
    b = ~b & 0xFF
    t = ((b & 0x0F) << 3) + 0x84
    t <<= (b & 0x70) >> 4
    return (0x84 - t) if (b & 0x80) else (t - 0x84)


def onset_frame(path: str) -> int:
    """Index of the first 20 ms frame of the WAV's µ-law data with RMS over 300."""
    data = open(path, "rb").read()
    i = 12
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4:i + 8], "little")
        if data[i:i + 4] == b"data":
            pcm = [ulaw_to_linear(x) for x in data[i + 8:i + 8 + size]]
            for f in range(len(pcm) // 160):
                frame = pcm[f * 160:(f + 1) * 160]
                if math.sqrt(sum(s * s for s in frame) / 160) > 300:
                    return f
            break
        i += 8 + size + (size & 1)
    raise SystemExit(f"{path}: no speech found")


def wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server did not listen on {port}")


def run_setting(barge_in: str, lead: int) -> list:
    work = tempfile.mkdtemp(prefix="barge-in.")
    os.makedirs(os.path.join(work, "agents"))
    shutil.copy(FLOW, os.path.join(work, "agents", "appointment-setter.toml"))
    extra = "" if barge_in == "default" else f"barge_in_ms = {int(barge_in)}\n"
    with open(os.path.join(work, "leadscaller.toml"), "w") as f:
        f.write(
            f'data_dir = "{work}/data"\n'
            f'database_url = "sqlite://{work}/data/leadscaller.db"\n'
            '[sip]\nlisten = [{ transport = "udp", addr = "127.0.0.1:0" }]\n'
            f'[http]\nlisten = "127.0.0.1:{PORT}"\n'
            '[log]\nformat = "text"\nlevel = "warn"\n'
            f'[streams]\nsecret = "{SECRET}"\nflow = "agents/appointment-setter.toml"\n{extra}'
        )
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([BIN, "serve", "--config", "leadscaller.toml"], cwd=work,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    latencies = []
    try:
        wait_port(PORT)
        for k in range(RUNS):
            at = AT_FROM + (AT_TO - AT_FROM) * k / max(1, RUNS - 1)
            out = subprocess.run(
                ["/usr/bin/python3", CLIENT, f"ws://127.0.0.1:{PORT}/media-stream", "600",
                 "--secret", SECRET, "--wav", WAV, "--at", f"{at:.2f}"],
                capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise SystemExit(f"client failed: {out.stderr[-2000:]}")
            v = json.loads(out.stdout)
            onset = v["sent"][int(round(at * 50)) + lead]
            after = [t for t, _ in v["media"] if t >= onset]
            if not after:
                print(f"  barge_in_ms={barge_in} at={at:.2f}s: agent silent at the onset; skipped")
                continue
            last = after[0]
            for t in after[1:]:
                if t - last > 0.1:
                    break
                last = t
            ms = (last - onset) * 1000
            latencies.append(ms)
            print(f"  barge_in_ms={barge_in} at={at:.2f}s: agent audio stopped {ms:.0f} ms after the onset")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return latencies


def pct(xs: list, p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]


def main() -> None:
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"no binary at {BIN} (cargo build --release)")
    lead = onset_frame(WAV)
    rows = []
    for b in BARGE_IN:
        lat = run_setting(b, lead)
        if lat:
            rows.append((b, len(lat), statistics.median(lat), pct(lat, 95), max(lat)))
    print(f"\nbarge-in latency on the wire (speech onset -> last agent frame), {RUNS} runs each")
    print("barge_in_ms  runs  p50_ms  p95_ms  max_ms")
    for b, n, p50, p95, mx in rows:
        print(f"{b:>11} {n:>5} {p50:>7.0f} {p95:>7.0f} {mx:>7.0f}")


if __name__ == "__main__":
    sys.exit(main())
