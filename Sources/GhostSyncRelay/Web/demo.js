// The relay demo: every member's pointer on one shared canvas, a member list, chat, round-trip
// time and broadcast rates. Served by the relay's WebSocket port next to ghost-sync.js.
//
// Query parameters: `room=NAME` (default lobby), `autojoin=1` (join as soon as connected).
// For tests, `window.ghostDemo` exposes the state (status, clientId, roomId, members, received,
// rtt, counters) and `send`, `sendHex`, `join`, `leave`, `movePointer`; <body data-status> and
// data-client-id follow the connection.
//
// Pointer updates are broadcasts of exactly 5 bytes: 0xF1, then x and y as u16 little-endian,
// scaled from 0..1 to 0..65535. Any other broadcast is a message (shown as text, kept as hex).
// A member that sees a newcomer sends its position at once: the relay tells a newcomer nothing
// about who is there, so that is how it learns the others.

import { GhostSync, toBytes, toHex } from "./ghost-sync.js";

const POINTER_KIND = 0xf1;
const POINTER_SIZE = 5;
const POINTER_HZ = 30;
const KEPT_RECEIVED = 500;
const KEPT_LOG_LINES = 60;

const params = new URLSearchParams(location.search);
const elements = Object.fromEntries(
    ["status", "rtt", "rate-in", "rate-out", "arena", "hint", "room-form", "room", "join", "leave", "room-note",
        "member-count", "members", "log", "chat-form", "chat", "say"].map((id) => [id, document.getElementById(id)]),
);

/** Everything the page knows; `window.ghostDemo` reads from here. */
const state = {
    status: "connecting",
    client: null,
    clientId: null,
    roomId: null,
    /** id → { id, self, x, y (drawn), tx, ty (latest known), known (position received) } */
    members: new Map(),
    received: [],
    events: [],
    errors: [],
    rtt: null,
    counts: { in: 0, out: 0, pointersIn: 0, pointersOut: 0 },
    rates: { in: 0, out: 0 },
    pointer: { x: 0.5, y: 0.5, dirty: false },
};

// ---------------------------------------------------------------------------------------------
// Connection

async function connect() {
    setStatus("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let client;
    try {
        client = await GhostSync.connect(`${scheme}://${location.host}/`);
    } catch (error) {
        setStatus("closed", "cannot connect");
        note(String(error.message), true);
        return;
    }
    state.client = client;
    setStatus("connected", "connected");
    client.addEventListener("joined", (event) => {
        state.clientId = event.clientId;
        state.roomId = event.roomId;
        document.body.dataset.clientId = event.clientId;
        state.members.clear();
        const position = defaultPosition(event.clientId);
        Object.assign(state.pointer, { x: position.x, y: position.y, dirty: true });
        addMember(event.clientId, true);
        record({ type: "joined", clientId: event.clientId, roomId: event.roomId });
        logLine(`You joined ${event.roomId} as `, event.clientId);
        setStatus("joined", `in ${event.roomId}`);
        roomChanged();
    });
    client.addEventListener("playerJoined", (event) => {
        addMember(event.clientId, false);
        record({ type: "playerJoined", clientId: event.clientId });
        logLine("", event.clientId, " joined");
        state.pointer.dirty = true;  // tell the newcomer where we are
    });
    client.addEventListener("playerLeft", (event) => {
        state.members.delete(event.clientId);
        record({ type: "playerLeft", clientId: event.clientId });
        logLine("", event.clientId, " left");
        membersChanged();
    });
    client.addEventListener("broadcast", (event) => received(event.senderId, event.data));
    client.addEventListener("error", (event) => {
        state.errors.push(event.message);
        record({ type: "error", message: event.message });
        logError(event.message);
    });
    client.addEventListener("close", (event) => {
        record({ type: "close", code: event.code, reason: event.reason });
        state.client = null;
        state.roomId = null;
        state.members.clear();
        setStatus("closed", `disconnected (${event.code})`);
        note("The connection closed. Reload the page to connect again.", true);
        roomChanged();
    });
    roomChanged();
    measureRoundTrip();
    if (params.get("autojoin") === "1") join(elements.room.value).catch(() => {});  // the note shows why
}

async function join(room) {
    if (!state.client) throw new Error("not connected");
    note(`Joining ${room}…`);
    try {
        return await state.client.join(room);
    } catch (error) {
        note(error.message, true);
        throw error;
    }
}

function leave() {
    if (!state.client || !state.roomId) return;
    state.client.leave();
    logLine(`You left ${state.roomId}`);
    state.roomId = null;
    state.members.clear();
    setStatus("connected", "connected");
    roomChanged();
}

/** Broadcasts `data` (a string, bytes, or an array of byte values) to the room. */
function send(data) {
    if (!state.client) throw new Error("not connected");
    const bytes = Array.isArray(data) ? Uint8Array.from(data) : toBytes(data);
    state.client.broadcast(bytes);
    state.counts.out++;
    return toHex(bytes);
}

function received(senderId, data) {
    state.counts.in++;
    if (!state.members.has(senderId)) addMember(senderId, false);
    if (data.length === POINTER_SIZE && data[0] === POINTER_KIND) {
        state.counts.pointersIn++;
        const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
        const member = state.members.get(senderId);
        member.tx = view.getUint16(1, true) / 65535;
        member.ty = view.getUint16(3, true) / 65535;
        if (!member.known) Object.assign(member, { x: member.tx, y: member.ty, known: true });
        requestDraw();
        return;
    }
    const text = utf8OrNull(data);
    state.received.push({ senderId, hex: toHex(data), text });
    if (state.received.length > KEPT_RECEIVED) state.received.shift();
    if (text !== null) logLine("", senderId, `: ${text.length > 160 ? `${text.slice(0, 160)}… (${data.length} bytes)` : text}`, "say");
    else logLine("", senderId, ` sent ${data.length} bytes: 0x${toHex(data.subarray(0, 32))}${data.length > 32 ? "…" : ""}`, "say");
}

const strictUTF8 = new TextDecoder("utf-8", { fatal: true });
function utf8OrNull(data) {
    try {
        return strictUTF8.decode(data);
    } catch {
        return null;
    }
}

// ---------------------------------------------------------------------------------------------
// Pointer: sampled on move, sent at most POINTER_HZ times a second while it changes.

function movePointer(x, y) {
    state.pointer.x = Math.min(1, Math.max(0, x));
    state.pointer.y = Math.min(1, Math.max(0, y));
    state.pointer.dirty = true;
    elements.hint.hidden = true;
    const self = state.members.get(state.clientId);
    if (self) Object.assign(self, { x: state.pointer.x, y: state.pointer.y, tx: state.pointer.x, ty: state.pointer.y });
    requestDraw();
}

function sendPointer() {
    if (!state.pointer.dirty || !state.client || !state.roomId) return;
    state.pointer.dirty = false;
    const bytes = new Uint8Array(POINTER_SIZE);
    const view = new DataView(bytes.buffer);
    bytes[0] = POINTER_KIND;
    view.setUint16(1, Math.round(state.pointer.x * 65535), true);
    view.setUint16(3, Math.round(state.pointer.y * 65535), true);
    state.client.broadcast(bytes);
    state.counts.out++;
    state.counts.pointersOut++;
}

elements.arena.addEventListener("pointermove", (event) => {
    const box = elements.arena.getBoundingClientRect();
    movePointer((event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height);
});

// ---------------------------------------------------------------------------------------------
// Members, colours, drawing

function hashOf(id) {
    let hash = 0x811c9dc5;  // FNV-1a over the ID's characters
    for (let index = 0; index < id.length; index++) hash = Math.imul(hash ^ id.charCodeAt(index), 0x01000193) >>> 0;
    return hash;
}

/** A member's colour: its hue comes from its client ID, so every page shows the same one. */
function colourOf(id) {
    return `hsl(${hashOf(id) % 360} 80% 64%)`;
}

/** Where a member is drawn before it says where its pointer is. */
function defaultPosition(id) {
    const hash = hashOf(id);
    return { x: 0.15 + ((hash & 0xffff) / 0xffff) * 0.7, y: 0.2 + ((hash >>> 16) / 0xffff) * 0.6 };
}

function addMember(id, self) {
    if (state.members.has(id)) return;
    const position = self ? state.pointer : defaultPosition(id);
    state.members.set(id, { id, self, x: position.x, y: position.y, tx: position.x, ty: position.y, known: self });
    membersChanged();
}

function membersChanged() {
    const list = elements.members;
    list.replaceChildren();
    const members = [...state.members.values()].sort((a, b) => (b.self - a.self) || a.id.localeCompare(b.id));
    for (const member of members) {
        const item = document.createElement("li");
        item.className = member.self ? "self" : "";
        item.dataset.clientId = member.id;
        const dot = document.createElement("span");
        dot.className = "dot";
        dot.style.background = colourOf(member.id);
        const name = document.createElement("span");
        name.textContent = member.id.slice(0, 8);
        name.title = member.id;
        const tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = member.self ? "you" : "";
        item.append(dot, name, tag);
        list.append(item);
    }
    if (members.length === 0) {
        const empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = "Join a room to see who is there.";
        list.append(empty);
    }
    elements["member-count"].textContent = String(members.length);
    document.body.dataset.members = String(members.length);
    requestDraw();
}

let drawPending = false;
function requestDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(draw);
}

function draw() {
    drawPending = false;
    const canvas = elements.arena;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
        canvas.width = Math.round(width * ratio);
        canvas.height = Math.round(height * ratio);
    }
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);

    context.strokeStyle = "rgba(139, 150, 168, 0.09)";
    context.lineWidth = 1;
    context.beginPath();
    for (let x = 0.5; x < width; x += 32) { context.moveTo(x, 0); context.lineTo(x, height); }
    for (let y = 0.5; y < height; y += 32) { context.moveTo(0, y); context.lineTo(width, y); }
    context.stroke();

    let moving = false;
    const members = [...state.members.values()].sort((a, b) => a.self - b.self);  // self on top
    for (const member of members) {
        // Ease towards the latest position: smooth at 30 updates a second.
        member.x += (member.tx - member.x) * 0.35;
        member.y += (member.ty - member.y) * 0.35;
        if (Math.abs(member.tx - member.x) + Math.abs(member.ty - member.y) > 0.0005) moving = true;
        else Object.assign(member, { x: member.tx, y: member.ty });
        drawAvatar(context, member, member.x * width, member.y * height);
    }
    if (moving) requestDraw();
}

function drawAvatar(context, member, x, y) {
    const colour = colourOf(member.id);
    context.save();
    context.globalAlpha = member.known ? 1 : 0.45;
    context.shadowColor = colour;
    context.shadowBlur = 18;
    context.fillStyle = colour;
    context.beginPath();
    context.arc(x, y, 11, 0, Math.PI * 2);
    context.fill();
    context.shadowBlur = 0;
    context.lineWidth = member.self ? 3 : 2;
    context.strokeStyle = member.self ? "#ffffff" : "rgba(13, 17, 23, 0.9)";
    context.stroke();
    context.font = "600 12px ui-monospace, Menlo, Consolas, monospace";
    const label = member.self ? `${member.id.slice(0, 8)} (you)` : member.id.slice(0, 8);
    const labelWidth = context.measureText(label).width;
    context.fillStyle = "rgba(13, 17, 23, 0.8)";
    context.beginPath();
    context.roundRect(x + 15, y - 21, labelWidth + 12, 20, 6);
    context.fill();
    context.fillStyle = colour;
    context.fillText(label, x + 21, y - 7);
    context.restore();
}

new ResizeObserver(requestDraw).observe(elements.arena);

// ---------------------------------------------------------------------------------------------
// Readouts: status, room, log, RTT, rates

function setStatus(status, text) {
    state.status = status;
    document.body.dataset.status = status;
    elements.status.textContent = text;
}

function note(text, isError = false) {
    elements["room-note"].textContent = text;
    elements["room-note"].classList.toggle("error", isError);
}

function roomChanged() {
    const connected = state.client !== null;
    elements.join.disabled = !connected;
    elements.leave.disabled = !connected || !state.roomId;
    elements.chat.disabled = !state.roomId;
    elements.say.disabled = !state.roomId;
    if (state.roomId) note(`In ${state.roomId} as ${state.clientId}.`);
    else if (connected) note("Not in a room.");
    if (!state.roomId) document.body.dataset.room = "";
    else document.body.dataset.room = state.roomId;
    membersChanged();
}

function record(event) {
    state.events.push(event);
}

function logLine(before, id = null, after = "", kind = "") {
    const item = document.createElement("li");
    if (kind) item.className = kind;
    item.append(before);
    if (id) {
        const who = document.createElement("span");
        who.className = "who";
        who.style.color = colourOf(id);
        who.textContent = id.slice(0, 8);
        who.title = id;
        item.append(who);
    }
    item.append(after);
    appendLog(item);
}

function logError(text) {
    const item = document.createElement("li");
    item.className = "error";
    item.textContent = `relay: ${text}`;
    appendLog(item);
}

function appendLog(item) {
    const log = elements.log;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(item);
    while (log.children.length > KEPT_LOG_LINES) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
}

let echoInFlight = false;
async function measureRoundTrip() {
    if (!state.client || echoInFlight) return;
    echoInFlight = true;
    const started = performance.now();
    try {
        await state.client.echoTest("rtt");
        state.rtt = performance.now() - started;
        elements.rtt.textContent = state.rtt < 10 ? `${state.rtt.toFixed(1)} ms` : `${Math.round(state.rtt)} ms`;
    } catch {
        // The connection closed meanwhile: the close handler says so.
    } finally {
        echoInFlight = false;
    }
}

let lastCounts = { in: 0, out: 0 };
function updateRates() {
    state.rates = { in: state.counts.in - lastCounts.in, out: state.counts.out - lastCounts.out };
    lastCounts = { in: state.counts.in, out: state.counts.out };
    elements["rate-in"].textContent = String(state.rates.in);
    elements["rate-out"].textContent = String(state.rates.out);
}

setInterval(sendPointer, 1000 / POINTER_HZ);
setInterval(() => {
    measureRoundTrip();
    updateRates();
}, 1000);

// ---------------------------------------------------------------------------------------------
// Controls

elements.room.value = params.get("room") || "lobby";
elements["room-form"].addEventListener("submit", (event) => {
    event.preventDefault();
    const room = elements.room.value.trim();
    if (room) join(room).catch(() => {});  // the note shows why
});
elements.leave.addEventListener("click", leave);
elements["chat-form"].addEventListener("submit", (event) => {
    event.preventDefault();
    const text = elements.chat.value;
    if (!text || !state.roomId) return;
    send(text);
    logLine("", state.clientId, `: ${text}`, "say");
    elements.chat.value = "";
});

// ---------------------------------------------------------------------------------------------
// For tests and the curious

window.ghostDemo = {
    get status() { return state.status; },
    get clientId() { return state.clientId; },
    get roomId() { return state.roomId; },
    /** Client IDs of the room's members this page knows of, itself included. */
    get members() { return [...state.members.keys()].sort(); },
    /** Where each member's pointer is (0..1); `known` once the member sent one. */
    get positions() {
        return Object.fromEntries([...state.members.values()].map((member) =>
            [member.id, { x: member.tx, y: member.ty, known: member.known }]));
    },
    /** Broadcasts that were not pointer updates: { senderId, hex, text (null unless UTF-8) }. */
    get received() { return state.received.map((entry) => ({ ...entry })); },
    /** Everything the relay said, in order: joined, playerJoined, playerLeft, error, close. */
    get events() { return state.events.map((event) => ({ ...event })); },
    get errors() { return [...state.errors]; },
    /** Last round-trip time in milliseconds (null until measured). */
    get rtt() { return state.rtt; },
    get counts() { return { ...state.counts }; },
    get rates() { return { ...state.rates }; },
    send,
    sendHex: (hex) => send(Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16))),
    join: (room) => join(room).then((answer) => ({ ...answer })),
    leave,
    movePointer,
};

membersChanged();
connect();
