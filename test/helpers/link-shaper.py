"""
A userspace stand-in for `tc netem` on one direction of one link, for kernels
built without sch_netem (test/helpers/netns-cluster.ts). tc redirects every frame
the shaped device sends (clsact egress, a classic-BPF match on "not our mark",
mirred) into one end of a veth pair; this reads them from the other end, drops
LOSS_PCT % of them at random, holds the rest DELAY_MS +- JITTER_MS (uniform, so
frames may be reordered, as with netem), and sends them out of the shaped device
with MARK set so the filter lets them through. Frames keep their virtio-net
header (PACKET_VNET_HDR), so checksum offload and GSO pass through untouched.

usage: link-shaper.py READ_DEV SEND_DEV MARK LOSS_PCT DELAY_MS JITTER_MS
Prints "ready", and on SIGTERM, once every held frame is sent, one JSON line of counts.
"""
import heapq
import json
import random
import select
import signal
import socket
import sys
import time

read_dev, send_dev = sys.argv[1], sys.argv[2]
mark = int(sys.argv[3])
loss = float(sys.argv[4]) / 100
delay, jitter = float(sys.argv[5]) / 1000, float(sys.argv[6]) / 1000
SOL_PACKET, PACKET_VNET_HDR, PACKET_OUTGOING, ETH_P_ALL = 263, 15, 4, 3

try:  # the read end must not send anything of its own (IPv6 autoconfiguration)
    with open(f"/proc/sys/net/ipv6/conf/{read_dev}/disable_ipv6", "w") as f:
        f.write("1")
except OSError:
    pass
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
rx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
rx.bind((read_dev, 0))
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
tx.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
tx.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
tx.bind((send_dev, 0))

held = []  # (due, seq, arrived, frame)
seq = 0
stats = {"forwarded": 0, "dropped": 0, "holdMsMean": 0.0, "holdMsMax": 0.0, "lateMsMax": 0.0}
hold_total = 0.0
running = True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)

while running or held:
    now = time.monotonic()
    while held and held[0][0] <= now:
        due, _, arrived, frame = heapq.heappop(held)
        try:
            tx.send(frame)
        except OSError:
            pass
        stats["forwarded"] += 1
        hold_total += (now - arrived) * 1000
        stats["holdMsMax"] = max(stats["holdMsMax"], (now - arrived) * 1000)
        stats["lateMsMax"] = max(stats["lateMsMax"], (now - due) * 1000)
    if not running:
        if held:
            time.sleep(max(0.0, held[0][0] - time.monotonic()))
        continue
    timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
    try:
        ready, _, _ = select.select([rx], [], [], timeout)
    except InterruptedError:
        continue
    while ready:
        try:
            frame, addr = rx.recvfrom(262144, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            break
        if addr[2] == PACKET_OUTGOING:
            continue
        if random.random() < loss:
            stats["dropped"] += 1
            continue
        arrived = time.monotonic()
        seq += 1
        heapq.heappush(held, (arrived + max(0.0, delay + random.uniform(-jitter, jitter)), seq, arrived, frame))

stats["holdMsMean"] = round(hold_total / stats["forwarded"], 1) if stats["forwarded"] else 0.0
stats["holdMsMax"] = round(stats["holdMsMax"], 1)
stats["lateMsMax"] = round(stats["lateMsMax"], 1)
print(json.dumps(stats), flush=True)
