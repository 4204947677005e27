#!/usr/bin/env python3
"""Wire-level checks of a ghost-sync relay on 127.0.0.1:PORT (the reference relay, or GhostSync
started with rooms room-1 … room-N): the protocol.md test vectors and the behaviour a benchmark
relies on. Exits non-zero on the first mismatch.   protocol_check.py PORT"""
import socket
import struct
import sys

PORT = int(sys.argv[1])


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def join(room: bytes) -> bytes: return frame(struct.pack("<I", 0) + string(room))
def broadcast(data: bytes) -> bytes: return frame(struct.pack("<I", 4) + string(data))
def echo(data: bytes) -> bytes: return frame(struct.pack("<I", 5) + string(data))
LEAVE, PING, PONG = frame(b"\1\0\0\0"), frame(b"\2\0\0\0"), frame(b"\3\0\0\0")


class Client:
    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=3)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, data: bytes, split: bool = False):
        if split:  # one byte per send: the relay must cope with any split
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
        else:
            self.sock.sendall(data)

    def recv(self):
        """(tag, body) of the next ServerWire frame."""
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack(">I", self.buffer[:4])
                if len(self.buffer) >= 4 + length:
                    payload = self.buffer[4:4 + length]
                    self.buffer = self.buffer[4 + length:]
                    return struct.unpack("<I", payload[:4])[0], payload[4:]
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("relay closed the connection")
            self.buffer += chunk

    def expect_closed(self):
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass

    def expect_nothing(self):
        """Nothing more within 0.2 s (a Ping/Pong round trip orders it after what was sent)."""
        self.send(PING)
        tag, body = self.recv()
        check(tag == 4 and body == b"", f"expected only Pong, got tag {tag} {body.hex()}")


def check(condition: bool, what: str):
    if not condition:
        print(f"protocol check FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def joined(client: Client, room: bytes) -> bytes:
    client.send(join(room))
    tag, body = client.recv()
    check(tag == 0 and body[16:] == string(room), f"Joined{{{room!r}}} expected, got tag {tag} {body.hex()}")
    return body[:16]


a, b, c = Client(), Client(), Client()
# Unknown rooms, leading zeros included, get the error text the protocol gives.
for bad in (b"lobby", b"room-0", b"room-01", b"room-999999999"):
    a.send(join(bad))
    tag, body = a.recv()
    check(tag == 5 and body == string(b"room not found: " + bad), f"Error for {bad!r}, got tag {tag} {body.hex()}")
a.send(broadcast(b"hi"))
tag, body = a.recv()
check(tag == 5 and body == string(b"not in a room"), f"Error(not in a room), got tag {tag} {body.hex()}")
a.send(PING)
check(a.recv() == (4, b""), "Pong for Ping")
a.send(PONG)
a.send(echo(b"hi"))
check(a.recv() == (7, string(b"hi")), "EchoTest back")

id_a = joined(a, b"room-1")
check(id_a[6] >> 4 == 4 and id_a[8] >> 6 == 2, f"UUID v4 layout, got {id_a.hex()}")
b.send(join(b"room-1"), split=True)
tag, body = b.recv()
id_b = body[:16]
check(tag == 0 and body[16:] == string(b"room-1") and id_b != id_a, "Joined for b")
check(a.recv() == (1, id_b), "PlayerJoined{b} to a")
id_c = joined(c, b"room-1")
check(a.recv() == (1, id_c) and b.recv() == (1, id_c), "PlayerJoined{c} to a and b")

# Broadcast reaches every other member, never the sender; several frames in one write.
a.send(broadcast(b"one") + broadcast(b"") + broadcast(bytes(range(256)) * 40))
for other in (b, c):
    check(other.recv() == (6, id_a + string(b"one")), "Broadcast one")
    check(other.recv() == (6, id_a + string(b"")), "Broadcast empty")
    check(other.recv() == (6, id_a + string(bytes(range(256)) * 40)), "Broadcast 10 KiB")
a.expect_nothing()

# Joining another room leaves the first (PlayerLeft there); LeaveRoom likewise.
joined(b, b"room-2")
check(a.recv() == (2, id_b) and c.recv() == (2, id_b), "PlayerLeft{b} on b's join elsewhere")
b.send(broadcast(b"x"))
b.expect_nothing()
c.send(LEAVE)
check(a.recv() == (2, id_c), "PlayerLeft{c} on LeaveRoom")
c.send(LEAVE)  # in no room: nothing
c.expect_nothing()
joined(c, b"room-1")
check(a.recv() == (1, id_c), "PlayerJoined{c} again")

# Protocol errors close the connection; the others see PlayerLeft.
c.send(frame(b"\4\0\0\0" + struct.pack("<Q", 5) + b"ab"))  # length past the end
c.expect_closed()
check(a.recv() == (2, id_c), "PlayerLeft{c} after its protocol error")
for bad in (frame(b""), frame(b"\x09\0\0\0"), frame(b"\2\0\0\0\0"),  # empty, unknown tag, trailing byte
            frame(struct.pack("<I", 0) + string(b"room-\xff")),      # invalid UTF-8
            struct.pack(">I", 65537)):                               # too large: the prefix alone
    d = Client()
    d.send(bad)
    d.expect_closed()
# Disconnect while in a room: PlayerLeft to the others.
a.sock.close()  # alone in room-1 by now: nobody to tell
joined(b, b"room-1")
e = Client()
id_e = joined(e, b"room-1")
check(b.recv() == (1, id_e), "PlayerJoined{e}")
e.sock.close()
check(b.recv() == (2, id_e), "PlayerLeft{e} on disconnect")
# A member that stops reading: the relay's writes to it go partial, then block; past its queue
# frames are dropped, but every frame it does get is whole, in order, and the sender never waits.
slow, fast = Client(), Client()
joined(slow, b"room-3")
id_fast = joined(fast, b"room-3")
check(slow.recv() == (1, id_fast), "PlayerJoined{fast}")
sizes = [20, 100, 1000, 1100, 3000, 20000]
messages = [struct.pack("<I", i) + bytes([(i * 7) % 251]) * sizes[i % len(sizes)] for i in range(3000)]
fast.send(b"".join(broadcast(m) for m in messages))  # about 12 MB, more than the socket buffers hold
fast.expect_nothing()  # the relay read all of it while slow was not reading
slow.sock.settimeout(1)
seen = []
try:
    while True:
        tag, body = slow.recv()
        check(tag == 6 and body[:16] == id_fast, f"Broadcast from fast expected, got tag {tag}")
        data = body[24:]
        check(struct.unpack("<Q", body[16:24])[0] == len(data), "Broadcast length")
        (i,) = struct.unpack("<I", data[:4])
        check(data == messages[i], f"message {i} corrupted")
        seen.append(i)
except socket.timeout:
    pass
check(seen == sorted(set(seen)) and len(seen) > 0, "the slow member's messages in order, none twice")
print(f"protocol check: ok (slow member got {len(seen)} of {len(messages)} broadcasts intact, in order)")
