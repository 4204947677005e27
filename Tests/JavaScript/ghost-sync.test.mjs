// Tests of the browser client, Sources/GhostSyncRelay/Web/ghost-sync.js, under node's own test
// runner (node 18 or newer, nothing to install): `node --test Tests/JavaScript/*.test.mjs`
// (node 18 and 20 also take the directory; node 21+ read arguments as globs, not directories). The codec
// against every test vector of docs/protocol.md in both directions, malformed payloads, and the
// client's behaviour against a scripted fake WebSocket (no network).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// The module is an ES module in a .js file with no package.json around it: node 20.19+ and 22.12+
// detect that from its syntax, node 18 would load it as CommonJS. A copy named .mjs is an ES
// module to every node.
const moduleURL = new URL("../../Sources/GhostSyncRelay/Web/ghost-sync.js", import.meta.url);
const copyDirectory = mkdtempSync(join(tmpdir(), "ghost-sync-module-"));
process.on("exit", () => rmSync(copyDirectory, { recursive: true, force: true }));
copyFileSync(moduleURL, join(copyDirectory, "ghost-sync.mjs"));
const moduleExports = await import(pathToFileURL(join(copyDirectory, "ghost-sync.mjs")).href);
const {
    GhostSync, GhostSyncClient, PROTOCOL, ProtocolError, RelayError, CLOSE_PROTOCOL_ERROR,
    encodeClient, decodeClient, encodeServer, decodeServer, toBytes, toHex,
} = moduleExports;

const hex = (text) => Uint8Array.from(Buffer.from(text.replaceAll(" ", ""), "hex"));
const bytes = (text) => new TextEncoder().encode(text);
const uuid = "00112233-4455-6677-8899-aabbccddeeff";

// docs/protocol.md, "Test vectors": produced by the original Rust implementation's serializer.
const clientVectors = [
    ["JoinRoom{room_id:\"lobby\"}", { type: "joinRoom", roomId: "lobby" }, "00000000 0500000000000000 6c6f626279"],
    ["LeaveRoom", { type: "leaveRoom" }, "01000000"],
    ["Ping", { type: "ping" }, "02000000"],
    ["Pong", { type: "pong" }, "03000000"],
    ["Broadcast{data:\"hi\"}", { type: "broadcast", data: bytes("hi") }, "04000000 0200000000000000 6869"],
    ["EchoTest{data:\"hi\"}", { type: "echoTest", data: bytes("hi") }, "05000000 0200000000000000 6869"],
];
const serverVectors = [
    ["Joined{uuid, \"lobby\"}", { type: "joined", clientId: uuid, roomId: "lobby" },
        "00000000 00112233445566778899aabbccddeeff 0500000000000000 6c6f626279"],
    ["PlayerJoined{uuid}", { type: "playerJoined", clientId: uuid }, "01000000 00112233445566778899aabbccddeeff"],
    ["PlayerLeft{uuid}", { type: "playerLeft", clientId: uuid }, "02000000 00112233445566778899aabbccddeeff"],
    ["Ping", { type: "ping" }, "03000000"],
    ["Pong", { type: "pong" }, "04000000"],
    ["Error(\"room not found: x\")", { type: "error", message: "room not found: x" },
        "05000000 1100000000000000 726f6f6d206e6f7420666f756e643a2078"],
    ["Broadcast{uuid, \"hi\"}", { type: "broadcast", senderId: uuid, data: bytes("hi") },
        "06000000 00112233445566778899aabbccddeeff 0200000000000000 6869"],
    ["EchoTest{data:\"hi\"}", { type: "echoTest", data: bytes("hi") }, "07000000 0200000000000000 6869"],
];

describe("codec: protocol.md test vectors", () => {
    for (const [name, message, payload] of clientVectors) {
        test(`ClientWire ${name} encodes to ${payload}`, () => {
            assert.equal(toHex(encodeClient(message)), payload.replaceAll(" ", ""));
        });
        test(`ClientWire ${payload} decodes to ${name}`, () => {
            assert.deepEqual(decodeClient(hex(payload)), message);
        });
    }
    for (const [name, message, payload] of serverVectors) {
        test(`ServerWire ${name} encodes to ${payload}`, () => {
            assert.equal(toHex(encodeServer(message)), payload.replaceAll(" ", ""));
        });
        test(`ServerWire ${payload} decodes to ${name}`, () => {
            assert.deepEqual(decodeServer(hex(payload)), message);
        });
    }
});

describe("codec: round trips and inputs", () => {
    test("a payload that is a view into a larger buffer decodes", () => {
        const framed = hex("00000011 00000000 0500000000000000 6c6f626279 ffff");
        assert.deepEqual(decodeClient(framed.subarray(4, 21)), { type: "joinRoom", roomId: "lobby" });
    });
    test("UUIDs decode as lowercase canonical strings; uppercase encodes the same", () => {
        const message = decodeServer(hex("01000000 0123456789abcdefabcdef0123456789"));
        assert.equal(message.clientId, "01234567-89ab-cdef-abcd-ef0123456789");
        const upper = encodeServer({ type: "playerJoined", clientId: "01234567-89AB-CDEF-ABCD-EF0123456789" });
        assert.equal(toHex(upper), "010000000123456789abcdefabcdef0123456789");
    });
    test("strings are UTF-8, a leading BOM is kept", () => {
        for (const roomId of ["", "ü-räum", "🎮", "\uFEFFbom"]) {
            assert.deepEqual(decodeClient(encodeClient({ type: "joinRoom", roomId })), { type: "joinRoom", roomId });
        }
        assert.equal(toHex(encodeClient({ type: "joinRoom", roomId: "é" })), "000000000200000000000000c3a9");
    });
    test("broadcast data: every byte value, empty, 64 KiB", () => {
        const every = Uint8Array.from({ length: 256 }, (_, index) => index);
        for (const data of [every, new Uint8Array(0), new Uint8Array(65536).fill(0xa5)]) {
            const message = decodeServer(encodeServer({ type: "broadcast", senderId: uuid, data }));
            assert.deepEqual(message.data, data);
        }
    });
    test("toBytes takes strings, ArrayBuffers and other views", () => {
        assert.deepEqual(toBytes("hi"), bytes("hi"));
        assert.deepEqual(toBytes(Uint16Array.of(0x0201).buffer), Uint8Array.of(1, 2));
        assert.deepEqual(toBytes(new DataView(Uint8Array.of(9, 8, 7).buffer, 1)), Uint8Array.of(8, 7));
        assert.throws(() => toBytes(42), TypeError);
    });
    test("decoded data does not alias the received buffer", () => {
        const payload = hex("06000000 00112233445566778899aabbccddeeff 0200000000000000 6869");
        const message = decodeServer(payload);
        payload[payload.length - 1] = 0;
        assert.equal(toHex(message.data), "6869");
    });
    test("unknown message types and bad UUIDs do not encode", () => {
        assert.throws(() => encodeClient({ type: "joined" }), ProtocolError);
        assert.throws(() => encodeServer({ type: "joinRoom" }), ProtocolError);
        assert.throws(() => encodeServer({ type: "playerLeft", clientId: "0011" }), ProtocolError);
        assert.throws(() => encodeClient({ type: "joinRoom", roomId: 7 }), TypeError);
    });
});

describe("codec: malformed payloads are rejected", () => {
    const server = [
        ["empty payload", ""],
        ["short tag", "000000"],
        ["unknown tag 8", "08000000"],
        ["unknown tag 2^32-1", "ffffffff"],
        ["trailing byte after Ping", "03000000 00"],
        ["trailing byte after Joined", "00000000 00112233445566778899aabbccddeeff 0500000000000000 6c6f626279 00"],
        ["short UUID", "01000000 00112233445566778899aabbccddee"],
        ["length prefix cut short", "05000000 11000000000000"],
        ["string shorter than its length", "05000000 1100000000000000 726f6f6d"],
        ["bytes shorter than their length", "06000000 00112233445566778899aabbccddeeff 0300000000000000 6869"],
        ["length 2^53", "07000000 0000000000002000"],
        ["length 2^64-1", "07000000 ffffffffffffffff"],
        ["length with a high word (2^32 + 2)", "07000000 0200000001000000 6869"],
        ["invalid UTF-8 in an Error", "05000000 0200000000000000 c328"],
        ["lone surrogate (CESU) in a room ID", "00000000 00112233445566778899aabbccddeeff 0300000000000000 eda080"],
        ["overlong UTF-8", "05000000 0200000000000000 c0af"],
    ];
    for (const [name, payload] of server) {
        test(`ServerWire: ${name}`, () => assert.throws(() => decodeServer(hex(payload)), ProtocolError));
    }
    const client = [
        ["empty payload", ""],
        ["unknown tag 6", "06000000"],
        ["trailing byte after LeaveRoom", "01000000 ff"],
        ["room ID past the end", "00000000 0600000000000000 6c6f626279"],
        ["invalid UTF-8 room ID", "00000000 0100000000000000 ff"],
        ["broadcast length 2^53 + 1", "04000000 0100000000002000"],
    ];
    for (const [name, payload] of client) {
        test(`ClientWire: ${name}`, () => assert.throws(() => decodeClient(hex(payload)), ProtocolError));
    }
    test("the largest length below 2^53 still fails as past the end, not as too large", () => {
        assert.throws(() => decodeServer(hex("07000000 ffffffffffff1f00")), /only 0 bytes left/);
    });
    test("a payload must be a Uint8Array", () => {
        assert.throws(() => decodeServer([3, 0, 0, 0]), TypeError);
    });
});

// ---------------------------------------------------------------------------------------------
// The client against a fake WebSocket: the test plays the relay.

class FakeWebSocket extends EventTarget {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    static last = null;

    constructor(url, protocols) {
        super();
        this.url = url;
        this.protocols = protocols;
        this.protocol = "";
        this.readyState = FakeWebSocket.CONNECTING;
        this.binaryType = "blob";
        this.sent = [];
        this.closeCalls = [];
        FakeWebSocket.last = this;
    }

    send(data) {
        if (this.readyState !== FakeWebSocket.OPEN) throw new Error("InvalidStateError");
        assert.ok(data instanceof Uint8Array, "the client sends binary messages");
        this.sent.push(decodeClient(data));
    }

    close(code = 1005, reason = "") {
        this.closeCalls.push({ code, reason });
        if (this.readyState >= FakeWebSocket.CLOSING) return;
        this.readyState = FakeWebSocket.CLOSING;
        queueMicrotask(() => this.serverClose(code, reason, true));
    }

    // The relay's side.
    accept(protocol = PROTOCOL) {
        this.protocol = protocol;
        this.readyState = FakeWebSocket.OPEN;
        this.dispatchEvent(new Event("open"));
    }

    deliver(message) {
        const payload = message instanceof Uint8Array ? message : encodeServer(message);
        // As a browser with binaryType "arraybuffer" hands it over: a fresh ArrayBuffer.
        this.deliverRaw(payload.slice().buffer);
    }

    deliverRaw(data) {
        const event = new Event("message");
        event.data = data;
        this.dispatchEvent(event);
    }

    serverClose(code = 1000, reason = "", wasClean = true) {
        this.readyState = FakeWebSocket.CLOSED;
        const event = new Event("close");
        Object.assign(event, { code, reason, wasClean });
        this.dispatchEvent(event);
    }

    takeSent() {
        return this.sent.splice(0);
    }
}

const alice = "aaaaaaaa-0000-4000-8000-000000000001";
const bob = "bbbbbbbb-0000-4000-8000-000000000002";

async function connected(options = {}) {
    const connecting = GhostSync.connect("ws://relay.test/", { WebSocket: FakeWebSocket, ...options });
    const socket = FakeWebSocket.last;
    socket.accept();
    const client = await connecting;
    return { client, socket };
}

function recorder(client) {
    const events = [];
    for (const type of ["joined", "playerJoined", "playerLeft", "broadcast", "error", "close"]) {
        client.addEventListener(type, (event) => events.push(event));
    }
    return events;
}

describe("client against a fake relay", () => {
    test("connect offers ghost-sync.v1, asks for ArrayBuffers, resolves on open", async () => {
        const { client, socket } = await connected();
        assert.ok(client instanceof GhostSyncClient);
        assert.ok(client instanceof EventTarget);
        assert.deepEqual(socket.protocols, ["ghost-sync.v1"]);
        assert.equal(socket.url, "ws://relay.test/");
        assert.equal(socket.binaryType, "arraybuffer");
        assert.equal(client.clientId, null);
        assert.equal(client.roomId, null);
        assert.equal(client.connected, true);
    });

    test("connect rejects when the socket closes before opening, and after a timeout", async () => {
        const refused = GhostSync.connect("ws://relay.test/", { WebSocket: FakeWebSocket });
        FakeWebSocket.last.serverClose(1006, "", false);
        await assert.rejects(refused, /cannot connect to ws:\/\/relay\.test\/: connection closed \(code 1006\)/);

        const silent = GhostSync.connect("ws://relay.test/", { WebSocket: FakeWebSocket, timeout: 20 });
        await assert.rejects(silent, /no answer within 20 ms/);
        assert.deepEqual(FakeWebSocket.last.closeCalls.length, 1);
    });

    test("connect rejects a server that picked another subprotocol, and works without a WebSocket only if given one", async () => {
        const wrong = GhostSync.connect("ws://relay.test/", { WebSocket: FakeWebSocket });
        FakeWebSocket.last.accept("chat");
        await assert.rejects(wrong, /subprotocol "chat"/);
        const saved = globalThis.WebSocket;
        try {
            globalThis.WebSocket = undefined;
            await assert.rejects(GhostSync.connect("ws://relay.test/"), /pass one as options\.WebSocket/);
        } finally {
            globalThis.WebSocket = saved;
        }
        assert.throws(() => new GhostSyncClient(), /GhostSync\.connect/);
    });

    test("join sends JoinRoom and resolves on Joined; the joined event fires", async () => {
        const { client, socket } = await connected();
        const events = recorder(client);
        const joining = client.join("lobby");
        assert.deepEqual(socket.takeSent(), [{ type: "joinRoom", roomId: "lobby" }]);
        socket.deliver({ type: "joined", clientId: alice, roomId: "lobby" });
        assert.deepEqual(await joining, { clientId: alice, roomId: "lobby" });
        assert.equal(client.clientId, alice);
        assert.equal(client.roomId, "lobby");
        assert.equal(events.length, 1);
        assert.equal(events[0].type, "joined");
        assert.equal(events[0].clientId, alice);
        assert.equal(events[0].roomId, "lobby");
    });

    test("join rejects with the relay's Error (which also fires an error event)", async () => {
        const { client, socket } = await connected();
        const events = recorder(client);
        const joining = client.join("nowhere");
        socket.deliver({ type: "error", message: "room not found: nowhere" });
        await assert.rejects(joining, (error) => error instanceof RelayError && error.message === "room not found: nowhere");
        assert.equal(client.roomId, null);
        assert.deepEqual(events.map((event) => [event.type, event.message]), [["error", "room not found: nowhere"]]);
    });

    test("an Error for a broadcast sent before a join does not reject the join (Ping fence)", async () => {
        const { client, socket } = await connected();
        client.broadcast("too early");
        const joining = client.join("lobby");
        assert.deepEqual(socket.takeSent(), [
            { type: "broadcast", data: bytes("too early") },
            { type: "ping" },
            { type: "joinRoom", roomId: "lobby" },
        ]);
        socket.deliver({ type: "error", message: "not in a room" });  // the broadcast's answer
        socket.deliver({ type: "pong" });                             // the fence
        socket.deliver({ type: "joined", clientId: alice, roomId: "lobby" });
        assert.deepEqual(await joining, { clientId: alice, roomId: "lobby" });
        // No broadcast since: the next join needs no fence.
        client.join("duel");
        assert.deepEqual(socket.takeSent(), [{ type: "joinRoom", roomId: "duel" }]);
    });

    test("two joins in a row settle in order", async () => {
        const { client, socket } = await connected();
        const first = client.join("a");
        const second = client.join("b");
        socket.deliver({ type: "error", message: "join rejected" });
        socket.deliver({ type: "joined", clientId: alice, roomId: "b" });
        await assert.rejects(first, /join rejected/);
        assert.deepEqual(await second, { clientId: alice, roomId: "b" });
    });

    test("leave sends LeaveRoom and clears roomId, also when it follows a join not answered yet", async () => {
        const { client, socket } = await connected();
        const joining = client.join("lobby");
        client.leave();
        assert.deepEqual(socket.takeSent(), [{ type: "joinRoom", roomId: "lobby" }, { type: "leaveRoom" }]);
        socket.deliver({ type: "joined", clientId: alice, roomId: "lobby" });
        await joining;
        assert.equal(client.roomId, null);
        assert.equal(client.clientId, alice);
    });

    test("the relay's Ping is answered with Pong and fires no event", async () => {
        const { client, socket } = await connected();
        const events = recorder(client);
        socket.deliver(hex("03000000"));
        socket.deliver(hex("03000000"));
        assert.deepEqual(socket.takeSent(), [{ type: "pong" }, { type: "pong" }]);
        assert.deepEqual(events, []);
    });

    test("playerJoined, playerLeft and broadcast events carry their fields", async () => {
        const { client, socket } = await connected();
        const events = recorder(client);
        socket.deliver({ type: "playerJoined", clientId: bob });
        socket.deliver({ type: "broadcast", senderId: bob, data: Uint8Array.of(0xf0, 0x9f, 0x8e, 0xae, 0x00, 0xff) });
        socket.deliver({ type: "broadcast", senderId: bob, data: bytes("hello") });
        socket.deliver({ type: "playerLeft", clientId: bob });
        assert.deepEqual(events.map((event) => event.type), ["playerJoined", "broadcast", "broadcast", "playerLeft"]);
        assert.equal(events[0].clientId, bob);
        assert.equal(events[1].senderId, bob);
        assert.ok(events[1].data instanceof Uint8Array);
        assert.equal(toHex(events[1].data), "f09f8eae00ff");
        assert.equal(events[2].text, "hello");
        assert.equal(events[3].clientId, bob);
    });

    test("broadcast sends bytes as given and strings as UTF-8", async () => {
        const { client, socket } = await connected();
        client.broadcast(Uint8Array.of(0, 1, 254, 255));
        client.broadcast("héllo");
        client.broadcast(new Uint8Array(0));
        const sent = socket.takeSent();
        assert.deepEqual(sent.map((message) => toHex(message.data)), ["0001feff", "68c3a96c6c6f", ""]);
        assert.deepEqual(sent.map((message) => message.type), ["broadcast", "broadcast", "broadcast"]);
    });

    test("echoTest sends EchoTest and resolves with the echoed bytes, in order", async () => {
        const { client, socket } = await connected();
        const first = client.echoTest(Uint8Array.of(1, 2, 3));
        const second = client.echoTest("x");
        assert.deepEqual(socket.takeSent(), [
            { type: "echoTest", data: Uint8Array.of(1, 2, 3) },
            { type: "echoTest", data: bytes("x") },
        ]);
        socket.deliver({ type: "echoTest", data: Uint8Array.of(1, 2, 3) });
        socket.deliver({ type: "echoTest", data: bytes("x") });
        assert.deepEqual(await first, Uint8Array.of(1, 2, 3));
        assert.deepEqual(await second, bytes("x"));
    });

    test("the relay closing rejects what is pending and fires close last", async () => {
        const { client, socket } = await connected();
        const events = recorder(client);
        const joining = client.join("lobby");
        const echo = client.echoTest("x");
        socket.deliver({ type: "error", message: "kicked" });  // rejects the join
        const second = client.join("duel");
        socket.serverClose(1008, "policy", true);
        await assert.rejects(joining, /kicked/);
        await assert.rejects(echo, /the connection closed \(code 1008, policy\); the relay's last error: kicked/);
        await assert.rejects(second, /code 1008/);
        assert.deepEqual(events.map((event) => event.type), ["error", "close"]);
        assert.deepEqual([events[1].code, events[1].reason, events[1].wasClean], [1008, "policy", true]);
        assert.equal(client.connected, false);
        assert.throws(() => client.broadcast("late"), /the connection is closed/);
        await assert.rejects(client.join("x"), /the connection is closed/);
        assert.deepEqual(await client.close(), { code: 1008, reason: "policy", wasClean: true });
    });

    test("close() closes with 1000 and resolves with the close event's fields", async () => {
        const { client, socket } = await connected();
        const events = recorder(client);
        const info = await client.close();
        assert.deepEqual(socket.closeCalls, [{ code: 1000, reason: "" }]);
        assert.deepEqual(info, { code: 1000, reason: "", wasClean: true });
        assert.deepEqual(events.map((event) => event.type), ["close"]);
    });

    test("a text message, an undecodable payload or one over maxPayload: error event, then close 4002", async () => {
        for (const bad of ["text", hex("09000000"), new Uint8Array(17).buffer]) {
            const { client, socket } = await connected({ maxPayload: 16 });
            const events = recorder(client);
            socket.deliverRaw(bad);
            await client.close();
            assert.deepEqual(events.map((event) => event.type), ["error", "close"]);
            assert.match(events[0].message, /binary only|unknown server message tag 9|over the 16-byte limit/);
            assert.deepEqual(socket.closeCalls[0], { code: CLOSE_PROTOCOL_ERROR, reason: "protocol error" });
        }
    });

    test("the client is an async iterable of its events, ending after close", async () => {
        const { client, socket } = await connected();
        const seen = (async () => {
            const types = [];
            for await (const event of client) types.push(event.type);
            return types;
        })();
        socket.deliver({ type: "playerJoined", clientId: bob });
        socket.deliver({ type: "ping" });
        socket.deliver({ type: "broadcast", senderId: bob, data: bytes("1") });
        socket.serverClose(1000, "", true);
        assert.deepEqual(await seen, ["playerJoined", "broadcast", "close"]);
        // An iterator made after the close ends at once.
        const late = client.events();
        assert.deepEqual(await late.next(), { value: undefined, done: true });
    });

    test("breaking out of the iteration stops collecting", async () => {
        const { client, socket } = await connected();
        const first = (async () => {
            for await (const event of client) return event.clientId;
        })();
        socket.deliver({ type: "playerJoined", clientId: bob });
        assert.equal(await first, bob);
        socket.deliver({ type: "playerLeft", clientId: bob });  // nobody left to queue it for
        await client.close();
    });
});

// ---------------------------------------------------------------------------------------------
// ghost-sync.d.ts describes the module exactly.

const declarationsURL = new URL("../../Sources/GhostSyncRelay/Web/ghost-sync.d.ts", import.meta.url);
const declarations = readFileSync(declarationsURL, "utf8");

describe("ghost-sync.d.ts", () => {
    test("declares every runtime export and nothing else", () => {
        const declared = [...declarations.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((match) => match[1]);
        assert.deepEqual([...new Set(declared)].sort(), Object.keys(moduleExports).sort());
    });

    test("declares every public member of GhostSyncClient and of GhostSync", () => {
        const body = declarations.slice(declarations.indexOf("export declare class GhostSyncClient"));
        const classBody = body.slice(0, body.indexOf("\n}\n"));
        const declared = new Set([...classBody.matchAll(/^ {4}(?:readonly |static )?(\w+)[(<:]/gm)].map((match) => match[1]));
        const runtime = Object.getOwnPropertyNames(GhostSyncClient.prototype).filter((name) => name !== "constructor");
        runtime.push(...Object.getOwnPropertyNames(GhostSyncClient).filter((name) => typeof GhostSyncClient[name] === "function"));
        for (const name of runtime) assert.ok(declared.has(name), `${name} is not declared`);
        for (const name of declared) {
            if (name === "addEventListener" || name === "removeEventListener") continue;
            assert.ok(runtime.includes(name), `${name} is declared but not in the module`);
        }
        const ghostSync = declarations.slice(declarations.indexOf("export declare const GhostSync:"));
        const keys = [...ghostSync.matchAll(/^ {4}(\w+)[(:]/gm)].map((match) => match[1]);
        assert.deepEqual(keys.sort(), Object.keys(GhostSync).sort());
    });

    test("type-checks a program using the whole API with tsc --strict (skipped without tsc)", (context) => {
        try {
            execFileSync("tsc", ["--version"], { stdio: "ignore" });
        } catch {
            context.skip("no tsc on PATH (Debian: apt-get install node-typescript)");
            return;
        }
        const directory = mkdtempSync(join(tmpdir(), "ghost-sync-types-"));
        try {
            const module = JSON.stringify(moduleURL.pathname);
            writeFileSync(join(directory, "use.ts"), `
                import { GhostSync, GhostSyncClient, BroadcastEvent, RelayError, toHex, decodeServer, encodeClient } from ${module};
                export async function use(): Promise<void> {
                    const client: GhostSyncClient = await GhostSync.connect("ws://127.0.0.1:7780/", { timeout: 5000, maxPayload: 1024 });
                    const joined: { clientId: string; roomId: string } = await client.join("lobby");
                    client.addEventListener("broadcast", (event) => { const text: string = event.senderId + event.text + toHex(event.data); });
                    client.addEventListener("playerLeft", (event) => { const id: string = event.clientId; });
                    client.addEventListener("error", (event) => { const message: string = event.message; });
                    client.addEventListener("close", (event) => { const clean: boolean = event.wasClean && event.code === 1000; });
                    client.broadcast("text"); client.broadcast(new Uint8Array(2)); client.broadcast(new ArrayBuffer(1));
                    const echoed: Uint8Array = await client.echoTest("x");
                    for await (const event of client) { if (event.type === "broadcast") { const broadcast: BroadcastEvent = event; } }
                    const message = decodeServer(encodeClient({ type: "broadcast", data: "hi" }));
                    if (message.type === "joined") { const id: string = message.clientId; }
                    const error = new RelayError("x"); const name: "RelayError" = error.name;
                    client.leave();
                    const info = await client.close(); const reason: string = info.reason;
                    const id: string | null = client.clientId;
                }
            `);
            writeFileSync(join(directory, "misuse.ts"), `
                import { GhostSync } from ${module};
                export async function misuse(): Promise<void> {
                    const client = await GhostSync.connect("ws://x/");
                    client.addEventListener("broadcast", (event) => event.nonexistent);
                    client.broadcast(5);
                }
            `);
            const flags = ["--strict", "--noEmit", "--target", "es2022", "--module", "es2022", "--moduleResolution", "node", "--lib", "es2022,dom,dom.iterable"];
            execFileSync("tsc", [...flags, join(directory, "use.ts")], { encoding: "utf8" });
            let output = "";
            try {
                execFileSync("tsc", [...flags, join(directory, "misuse.ts")], { encoding: "utf8" });
            } catch (error) {
                output = error.stdout;
            }
            assert.match(output, /Property 'nonexistent' does not exist on type 'BroadcastEvent'/);
            assert.match(output, /Argument of type 'number' is not assignable/);
        } finally {
            rmSync(directory, { recursive: true, force: true });
        }
    });
});
