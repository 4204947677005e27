// reference-relay: a hand-tuned, single-threaded ghost-sync relay in C, as a benchmark yardstick
// for GhostSync (issue #14). Not a product: see README.md for what it leaves out.
//
//   reference-relay --bind 127.0.0.1:PORT [--rooms N] [--max-payload BYTES] [--queue FRAMES]
//
// Design: one epoll instance, connections registered once, edge-triggered, for reading and
// writing; each read drains the socket into the connection's input buffer and every complete
// frame is decoded in place. A broadcast is encoded once into a reference-counted frame from a
// free list and every recipient's queue (a ring of frame pointers) takes a reference. Recipients
// with new output go on a dirty list, flushed once per loop iteration with one gathered write
// each. SIGUSR1 prints the counters to stderr; SIGTERM/SIGINT print them and exit.
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

enum { MAX_EVENTS = 1024, MIN_INPUT = 64 * 1024, ACCEPT_BURST = 256 };

// ---------------------------------------------------------------------------------------------
// Shared frames: one encoding per message, whatever the number of recipients.

struct frame {
    uint32_t refs;
    uint32_t len;          // bytes of data[] to send: 4-byte prefix + payload
    uint32_t cls;          // size class, for the free list it returns to
    struct frame *next;    // free-list link
    uint8_t data[];
};

// Size classes 64 << k bytes; class count set from --max-payload at start.
static struct frame **free_frames;
static unsigned frame_classes;

static struct {
    uint64_t frames_in, frames_out, drops, reads, writes, iterations;
    uint64_t broadcasts_in, deliveries, accepts, closes, frame_mallocs;
} stats;

static inline unsigned class_of(size_t size) {
    return size <= 64 ? 0 : (unsigned)(64 - __builtin_clzll((unsigned long long)(size - 1)) - 6);
}

static struct frame *frame_alloc(size_t len) {
    unsigned cls = class_of(len);
    struct frame *f = free_frames[cls];
    if (likely(f != NULL)) {
        free_frames[cls] = f->next;
    } else {
        // Only until the pool has grown to the working set: steady state allocates nothing.
        f = malloc(sizeof *f + ((size_t)64 << cls));
        if (f == NULL) { perror("reference-relay: malloc"); exit(71); }
        f->cls = cls;
        stats.frame_mallocs++;
    }
    f->refs = 0;
    f->len = (uint32_t)len;
    return f;
}

static inline void frame_release(struct frame *f) {
    if (--f->refs == 0) {
        f->next = free_frames[f->cls];
        free_frames[f->cls] = f;
    }
}

// A frame with nobody to take it (every recipient's queue full) goes straight back.
static inline void frame_discard_if_unused(struct frame *f) {
    if (f->refs == 0) { f->refs = 1; frame_release(f); }
}

static inline void put_be32(uint8_t *p, uint32_t v) { v = htonl(v); memcpy(p, &v, 4); }
static inline void put_le32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }  // x86-64/arm64 Linux: little-endian
static inline void put_le64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t get_be32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return ntohl(v); }
static inline uint32_t get_le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t get_le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

// ---------------------------------------------------------------------------------------------
// Connections and rooms.

struct conn {
    int fd;
    bool closed, dirty, blocked;
    int32_t room;          // index into rooms, -1 when in none
    uint32_t member_ix;    // position in its room's member array
    uint32_t qhead, qcount;
    uint32_t head_off;     // bytes of the head frame already written
    uint32_t in_len;
    uint8_t *in;
    struct conn *next_dead;
    uint8_t id[16];
    struct frame *ring[];  // outgoing queue, capacity queue_cap
};

struct room {
    char *name;
    uint32_t name_len, count, cap;
    struct conn **members;
};

static struct room *rooms;
static uint32_t room_count = 1000;
static uint32_t max_payload = 65536;
static uint32_t queue_cap = 256;
static uint32_t input_cap;
static int epfd;

static struct conn **dirty;        // connections with new output this iteration
static uint32_t dirty_count, dirty_cap;
static struct conn *dead;          // closed this iteration, freed after the flush
static uint64_t id_seed[2], id_counter;

static void conn_close(struct conn *c);

static inline void mark_dirty(struct conn *c) {
    if (c->dirty) return;
    if (unlikely(dirty_count == dirty_cap)) {
        dirty_cap = dirty_cap ? dirty_cap * 2 : 1024;
        dirty = realloc(dirty, dirty_cap * sizeof *dirty);
        if (dirty == NULL) { perror("reference-relay: realloc"); exit(71); }
    }
    c->dirty = true;
    dirty[dirty_count++] = c;
}

// Queues a reference to f for c; a full queue drops it (no sender ever waits for a receiver).
static inline void enqueue(struct conn *c, struct frame *f) {
    if (unlikely(c->qcount == queue_cap)) { stats.drops++; return; }
    uint32_t tail = c->qhead + c->qcount;
    if (tail >= queue_cap) tail -= queue_cap;
    c->ring[tail] = f;
    c->qcount++;
    f->refs++;
    stats.frames_out++;
    mark_dirty(c);
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// A UUID v4 layout from a per-process random seed mixed with a counter: unique per connection.
static void make_client_id(uint8_t id[16]) {
    uint64_t n = ++id_counter;
    uint64_t a = splitmix64(id_seed[0] ^ n), b = splitmix64(id_seed[1] + n);
    memcpy(id, &a, 8);
    memcpy(id + 8, &b, 8);
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40);
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80);
}


// Queues f to every member of r except `except`; returns how many took it.
static uint64_t send_to_room(struct room *r, const struct conn *except, struct frame *f) {
    uint64_t before = stats.frames_out;
    struct conn **m = r->members;
    for (uint32_t i = 0, n = r->count; i < n; i++)
        if (m[i] != except) enqueue(m[i], f);
    frame_discard_if_unused(f);
    return stats.frames_out - before;
}

// ServerWire PlayerJoined (tag 1) or PlayerLeft (tag 2) about c, to the rest of r.
static void tell_room(struct room *r, const struct conn *c, uint32_t tag) {
    if (r->count == 0 || (r->count == 1 && r->members[0] == c)) return;
    struct frame *f = frame_alloc(4 + 4 + 16);
    put_be32(f->data, 4 + 16);
    put_le32(f->data + 4, tag);
    memcpy(f->data + 8, c->id, 16);
    send_to_room(r, c, f);
}

static void room_leave(struct conn *c) {
    if (c->room < 0) return;
    struct room *r = &rooms[c->room];
    // Swap the last member into c's place: O(1), member order does not matter.
    struct conn *last = r->members[--r->count];
    r->members[c->member_ix] = last;
    last->member_ix = c->member_ix;
    c->room = -1;
    tell_room(r, c, 2);
}

// ServerWire Error(prefix + detail), tag 5, to c.
static void send_error(struct conn *c, const char *prefix, const uint8_t *detail, size_t detail_len) {
    size_t plen = strlen(prefix), slen = plen + detail_len;
    struct frame *f = frame_alloc(4 + 4 + 8 + slen);
    put_be32(f->data, (uint32_t)(4 + 8 + slen));
    put_le32(f->data + 4, 5);
    put_le64(f->data + 8, slen);
    memcpy(f->data + 16, prefix, plen);
    if (detail_len) memcpy(f->data + 16 + plen, detail, detail_len);
    enqueue(c, f);
    frame_discard_if_unused(f);
}

static void room_join(struct conn *c, uint32_t k) {
    room_leave(c);  // the others of the previous room get PlayerLeft first
    struct room *r = &rooms[k];
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->members = realloc(r->members, r->cap * sizeof *r->members);
        if (r->members == NULL) { perror("reference-relay: realloc"); exit(71); }
    }
    c->member_ix = r->count;
    r->members[r->count++] = c;
    c->room = (int32_t)k;
    // Joined{client_id, room_id} to the joiner, then PlayerJoined{client_id} to the others.
    struct frame *f = frame_alloc(4 + 4 + 16 + 8 + r->name_len);
    put_be32(f->data, 4 + 16 + 8 + r->name_len);
    put_le32(f->data + 4, 0);
    memcpy(f->data + 8, c->id, 16);
    put_le64(f->data + 24, r->name_len);
    memcpy(f->data + 32, r->name, r->name_len);
    enqueue(c, f);
    frame_discard_if_unused(f);
    tell_room(r, c, 1);
}

// Rooms are exactly room-1 … room-N, so a canonical decimal after "room-" names one; the name
// is then compared in full anyway, so any other string (leading zeros, "room-01") is not found.
static int32_t room_lookup(const uint8_t *s, size_t n) {
    if (n < 6 || n > 15 || memcmp(s, "room-", 5) != 0 || s[5] == '0') return -1;
    uint64_t k = 0;
    for (size_t i = 5; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        k = k * 10 + (uint64_t)(s[i] - '0');
    }
    if (k < 1 || k > room_count) return -1;
    const struct room *r = &rooms[k - 1];
    if (r->name_len != n || memcmp(r->name, s, n) != 0) return -1;
    return (int32_t)(k - 1);
}

// Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF), eight ASCII bytes a step.
static bool utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) == 0) { i += 8; continue; }
        }
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return false;
        if (n - i - 1 < need) return false;
        if (s[i + 1] < lo || s[i + 1] > hi) return false;
        for (size_t j = 2; j <= need; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += need + 1;
    }
    return true;
}

static struct frame *pong_frame;  // ServerWire Pong, shared by every reply; never freed

// One ClientWire payload from c. False: a protocol error, the caller closes c.
static bool handle_payload(struct conn *c, const uint8_t *p, uint32_t len) {
    if (unlikely(len < 4)) return false;
    uint32_t tag = get_le32(p);
    if (likely(tag == 4 || tag == 5)) {  // Broadcast / EchoTest {data: bytes}
        if (len < 12 || get_le64(p + 4) != (uint64_t)len - 12) return false;
        uint32_t dlen = len - 12;
        if (tag == 4) {
            stats.broadcasts_in++;
            if (unlikely(c->room < 0)) { send_error(c, "not in a room", NULL, 0); return true; }
            struct room *r = &rooms[c->room];
            if (r->count <= 1) return true;  // nobody else to tell: no encoding at all
            // Encoded once: [len][tag 6][sender id][u64 len][data], shared by every recipient.
            struct frame *f = frame_alloc(4 + 28 + (size_t)dlen);
            put_be32(f->data, 28 + dlen);
            put_le32(f->data + 4, 6);
            memcpy(f->data + 8, c->id, 16);
            put_le64(f->data + 24, dlen);
            memcpy(f->data + 32, p + 12, dlen);
            stats.deliveries += send_to_room(r, c, f);
        } else {
            struct frame *f = frame_alloc(4 + 12 + (size_t)dlen);
            put_be32(f->data, 12 + dlen);
            put_le32(f->data + 4, 7);
            memcpy(f->data + 8, p + 4, 8 + (size_t)dlen);  // the length and the data as they came
            enqueue(c, f);
            frame_discard_if_unused(f);
        }
        return true;
    }
    switch (tag) {
    case 0: {  // JoinRoom {room_id: String}
        if (len < 12 || get_le64(p + 4) != (uint64_t)len - 12) return false;
        const uint8_t *name = p + 12;
        size_t n = len - 12;
        if (!utf8_valid(name, n)) return false;
        int32_t k = room_lookup(name, n);
        if (k < 0) send_error(c, "room not found: ", name, n);
        else room_join(c, (uint32_t)k);
        return true;
    }
    case 1:  // LeaveRoom
        if (len != 4) return false;
        room_leave(c);
        return true;
    case 2:  // Ping
        if (len != 4) return false;
        enqueue(c, pong_frame);
        return true;
    case 3:  // Pong: nothing to do without keepalive
        return len == 4;
    default:
        return false;
    }
}

// Decodes every complete frame in c's input buffer in place, keeps the incomplete rest.
static bool decode(struct conn *c) {
    uint8_t *p = c->in, *end = c->in + c->in_len;
    while (end - p >= 4) {
        uint32_t len = get_be32(p);
        if (unlikely(len > max_payload)) return false;  // decided from the prefix alone
        if ((size_t)(end - p - 4) < len) break;
        stats.frames_in++;
        if (unlikely(!handle_payload(c, p + 4, len))) return false;
        p += 4 + (size_t)len;
    }
    size_t rest = (size_t)(end - p);
    if (rest != 0 && p != c->in) memmove(c->in, p, rest);
    c->in_len = (uint32_t)rest;
    return true;
}

// Edge-triggered: read until the socket is drained. A read shorter than the space offered means
// it was (new data makes a new edge), unless the peer hung up: then read on to the end.
static void conn_read(struct conn *c, bool hangup) {
    for (;;) {
        size_t space = input_cap - c->in_len;  // >= 1: the rest is at most one partial frame
        ssize_t n = read(c->fd, c->in + c->in_len, space);
        stats.reads++;
        if (n > 0) {
            c->in_len += (uint32_t)n;
            if (!decode(c)) { conn_close(c); return; }
            if ((size_t)n < space && !hangup) return;
            continue;
        }
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0 && errno == EINTR) continue;
        conn_close(c);  // end of stream or a socket error
        return;
    }
}

static struct iovec iov[IOV_MAX];

// Drops n written bytes from the front of c's queue.
static void consume(struct conn *c, size_t n) {
    while (n > 0) {
        struct frame *f = c->ring[c->qhead];
        size_t left = f->len - c->head_off;
        if (n < left) { c->head_off += (uint32_t)n; return; }
        n -= left;
        c->head_off = 0;
        frame_release(f);
        if (++c->qhead == queue_cap) c->qhead = 0;
        c->qcount--;
    }
}

// --coalesce: frames up to COPY_MAX bytes are copied into one contiguous run per write instead
// of an iovec each (the kernel's per-iovec cost outweighs a small memcpy). Off by default: the
// yardstick issue #14 describes gathers the shared frames themselves.
enum { COPY_MAX = 1024, SCRATCH = 64 * 1024 };
static bool coalesce;
static uint8_t scratch[SCRATCH];

// One gathered write of up to IOV_MAX queued frames; more only if all of it went out.
static void flush(struct conn *c) {
    while (c->qcount > 0) {
        uint32_t n = 0, niov = 0, ix = c->qhead;
        size_t total = 0, used = 0;
        while (n < c->qcount && niov < IOV_MAX) {
            struct frame *f = c->ring[ix];
            uint32_t off = n == 0 ? c->head_off : 0;
            uint8_t *base = f->data + off;
            size_t len = f->len - off;
            bool merged = false;
            if (coalesce && len <= COPY_MAX) {
                if (used + len > SCRATCH) break;
                memcpy(scratch + used, base, len);
                base = scratch + used;
                used += len;
                // Right after the previous copy: it extends that iovec.
                merged = niov > 0 && (uint8_t *)iov[niov - 1].iov_base + iov[niov - 1].iov_len == base;
                if (merged) iov[niov - 1].iov_len += len;
            }
            if (!merged) {
                iov[niov].iov_base = base;
                iov[niov].iov_len = len;
                niov++;
            }
            total += len;
            n++;
            if (++ix == queue_cap) ix = 0;
        }
        ssize_t w;
        if (niov == 1) {
            w = send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr m = { .msg_iov = iov, .msg_iovlen = niov };
            w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        }
        stats.writes++;
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { c->blocked = true; return; }  // EPOLLOUT's edge resumes it
            conn_close(c);
            return;
        }
        consume(c, (size_t)w);
        if ((size_t)w < total) { c->blocked = true; return; }  // the socket buffer is full
    }
}

static void conn_close(struct conn *c) {
    if (c->closed) return;
    c->closed = true;
    stats.closes++;
    room_leave(c);  // PlayerLeft to the others
    while (c->qcount > 0) {
        frame_release(c->ring[c->qhead]);
        if (++c->qhead == queue_cap) c->qhead = 0;
        c->qcount--;
    }
    close(c->fd);  // also removes it from the epoll set
    // Freed after this iteration: events already fetched may still point at it.
    c->next_dead = dead;
    dead = c;
}

static void accept_all(int lfd) {
    for (int i = 0; i < ACCEPT_BURST; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN) perror("reference-relay: accept4");
            return;  // the listener is level-triggered: a backlog left over comes back
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c + queue_cap * sizeof(struct frame *));
        uint8_t *in = malloc(input_cap);
        if (c == NULL || in == NULL) { perror("reference-relay: malloc"); exit(71); }
        c->fd = fd;
        c->in = in;
        c->room = -1;
        make_client_id(c->id);
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("reference-relay: epoll_ctl");
            close(fd);
            free(in);
            free(c);
            continue;
        }
        stats.accepts++;
    }
}

static void print_stats(void) {
    fprintf(stderr,
            "reference-relay: frames_in=%llu frames_out=%llu drops=%llu reads=%llu writes=%llu iterations=%llu "
            "broadcasts_in=%llu deliveries=%llu accepts=%llu closes=%llu frame_mallocs=%llu "
            "frames_out_per_write=%.2f frames_in_per_read=%.2f\n",
            (unsigned long long)stats.frames_in, (unsigned long long)stats.frames_out, (unsigned long long)stats.drops,
            (unsigned long long)stats.reads, (unsigned long long)stats.writes, (unsigned long long)stats.iterations,
            (unsigned long long)stats.broadcasts_in, (unsigned long long)stats.deliveries,
            (unsigned long long)stats.accepts, (unsigned long long)stats.closes, (unsigned long long)stats.frame_mallocs,
            stats.writes ? (double)stats.frames_out / (double)stats.writes : 0.0,
            stats.reads ? (double)stats.frames_in / (double)stats.reads : 0.0);
}

static volatile sig_atomic_t want_stats, want_exit;
static void on_signal(int sig) {
    if (sig == SIGUSR1) want_stats = 1;
    else want_exit = 1;
}

static void usage(void) {
    fprintf(stderr, "usage: reference-relay --bind HOST:PORT [--rooms N] [--max-payload BYTES] [--queue FRAMES] [--coalesce]\n");
    exit(64);
}

static uint32_t parse_count(const char *text, uint32_t min, uint32_t max) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || end == text || v < min || v > max) usage();
    return (uint32_t)v;
}

int main(int argc, char **argv) {
    const char *bind_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc && strcmp(argv[i], "--coalesce") != 0) usage();
        if (strcmp(argv[i], "--bind") == 0) bind_arg = argv[++i];
        else if (strcmp(argv[i], "--rooms") == 0) room_count = parse_count(argv[++i], 0, 100000000);
        else if (strcmp(argv[i], "--max-payload") == 0) max_payload = parse_count(argv[++i], 16, 1u << 30);
        else if (strcmp(argv[i], "--queue") == 0) queue_cap = parse_count(argv[++i], 1, 1u << 20);
        else if (strcmp(argv[i], "--coalesce") == 0) coalesce = true;
        else usage();
    }
    if (bind_arg == NULL) usage();
    const char *colon = strrchr(bind_arg, ':');
    if (colon == NULL || colon - bind_arg >= 64) usage();
    char host[64];
    memcpy(host, bind_arg, (size_t)(colon - bind_arg));
    host[colon - bind_arg] = '\0';
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)parse_count(colon + 1, 0, 65535)) };
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) usage();

    // As many descriptors as the hard limit allows.
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    input_cap = max_payload + 4 > MIN_INPUT ? max_payload + 4 : MIN_INPUT;
    // The largest frame: an Error or Joined naming a room ID of max_payload - 12 bytes, or a
    // Broadcast of max_payload - 12 bytes; each under max_payload + 64.
    frame_classes = class_of((size_t)max_payload + 64) + 1;
    free_frames = calloc(frame_classes, sizeof *free_frames);
    rooms = calloc(room_count ? room_count : 1, sizeof *rooms);
    if (free_frames == NULL || rooms == NULL) { perror("reference-relay: calloc"); return 71; }
    for (uint32_t k = 0; k < room_count; k++) {
        char name[32];
        int n = snprintf(name, sizeof name, "room-%u", k + 1);
        rooms[k].name = strdup(name);
        rooms[k].name_len = (uint32_t)n;
    }
    pong_frame = frame_alloc(8);
    put_be32(pong_frame->data, 4);
    put_le32(pong_frame->data + 4, 4);
    pong_frame->refs = 1;  // held for good: never returns to the free list
    if (getrandom(id_seed, sizeof id_seed, 0) != (ssize_t)sizeof id_seed) {
        id_seed[0] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
        id_seed[1] = (uint64_t)time(NULL);
    }

    // The signals stay blocked except inside epoll_pwait: no race between a flag test and the wait.
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t blocked, waiting;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigprocmask(SIG_BLOCK, &blocked, &waiting);
    sigdelset(&waiting, SIGUSR1);
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        perror("reference-relay: listen");
        return 69;
    }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };  // the listener: data.ptr NULL
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0) { perror("reference-relay: epoll"); return 71; }
    fprintf(stderr, "reference-relay: listening on %s:%u, rooms room-1 … room-%u, max payload %u, queue %u frames%s\n",
            host, ntohs(addr.sin_port), room_count, max_payload, queue_cap, coalesce ? ", coalescing writes" : "");

    static struct epoll_event events[MAX_EVENTS];
    while (!want_exit) {
        int n = epoll_pwait(epfd, events, MAX_EVENTS, -1, &waiting);
        if (n < 0) {
            if (errno != EINTR) { perror("reference-relay: epoll_pwait"); return 71; }
            n = 0;
        }
        if (want_stats) { want_stats = 0; print_stats(); }
        stats.iterations++;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) { accept_all(lfd); continue; }
            if (c->closed) continue;
            uint32_t e = events[i].events;
            if ((e & EPOLLOUT) && c->blocked) {
                c->blocked = false;
                if (c->qcount > 0) mark_dirty(c);
            }
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                conn_read(c, (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
        }
        // One gathered write per connection with new output. A close here (a failed write) may
        // queue PlayerLeft to others, which appends them: the count is read on every pass.
        for (uint32_t i = 0; i < dirty_count; i++) {
            struct conn *c = dirty[i];
            c->dirty = false;
            if (!c->closed && !c->blocked) flush(c);
        }
        dirty_count = 0;
        while (dead != NULL) {
            struct conn *c = dead;
            dead = c->next_dead;
            free(c->in);
            free(c);
        }
    }
    print_stats();
    return 0;
}
