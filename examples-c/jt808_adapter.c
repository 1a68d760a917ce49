/* jt808_adapter: RRPC calls to JT/T 808 vehicle terminals.
 *
 *   jt808_adapter --host 127.0.0.1 --port 1883 --product-key a1B2c3 --listen-port 7808
 *                 [--listen-host 127.0.0.1] [--completion answer|ack] [--quiet]
 *
 * Terminals connect over TCP to the listen port. Each one registers (0x0100, answered
 * with 0x8100 and an authentication code drawn at random for it) and authenticates
 * (0x0102 carrying that code, answered with 0x8001). Only then is its connection bound
 * to its phone number (rrpc_jt808_adapter_terminal_authenticated): a phone number in a
 * frame header is a claim any connection can make, and frames from a connection that
 * has not authenticated complete no call. The terminal then becomes the RRPC device
 * <product-key>/<phone> (the phone number without leading zeros, e.g. 13800138000) on
 * one MQTT connection.
 *
 * Registrations: a phone that is registered already (by a connection still open) is
 * refused (0x8100 result 3, no code); a terminal that reconnects while its old socket is
 * still half-open authenticates with the code it kept, and its binding moves to the new
 * connection. A registration is forgotten when the connection holding it closes, so
 * the table only ever holds terminals that are connected. This example has no vehicle
 * database: whoever registers a phone first, while it is free, gets its code; a real
 * gateway checks registrations against its records. An RRpc call with a
 * ContentType goes to the terminal as a 0x8900 whose type byte is the ContentType;
 * the reply is the terminal's answer:
 *   --completion answer (default): the content of the terminal's next 0x0900 of
 *     that type (a 0x0001 with a failure result answers at once with an error);
 *   --completion ack: the terminal's 0x0001, as {"jt808":"ack","result":0,"serial":N}.
 * IC-card requests (ContentType 11) always complete on the ack: the standard gives
 * the card 30 s, more than any RRpc call waits (8 s); its answer arrives later and is
 * printed as an uplink. Calls without a ContentType, or to a terminal that is not
 * connected, are answered with {"jt808":"error","reason":...}.
 *
 * Threads: the client's thread runs the RRPC callback (which submits to the adapter
 * and so writes 0x8900 frames); the main thread waits on the sockets with epoll and
 * feeds the adapter, whose events (replies, uplinks, other frames) run on it. One
 * mutex guards the terminal table and socket writes; no adapter call is made while
 * holding it. epoll rather than poll(2): poll walks every descriptor on every wake-up,
 * which with a thousand terminals costs far more than the call itself.
 *
 * stdout: "terminal <phone> online" (always), "uplink <phone> type=<n> len=<n>[ late]"
 * and "request <phone> ct=<n> len=<n>" (not with --quiet). stderr: "jt808_adapter:
 * listening on <host>:<port>" once ready. Exits on SIGINT/SIGTERM, freeing everything.
 */
#define _POSIX_C_SOURCE 200809L
#include <rrpc.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 8192            /* terminals are indexed by socket descriptor */
#define NAME_SLOTS 16384        /* open-addressing table of registrations, by name: at most
                                   one per open connection, so never more than MAX_FDS */
#define CODE_LEN 16             /* authentication codes: 16 hex digits, 64 random bits */
#define MAX_EVENTS 256          /* socket events taken per epoll_wait */
#define MAX_WAIT_MS 20          /* longest wait, so that deadlines added by the client's
                                   thread and a stop request are seen in time */

struct terminal {
    int open;                   /* the socket is open */
    int online;                 /* authenticated on this socket: a registered RRPC device */
    char name[24];              /* the registration this socket holds (registered or
                                   authenticated here), phone digits without leading zeros */
    uint8_t phone[10];          /* the authenticated phone */
    size_t phone_len;
    uint16_t serial;            /* this platform's serial for 0x8100/0x8001 */
};

/* One registered terminal: its code, and the socket that holds it. */
struct registration {
    int state;                  /* SLOT_EMPTY, SLOT_USED or SLOT_FREED (a tombstone) */
    char name[24];
    char code[CODE_LEN + 1];
    int fd;                     /* the socket that registered or last authenticated */
};
enum { SLOT_EMPTY = 0, SLOT_USED = 1, SLOT_FREED = 2 };

static struct terminal terms[MAX_FDS];
static struct registration regs[NAME_SLOTS];
static int random_fd = -1;      /* /dev/urandom */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop_requested = 0;
static rrpc_client *client = NULL;
static const char *product_key = NULL;
static rrpc_jt808_completion completion = RRPC_JT808_COMPLETION_ANSWER;
static int quiet = 0;

static void on_signal(int sig) { (void)sig; stop_requested = 1; }

/* The clock of request deadlines (CLOCK_MONOTONIC, ms). */
static uint64_t now_ms(void)
{
    uint64_t ms = 0;
    if (rrpc_monotonic_ms(&ms) != RRPC_STATUS_OK) {
        fprintf(stderr, "jt808_adapter: rrpc_monotonic_ms: %s\n", rrpc_last_error_message());
        exit(1);
    }
    return ms;
}

static unsigned name_hash(const char *s)
{
    unsigned h = 2166136261u;
    while (*s) h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/* Caller holds `lock`. The slot holding `name`, or NAME_SLOTS when none does. */
static unsigned find_registration(const char *name)
{
    unsigned i = name_hash(name) % NAME_SLOTS;
    for (unsigned probes = 0; probes < NAME_SLOTS; probes++, i = (i + 1) % NAME_SLOTS) {
        if (regs[i].state == SLOT_EMPTY) return NAME_SLOTS;
        if (regs[i].state == SLOT_USED && strcmp(regs[i].name, name) == 0) return i;
    }
    return NAME_SLOTS;
}

/* Caller holds `lock` and checked that `name` is not registered. A free slot for it
 * (freed slots are used again), or NAME_SLOTS when the table is full. */
static unsigned free_registration(const char *name)
{
    unsigned i = name_hash(name) % NAME_SLOTS;
    for (unsigned probes = 0; probes < NAME_SLOTS; probes++, i = (i + 1) % NAME_SLOTS)
        if (regs[i].state != SLOT_USED) return i;
    return NAME_SLOTS;
}

/* A fresh random code, CODE_LEN hex digits. */
static int random_code(char out[CODE_LEN + 1])
{
    uint8_t raw[CODE_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = read(random_fd, raw + got, sizeof raw - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* Compares a received code with the issued one without stopping at the first difference. */
static int code_matches(const uint8_t *got, size_t got_len, const char *issued)
{
    unsigned diff = got_len != CODE_LEN;
    for (size_t i = 0; i < CODE_LEN; i++) diff |= (unsigned)(i < got_len ? got[i] : 0) ^ (uint8_t)issued[i];
    return diff == 0;
}

/* Writes all of `len` bytes to `fd`; caller holds `lock`. */
static int write_all(int fd, const uint8_t *bytes, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        bytes += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The adapter's send function: one whole 0x8900 message to the terminal on `conn`. */
static int32_t send_to_terminal(void *user_data, uint64_t conn, const uint8_t *phone,
                                size_t phone_len, const uint8_t *bytes, size_t len)
{
    (void)user_data;
    int rc = -1;
    pthread_mutex_lock(&lock);
    struct terminal *t = conn < MAX_FDS ? &terms[conn] : NULL;
    /* The connection must still be this terminal's (descriptors are reused). */
    if (t != NULL && t->open && t->phone_len == phone_len && memcmp(t->phone, phone, phone_len) == 0)
        rc = write_all((int)conn, bytes, len);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Sends a platform message (0x8100, 0x8001) on `fd`, answering the frame with header
 * `to` (its phone and edition). */
static void platform_send(int fd, const rrpc_jt808_header *to, uint16_t msg_id, const uint8_t *body,
                          size_t body_len)
{
    uint8_t frame[256];
    size_t len = 0;
    pthread_mutex_lock(&lock);
    rrpc_jt808_header h;
    memset(&h, 0, sizeof h);
    h.msg_id = msg_id;
    h.version = to->version;
    h.protocol_version = to->version == 2019 ? to->protocol_version : 0;
    memcpy(h.phone, to->phone, to->phone_len);
    h.phone_len = to->phone_len;
    h.serial = terms[fd].serial++;
    if (rrpc_jt808_encode(&h, body, body_len, frame, sizeof frame, &len) == RRPC_STATUS_OK)
        write_all(fd, frame, len);
    else
        fprintf(stderr, "jt808_adapter: encoding 0x%04x failed: %s\n", msg_id, rrpc_last_error_message());
    pthread_mutex_unlock(&lock);
}

/* 0x8001 platform general response: reply serial, reply id, result. */
static void platform_ack(int fd, const rrpc_jt808_header *to, uint8_t result)
{
    uint8_t body[5] = {(uint8_t)(to->serial >> 8), (uint8_t)to->serial,
                       (uint8_t)(to->msg_id >> 8), (uint8_t)to->msg_id, result};
    platform_send(fd, to, 0x8001, body, sizeof body);
}

/* 0x0100 registration -> 0x8100: reply serial, result, and on success a fresh code. */
static void on_register(int fd, const rrpc_jt808_frame *f, const char *name)
{
    const rrpc_jt808_header *h = &f->header;
    uint8_t body[3 + CODE_LEN] = {(uint8_t)(h->serial >> 8), (uint8_t)h->serial, 0};
    size_t body_len = 3;
    pthread_mutex_lock(&lock);
    if (name[0] == '\0') {
        body[2] = 4;                                    /* no such terminal (phone not BCD) */
    } else if (find_registration(name) < NAME_SLOTS || terms[fd].name[0] != '\0') {
        body[2] = 3;                                    /* terminal already registered */
    } else {
        unsigned slot = free_registration(name);
        if (slot < NAME_SLOTS && random_code(regs[slot].code) == 0) {
            regs[slot].state = SLOT_USED;
            snprintf(regs[slot].name, sizeof regs[slot].name, "%s", name);
            regs[slot].fd = fd;
            snprintf(terms[fd].name, sizeof terms[fd].name, "%s", name);
            memcpy(body + 3, regs[slot].code, CODE_LEN);
            body_len += CODE_LEN;
        } else {
            body[2] = 4;                                /* no room: refused */
        }
    }
    pthread_mutex_unlock(&lock);
    if (body[2] != 0)
        fprintf(stderr, "jt808_adapter: registration of %s refused (result %u)\n",
                name[0] ? name : "a non-BCD phone", body[2]);
    platform_send(fd, h, 0x8100, body, body_len);
}

/* 0x0102 authentication: the code (2019: length-prefixed). On a match the terminal's
 * connection is bound to its phone; a connection it held before loses it. */
static void on_authenticate(rrpc_jt808_adapter *adapter, int fd, const rrpc_jt808_frame *f, const char *name)
{
    const rrpc_jt808_header *h = &f->header;
    const uint8_t *code = f->body;
    size_t code_len = f->body_len;
    if (h->version == 2019 && code_len > 0) {
        code_len = code[0] < f->body_len ? code[0] : f->body_len - 1;
        code++;
    }
    int ok = 0;
    pthread_mutex_lock(&lock);
    unsigned slot = name[0] != '\0' ? find_registration(name) : NAME_SLOTS;
    if (slot < NAME_SLOTS && code_matches(code, code_len, regs[slot].code) &&
        (terms[fd].name[0] == '\0' || strcmp(terms[fd].name, name) == 0)) {
        int old = regs[slot].fd;
        if (old != fd && old >= 0 && old < MAX_FDS && strcmp(terms[old].name, name) == 0) {
            terms[old].name[0] = '\0';             /* the half-open socket loses it */
            terms[old].online = 0;
        }
        regs[slot].fd = fd;
        snprintf(terms[fd].name, sizeof terms[fd].name, "%s", name);
        memcpy(terms[fd].phone, h->phone, h->phone_len);
        terms[fd].phone_len = h->phone_len;
        ok = 1;
    }
    pthread_mutex_unlock(&lock);
    /* The only place where a connection comes to speak for a phone number. */
    if (ok && rrpc_jt808_adapter_terminal_authenticated(adapter, h->phone, h->phone_len, (uint64_t)fd) !=
                  RRPC_STATUS_OK) {
        fprintf(stderr, "jt808_adapter: binding %s: %s\n", name, rrpc_last_error_message());
        ok = 0;
    }
    if (ok) {
        pthread_mutex_lock(&lock);
        terms[fd].online = 1;
        pthread_mutex_unlock(&lock);
        rrpc_status st = rrpc_client_add_device(client, RRPC_DIALECT_ALIBABA, product_key, name, NULL);
        if (st != RRPC_STATUS_OK && st != RRPC_STATUS_ALREADY_EXISTS)
            fprintf(stderr, "jt808_adapter: device %s: %s\n", name, rrpc_last_error_message());
    } else {
        fprintf(stderr, "jt808_adapter: authentication of %s on connection %d refused\n",
                name[0] ? name : "a non-BCD phone", fd);
    }
    platform_ack(fd, h, ok ? 0 : 1);
    if (ok) { printf("terminal %s online\n", name); fflush(stdout); }
}

/* Frames that are not the adapter's: registration, authentication, heartbeats... (and
 * 0x0001/0x0900 from connections that have not authenticated, which completed nothing). */
static void on_frame(rrpc_jt808_adapter *adapter, int fd, const rrpc_jt808_frame *f)
{
    const rrpc_jt808_header *h = &f->header;
    if (fd < 0 || fd >= MAX_FDS || h->msg_id == 0x0001) return;
    char name[24] = "";
    if (f->phone_bcd_error < 0) {
        const char *d = f->phone_digits;
        while (d[0] == '0' && d[1] != '\0') d++;
        snprintf(name, sizeof name, "%s", d);
    }
    if (h->msg_id == 0x0100) { on_register(fd, f, name); return; }
    if (h->msg_id == 0x0102) { on_authenticate(adapter, fd, f, name); return; }
    platform_ack(fd, h, 0); /* heartbeat, location report, ...: acknowledged */
}

/* The adapter's events, on the thread that fed it (the main thread here). */
static void on_event(void *user_data, rrpc_jt808_adapter *adapter, const rrpc_jt808_event *ev)
{
    (void)user_data;
    switch (ev->kind) {
    case RRPC_JT808_EVENT_REPLY:
        if (rrpc_client_reply(client, ev->token, ev->payload, ev->payload_len) != RRPC_STATUS_OK && !quiet)
            fprintf(stderr, "jt808_adapter: reply: %s\n", rrpc_last_error_message());
        break;
    case RRPC_JT808_EVENT_UPLINK:
        if (!quiet) {
            pthread_mutex_lock(&lock);
            const char *name = ev->conn < MAX_FDS ? terms[ev->conn].name : "?";
            printf("uplink %s type=%u len=%zu%s\n", name, ev->content_type, ev->payload_len,
                   ev->late ? " late" : "");
            pthread_mutex_unlock(&lock);
            fflush(stdout);
        }
        break;
    case RRPC_JT808_EVENT_FRAME:
        on_frame(adapter, (int)ev->conn, ev->frame);
        break;
    case RRPC_JT808_EVENT_MALFORMED:
        fprintf(stderr, "jt808_adapter: connection %llu: %s\n", (unsigned long long)ev->conn, ev->message);
        break;
    default: /* EXPIRED: the caller sees TIMEOUT; nothing to send */
        break;
    }
}

static void reply_error(uint64_t token, const char *reason)
{
    char body[160];
    int n = snprintf(body, sizeof body, "{\"jt808\":\"error\",\"reason\":\"%s\"}", reason);
    if (rrpc_client_reply(client, token, (const uint8_t *)body, (size_t)n) != RRPC_STATUS_OK && !quiet)
        fprintf(stderr, "jt808_adapter: reply: %s\n", rrpc_last_error_message());
}

/* RRPC requests, on the client's thread: each becomes a 0x8900 to its terminal. */
static void on_request(void *user_data, rrpc_client *c, const rrpc_request *req)
{
    rrpc_jt808_adapter *adapter = user_data;
    (void)c;
    if (!quiet) {
        printf("request %s ct=%d len=%zu\n", req->device_name, (int)req->content_type, req->payload_len);
        fflush(stdout);
    }
    if (req->content_type < 0) { reply_error(req->token, "no ContentType"); return; }
    rrpc_jt808_adapter_submit_params p;
    if (rrpc_jt808_adapter_submit_params_init(&p, sizeof p) != RRPC_STATUS_OK) {
        reply_error(req->token, rrpc_last_error_message());
        return;
    }
    pthread_mutex_lock(&lock);
    unsigned at = find_registration(req->device_name);
    int fd = at < NAME_SLOTS ? regs[at].fd : -1;
    if (fd >= 0 && fd < MAX_FDS && terms[fd].online && strcmp(terms[fd].name, req->device_name) == 0) {
        p.phone_len = terms[fd].phone_len;
        memcpy(p.phone, terms[fd].phone, p.phone_len);
    }
    pthread_mutex_unlock(&lock);
    if (p.phone_len == 0) { reply_error(req->token, "terminal not connected"); return; }
    p.token = req->token;
    p.content_type = (uint8_t)req->content_type;
    p.content = req->payload;
    p.content_len = req->payload_len;
    p.completion = req->content_type == 0x0B ? RRPC_JT808_COMPLETION_ACK : completion;
    p.deadline_ms = req->deadline_ms;
    rrpc_status st = rrpc_jt808_adapter_submit(adapter, &p, now_ms(), NULL);
    if (st == RRPC_STATUS_BUSY || st == RRPC_STATUS_LIMIT_REACHED) {
        const char *busy = rrpc_jt808_busy_payload();
        if (rrpc_client_reply(client, req->token, (const uint8_t *)busy, strlen(busy)) != RRPC_STATUS_OK && !quiet)
            fprintf(stderr, "jt808_adapter: reply: %s\n", rrpc_last_error_message());
    } else if (st == RRPC_STATUS_NOT_CONNECTED) {
        reply_error(req->token, "terminal not connected");
    } else if (st != RRPC_STATUS_OK) {
        reply_error(req->token, rrpc_status_str(st));
    }
}

static void close_terminal(rrpc_jt808_adapter *adapter, int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    pthread_mutex_lock(&lock);
    /* The registration this socket holds is forgotten: the terminal registers again. */
    if (terms[fd].name[0] != '\0') {
        unsigned slot = find_registration(terms[fd].name);
        if (slot < NAME_SLOTS && regs[slot].fd == fd) {
            memset(&regs[slot], 0, sizeof regs[slot]);
            regs[slot].state = SLOT_FREED;
        }
    }
    memset(&terms[fd], 0, sizeof terms[fd]);
    close(fd);
    pthread_mutex_unlock(&lock);
    size_t answered = 0;
    /* Every call pending on this connection is answered "terminal disconnected". */
    if (rrpc_jt808_adapter_connection_closed(adapter, (uint64_t)fd, now_ms(), &answered) != RRPC_STATUS_OK)
        fprintf(stderr, "jt808_adapter: connection %d closed: %s\n", fd, rrpc_last_error_message());
}

static int fail(const char *what, rrpc_status st)
{
    fprintf(stderr, "jt808_adapter: %s failed (%s): %s\n", what, rrpc_status_str(st),
            rrpc_last_error_message());
    return 1;
}

/* Releases the client (NULL is fine) and the adapter; 0, or 1 after reporting a failure. */
static int release(rrpc_client *c, rrpc_jt808_adapter *adapter)
{
    int rc = 0;
    rrpc_status st;
    if ((st = rrpc_client_free(c)) != RRPC_STATUS_OK) rc = fail("rrpc_client_free", st);
    if ((st = rrpc_jt808_adapter_free(adapter)) != RRPC_STATUS_OK) rc = fail("rrpc_jt808_adapter_free", st);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: jt808_adapter --host H --port P --product-key PK --listen-port L\n"
            "                     [--listen-host 127.0.0.1] [--completion answer|ack] [--quiet]\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *listen_host = "127.0.0.1";
    long port = 1883, listen_port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quiet") == 0) { quiet = 1; continue; }
        if (v == NULL) { usage(); return 2; }
        if (strcmp(a, "--host") == 0) host = v;
        else if (strcmp(a, "--port") == 0) port = strtol(v, NULL, 10);
        else if (strcmp(a, "--product-key") == 0) product_key = v;
        else if (strcmp(a, "--listen-host") == 0) listen_host = v;
        else if (strcmp(a, "--listen-port") == 0) listen_port = strtol(v, NULL, 10);
        else if (strcmp(a, "--completion") == 0 && strcmp(v, "answer") == 0) completion = RRPC_JT808_COMPLETION_ANSWER;
        else if (strcmp(a, "--completion") == 0 && strcmp(v, "ack") == 0) completion = RRPC_JT808_COMPLETION_ACK;
        else { usage(); return 2; }
        i++;
    }
    if (product_key == NULL || port <= 0 || port > 65535 || listen_port <= 0 || listen_port > 65535) {
        usage();
        return 2;
    }

    random_fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (random_fd < 0) {
        fprintf(stderr, "jt808_adapter: cannot open /dev/urandom: %s\n", strerror(errno));
        return 1;
    }

    /* The terminals' listening socket. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)listen_port);
    if (lfd < 0 || inet_pton(AF_INET, listen_host, &addr.sin_addr) != 1 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 1024) != 0) {
        fprintf(stderr, "jt808_adapter: cannot listen on %s:%ld: %s\n", listen_host, listen_port, strerror(errno));
        return 1;
    }
    /* The set of sockets the main thread waits on: the listener, then every terminal. */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
        fprintf(stderr, "jt808_adapter: epoll: %s\n", strerror(errno));
        return 1;
    }

    rrpc_jt808_adapter_config acfg;
    rrpc_status st = rrpc_jt808_adapter_config_init(&acfg, sizeof acfg);
    if (st != RRPC_STATUS_OK) return fail("rrpc_jt808_adapter_config_init", st);
    acfg.default_completion = completion;
    rrpc_jt808_adapter *adapter = NULL;
    if ((st = rrpc_jt808_adapter_new(&acfg, &adapter)) != RRPC_STATUS_OK)
        return fail("rrpc_jt808_adapter_new", st);
    if ((st = rrpc_jt808_adapter_set_send(adapter, send_to_terminal, NULL)) != RRPC_STATUS_OK ||
        (st = rrpc_jt808_adapter_set_event_callback(adapter, on_event, NULL)) != RRPC_STATUS_OK) {
        fail("registering the adapter's callbacks", st);
        release(NULL, adapter);
        return 1;
    }

    rrpc_mqtt_config mqtt;
    rrpc_client_config cfg;
    if ((st = rrpc_mqtt_config_init(&mqtt, sizeof mqtt)) != RRPC_STATUS_OK ||
        (st = rrpc_client_config_init(&cfg, sizeof cfg)) != RRPC_STATUS_OK) {
        fail("initialising the client's settings", st);
        release(NULL, adapter);
        return 1;
    }
    mqtt.host = host;
    mqtt.port = (uint16_t)port;
    cfg.mqtt = &mqtt;
    if ((st = rrpc_client_new(&cfg, &client)) != RRPC_STATUS_OK ||
        (st = rrpc_client_set_request_callback(client, on_request, adapter)) != RRPC_STATUS_OK ||
        (st = rrpc_client_start(client)) != RRPC_STATUS_OK) {
        fail("starting the client", st);
        release(client, adapter);
        return 1;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "jt808_adapter: listening on %s:%ld\n", listen_host, listen_port);

    static struct epoll_event ready[MAX_EVENTS];
    uint8_t buf[4096];
    while (!stop_requested) {
        /* Expire what is due, then wait for bytes until the next deadline. */
        uint64_t now = now_ms(), next = UINT64_MAX;
        if (rrpc_jt808_adapter_tick(adapter, now, &next) != RRPC_STATUS_OK)
            fprintf(stderr, "jt808_adapter: tick: %s\n", rrpc_last_error_message());
        int wait = next <= now ? 0 : next - now < MAX_WAIT_MS ? (int)(next - now) : MAX_WAIT_MS;
        int n = epoll_wait(ep, ready, MAX_EVENTS, wait);
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == lfd) {
                int cfd = accept(lfd, NULL, NULL);
                if (cfd < 0) continue;
                if (cfd >= MAX_FDS) { close(cfd); continue; }
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                pthread_mutex_lock(&lock);
                memset(&terms[cfd], 0, sizeof terms[cfd]);
                terms[cfd].open = 1;
                pthread_mutex_unlock(&lock);
                ev.events = EPOLLIN;
                ev.data.fd = cfd;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev) != 0) close_terminal(adapter, ep, cfd);
                continue;
            }
            ssize_t got = read(fd, buf, sizeof buf);
            if (got > 0) {
                /* LIMIT_REACHED: more connections than max_connections; the bytes are dropped. */
                if (rrpc_jt808_adapter_on_bytes(adapter, (uint64_t)fd, buf, (size_t)got, now_ms()) != RRPC_STATUS_OK)
                    fprintf(stderr, "jt808_adapter: connection %d: %s\n", fd, rrpc_last_error_message());
            } else if (got == 0 || errno != EINTR)
                close_terminal(adapter, ep, fd);
        }
    }

    int rc = 0;
    if ((st = rrpc_client_stop(client)) != RRPC_STATUS_OK) rc = fail("rrpc_client_stop", st);
    rrpc_jt808_adapter_stats s;
    if ((st = rrpc_jt808_adapter_get_stats(adapter, &s, sizeof s)) != RRPC_STATUS_OK)
        rc = fail("rrpc_jt808_adapter_get_stats", st);
    else
        fprintf(stderr,
                "jt808_adapter: %llu requests sent, %llu replies (%llu answered, %llu acked, %llu failed), "
                "%llu expired, %llu uplinks, %llu malformed, %llu unauthenticated\n",
                (unsigned long long)s.sent, (unsigned long long)s.replies, (unsigned long long)s.answered,
                (unsigned long long)s.acked, (unsigned long long)s.failed, (unsigned long long)s.expired,
                (unsigned long long)s.uplinks, (unsigned long long)s.malformed,
                (unsigned long long)s.unauthenticated);
    for (int fd = 0; fd < MAX_FDS; fd++)
        if (terms[fd].open) close(fd);
    close(lfd);
    close(ep);
    close(random_fd);
    if (release(client, adapter) != 0) rc = 1;
    return rc;
}
