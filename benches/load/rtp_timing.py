#!/usr/bin/env python3
"""Helpers for benches/load/media-load.sh (Python 3.11, standard library only).

  rtp_timing.py gen-ulaw OUT SECONDS     raw G.711 mu-law audio for sipp's rtp_stream
  rtp_timing.py gen-pcap OUT SECONDS     the same audio as a pcap of 20 ms PCMU RTP packets
                                         (Ethernet/IPv4/UDP, 50 packets/s) for play_pcap_audio
  rtp_timing.py analyze PCAP --rtp-min A --rtp-max B [--calls N] [--json OUT]
                                         echo loss, packet rates and playout timing error

Every 160-byte frame (20 ms at 8 kHz) carries its own index in its first two bytes
(0x80 | 7 bits each, 14 bits in all: unique for 327 s), followed by a quiet 440 Hz tone.
Mu-law codes 0x80..0xFF are all positive and survive the server's decode -> echo ->
encode unchanged (only 0x7F, "negative zero", does not), so an echoed packet names the
caller packet it carries and loss is counted packet by packet, not estimated from rates.

The analysis takes a capture of the loopback interface filtered on the server's RTP port
range. A datagram from a port in the range is the server's (server -> sipp), one to a port
in the range is sipp's. Per server stream (one per call):
  - timing error: each packet's capture time minus an ideal 20 ms grid t0 + 20 ms * k
    (k from the RTP sequence number), with the stream's mean offset removed; and the gap
    between consecutive packets minus 20 ms. Percentiles are over |error| of all packets
    of all streams.
  - loss: caller frames sipp sent in the window (except its last 0.5 s, still in flight
    through the jitter buffer) whose index never comes back from the server.
"""

import argparse
import json
import math
import struct
import sys

FRAME = 160  # bytes of PCMU per 20 ms
PTIME = 0.020
IDX_MOD = 1 << 14


def ulaw_encode(sample: int) -> int:
    """ITU-T G.711 mu-law encoding of a 16-bit linear sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, clip) + bias
    exp = 7
    mask = 0x4000
    while exp > 0 and not sample & mask:
        exp -= 1
        mask >>= 1
    mant = (sample >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def frame_bytes(i: int) -> bytes:
    idx = i % IDX_MOD
    head = bytes([0x80 | (idx >> 7), 0x80 | (idx & 0x7F)])
    body = bytearray()
    for n in range(2, FRAME):
        t = (i * FRAME + n) / 8000.0
        # 440 Hz at about -30 dBFS, positive half-wave only (codes 0x80..0xFF).
        v = int(1000 * abs(math.sin(2 * math.pi * 440 * t)))
        c = ulaw_encode(v)
        body.append(c if c != 0x7F else 0xFF)
    return head + bytes(body)


def audio(seconds: float) -> bytes:
    n = max(1, int(round(seconds / PTIME)))
    return b"".join(frame_bytes(i) for i in range(n))


def gen_ulaw(out: str, seconds: float) -> None:
    with open(out, "wb") as f:
        f.write(audio(seconds))


def ip_checksum(hdr: bytes) -> int:
    s = sum(struct.unpack("!%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def gen_pcap(out: str, seconds: float) -> None:
    """Classic pcap, DLT_EN10MB; sipp rewrites addresses, ports and the UDP checksum."""
    n = max(1, int(round(seconds / PTIME)))
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    sport, dport = 6000, 6000
    ssrc = 0x4C43_0001
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            rtp = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | 0, i & 0xFFFF,
                              (i * FRAME) & 0xFFFFFFFF, ssrc) + frame_bytes(i)
            udp = struct.pack("!HHHH", sport, dport, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                             src, dst)
            ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
            eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
            pkt = eth + ip + udp
            us = i * 20_000
            f.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(pkt), len(pkt)))
            f.write(pkt)


def read_pcap(path: str):
    """Yields (time_s, linktype, frame) from a classic pcap (any byte order, us or ns)."""
    with open(path, "rb") as f:
        gh = f.read(24)
        if len(gh) < 24:
            return
        magic = struct.unpack("<I", gh[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            e = "<"
        else:
            magic = struct.unpack(">I", gh[:4])[0]
            if magic not in (0xA1B2C3D4, 0xA1B23C4D):
                raise SystemExit(f"{path}: not a classic pcap file (use dumpcap -P)")
            e = ">"
        div = 1e9 if magic == 0xA1B23C4D else 1e6
        linktype = struct.unpack(e + "I", gh[20:24])[0]
        rec = struct.Struct(e + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _orig = rec.unpack(h)
            data = f.read(incl)
            if len(data) < incl:
                return
            yield sec + frac / div, linktype, data


def udp_of(linktype: int, frame: bytes):
    if linktype == 1:  # Ethernet
        if len(frame) < 14 or frame[12:14] != b"\x08\x00":
            return None
        ip = frame[14:]
    elif linktype == 113:  # Linux cooked
        if len(frame) < 16 or frame[14:16] != b"\x08\x00":
            return None
        ip = frame[16:]
    elif linktype in (101, 228):  # raw IPv4
        ip = frame
    else:
        return None
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    ihl = (ip[0] & 0x0F) * 4
    udp = ip[ihl:]
    if len(udp) < 8:
        return None
    sport, dport = struct.unpack("!HH", udp[:4])
    return sport, dport, udp[8:]


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(math.ceil(p / 100.0 * len(sorted_vals))) - 1))
    return sorted_vals[k]


def grid_errors(pkts):
    """|t - grid| (ms) with the mean offset removed, and |gap - 20 ms| (ms)."""
    pkts.sort(key=lambda p: p[1])
    t0, s0 = pkts[0][0], pkts[0][1]
    dev = [(t - t0) - PTIME * (s - s0) for t, s, _ in pkts]
    mean = sum(dev) / len(dev)
    grid = [abs(d - mean) * 1000 for d in dev]
    gaps = []
    for a, b in zip(pkts, pkts[1:]):
        if b[1] - a[1] == 1:
            gaps.append(abs((b[0] - a[0]) - PTIME) * 1000)
    return grid, gaps


def analyze(args) -> dict:
    lo, hi = args.rtp_min, args.rtp_max
    srv = {}  # server port -> [(t, seq_unwrapped, idx or None)]
    cli = {}  # server port -> [(t, seq, idx)]
    last_seq = {}
    t_first = t_last = None
    t_cap = None
    for t, lt, frame in read_pcap(args.pcap):
        # The first --skip seconds of the capture are not analysed (starting dumpcap
        # disturbs a loaded machine for a moment).
        if t_cap is None:
            t_cap = t
        if t - t_cap < args.skip:
            continue
        u = udp_of(lt, frame)
        if not u:
            continue
        sport, dport, rtp = u
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            continue
        pt = rtp[1] & 0x7F
        if 72 <= pt <= 76 or pt != 0:  # RTCP (rtcp-mux range) or not PCMU
            continue
        seq = struct.unpack("!H", rtp[2:4])[0]
        payload = rtp[12:]
        idx = None
        if len(payload) >= 2 and payload[0] & 0x80 and not (payload[0] == 0xFF and payload[1] == 0xFF
                                                           and len(payload) >= 4 and payload[2] == 0xFF):
            idx = ((payload[0] & 0x7F) << 7) | (payload[1] & 0x7F)
        if t_first is None:
            t_first = t
        t_last = t
        if lo <= sport <= hi:
            key = sport
            prev = last_seq.get(key)
            if prev is not None:
                # Unwrap the 16-bit sequence number around the previous one.
                d = (seq - (prev & 0xFFFF)) & 0xFFFF
                if d >= 0x8000:
                    d -= 0x10000
                seq = prev + d
            last_seq[key] = seq
            srv.setdefault(key, []).append((t, seq, idx))
        elif lo <= dport <= hi:
            cli.setdefault(dport, []).append((t, seq, idx))
    if t_first is None:
        return {"error": "no RTP packets in the capture"}
    window = t_last - t_first
    grid_all, gap_all = [], []
    cli_grid_all = []
    srv_pps, cli_pps = [], []
    sent = lost = 0
    lost_lateness = []  # ms late at sipp's send, per lost caller frame
    silence_pkts = 0
    for port, pk in srv.items():
        if len(pk) >= 2:
            g, gaps = grid_errors(list(pk))
            grid_all += g
            gap_all += gaps
        srv_pps.append(len(pk) / window if window > 0 else 0)
        silence_pkts += sum(1 for p in pk if p[2] is None)
    for port, pk in cli.items():
        cli_pps.append(len(pk) / window if window > 0 else 0)
        if len(pk) >= 2:
            cg, _ = grid_errors([(t, s, i) for t, s, i in pk])
            cli_grid_all += cg
        echoed = {p[2] for p in srv.get(port, []) if p[2] is not None}
        # How late each caller packet left sipp against its own grid (median offset
        # removed): a lost frame that left sipp late is the client's jitter, not ours.
        ordered = sorted(pk, key=lambda p: p[1])
        s0, t0 = ordered[0][1], ordered[0][0]
        dev = sorted((t - t0) - PTIME * (s - s0) for t, s, _ in ordered)
        med = dev[len(dev) // 2]
        for t, s, i in pk:
            if i is None or t > t_last - 0.5:
                continue
            sent += 1
            if i not in echoed:
                lost += 1
                late = ((t - t0) - PTIME * (s - s0) - med) * 1000
                lost_lateness.append(round(late, 1))
    grid_all.sort()
    gap_all.sort()
    cli_grid_all.sort()
    res = {
        "window_s": round(window, 3),
        "server_streams": len(srv),
        "client_streams": len(cli),
        "server_pkts": sum(len(v) for v in srv.values()),
        "client_pkts": sum(len(v) for v in cli.values()),
        "server_silence_pkts": silence_pkts,
        "server_pps_per_stream_mean": round(sum(srv_pps) / len(srv_pps), 2) if srv_pps else 0,
        "server_pps_per_stream_min": round(min(srv_pps), 2) if srv_pps else 0,
        "client_pps_per_stream_mean": round(sum(cli_pps) / len(cli_pps), 2) if cli_pps else 0,
        "echo_checked": sent,
        "echo_lost": lost,
        "loss_pct": round(100.0 * lost / sent, 4) if sent else float("nan"),
        # Lost caller frames that left sipp 10 ms or more behind its own 20 ms grid.
        "echo_lost_sent_late": sum(1 for x in lost_lateness if x >= 10),
        "echo_lost_lateness_ms": sorted(lost_lateness)[:50],
        "timing_grid_ms": {"p50": pct(grid_all, 50), "p99": pct(grid_all, 99),
                           "max": grid_all[-1] if grid_all else float("nan"),
                           "n": len(grid_all)},
        "timing_gap_ms": {"p50": pct(gap_all, 50), "p99": pct(gap_all, 99),
                          "max": gap_all[-1] if gap_all else float("nan"), "n": len(gap_all)},
        "sipp_send_grid_ms": {"p50": pct(cli_grid_all, 50), "p99": pct(cli_grid_all, 99),
                              "max": cli_grid_all[-1] if cli_grid_all else float("nan")},
    }
    if args.calls:
        res["calls_expected"] = args.calls
    for k in ("timing_grid_ms", "timing_gap_ms", "sipp_send_grid_ms"):
        res[k] = {a: (round(b, 3) if isinstance(b, float) else b) for a, b in res[k].items()}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-ulaw")
    g.add_argument("out")
    g.add_argument("seconds", type=float)
    g = sub.add_parser("gen-pcap")
    g.add_argument("out")
    g.add_argument("seconds", type=float)
    a = sub.add_parser("analyze")
    a.add_argument("pcap")
    a.add_argument("--rtp-min", type=int, required=True)
    a.add_argument("--rtp-max", type=int, required=True)
    a.add_argument("--calls", type=int, default=0)
    a.add_argument("--skip", type=float, default=0.0, help="seconds at the start to ignore")
    a.add_argument("--json")
    args = ap.parse_args()
    if args.cmd == "gen-ulaw":
        gen_ulaw(args.out, args.seconds)
    elif args.cmd == "gen-pcap":
        gen_pcap(args.out, args.seconds)
    else:
        res = analyze(args)
        text = json.dumps(res, indent=1)
        if args.json:
            with open(args.json, "w") as f:
                f.write(text + "\n")
        print(text)
        if "error" in res:
            sys.exit(1)


if __name__ == "__main__":
    main()
