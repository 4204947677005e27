// ghost-sync.js: the GhostSync relay's client for browsers (and node), over WebSocket.
//
// One dependency-free ES module: no bundler, no npm step. The relay serves it next to its demo
// page, so a page can `import { GhostSync } from "./ghost-sync.js"`.
//
// Transport (subprotocol `ghost-sync.v1`): one binary WebSocket message carries exactly one
// ghost-sync payload, tag and body as in docs/protocol.md, without the TCP framing's 4-byte length
// prefix, in both directions. Text messages are not part of the protocol. The relay's own Ping
// (ServerWire tag 3) is answered here with a Pong; WebSocket-level ping/pong is the browser's.
//
// In node: load it as an ES module (node 18 needs a copy named .mjs or a package.json with
// "type": "module"; 20.19+ and 22.12+ detect it) and, before node 22, pass a WebSocket class as
// `options.WebSocket` (node 20's `--experimental-websocket` global, or the `ws` package).
//
// Everything runs on the caller's event loop (the page's main thread or node's loop); nothing
// here blocks or starts a timer except the optional connect timeout.

/** The WebSocket subprotocol the client offers and the relay selects. */
export const PROTOCOL = "ghost-sync.v1";

/** Default cap on one incoming payload, in bytes: the original ghost-sync client's. */
export const DEFAULT_MAX_PAYLOAD = 256 * 1024;

const ClientTag = Object.freeze({ joinRoom: 0, leaveRoom: 1, ping: 2, pong: 3, broadcast: 4, echoTest: 5 });
const ServerTag = Object.freeze({
    joined: 0, playerJoined: 1, playerLeft: 2, ping: 3, pong: 4, error: 5, broadcast: 6, echoTest: 7,
});
const clientTypes = Object.keys(ClientTag);
const serverTypes = Object.keys(ServerTag);

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is a protocol error; ignoreBOM: a leading U+FEFF is part of the string.
const strictUTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lenientUTF8 = new TextDecoder("utf-8", { ignoreBOM: true });

/** A payload that does not decode, or a message that cannot be encoded. */
export class ProtocolError extends Error {
    constructor(message) {
        super(message);
        this.name = "ProtocolError";
    }
}

/** The relay's answer to a join was an Error: `message` is the relay's text. */
export class RelayError extends Error {
    constructor(message) {
        super(message);
        this.name = "RelayError";
    }
}

// ---------------------------------------------------------------------------------------------
// Codec: plain objects <-> payload bytes. Pure functions, no state.

/**
 * Bytes of `data`: a Uint8Array as is, a string as UTF-8, an ArrayBuffer or any other
 * ArrayBufferView as a Uint8Array over the same memory.
 */
export function toBytes(data) {
    if (data instanceof Uint8Array) return data;
    if (typeof data === "string") return utf8Encoder.encode(data);
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError("data must be a Uint8Array, an ArrayBuffer(View) or a string");
}

/** Lowercase hex of `bytes`, two digits a byte. */
export function toHex(bytes) {
    let text = "";
    for (const byte of bytes) text += (byte < 16 ? "0" : "") + byte.toString(16);
    return text;
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function uuidBytes(uuid) {
    if (typeof uuid !== "string" || !uuidPattern.test(uuid)) {
        throw new ProtocolError(`not a canonical UUID string: ${String(uuid)}`);
    }
    const digits = uuid.replaceAll("-", "");
    const bytes = new Uint8Array(16);
    for (let index = 0; index < 16; index++) bytes[index] = parseInt(digits.slice(2 * index, 2 * index + 2), 16);
    return bytes;
}

function uuidString(bytes) {
    const hex = toHex(bytes);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function stringBytes(value, field) {
    if (typeof value !== "string") throw new TypeError(`${field} must be a string`);
    return utf8Encoder.encode(value);
}

/** tag (u32 LE), then each part; a part given as `{ vec }` gets its u64 LE length first. */
function payload(tag, ...parts) {
    let size = 4;
    for (const part of parts) size += part.vec ? 8 + part.vec.length : part.length;
    const bytes = new Uint8Array(size);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, tag, true);
    let offset = 4;
    for (const part of parts) {
        let raw = part;
        if (part.vec) {
            raw = part.vec;
            view.setUint32(offset, raw.length % 0x1_0000_0000, true);
            view.setUint32(offset + 4, Math.floor(raw.length / 0x1_0000_0000), true);
            offset += 8;
        }
        bytes.set(raw, offset);
        offset += raw.length;
    }
    return bytes;
}

/** Reads one payload front to back; every read checks the bytes are there. */
class PayloadReader {
    #bytes;
    #view;
    #offset = 0;

    constructor(bytes) {
        this.#bytes = bytes;
        this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }

    get #remaining() {
        return this.#bytes.length - this.#offset;
    }

    #need(count, what) {
        if (count > this.#remaining) {
            throw new ProtocolError(`payload too short: ${what} needs ${count} bytes, ${this.#remaining} left`);
        }
    }

    tag() {
        if (this.#bytes.length === 0) throw new ProtocolError("empty payload: no tag");
        this.#need(4, "the tag");
        const tag = this.#view.getUint32(0, true);
        this.#offset = 4;
        return tag;
    }

    /** A u64 LE length; over 2^53 - 1 (not exact as a JS number) or past the end: an error. */
    #length(what) {
        this.#need(8, `the length of ${what}`);
        const low = this.#view.getUint32(this.#offset, true);
        const high = this.#view.getUint32(this.#offset + 4, true);
        this.#offset += 8;
        if (high > 0x1f_ffff) throw new ProtocolError(`length of ${what} is over 2^53 - 1`);
        const length = high * 0x1_0000_0000 + low;
        if (length > this.#remaining) {
            throw new ProtocolError(`length of ${what} is ${length}, only ${this.#remaining} bytes left`);
        }
        return length;
    }

    bytes(what) {
        const length = this.#length(what);
        const bytes = this.#bytes.slice(this.#offset, this.#offset + length);
        this.#offset += length;
        return bytes;
    }

    string(what) {
        const length = this.#length(what);
        const raw = this.#bytes.subarray(this.#offset, this.#offset + length);
        this.#offset += length;
        try {
            return strictUTF8.decode(raw);
        } catch {
            throw new ProtocolError(`${what} is not valid UTF-8`);
        }
    }

    uuid(what) {
        this.#need(16, what);
        const text = uuidString(this.#bytes.subarray(this.#offset, this.#offset + 16));
        this.#offset += 16;
        return text;
    }

    end(message) {
        if (this.#remaining !== 0) throw new ProtocolError(`${this.#remaining} trailing bytes after ${message}`);
    }
}

function payloadBytes(bytes) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError("a payload is a Uint8Array");
    return bytes;
}

/**
 * Encodes a ClientWire message (browser → relay) as its payload bytes.
 * `{type: "joinRoom", roomId}`, `{type: "leaveRoom"}`, `{type: "ping"}`, `{type: "pong"}`,
 * `{type: "broadcast", data}`, `{type: "echoTest", data}`; `data` as `toBytes` takes it.
 */
export function encodeClient(message) {
    switch (message?.type) {
        case "joinRoom": return payload(ClientTag.joinRoom, { vec: stringBytes(message.roomId, "roomId") });
        case "leaveRoom": return payload(ClientTag.leaveRoom);
        case "ping": return payload(ClientTag.ping);
        case "pong": return payload(ClientTag.pong);
        case "broadcast": return payload(ClientTag.broadcast, { vec: toBytes(message.data) });
        case "echoTest": return payload(ClientTag.echoTest, { vec: toBytes(message.data) });
        default: throw new ProtocolError(`not a client message type: ${String(message?.type)}`);
    }
}

/** Decodes a ClientWire payload; throws ProtocolError unless it is exactly one valid message. */
export function decodeClient(bytes) {
    const reader = new PayloadReader(payloadBytes(bytes));
    const tag = reader.tag();
    let message;
    switch (tag) {
        case ClientTag.joinRoom: message = { type: "joinRoom", roomId: reader.string("roomId") }; break;
        case ClientTag.leaveRoom: message = { type: "leaveRoom" }; break;
        case ClientTag.ping: message = { type: "ping" }; break;
        case ClientTag.pong: message = { type: "pong" }; break;
        case ClientTag.broadcast: message = { type: "broadcast", data: reader.bytes("data") }; break;
        case ClientTag.echoTest: message = { type: "echoTest", data: reader.bytes("data") }; break;
        default: throw new ProtocolError(`unknown client message tag ${tag}`);
    }
    reader.end(clientTypes[tag]);
    return message;
}

/**
 * Encodes a ServerWire message (relay → browser) as its payload bytes; for tests and mock relays.
 * `{type: "joined", clientId, roomId}`, `{type: "playerJoined", clientId}`,
 * `{type: "playerLeft", clientId}`, `{type: "ping"}`, `{type: "pong"}`, `{type: "error", message}`,
 * `{type: "broadcast", senderId, data}`, `{type: "echoTest", data}`.
 */
export function encodeServer(message) {
    switch (message?.type) {
        case "joined":
            return payload(ServerTag.joined, uuidBytes(message.clientId), { vec: stringBytes(message.roomId, "roomId") });
        case "playerJoined": return payload(ServerTag.playerJoined, uuidBytes(message.clientId));
        case "playerLeft": return payload(ServerTag.playerLeft, uuidBytes(message.clientId));
        case "ping": return payload(ServerTag.ping);
        case "pong": return payload(ServerTag.pong);
        case "error": return payload(ServerTag.error, { vec: stringBytes(message.message, "message") });
        case "broadcast":
            return payload(ServerTag.broadcast, uuidBytes(message.senderId), { vec: toBytes(message.data) });
        case "echoTest": return payload(ServerTag.echoTest, { vec: toBytes(message.data) });
        default: throw new ProtocolError(`not a server message type: ${String(message?.type)}`);
    }
}

/** Decodes a ServerWire payload; throws ProtocolError unless it is exactly one valid message. */
export function decodeServer(bytes) {
    const reader = new PayloadReader(payloadBytes(bytes));
    const tag = reader.tag();
    let message;
    switch (tag) {
        case ServerTag.joined:
            message = { type: "joined", clientId: reader.uuid("clientId"), roomId: reader.string("roomId") };
            break;
        case ServerTag.playerJoined: message = { type: "playerJoined", clientId: reader.uuid("clientId") }; break;
        case ServerTag.playerLeft: message = { type: "playerLeft", clientId: reader.uuid("clientId") }; break;
        case ServerTag.ping: message = { type: "ping" }; break;
        case ServerTag.pong: message = { type: "pong" }; break;
        case ServerTag.error: message = { type: "error", message: reader.string("message") }; break;
        case ServerTag.broadcast:
            message = { type: "broadcast", senderId: reader.uuid("senderId"), data: reader.bytes("data") };
            break;
        case ServerTag.echoTest: message = { type: "echoTest", data: reader.bytes("data") }; break;
        default: throw new ProtocolError(`unknown server message tag ${tag}`);
    }
    reader.end(serverTypes[tag]);
    return message;
}

// ---------------------------------------------------------------------------------------------
// Events

/** `joined`: the relay accepted a join; this client is now `clientId` in `roomId`. */
export class JoinedEvent extends Event {
    constructor(clientId, roomId) {
        super("joined");
        this.clientId = clientId;
        this.roomId = roomId;
    }
}

/** `playerJoined` / `playerLeft`: another member came into or left this client's room. */
export class MemberEvent extends Event {
    constructor(type, clientId) {
        super(type);
        this.clientId = clientId;
    }
}

/** `broadcast`: another member of the room (or the server) sent `data`. */
export class BroadcastEvent extends Event {
    constructor(senderId, data) {
        super("broadcast");
        this.senderId = senderId;
        this.data = data;
    }

    /** `data` as UTF-8 text (invalid sequences become U+FFFD). */
    get text() {
        return lenientUTF8.decode(this.data);
    }
}

/** `error`: the relay sent an Error (also the one that rejects a join), or its data made no sense. */
export class RelayErrorEvent extends Event {
    constructor(message) {
        super("error");
        this.message = message;
    }
}

/** `close`: the connection is over; the last event a client fires. */
export class ConnectionCloseEvent extends Event {
    constructor(code, reason, wasClean) {
        super("close");
        this.code = code;
        this.reason = reason;
        this.wasClean = wasClean;
    }
}

// ---------------------------------------------------------------------------------------------
// Client

const OPEN = 1;
/** Close code this client sends when the relay's data makes no sense (4000-4999: application). */
export const CLOSE_PROTOCOL_ERROR = 4002;
const construction = Symbol("GhostSyncClient construction");

/**
 * One connection to the relay. Make one with `GhostSync.connect`. An EventTarget that fires
 * `joined`, `playerJoined`, `playerLeft`, `broadcast`, `error` and, last, `close`; also an async
 * iterable of the same events (each iterator sees the events after it was made, ends after close).
 */
export class GhostSyncClient extends EventTarget {
    #socket;
    #maxPayload;
    #clientId = null;
    #roomId = null;
    /** Joins waiting for Joined or Error, and Ping fences waiting for Pong, in the order sent. */
    #replies = [];
    /** echoTest calls waiting for their EchoTest, in the order sent. */
    #echoes = [];
    /** A broadcast went out since the last join: its Error, if any, may still be on the way. */
    #unfencedBroadcast = false;
    /** Counts joins and leaves sent, so a Joined answered after a later leave keeps roomId null. */
    #membershipChanges = 0;
    #lastLeave = -1;
    #lastRelayError = null;
    #closed = null;
    #closeWaiters = [];
    #iterators = new Set();
    #opening;
    /** Rejects the connect promise when the socket closes before it opened. */
    #openFailed = null;

    /** Use `GhostSync.connect`. */
    constructor(token, socket, options) {
        if (token !== construction) throw new TypeError("use GhostSync.connect(url) to make a client");
        super();
        this.#socket = socket;
        this.#maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
        socket.binaryType = "arraybuffer";
        this.#opening = new Promise((resolve, reject) => {
            let timer = null;
            const settle = (error) => {
                if (timer !== null) clearTimeout(timer);
                socket.removeEventListener("open", onOpen);
                this.#openFailed = null;
                if (error) reject(error); else resolve(this);
            };
            const onOpen = () => {
                if (socket.protocol && socket.protocol !== PROTOCOL) {
                    socket.close(1000, "wrong subprotocol");
                    settle(new Error(`the server chose subprotocol "${socket.protocol}", not ${PROTOCOL}`));
                } else {
                    settle(null);
                }
            };
            socket.addEventListener("open", onOpen);
            this.#openFailed = (event) => settle(new Error(`cannot connect to ${socket.url ?? "the relay"}: connection closed (code ${event.code}${event.reason ? `, ${event.reason}` : ""})`));
            const timeout = options.timeout ?? 10_000;
            if (timeout > 0 && Number.isFinite(timeout)) {
                timer = setTimeout(() => {
                    timer = null;
                    socket.close();
                    settle(new Error(`cannot connect to ${socket.url ?? "the relay"}: no answer within ${timeout} ms`));
                }, timeout);
            }
        });
        socket.addEventListener("message", (event) => this.#receive(event.data));
        socket.addEventListener("close", (event) => this.#didClose(event));
    }

    /** Opens a WebSocket to `url` offering `ghost-sync.v1`; resolves once it is open. */
    static connect(url, options = {}) {
        const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
        if (typeof WebSocketClass !== "function") {
            return Promise.reject(new TypeError("no WebSocket here: pass one as options.WebSocket (for node < 22, the `ws` package)"));
        }
        let socket;
        try {
            socket = new WebSocketClass(url, [PROTOCOL]);
        } catch (error) {
            return Promise.reject(error);
        }
        return new GhostSyncClient(construction, socket, options).#opening;
    }

    /** The ID the relay gave this connection (lowercase UUID), from the first Joined; null before. */
    get clientId() { return this.#clientId; }

    /** The room this client is in as far as it knows (Joined sets it, leave and close clear it). */
    get roomId() { return this.#roomId; }

    /** True until the connection closed. */
    get connected() { return this.#closed === null; }

    /**
     * Joins `roomId` (leaving the current room, if any, once the relay accepts). Resolves with
     * `{clientId, roomId}` on Joined, rejects with a RelayError on the relay's Error, or with an
     * Error if the connection closes first.
     */
    join(roomId) {
        return new Promise((resolve, reject) => {
            if (typeof roomId !== "string") throw new TypeError("the room ID must be a string");
            // An Error for an earlier broadcast would arrive before the join's answer and look like
            // it: a Ping sent first marks where those end (the relay answers frames in order).
            if (this.#unfencedBroadcast) {
                this.#send({ type: "ping" });
                this.#replies.push({ fence: true });
                this.#unfencedBroadcast = false;
            }
            this.#send({ type: "joinRoom", roomId });
            this.#replies.push({ roomId, sequence: this.#membershipChanges++, resolve, reject });
        });
    }

    /** Leaves the current room (the relay does not answer; the others get PlayerLeft). */
    leave() {
        this.#send({ type: "leaveRoom" });
        this.#lastLeave = this.#membershipChanges++;
        this.#roomId = null;
    }

    /** Sends `data` (bytes, or a string as UTF-8) to every other member of the room. */
    broadcast(data) {
        this.#send({ type: "broadcast", data: toBytes(data) });
        this.#unfencedBroadcast = true;
    }

    /** Has the relay send `data` straight back; resolves with the echoed bytes. */
    echoTest(data) {
        return new Promise((resolve, reject) => {
            this.#send({ type: "echoTest", data: toBytes(data) });
            this.#echoes.push({ resolve, reject });
        });
    }

    /**
     * Closes the connection (code 1000 unless given; browsers allow 1000 and 3000-4999).
     * Resolves with the close event's `{code, reason, wasClean}` once it is closed.
     */
    close(code = 1000, reason = "") {
        if (this.#closed) return Promise.resolve(this.#closed);
        const closed = new Promise((resolve) => this.#closeWaiters.push(resolve));
        this.#socket.close(code, reason);
        return closed;
    }

    /** The events from now on, ending after `close`. */
    [Symbol.asyncIterator]() {
        const sink = { queue: [], wake: null, ended: this.#closed !== null };
        if (!sink.ended) this.#iterators.add(sink);
        const finish = () => {
            sink.ended = true;
            this.#iterators.delete(sink);
            sink.wake?.();
        };
        return {
            next: async () => {
                while (sink.queue.length === 0) {
                    if (sink.ended) return { value: undefined, done: true };
                    await new Promise((resolve) => { sink.wake = resolve; });
                    sink.wake = null;
                }
                return { value: sink.queue.shift(), done: false };
            },
            return: async () => {
                sink.queue.length = 0;
                finish();
                return { value: undefined, done: true };
            },
            [Symbol.asyncIterator]() { return this; },
        };
    }

    /** Same as iterating the client itself. */
    events() {
        return this[Symbol.asyncIterator]();
    }

    #send(message) {
        if (this.#socket.readyState !== OPEN) {
            throw new Error(this.#closed ? "the connection is closed" : "the connection is not open");
        }
        this.#socket.send(encodeClient(message));
    }

    #emit(event) {
        this.dispatchEvent(event);
        for (const sink of this.#iterators) {
            sink.queue.push(event);
            sink.wake?.();
        }
    }

    #receive(data) {
        if (this.#closed) return;
        let bytes;
        if (data instanceof ArrayBuffer || Object.prototype.toString.call(data) === "[object ArrayBuffer]") {
            bytes = new Uint8Array(data);
        } else if (ArrayBuffer.isView(data)) {
            bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        } else {
            this.#fail(`the relay sent a ${typeof data === "string" ? "text" : "non-binary"} message; ${PROTOCOL} is binary only`);
            return;
        }
        if (bytes.length > this.#maxPayload) {
            this.#fail(`the relay sent a ${bytes.length}-byte payload, over the ${this.#maxPayload}-byte limit`);
            return;
        }
        let message;
        try {
            message = decodeServer(bytes);
        } catch (error) {
            this.#fail(`undecodable message from the relay: ${error.message}`);
            return;
        }
        switch (message.type) {
            case "ping":
                // While closing (after close()), the relay no longer needs an answer.
                if (this.#socket.readyState === OPEN) this.#send({ type: "pong" });
                break;
            case "pong":
                if (this.#replies[0]?.fence) this.#replies.shift();
                break;
            case "joined": {
                while (this.#replies[0]?.fence) this.#replies.shift();
                const join = this.#replies.shift();
                this.#clientId = message.clientId;
                if (!join || join.sequence > this.#lastLeave) this.#roomId = message.roomId;
                join?.resolve({ clientId: message.clientId, roomId: message.roomId });
                this.#emit(new JoinedEvent(message.clientId, message.roomId));
                break;
            }
            case "playerJoined":
            case "playerLeft":
                this.#emit(new MemberEvent(message.type, message.clientId));
                break;
            case "error": {
                this.#lastRelayError = message.message;
                const head = this.#replies[0];
                if (head && !head.fence) {
                    this.#replies.shift();
                    head.reject(new RelayError(message.message));
                }
                this.#emit(new RelayErrorEvent(message.message));
                break;
            }
            case "broadcast":
                this.#emit(new BroadcastEvent(message.senderId, message.data));
                break;
            case "echoTest":
                this.#echoes.shift()?.resolve(message.data);
                break;
        }
    }

    /** The relay's data made no sense: say so, and close the connection. */
    #fail(text) {
        this.#emit(new RelayErrorEvent(text));
        if (this.#socket.readyState === OPEN) this.#socket.close(CLOSE_PROTOCOL_ERROR, "protocol error");
    }

    #didClose(event) {
        if (this.#closed) return;
        const info = { code: event.code ?? 1006, reason: event.reason ?? "", wasClean: event.wasClean ?? false };
        this.#closed = info;
        this.#roomId = null;
        this.#openFailed?.(info);
        const why = `the connection closed (code ${info.code}${info.reason ? `, ${info.reason}` : ""})` +
            (this.#lastRelayError ? `; the relay's last error: ${this.#lastRelayError}` : "");
        for (const pending of [...this.#replies, ...this.#echoes]) pending.reject?.(new Error(why));
        this.#replies = [];
        this.#echoes = [];
        this.#emit(new ConnectionCloseEvent(info.code, info.reason, info.wasClean));
        for (const sink of [...this.#iterators]) {
            sink.ended = true;
            this.#iterators.delete(sink);
            sink.wake?.();
        }
        for (const resolve of this.#closeWaiters.splice(0)) resolve(info);
    }
}

/** The entry point: `GhostSync.connect(url, options)`, plus the protocol name and the codec. */
export const GhostSync = Object.freeze({
    PROTOCOL,
    /**
     * Connects to the relay's WebSocket at `url` (e.g. `ws://${location.host}/`). Options:
     * `WebSocket` (a constructor, where globalThis has none), `timeout` (ms to wait for the
     * connection, default 10000; 0 waits forever), `maxPayload` (largest payload accepted from
     * the relay, default 256 KiB). Resolves with a GhostSyncClient once connected.
     */
    connect: (url, options) => GhostSyncClient.connect(url, options),
    encodeClient,
    decodeClient,
    encodeServer,
    decodeServer,
});
