"""End-to-end test of the relay's demo page in headless Chromium, through the real relay.

Run by Tests/Browser/run.sh, which installs Chromium, chromedriver and Selenium, starts the relay
and passes its addresses. Two windows of the demo page (WebSocket) and one `ghost-sync join`
subprocess (TCP) share a room; every check is a condition polled for at most 10 s:

- each side sees the others' joins (PlayerJoined both ways, and the page's hello lets a newcomer
  learn the members already there);
- broadcasts arrive byte for byte: page to page, page to TCP, TCP to page; binary, UTF-8 text,
  empty, and 100 000 bytes (WebSocket's 64-bit length form, both directions);
- closing a window gives PlayerLeft at the other window and at the TCP member;
- the pages answer the relay's Ping (the relay runs with a 1 s ping interval: a page that did
  not would be dropped within 2 s);
- the browser console shows no error.

With --screenshot it writes docs/images/demo.png: the page with two browser members and the
terminal member in the room.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

WAIT = 10.0  # seconds: the bound of every wait
POINTER_KIND = 0xF1  # the demo's pointer updates: 5 bytes starting with this


class CheckFailed(Exception):
    pass


def wait_until(what, condition, timeout=WAIT):
    """Polls `condition` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = condition()
        except CheckFailed:
            raise
        except Exception as error:  # a page still loading, a script not defined yet
            last = error
        if last:
            return last
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {timeout:.0f} s (last seen: {last!r})")
        time.sleep(0.05)


class TCPMember:
    """`ghost-sync join ROOM --addr ADDR --json`: prints one JSON line per event, broadcasts stdin lines."""

    def __init__(self, executable, address, room):
        self.process = subprocess.Popen(
            [executable, "join", room, "--addr", address, "--json"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events = []
        self.lock = threading.Lock()
        self.stderr = b""
        self.id = None
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            event = json.loads(line)
            with self.lock:
                self.events.append(event)

    def _read_stderr(self):
        self.stderr = self.process.stderr.read()

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def say(self, line):
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def broadcasts(self):
        """(sender, bytes) of every broadcast but the pages' pointer updates."""
        found = []
        for event in self.snapshot():
            if event.get("event") != "broadcast":
                continue
            data = bytes.fromhex(event["hex"]) if "hex" in event else event["text"].encode()
            if len(data) == 5 and data[0] == POINTER_KIND:
                continue
            found.append((event["sender"], data))
        return found

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Page:
    """One window of the demo page in the shared driver."""

    def __init__(self, driver, name, handle):
        self.driver = driver
        self.name = name
        self.handle = handle
        self.console = []

    def run(self, script, *arguments):
        self.driver.switch_to.window(self.handle)
        return self.driver.execute_script(script, *arguments)

    def demo(self, expression):
        return self.run(f"return window.ghostDemo && window.ghostDemo.{expression};")

    def collect_console(self):
        self.driver.switch_to.window(self.handle)
        self.console.extend(self.driver.get_log("browser"))
        return self.console

    def received_from(self, sender):
        return [entry["hex"] for entry in self.demo("received") or [] if entry["senderId"] == sender]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ws", required=True, help="the relay's WebSocket/HTTP address, HOST:PORT")
    parser.add_argument("--tcp", required=True, help="the relay's TCP address, HOST:PORT")
    parser.add_argument("--ghost-sync", required=True, help="the ghost-sync executable (for `join`)")
    parser.add_argument("--room", default="browser-test")
    parser.add_argument("--ping-interval", type=float, default=1.0, help="the relay's --ping-interval, in seconds")
    parser.add_argument("--screenshot", metavar="PNG", help="write a screenshot of the demo here")
    arguments = parser.parse_args()

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,960"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})

    results = []
    tcp_members = []
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        run_checks(driver, arguments, results, tcp_members)
    except CheckFailed as failure:
        results.append((False, str(failure)))
        print(f"FAILED - {failure}", flush=True)
    finally:
        driver.quit()
        for member in tcp_members:
            member.stop()

    passed = sum(1 for ok, _ in results if ok)
    failed = len(results) - passed
    print(f"browser: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


def run_checks(driver, arguments, results, tcp_members):
    """The checks in order; each one builds on the state the previous ones left."""
    def passed(text):
        results.append((True, text))
        print(f"ok - {text}", flush=True)

    url = f"http://{arguments.ws}/?room={arguments.room}&autojoin=1"
    room = arguments.room

    # Window A joins first.
    driver.get(url)
    a = Page(driver, "A", driver.current_window_handle)
    wait_until("page A joins", lambda: a.demo("status") == "joined")
    a_id = a.demo("clientId")
    a_joined_at = time.monotonic()
    if a.run("return document.title") != "GhostSync relay demo":
        raise CheckFailed("page A: the served index.html has the wrong title")
    content_types = a.run("""
        return Promise.all(["/", "/index.html", "/demo.js", "/demo.css", "/ghost-sync.js", "/ghost-sync.d.ts"].map((path) =>
            fetch(path).then((answer) => answer.arrayBuffer().then(() => [path, answer.status, answer.headers.get("content-type")]))));""")
    for path, status, content_type in content_types:
        expected = {"/": "text/html", "/index.html": "text/html", "/demo.js": "javascript", "/demo.css": "text/css",
                    "/ghost-sync.js": "javascript", "/ghost-sync.d.ts": "typescript"}[path]
        if status != 200 or expected not in (content_type or ""):
            raise CheckFailed(f"GET {path}: status {status}, Content-Type {content_type!r} (want 200 and {expected})")
    passed(f"the relay serves the page and its files with their content types; page A joined {room} as {a_id}")

    # The TCP member joins second: A sees it.
    tcp = TCPMember(arguments.ghost_sync, arguments.tcp, room)
    tcp_members.append(tcp)
    joined = wait_until("the TCP member joins", lambda: [e for e in tcp.snapshot() if e.get("event") == "joined"]
                        or (tcp.process.poll() is not None and fail(f"ghost-sync join exited: {tcp.stderr.decode()!r}")))
    tcp_id = tcp.id = joined[0]["client"]
    wait_until("page A gets PlayerJoined for the TCP member",
               lambda: {"type": "playerJoined", "clientId": tcp_id} in (a.demo("events") or []))
    passed(f"TCP member {tcp_id} joined; page A got its PlayerJoined")

    # Window B joins third: A and the TCP member see it; B learns A from A's hello.
    driver.switch_to.new_window("window")
    driver.set_window_size(1280, 960)
    driver.get(url)
    b = Page(driver, "B", driver.current_window_handle)
    wait_until("page B joins", lambda: b.demo("status") == "joined")
    b_id = b.demo("clientId")
    wait_until("page A gets PlayerJoined for B",
               lambda: {"type": "playerJoined", "clientId": b_id} in (a.demo("events") or []))
    wait_until("the TCP member gets PlayerJoined for B",
               lambda: {"event": "player_joined", "client": b_id} in tcp.snapshot())
    wait_until("page B learns page A from A's hello (pointer position)",
               lambda: a_id in (b.demo("members") or []) and b.demo("positions")[a_id]["known"])
    passed(f"page B joined as {b_id}: PlayerJoined at A and at the TCP member; B knows A from its hello")

    if arguments.screenshot:
        take_screenshot(driver, a, b, b_id, tcp, arguments.screenshot)
        passed(f"screenshot written to {arguments.screenshot}")

    # Broadcasts, byte for byte.
    every_byte = bytes(range(256))
    large = bytes((index * 7 + 3) % 256 for index in range(100_000))
    text = "héllo from B 🎮"

    a.run("window.ghostDemo.sendHex(arguments[0])", every_byte.hex())
    wait_until("page B receives A's 256 bytes", lambda: every_byte.hex() in b.received_from(a_id))
    wait_until("the TCP member receives A's 256 bytes", lambda: (a_id, every_byte) in tcp.broadcasts())
    passed("256 bytes 00..ff from page A arrive byte for byte at page B and at the TCP member")

    b.run("window.ghostDemo.send(arguments[0])", text)
    wait_until("page A receives B's UTF-8 text", lambda: text.encode().hex() in a.received_from(b_id))
    wait_until("the TCP member receives B's text", lambda: (b_id, text.encode()) in tcp.broadcasts())
    passed("UTF-8 text from page B arrives byte for byte at page A and at the TCP member")

    a.run("window.ghostDemo.send(new Uint8Array(0))")
    wait_until("page B receives A's empty broadcast", lambda: "" in b.received_from(a_id))
    wait_until("the TCP member receives A's empty broadcast", lambda: (a_id, b"") in tcp.broadcasts())
    passed("an empty broadcast from page A arrives at page B and at the TCP member")

    b.run("window.ghostDemo.sendHex(arguments[0])", large.hex())
    wait_until("page A receives B's 100 000 bytes", lambda: large.hex() in a.received_from(b_id))
    wait_until("the TCP member receives B's 100 000 bytes", lambda: (b_id, large) in tcp.broadcasts())
    passed("100 000 bytes from page B arrive byte for byte at page A and at the TCP member")

    line = "from the terminal: ü ✓"
    tcp.say(line)
    for page in (a, b):
        wait_until(f"page {page.name} receives the TCP member's line",
                   lambda: line.encode().hex() in page.received_from(tcp_id))
    tcp.say(large.hex())  # the TCP side's 200 000-character line, relayed as its bytes
    for page in (a, b):
        wait_until(f"page {page.name} receives the TCP member's 200 000 bytes",
                   lambda: large.hex().encode().hex() in page.received_from(tcp_id))
    passed("lines from the TCP member (22 and 200 000 bytes) arrive byte for byte at both pages")

    # Nothing arrived twice, nothing from a page to itself.
    for page, own in ((a, a_id), (b, b_id)):
        received = page.demo("received")
        if any(entry["senderId"] == own for entry in received):
            raise CheckFailed(f"page {page.name} received its own broadcast")
        hexes = [entry["hex"] for entry in received]
        if len(hexes) != len(set(hexes)) and "" not in hexes:
            raise CheckFailed(f"page {page.name} received a broadcast twice")
    passed("no page received its own broadcast or one twice")

    # Console of B before its window goes.
    b.collect_console()

    # Closing window B: PlayerLeft at A and at the TCP member.
    driver.switch_to.window(b.handle)
    driver.close()
    wait_until("page A gets PlayerLeft for B",
               lambda: {"type": "playerLeft", "clientId": b_id} in (a.demo("events") or []))
    wait_until("the TCP member gets PlayerLeft for B", lambda: {"event": "player_left", "client": b_id} in tcp.snapshot())
    if b_id in a.demo("members"):
        raise CheckFailed("page A still lists B after PlayerLeft")
    passed("closing page B's window gives PlayerLeft at page A and at the TCP member")

    # Keepalive: with a 1 s ping interval, a page that did not answer Ping would be gone by now.
    # This is a wait for something NOT to happen, so it has to be a sleep (bounded, at most 4 s).
    stay = 3.5 * arguments.ping_interval - (time.monotonic() - a_joined_at)
    if stay > 0:
        time.sleep(min(stay, 4.0))
    status = a.demo("status")
    if status != "joined" or any(event["type"] == "close" for event in a.demo("events")):
        raise CheckFailed(f"page A was disconnected (status {status}): did it answer the relay's Ping?")
    rtt = wait_until("page A measures a round-trip time", lambda: a.demo("rtt"))
    if tcp.process.poll() is not None:
        raise CheckFailed(f"the TCP member exited: {tcp.stderr.decode()!r}")
    passed(f"page A is still connected {time.monotonic() - a_joined_at:.1f} s after joining with a "
           f"{arguments.ping_interval:g} s relay ping interval; RTT {rtt:.2f} ms")

    # Console: no errors in either page.
    errors = [entry for page in (a, b) for entry in (page.collect_console() if page is a else page.console)
              if entry.get("level") == "SEVERE"]
    if errors:
        raise CheckFailed("browser console errors: " + "; ".join(entry["message"] for entry in errors))
    passed(f"no browser console error ({len(a.console) + len(b.console)} console entries in all)")


def fail(text):
    raise CheckFailed(text)


def take_screenshot(driver, a, b, b_id, tcp, path):
    """Page A with the other browser member and the terminal member in the room, a few messages."""
    a.run("window.ghostDemo.movePointer(0.30, 0.42)")
    b.run("window.ghostDemo.movePointer(0.68, 0.62)")
    greetings = {b_id: "hi from the second tab", tcp.id: "hello from a terminal (ghost-sync join)"}
    b.run("window.ghostDemo.send(arguments[0])", greetings[b_id])
    tcp.say(greetings[tcp.id])
    wait_until("page A sees B's pointer where B put it", lambda: abs(a.demo("positions")[b_id]["x"] - 0.68) < 0.001)
    for sender, greeting in greetings.items():
        wait_until("page A shows the greetings", lambda: greeting.encode().hex() in a.received_from(sender))
    wait_until("page A shows a round-trip time", lambda: a.demo("rtt"))
    a.run("window.scrollTo(0, 0);")
    driver.switch_to.window(a.handle)
    # Let the avatars' easing settle: the canvas draws towards the new positions over a few frames.
    wait_until("page A's drawing settles", lambda: a.run(
        "return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not driver.save_screenshot(path):
        raise CheckFailed(f"could not write {path}")


if __name__ == "__main__":
    sys.exit(main())
