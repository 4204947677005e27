// Type declarations for ghost-sync.js, the GhostSync relay's WebSocket client. They describe the
// module exactly; Tests/JavaScript/ghost-sync.test.mjs exercises the same API.

/** The WebSocket subprotocol the client offers and the relay selects: "ghost-sync.v1". */
export declare const PROTOCOL: "ghost-sync.v1";
/** Default cap on one incoming payload: 256 KiB. */
export declare const DEFAULT_MAX_PAYLOAD: number;
/** Close code the client sends when the relay's data makes no sense: 4002. */
export declare const CLOSE_PROTOCOL_ERROR: 4002;

/** Bytes as the client accepts them: a string is sent as UTF-8. */
export type Data = Uint8Array | ArrayBuffer | ArrayBufferView | string;

/** A payload that does not decode, or a message that cannot be encoded. */
export declare class ProtocolError extends Error {
    constructor(message: string);
    readonly name: "ProtocolError";
}

/** The relay answered a join with Error; `message` is the relay's text. */
export declare class RelayError extends Error {
    constructor(message: string);
    readonly name: "RelayError";
}

/** ClientWire (browser → relay). UUIDs are lowercase canonical strings. */
export type ClientMessage =
    | { type: "joinRoom"; roomId: string }
    | { type: "leaveRoom" }
    | { type: "ping" }
    | { type: "pong" }
    | { type: "broadcast"; data: Uint8Array }
    | { type: "echoTest"; data: Uint8Array };

/** ServerWire (relay → browser). */
export type ServerMessage =
    | { type: "joined"; clientId: string; roomId: string }
    | { type: "playerJoined"; clientId: string }
    | { type: "playerLeft"; clientId: string }
    | { type: "ping" }
    | { type: "pong" }
    | { type: "error"; message: string }
    | { type: "broadcast"; senderId: string; data: Uint8Array }
    | { type: "echoTest"; data: Uint8Array };

/** What the encoders take: like the messages, but `data` may be any `Data`. */
type Encodable<M> = M extends { data: Uint8Array } ? Omit<M, "data"> & { data: Data } : M;

/** The payload (tag + body, no length prefix) of a client message. */
export declare function encodeClient(message: Encodable<ClientMessage>): Uint8Array;
/** Decodes a client payload; throws ProtocolError unless it is exactly one valid message. */
export declare function decodeClient(payload: Uint8Array): ClientMessage;
/** The payload of a server message (for tests and mock relays). */
export declare function encodeServer(message: Encodable<ServerMessage>): Uint8Array;
/** Decodes a server payload; throws ProtocolError unless it is exactly one valid message. */
export declare function decodeServer(payload: Uint8Array): ServerMessage;
/** `data` as bytes: a Uint8Array as is, a string as UTF-8, other buffers as views of the same memory. */
export declare function toBytes(data: Data): Uint8Array;
/** Lowercase hex, two digits a byte. */
export declare function toHex(bytes: Iterable<number>): string;

/** `joined`: the relay accepted a join. */
export declare class JoinedEvent extends Event {
    constructor(clientId: string, roomId: string);
    readonly type: "joined";
    readonly clientId: string;
    readonly roomId: string;
}

/** `playerJoined` / `playerLeft`: another member came into or left the room. */
export declare class MemberEvent extends Event {
    constructor(type: "playerJoined" | "playerLeft", clientId: string);
    readonly type: "playerJoined" | "playerLeft";
    readonly clientId: string;
}

/** `broadcast`: another member (or the server) sent `data`. */
export declare class BroadcastEvent extends Event {
    constructor(senderId: string, data: Uint8Array);
    readonly type: "broadcast";
    readonly senderId: string;
    readonly data: Uint8Array;
    /** `data` as UTF-8 (invalid sequences become U+FFFD). */
    readonly text: string;
}

/** `error`: the relay sent an Error (also the one that rejects a join), or its data made no sense. */
export declare class RelayErrorEvent extends Event {
    constructor(message: string);
    readonly type: "error";
    readonly message: string;
}

/** `close`: the connection is over; always the last event. */
export declare class ConnectionCloseEvent extends Event {
    constructor(code: number, reason: string, wasClean: boolean);
    readonly type: "close";
    readonly code: number;
    readonly reason: string;
    readonly wasClean: boolean;
}

export interface GhostSyncEventMap {
    joined: JoinedEvent;
    playerJoined: MemberEvent;
    playerLeft: MemberEvent;
    broadcast: BroadcastEvent;
    error: RelayErrorEvent;
    close: ConnectionCloseEvent;
}

export type GhostSyncEvent = GhostSyncEventMap[keyof GhostSyncEventMap];

/** How a connection ended. */
export interface CloseInfo {
    code: number;
    reason: string;
    wasClean: boolean;
}

/** A WebSocket constructor as browsers (and node 22+, or the `ws` package) have it. */
export interface WebSocketConstructor {
    new (url: string | URL, protocols?: string | string[]): WebSocket;
}

export interface ConnectOptions {
    /** The WebSocket class to use; default `globalThis.WebSocket`. */
    WebSocket?: WebSocketConstructor;
    /** Milliseconds to wait for the connection to open (default 10000; 0: no limit). */
    timeout?: number;
    /** Largest payload accepted from the relay, in bytes (default 256 KiB). */
    maxPayload?: number;
}

/** One connection to the relay; made by `GhostSync.connect`. */
export declare class GhostSyncClient extends EventTarget implements AsyncIterable<GhostSyncEvent> {
    /** Not for use: throws. Call `GhostSync.connect`. */
    private constructor();
    /** Opens a WebSocket to `url` offering `ghost-sync.v1`; resolves once it is open. */
    static connect(url: string | URL, options?: ConnectOptions): Promise<GhostSyncClient>;

    /** The ID the relay gave this connection, from the first Joined; null before. */
    readonly clientId: string | null;
    /** The room this client is in as far as it knows; null before a join, after leave and close. */
    readonly roomId: string | null;
    /** True until the connection closed. */
    readonly connected: boolean;

    /** Resolves on Joined; rejects with RelayError on the relay's Error, or with Error on close. */
    join(roomId: string): Promise<{ clientId: string; roomId: string }>;
    /** Leaves the current room; the relay does not answer. Throws if the connection is not open. */
    leave(): void;
    /** Sends `data` to the other members of the room. Throws if the connection is not open. */
    broadcast(data: Data): void;
    /** The relay sends `data` straight back: resolves with it. */
    echoTest(data: Data): Promise<Uint8Array>;
    /** Closes the connection; resolves once closed. */
    close(code?: number, reason?: string): Promise<CloseInfo>;

    /** The events from now on, ending after `close`. */
    [Symbol.asyncIterator](): AsyncIterableIterator<GhostSyncEvent>;
    /** Same as iterating the client. */
    events(): AsyncIterableIterator<GhostSyncEvent>;

    addEventListener<K extends keyof GhostSyncEventMap>(
        type: K,
        listener: (this: GhostSyncClient, event: GhostSyncEventMap[K]) => unknown,
        options?: boolean | AddEventListenerOptions,
    ): void;
    addEventListener(
        type: string,
        listener: EventListenerOrEventListenerObject | null,
        options?: boolean | AddEventListenerOptions,
    ): void;
    removeEventListener<K extends keyof GhostSyncEventMap>(
        type: K,
        listener: (this: GhostSyncClient, event: GhostSyncEventMap[K]) => unknown,
        options?: boolean | EventListenerOptions,
    ): void;
    removeEventListener(
        type: string,
        listener: EventListenerOrEventListenerObject | null,
        options?: boolean | EventListenerOptions,
    ): void;
}

/** The entry point. */
export declare const GhostSync: Readonly<{
    PROTOCOL: typeof PROTOCOL;
    /** Connects to the relay's WebSocket at `url`, e.g. `ws://${location.host}/`. */
    connect(url: string | URL, options?: ConnectOptions): Promise<GhostSyncClient>;
    encodeClient: typeof encodeClient;
    decodeClient: typeof decodeClient;
    encodeServer: typeof encodeServer;
    decodeServer: typeof decodeServer;
}>;
