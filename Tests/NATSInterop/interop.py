"""NATS interop peer for NATSServerTests (nats-py, an independent client).

    python interop.py PORT N M

Subscribes to interop.to-py, prints READY, publishes N messages with headers to
interop.to-swift (payload i = payload(i), headers Seq, Origin, Len; odd ones with a reply
subject), prints PUBLISHED, then waits (20 s at most) for M messages on interop.to-py and
prints one line per message: GOT <i> <subject> <length> ok|MISMATCH <Seq header or -> <reply or ->,
then DONE. The Swift test builds the same payloads (NATSInterop.payload) and checks both ways.
"""
import asyncio
import sys

import nats


def payload(i: int) -> bytes:
    if i == 0:
        return b""
    if i == 1:
        return b"\r\n\x00\xff MSG fake 1 2\r\n"
    if i == 2:
        return bytes(range(256)) * 400
    return bytes(((i * 7 + k * 13) & 0xFF) for k in range((i * 37) % 1000))


async def main() -> None:
    port, n, m = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    nc = await nats.connect(f"nats://127.0.0.1:{port}", name="py-interop", allow_reconnect=False)
    got = []
    done = asyncio.Event()

    async def on_message(msg):
        got.append(msg)
        if len(got) == m:
            done.set()

    await nc.subscribe("interop.to-py", cb=on_message)
    await nc.flush()
    print("READY", flush=True)
    for i in range(n):
        data = payload(i)
        headers = {"Seq": str(i), "Origin": "python", "Len": str(len(data))}
        await nc.publish("interop.to-swift", data, reply=f"interop.reply.{i}" if i % 2 else "", headers=headers)
    await nc.flush()
    print("PUBLISHED", flush=True)
    if m > 0:
        await asyncio.wait_for(done.wait(), 20)
    for i, msg in enumerate(got):
        verdict = "ok" if msg.data == payload(i) else "MISMATCH"
        seq = (msg.headers or {}).get("Seq", "-")
        print(f"GOT {i} {msg.subject} {len(msg.data)} {verdict} {seq} {msg.reply or '-'}", flush=True)
    print("DONE", flush=True)
    await nc.close()


asyncio.run(main())
