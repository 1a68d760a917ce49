/* The JT/T 808 C API with no network at all: the streaming decoder and the
 * encoder on good and bad frames, and the pass-through adapter driven the way a
 * gateway drives it (socket bytes in, frames out through the send function,
 * replies and uplinks through the event callback): both completion policies,
 * busy pairs queued and refused, every configured bound, sub-packages both ways,
 * expiry, disconnects, re-entrant calls from callbacks, callbacks released while
 * they run on another thread, and 1,000 terminals at once. Prints
 * "jt808 harness: N checks passed" and exits 0, or names the first failed check
 * and exits 1. Built with -pthread and run by tests/rust_api/jt808_adapter.rs; also clean
 * under valgrind, which reports any touch of a user_data freed after a release. */
#define _POSIX_C_SOURCE 200809L
#define HARNESS_NAME "jt808 harness"
#define HARNESS_THREADS
#include "harness.h"

#include <string.h>

#define NO_CONN UINT64_MAX

/* ---------------------------------------------------------- building frames */

typedef struct {
    uint8_t phone[10];
    size_t phone_len;
} terminal;

static terminal make_terminal(const char *digits, uint16_t version)
{
    terminal t;
    memset(&t, 0, sizeof t);
    CHECK(rrpc_jt808_phone_from_digits(digits, version, t.phone, sizeof t.phone, &t.phone_len) == RRPC_STATUS_OK);
    return t;
}

/* A request for terminal `t`, as rrpc_jt808_adapter_submit takes it. */
static rrpc_jt808_adapter_submit_params request(uint64_t token, const terminal *t, uint8_t type, const void *content,
                                                size_t content_len, uint32_t completion, uint64_t deadline_ms)
{
    rrpc_jt808_adapter_submit_params p;
    CHECK(rrpc_jt808_adapter_submit_params_init(&p, sizeof p) == RRPC_STATUS_OK);
    p.token = token;
    memcpy(p.phone, t->phone, sizeof p.phone);
    p.phone_len = t->phone_len;
    p.content_type = type;
    p.content = content;
    p.content_len = content_len;
    p.completion = completion;
    p.deadline_ms = deadline_ms;
    return p;
}

/* Submits request(...) at `now`. */
static rrpc_status submit_to(rrpc_jt808_adapter *a, uint64_t token, const terminal *t, uint8_t type,
                             const void *content, size_t content_len, uint32_t completion, uint64_t deadline_ms,
                             uint64_t now, bool *out_queued)
{
    rrpc_jt808_adapter_submit_params p = request(token, t, type, content, content_len, completion, deadline_ms);
    return rrpc_jt808_adapter_submit(a, &p, now, out_queued);
}

/* Encodes one frame from `t` into `out` (room for `cap`); returns its length. */
static size_t encode(uint8_t *out, size_t cap, const terminal *t, uint16_t msg_id, uint16_t serial,
                     const uint8_t *body, size_t body_len, uint16_t count, uint16_t index)
{
    rrpc_jt808_header h;
    size_t len = 0;
    memset(&h, 0, sizeof h);
    h.msg_id = msg_id;
    h.version = t->phone_len == 10 ? 2019 : 2013;
    h.protocol_version = t->phone_len == 10 ? 1 : 0;
    h.serial = serial;
    memcpy(h.phone, t->phone, t->phone_len);
    h.phone_len = t->phone_len;
    h.package_count = count;
    h.package_index = index;
    CHECK(rrpc_jt808_encode(&h, body, body_len, out, cap, &len) == RRPC_STATUS_OK);
    return len;
}

/* A 0x0001 answering 0x8900 serial `reply_serial` with `result`. */
static size_t ack(uint8_t *out, size_t cap, const terminal *t, uint16_t reply_serial, uint8_t result)
{
    uint8_t body[5];
    body[0] = (uint8_t)(reply_serial >> 8);
    body[1] = (uint8_t)(reply_serial & 0xff);
    body[2] = 0x89;
    body[3] = 0x00;
    body[4] = result;
    return encode(out, cap, t, 0x0001, 7, body, sizeof body, 0, 0);
}

/* A 0x0900 of `type` with `content`. */
static size_t uplink(uint8_t *out, size_t cap, const terminal *t, uint8_t type, const char *content)
{
    uint8_t body[256];
    size_t n = strlen(content);
    CHECK(n < sizeof body);
    body[0] = type;
    memcpy(body + 1, content, n);
    return encode(out, cap, t, 0x0900, 8, body, n + 1, 0, 0);
}

/* ------------------------------------------------- what the callbacks saw */

#define SENT_CAP 70000
static uint8_t sent[SENT_CAP]; /* the bytes of the last send */
static size_t sent_len;
static uint64_t sent_conn;
static int sends;
static int send_result; /* what the send function returns */

static int events[5];  /* per rrpc_jt808_event_kind */
static uint64_t last_token;
static uint32_t last_reply_kind;
static char last_payload[4096];
static size_t last_payload_len;
static uint8_t last_content_type;
static int last_late;
static uint64_t last_conn;
static uint16_t last_frame_id;
static int last_bcd_error;
static char last_digits[21];
static char last_message[256];
static unsigned char replied[2100]; /* tokens answered, for the 1,000-terminal run */

static rrpc_jt808_adapter *the_adapter;
static int reenter_on_reply; /* submit again from the event callback */
static terminal reenter_terminal;

static int on_send(void *user_data, uint64_t conn, const uint8_t *phone, size_t phone_len, const uint8_t *bytes,
                   size_t len)
{
    (void)user_data;
    CHECK(phone != NULL && (phone_len == 6 || phone_len == 10));
    CHECK(len > 0 && len <= SENT_CAP);
    memcpy(sent, bytes, len);
    sent_len = len;
    sent_conn = conn;
    sends++;
    /* Freeing from inside is refused. */
    CHECK(rrpc_jt808_adapter_free(the_adapter) == RRPC_STATUS_WRONG_STATE);
    return send_result;
}

static void on_event(void *user_data, rrpc_jt808_adapter *adapter, const rrpc_jt808_event *ev)
{
    (void)user_data;
    CHECK(adapter == the_adapter);
    CHECK(ev->kind <= RRPC_JT808_EVENT_MALFORMED);
    events[ev->kind]++;
    last_token = ev->token;
    last_reply_kind = ev->reply_kind;
    last_conn = ev->conn;
    last_payload_len = ev->payload_len < sizeof last_payload - 1 ? ev->payload_len : sizeof last_payload - 1;
    if (last_payload_len) memcpy(last_payload, ev->payload, last_payload_len);
    last_payload[last_payload_len] = 0;
    last_content_type = ev->content_type;
    last_late = ev->late;
    if (ev->kind == RRPC_JT808_EVENT_REPLY && ev->token < sizeof replied) replied[ev->token]++;
    if (ev->kind == RRPC_JT808_EVENT_FRAME) {
        CHECK(ev->frame != NULL);
        last_frame_id = ev->frame->header.msg_id;
        last_bcd_error = ev->frame->phone_bcd_error;
        snprintf(last_digits, sizeof last_digits, "%s", ev->frame->phone_digits);
    } else {
        CHECK(ev->frame == NULL);
    }
    if (ev->kind == RRPC_JT808_EVENT_MALFORMED) {
        CHECK(ev->message != NULL);
        snprintf(last_message, sizeof last_message, "%s", ev->message);
    }
    if (ev->kind == RRPC_JT808_EVENT_REPLY && reenter_on_reply) {
        bool queued = true;
        reenter_on_reply = 0;
        CHECK(rrpc_jt808_adapter_free(adapter) == RRPC_STATUS_WRONG_STATE);
        CHECK(submit_to(adapter, 999, &reenter_terminal, 0xf1,
                                        (const uint8_t *)"again", 5, RRPC_JT808_COMPLETION_ACK, 100000, 1, &queued) ==
              RRPC_STATUS_OK);
        CHECK(!queued);
    }
}

static void feed(rrpc_jt808_adapter *a, uint64_t conn, const uint8_t *bytes, size_t len, uint64_t now)
{
    CHECK(rrpc_jt808_adapter_on_bytes(a, conn, bytes, len, now) == RRPC_STATUS_OK);
}

/* The serial of the first frame in the last send, and how many frames it held. */
static int sent_frames(uint16_t *first_serial)
{
    rrpc_jt808_decoder *d = NULL;
    rrpc_jt808_frame f;
    bool ready = false;
    int n = 0;
    CHECK(rrpc_jt808_decoder_new(0, &d) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_push(d, sent, sent_len) == RRPC_STATUS_OK);
    for (;;) {
        CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK);
        if (!ready) break;
        CHECK(f.header.msg_id == 0x8900);
        if (n == 0) *first_serial = f.header.serial;
        n++;
    }
    CHECK(rrpc_jt808_decoder_free(d) == RRPC_STATUS_OK);
    return n;
}

static int contains(const char *haystack, const char *needle)
{
    return strstr(haystack, needle) != NULL;
}

/* --------------------------------------------------------------- the codec */

static void codec_checks(void)
{
    rrpc_jt808_decoder *d = NULL;
    rrpc_jt808_frame f;
    bool ready = false;
    uint8_t wire[4096], buf[8];
    size_t n, need = 0;
    terminal t = make_terminal("13800138000", 2013);
    static const uint8_t good[] = {0x7e, 0x80, 0x01, 0x00, 0x05, 0x01, 0x23, 0x45, 0x67, 0x89,
                                   0x00, 0x00, 0x0a, 0x00, 0x64, 0x02, 0x00, 0x00, 0x61, 0x7e};
    static const uint8_t lone_escape[] = {0x7e, 0x02, 0x00, 0x00, 0x01, 0x01, 0x38, 0x00,
                                          0x13, 0x80, 0x00, 0x00, 0x01, 0x7d, 0x7e};
    static const uint8_t short_frame[] = {0x7e, 0x00, 0x01, 0x00, 0x05, 0x01, 0x23, 0x45, 0x67, 0x89, 0x7e};
    /* A non-BCD phone byte (0xa5) in an unknown message id 0x0200: both fine. */
    static const uint8_t raw_phone[6] = {0x01, 0x38, 0xa5, 0x13, 0x80, 0x00};
    terminal odd;
    uint8_t bad[sizeof good];

    CHECK(rrpc_jt808_decoder_new(3, &d) == RRPC_STATUS_INVALID_ARGUMENT);
    CHECK(rrpc_jt808_decoder_new(0, NULL) == RRPC_STATUS_NULL_POINTER);
    /* Lenient mode: a terminal that leaves 0x7d unescaped (one of traccar's frames). */
    {
        static const uint8_t unescaped[] = {
            0x7e, 0x09, 0x00, 0x00, 0x1f, 0x4f, 0x07, 0x78, 0x8e, 0xf8, 0x7d, 0x00, 0x0c, 0xf0, 0x23,
            0x02, 0x23, 0x15, 0x02, 0x15, 0x01, 0x02, 0x03, 0x01, 0x38, 0x00, 0x00, 0x0c, 0x00, 0x0b,
            0x02, 0x9d, 0xc5, 0x8c, 0x04, 0xb9, 0x9b, 0x60, 0x23, 0x02, 0x23, 0x17, 0x18, 0x22, 0x50, 0x7e};
        CHECK(rrpc_jt808_decoder_new(0, &d) == RRPC_STATUS_OK);
        CHECK(rrpc_jt808_decoder_push(d, unescaped, sizeof unescaped) == RRPC_STATUS_OK);
        CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_MALFORMED_FRAME);
        /* (A `lenient` byte other than 0 or 1, which a C `bool` cannot hold, is refused:
         * tests/rust_api/jt808_codec.rs passes one.) */
        CHECK(rrpc_jt808_decoder_set_lenient(NULL, 1) == RRPC_STATUS_NULL_POINTER);
        CHECK(rrpc_jt808_decoder_set_lenient(d, 1) == RRPC_STATUS_OK);
        CHECK(rrpc_jt808_decoder_push(d, unescaped, sizeof unescaped) == RRPC_STATUS_OK);
        CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK && ready);
        CHECK(f.header.msg_id == 0x0900 && f.header.phone[5] == 0x7d && f.header.serial == 0x0c);
        CHECK(f.body_len == 0x1f && f.body[0] == 0xf0);
        CHECK(rrpc_jt808_decoder_free(d) == RRPC_STATUS_OK);
        d = NULL;
    }
    CHECK(rrpc_jt808_decoder_new(0, &d) == RRPC_STATUS_OK);

    /* Good frame split across pushes. */
    CHECK(rrpc_jt808_decoder_push(d, good, 7) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK && !ready);
    CHECK(rrpc_jt808_decoder_push(d, good + 7, sizeof good - 7) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK && ready);
    CHECK(f.header.msg_id == 0x8001 && f.header.version == 2013 && f.header.serial == 10);
    CHECK(f.header.phone_len == 6 && memcmp(f.header.phone, good + 5, 6) == 0);
    CHECK(strcmp(f.phone_digits, "012345678900") == 0 && f.phone_bcd_error == -1);
    CHECK(f.body_len == 5 && memcmp(f.body, good + 13, 5) == 0);
    CHECK(f.header.package_count == 0 && f.header.package_index == 0);

    /* Bad checksum. */
    memcpy(bad, good, sizeof good);
    bad[18] = 0x60;
    CHECK(rrpc_jt808_decoder_push(d, bad, sizeof bad) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_MALFORMED_FRAME);
    CHECK(strcmp(rrpc_last_error_message(), "rrpc_jt808_decoder_next: byte 18: checksum 0x60, computed 0x61") == 0);
    CHECK(strcmp(rrpc_status_str(RRPC_STATUS_MALFORMED_FRAME), "malformed JT/T 808 frame") == 0);
    /* Lone 0x7d. */
    CHECK(rrpc_jt808_decoder_push(d, lone_escape, sizeof lone_escape) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_MALFORMED_FRAME);
    CHECK(contains(rrpc_last_error_message(), "byte 13: lone 0x7d at end of frame"));
    /* Shorter than a header. */
    CHECK(rrpc_jt808_decoder_push(d, short_frame, sizeof short_frame) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_MALFORMED_FRAME);
    CHECK(contains(rrpc_last_error_message(), "byte 10: frame of 9 bytes is shorter than a 2013 header"));
    /* Body-length field that disagrees: says 30, carries 5 (checksum right). */
    {
        uint8_t hb[] = {0x09, 0x00, 0x00, 0x1e, 0x01, 0x38, 0x00, 0x13, 0x80, 0x00, 0x00, 0x01,
                        0x41, 0x01, 0x02, 0x03, 0x04, 0x00};
        uint8_t framed[sizeof hb + 2];
        size_t i;
        hb[sizeof hb - 1] = 0;
        for (i = 0; i + 1 < sizeof hb; i++) hb[sizeof hb - 1] ^= hb[i];
        framed[0] = 0x7e;
        memcpy(framed + 1, hb, sizeof hb);
        framed[sizeof framed - 1] = 0x7e;
        CHECK(rrpc_jt808_decoder_push(d, framed, sizeof framed) == RRPC_STATUS_OK);
        CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_MALFORMED_FRAME);
        CHECK(contains(rrpc_last_error_message(), "byte 3: body-length field says 30, frame carries 5"));
    }
    /* Oversize: more than the limit without an end flag; the decoder recovers. */
    memset(wire, 0x11, sizeof wire);
    wire[0] = 0x7e;
    CHECK(rrpc_jt808_decoder_push(d, wire, 3000) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_MALFORMED_FRAME);
    CHECK(contains(rrpc_last_error_message(), "frame longer than the limit of 2092 bytes"));
    CHECK(rrpc_jt808_decoder_push(d, good, sizeof good) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK && ready && f.header.msg_id == 0x8001);

    /* Unknown message id with a binary phone: a frame, digits flagged. */
    memcpy(odd.phone, raw_phone, 6);
    odd.phone_len = 6;
    n = encode(wire, sizeof wire, &odd, 0x0200, 5, (const uint8_t *)"\x7e\x7d", 2, 0, 0);
    CHECK(rrpc_jt808_decoder_push(d, wire, n) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK && ready);
    CHECK(f.header.msg_id == 0x0200 && f.phone_bcd_error == 2 && f.phone_digits[0] == 0);
    CHECK(memcmp(f.header.phone, raw_phone, 6) == 0);
    CHECK(f.body_len == 2 && f.body[0] == 0x7e && f.body[1] == 0x7d);
    CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK && !ready);
    CHECK(rrpc_jt808_decoder_next(NULL, &f, &ready) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_jt808_decoder_next(d, NULL, &ready) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_jt808_decoder_push(d, NULL, 3) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_jt808_decoder_free(d) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_decoder_free(NULL) == RRPC_STATUS_OK);

    /* Encoder: the needed size when the buffer is short, rules enforced. */
    {
        rrpc_jt808_header h;
        uint8_t body[1024];
        memset(&h, 0, sizeof h);
        h.msg_id = 0x8900;
        h.version = 2013;
        memcpy(h.phone, t.phone, 6);
        h.phone_len = 6;
        CHECK(rrpc_jt808_encode(&h, (const uint8_t *)"\x41hi", 3, buf, sizeof buf, &need) ==
              RRPC_STATUS_BUFFER_TOO_SMALL);
        CHECK(need == 18);
        CHECK(rrpc_jt808_encode(&h, (const uint8_t *)"\x41hi", 3, NULL, 0, &need) == RRPC_STATUS_BUFFER_TOO_SMALL);
        CHECK(rrpc_jt808_encode(&h, (const uint8_t *)"\x41hi", 3, wire, sizeof wire, &need) == RRPC_STATUS_OK);
        CHECK(need == 18 && wire[0] == 0x7e && wire[17] == 0x7e);
        memset(body, 0, sizeof body);
        CHECK(rrpc_jt808_encode(&h, body, 1024, wire, sizeof wire, &need) == RRPC_STATUS_INVALID_ARGUMENT);
        CHECK(contains(rrpc_last_error_message(), "sub-package it"));
        h.version = 2019;
        CHECK(rrpc_jt808_encode(&h, body, 1, wire, sizeof wire, &need) == RRPC_STATUS_INVALID_ARGUMENT);
        h.version = 2013;
        h.package_count = 2;
        h.package_index = 3;
        CHECK(rrpc_jt808_encode(&h, body, 1, wire, sizeof wire, &need) == RRPC_STATUS_INVALID_ARGUMENT);
        CHECK(rrpc_jt808_encode(NULL, body, 1, wire, sizeof wire, &need) == RRPC_STATUS_NULL_POINTER);
    }
    {
        terminal t19 = make_terminal("17299841738", 2019);
        uint8_t p[10];
        size_t plen = 0;
        CHECK(t19.phone_len == 10 && t19.phone[9] == 0x38 && t19.phone[0] == 0);
        CHECK(rrpc_jt808_phone_from_digits("12a4", 2013, p, sizeof p, &plen) == RRPC_STATUS_INVALID_ARGUMENT);
        CHECK(rrpc_jt808_phone_from_digits("1234567890123", 2013, p, sizeof p, &plen) == RRPC_STATUS_INVALID_ARGUMENT);
        CHECK(rrpc_jt808_phone_from_digits("1", 2011, p, sizeof p, &plen) == RRPC_STATUS_INVALID_ARGUMENT);
        /* The one output-buffer rule: too small (or NULL) leaves the buffer alone and
         * says how much is needed; the length may be left out. */
        memset(p, 0xaa, sizeof p);
        plen = 0;
        CHECK(rrpc_jt808_phone_from_digits("13800138000", 2013, p, 5, &plen) == RRPC_STATUS_BUFFER_TOO_SMALL);
        CHECK(plen == 6 && p[0] == 0xaa && p[4] == 0xaa);
        CHECK(rrpc_jt808_phone_from_digits("13800138000", 2019, NULL, 0, &plen) == RRPC_STATUS_BUFFER_TOO_SMALL);
        CHECK(plen == 10);
        CHECK(rrpc_jt808_phone_from_digits("13800138000", 2013, p, sizeof p, NULL) == RRPC_STATUS_OK);
        CHECK(p[0] == 0x01 && p[5] == 0x00 && p[6] == 0xaa);
    }
}

/* ------------------------------------------------------------- the adapter */

static rrpc_jt808_adapter *new_adapter(uint32_t busy_policy)
{
    rrpc_jt808_adapter_config cfg;
    rrpc_jt808_adapter *a = NULL;
    CHECK(rrpc_jt808_adapter_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    CHECK(cfg.max_body == 1023 && cfg.default_completion == RRPC_JT808_COMPLETION_ACK);
    cfg.busy_policy = busy_policy;
    cfg.max_queue_per_key = 2;
    CHECK(rrpc_jt808_adapter_new(&cfg, &a) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_set_send(a, on_send, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_set_event_callback(a, on_event, NULL) == RRPC_STATUS_OK);
    the_adapter = a;
    return a;
}

static uint16_t submit(rrpc_jt808_adapter *a, uint64_t token, const terminal *t, uint8_t type, const char *content,
                       uint32_t completion, uint64_t deadline, uint64_t now, bool expect_queued)
{
    bool queued = !expect_queued;
    uint16_t serial = 0;
    int before = sends;
    CHECK(submit_to(a, token, t, type, (const uint8_t *)content, strlen(content),
                                    completion, deadline, now, &queued) == RRPC_STATUS_OK);
    CHECK(queued == expect_queued);
    if (!expect_queued) {
        CHECK(sends == before + 1);
        CHECK(sent_frames(&serial) == 1);
    } else {
        CHECK(sends == before);
    }
    return serial;
}

static void adapter_checks(void)
{
    rrpc_jt808_adapter *a = new_adapter(RRPC_JT808_BUSY_QUEUE);
    rrpc_jt808_adapter_stats st;
    terminal t = make_terminal("13800138000", 2013);
    terminal u = make_terminal("13800138001", 2013);
    uint8_t wire[8192];
    size_t n, answered = 0;
    uint16_t s1, s2;
    uint64_t next = 0;
    bool queued = false;

    /* No connection known yet: refused. */
    CHECK(submit_to(a, 1, &t, 0x41, NULL, 0, 0, 5000, 0, NULL) ==
          RRPC_STATUS_NOT_CONNECTED);
    CHECK(contains(rrpc_last_error_message(), "not bound to a connection"));
    /* The terminal registers on connection 3: a frame the adapter passes on. */
    n = encode(wire, sizeof wire, &t, 0x0100, 1, (const uint8_t *)"reg", 3, 0, 0);
    feed(a, 3, wire, n, 0);
    CHECK(events[RRPC_JT808_EVENT_FRAME] == 1 && last_frame_id == 0x0100 && last_conn == 3);
    CHECK(strcmp(last_digits, "013800138000") == 0 && last_bcd_error == -1);
    /* A frame does not bind its terminal: only the application, after checking the
     * terminal's authentication code, does. */
    CHECK(submit_to(a, 1, &t, 0x41, NULL, 0, 0, 5000, 0, NULL) ==
          RRPC_STATUS_NOT_CONNECTED);
    CHECK(rrpc_jt808_adapter_terminal_authenticated(a, t.phone, t.phone_len, 3) == RRPC_STATUS_OK);

    /* ACK completion: the 0x0001 is the reply, byte-exact. */
    s1 = submit(a, 1, &t, 0x41, "AT+1", RRPC_JT808_COMPLETION_DEFAULT, 5000, 0, false);
    CHECK(sent_conn == 3 && s1 == 0);
    n = ack(wire, sizeof wire, &t, s1, 0);
    feed(a, 3, wire, n, 10);
    CHECK(events[RRPC_JT808_EVENT_REPLY] == 1 && last_token == 1 && last_reply_kind == RRPC_JT808_REPLY_ACK);
    CHECK(strcmp(last_payload, "{\"jt808\":\"ack\",\"result\":0,\"serial\":0}") == 0);
    /* A failing result answers with the error payload. */
    s1 = submit(a, 2, &t, 0xf7, "vendor", RRPC_JT808_COMPLETION_ACK, 5000, 0, false);
    n = ack(wire, sizeof wire, &t, s1, 3);
    feed(a, 3, wire, n, 10);
    CHECK(last_token == 2 && last_reply_kind == RRPC_JT808_REPLY_ERROR);
    CHECK(strcmp(last_payload, "{\"jt808\":\"error\",\"reason\":\"not supported\",\"result\":3,\"serial\":1}") == 0);

    /* ANSWER completion with a busy pair: the second waits, the third too, the fourth is refused. */
    s1 = submit(a, 3, &t, 0x42, "q1", RRPC_JT808_COMPLETION_ANSWER, 5000, 0, false);
    submit(a, 4, &t, 0x42, "q2", RRPC_JT808_COMPLETION_ANSWER, 5000, 0, true);
    submit(a, 5, &t, 0x42, "q3", RRPC_JT808_COMPLETION_ANSWER, 1000, 0, true);
    CHECK(submit_to(a, 6, &t, 0x42, NULL, 0, RRPC_JT808_COMPLETION_ANSWER, 5000, 0,
                                    &queued) == RRPC_STATUS_LIMIT_REACHED);
    CHECK(contains(rrpc_last_error_message(), "queued behind the outstanding one"));
    /* A token the adapter holds already (here a queued one). */
    CHECK(submit_to(a, 4, &t, 0x41, NULL, 0, RRPC_JT808_COMPLETION_ACK, 5000, 0,
                                    &queued) == RRPC_STATUS_ALREADY_EXISTS);
    CHECK(contains(rrpc_last_error_message(), "token 4 is already held"));
    CHECK(strcmp(rrpc_jt808_busy_payload(), "{\"jt808\":\"error\",\"reason\":\"busy\"}") == 0);
    n = ack(wire, sizeof wire, &t, s1, 0);
    feed(a, 3, wire, n, 20); /* delivery confirmed: no reply yet */
    CHECK(events[RRPC_JT808_EVENT_REPLY] == 2);
    {
        int before = sends;
        n = uplink(wire, sizeof wire, &t, 0x42, "A1");
        feed(a, 3, wire, n, 30);
        CHECK(last_token == 3 && last_reply_kind == RRPC_JT808_REPLY_ANSWER && strcmp(last_payload, "A1") == 0);
        CHECK(sends == before + 1); /* request 4 went out */
        CHECK(sent_frames(&s2) == 1 && s2 != s1);
    }
    /* Request 5 expires while it waits; 4 expires later and nothing is left. The next
     * deadline counts queued requests too, and telling it expires nothing. */
    CHECK(rrpc_jt808_adapter_next_deadline(a, &next) == RRPC_STATUS_OK && next == 1000);
    CHECK(rrpc_jt808_adapter_next_deadline(a, &next) == RRPC_STATUS_OK && next == 1000);
    CHECK(rrpc_jt808_adapter_next_deadline(a, NULL) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_jt808_adapter_next_deadline(NULL, &next) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_jt808_adapter_tick(a, 1000, &next) == RRPC_STATUS_OK);
    CHECK(events[RRPC_JT808_EVENT_EXPIRED] == 1 && last_token == 5 && next == 5000);
    CHECK(rrpc_jt808_adapter_tick(a, 5000, &next) == RRPC_STATUS_OK);
    CHECK(events[RRPC_JT808_EVENT_EXPIRED] == 2 && last_token == 4 && next == UINT64_MAX);
    next = 0;
    CHECK(rrpc_jt808_adapter_next_deadline(a, &next) == RRPC_STATUS_OK && next == UINT64_MAX);
    /* Its late answer is an uplink marked late; an ack with an unknown serial is counted. */
    n = uplink(wire, sizeof wire, &t, 0x42, "late");
    feed(a, 3, wire, n, 5001);
    CHECK(events[RRPC_JT808_EVENT_UPLINK] == 1 && last_late && last_content_type == 0x42);
    CHECK(strcmp(last_payload, "late") == 0 && last_conn == 3);
    n = ack(wire, sizeof wire, &t, 4242, 0);
    feed(a, 3, wire, n, 5001);

    /* Malformed bytes on the connection: an event naming the rule; the stream goes on. */
    {
        static const uint8_t lone[] = {0x7e, 0x02, 0x00, 0x00, 0x01, 0x01, 0x38, 0x00,
                                       0x13, 0x80, 0x00, 0x00, 0x01, 0x7d, 0x7e};
        feed(a, 3, lone, sizeof lone, 5002);
        CHECK(events[RRPC_JT808_EVENT_MALFORMED] == 1 && strcmp(last_message, "byte 13: lone 0x7d at end of frame") == 0);
    }

    /* Long content: sub-packaged; acked packet by packet, complete on the last. */
    {
        static char big[3001];
        uint16_t first = 0;
        memset(big, 'x', 3000);
        big[3000] = 0;
        CHECK(submit_to(a, 7, &t, 0xf0, (const uint8_t *)big, 3000,
                                        RRPC_JT808_COMPLETION_ACK, 9000, 6000, &queued) == RRPC_STATUS_OK);
        CHECK(sent_frames(&first) == 3);
        n = ack(wire, sizeof wire, &t, first, 0);
        feed(a, 3, wire, n, 6001);
        n = ack(wire, sizeof wire, &t, (uint16_t)(first + 1), 0);
        feed(a, 3, wire, n, 6001);
        CHECK(last_token != 7);
        n = ack(wire, sizeof wire, &t, (uint16_t)(first + 2), 0);
        feed(a, 3, wire, n, 6002);
        CHECK(last_token == 7 && last_reply_kind == RRPC_JT808_REPLY_ACK);
    }
    /* Sub-packaged uplink answering an ANSWER request: reassembled. */
    {
        static uint8_t body[1500];
        size_t i, n1, n2;
        submit(a, 8, &t, 0x41, "dump", RRPC_JT808_COMPLETION_ANSWER, 9000, 6000, false);
        body[0] = 0x41;
        for (i = 1; i < sizeof body; i++) body[i] = (uint8_t)('a' + i % 26);
        n1 = encode(wire, sizeof wire, &t, 0x0900, 50, body, 1023, 2, 1);
        n2 = encode(wire + n1, sizeof wire - n1, &t, 0x0900, 51, body + 1023, sizeof body - 1023, 2, 2);
        feed(a, 3, wire + n1, n2, 6003); /* the second packet first */
        CHECK(last_token != 8);
        feed(a, 3, wire, n1, 6003);
        CHECK(last_token == 8 && last_reply_kind == RRPC_JT808_REPLY_ANSWER);
        CHECK(last_payload_len == sizeof body - 1 && memcmp(last_payload, body + 1, sizeof body - 1) == 0);
    }

    /* The send function failing: reported, request released. */
    send_result = -1;
    CHECK(submit_to(a, 9, &t, 0x41, NULL, 0, RRPC_JT808_COMPLETION_ACK, 9000, 6000,
                                    NULL) == RRPC_STATUS_SEND_FAILED);
    send_result = 0;
    CHECK(rrpc_jt808_adapter_cancel(a, 9, 6000) == RRPC_STATUS_UNKNOWN_TOKEN);

    /* Re-entry: the event callback submits again. */
    reenter_terminal = t;
    reenter_on_reply = 1;
    s1 = submit(a, 10, &t, 0x41, "re", RRPC_JT808_COMPLETION_ACK, 9000, 6000, false);
    n = ack(wire, sizeof wire, &t, s1, 0);
    feed(a, 3, wire, n, 6001);
    CHECK(reenter_on_reply == 0 && last_token == 10);

    /* Disconnect with calls pending and queued: each answered once, nothing leaked. */
    submit(a, 11, &t, 0x42, "p1", RRPC_JT808_COMPLETION_ANSWER, 9000, 6000, false);
    submit(a, 12, &t, 0x42, "p2", RRPC_JT808_COMPLETION_ANSWER, 9000, 6000, true);
    CHECK(rrpc_jt808_adapter_get_stats(a, &st, sizeof st) == RRPC_STATUS_OK);
    CHECK(st.pending == 2 && st.queued_now == 1); /* 999 from the re-entrant submit, and 11 */
    {
        int before = events[RRPC_JT808_EVENT_REPLY];
        CHECK(rrpc_jt808_adapter_connection_closed(a, 3, 6100, &answered) == RRPC_STATUS_OK);
        CHECK(answered == 3 && events[RRPC_JT808_EVENT_REPLY] == before + 3);
        CHECK(strcmp(last_payload, "{\"jt808\":\"error\",\"reason\":\"terminal disconnected\"}") == 0);
        CHECK(replied[11] == 1 && replied[12] == 1);
    }
    CHECK(rrpc_jt808_adapter_get_stats(a, &st, sizeof st) == RRPC_STATUS_OK);
    CHECK(st.pending == 0 && st.queued_now == 0 && st.disconnected == 3);
    CHECK(st.acked == 3 && st.answered == 2 && st.failed == 1 && st.expired == 2 && st.delivered == 1);
    CHECK(st.uplinks == 1 && st.late_uplinks == 1 && st.unknown_acks == 1 && st.malformed == 1);
    CHECK(st.cancelled == 1 && st.refused == 2 && st.packet_acks == 2);
    CHECK(submit_to(a, 13, &t, 0x41, NULL, 0, 0, 9000, 6200, NULL) ==
          RRPC_STATUS_NOT_CONNECTED);

    /* A terminal attached without frames, disconnected by phone. */
    CHECK(rrpc_jt808_adapter_terminal_authenticated(a, u.phone, u.phone_len, 77) == RRPC_STATUS_OK);
    submit(a, 14, &u, 0x0b, "card", RRPC_JT808_COMPLETION_ACK, 9000, 6000, false);
    CHECK(sent_conn == 77);
    CHECK(rrpc_jt808_adapter_terminal_disconnected(a, u.phone, u.phone_len, 6300, &answered) == RRPC_STATUS_OK);
    CHECK(answered == 1 && last_token == 14 && last_reply_kind == RRPC_JT808_REPLY_ERROR);

    /* on_frame for applications that decode themselves. */
    {
        rrpc_jt808_decoder *d = NULL;
        rrpc_jt808_frame f;
        bool ready = false, taken = true;
        CHECK(rrpc_jt808_adapter_terminal_authenticated(a, u.phone, u.phone_len, 78) == RRPC_STATUS_OK);
        s1 = submit(a, 15, &u, 0x41, "x", RRPC_JT808_COMPLETION_ACK, 9000, 6000, false);
        CHECK(rrpc_jt808_decoder_new(0, &d) == RRPC_STATUS_OK);
        n = ack(wire, sizeof wire, &u, s1, 0);
        n += encode(wire + n, sizeof wire - n, &u, 0x0002, 9, NULL, 0, 0, 0);
        CHECK(rrpc_jt808_decoder_push(d, wire, n) == RRPC_STATUS_OK);
        CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK && ready);
        /* From another connection, the ack completes nothing. */
        CHECK(rrpc_jt808_adapter_on_frame(a, 79, &f, 6001, &taken) == RRPC_STATUS_OK && !taken);
        CHECK(last_token != 15);
        CHECK(rrpc_jt808_adapter_on_frame(a, 78, &f, 6001, &taken) == RRPC_STATUS_OK && taken);
        CHECK(last_token == 15 && last_reply_kind == RRPC_JT808_REPLY_ACK);
        CHECK(rrpc_jt808_decoder_next(d, &f, &ready) == RRPC_STATUS_OK && ready);
        CHECK(rrpc_jt808_adapter_on_frame(a, NO_CONN, &f, 6001, &taken) == RRPC_STATUS_OK && !taken);
        CHECK(rrpc_jt808_decoder_free(d) == RRPC_STATUS_OK);
    }

    /* Bad arguments. */
    {
        rrpc_jt808_adapter_submit_params p;
        memset(&p, 0xff, sizeof p);
        CHECK(rrpc_jt808_adapter_submit_params_init(&p, sizeof p) == RRPC_STATUS_OK);
        CHECK(p.token == 0 && p.phone_len == 0 && p.phone[0] == 0 && p.phone[9] == 0 && p.content_type == 0);
        CHECK(p.content == NULL && p.content_len == 0 && p.deadline_ms == 0);
        CHECK(p.completion == RRPC_JT808_COMPLETION_DEFAULT);
        CHECK(rrpc_jt808_adapter_submit_params_init(NULL, sizeof(rrpc_jt808_adapter_submit_params)) == RRPC_STATUS_NULL_POINTER);
        p = request(1, &u, 0, NULL, 0, 0, 100000);
        CHECK(rrpc_jt808_adapter_submit(NULL, &p, 0, NULL) == RRPC_STATUS_NULL_POINTER);
        CHECK(rrpc_jt808_adapter_submit(a, NULL, 0, NULL) == RRPC_STATUS_NULL_POINTER);
        CHECK(contains(rrpc_last_error_message(), "params is NULL"));
        p.content_len = 3;
        CHECK(rrpc_jt808_adapter_submit(a, &p, 0, NULL) == RRPC_STATUS_NULL_POINTER);
        CHECK(contains(rrpc_last_error_message(), "params->content is NULL"));
        p = request(1, &u, 0, NULL, 0, 0, 100000);
        p.phone_len = 7;
        CHECK(rrpc_jt808_adapter_submit(a, &p, 0, NULL) == RRPC_STATUS_INVALID_ARGUMENT);
        p.phone_len = 11;
        CHECK(rrpc_jt808_adapter_submit(a, &p, 0, NULL) == RRPC_STATUS_INVALID_ARGUMENT);
        p = request(1, &u, 0, NULL, 0, 9, 100000);
        CHECK(rrpc_jt808_adapter_submit(a, &p, 0, NULL) == RRPC_STATUS_INVALID_ARGUMENT);
        p = request(1, &u, 0, NULL, 0, 0, 100);
        CHECK(rrpc_jt808_adapter_submit(a, &p, 100, NULL) == RRPC_STATUS_EXPIRED);
    }
    CHECK(rrpc_jt808_adapter_on_bytes(a, 1, NULL, 4, 0) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_jt808_adapter_tick(NULL, 0, NULL) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_jt808_adapter_get_stats(a, NULL, sizeof(rrpc_jt808_adapter_stats)) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_jt808_adapter_set_send(a, NULL, NULL) == RRPC_STATUS_OK);
    CHECK(submit_to(a, 1, &u, 0, NULL, 0, 0, 100000, 0, NULL) == RRPC_STATUS_WRONG_STATE);

    CHECK(rrpc_jt808_adapter_free(a) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_free(NULL) == RRPC_STATUS_OK);
}

static void refuse_checks(void)
{
    rrpc_jt808_adapter *a = new_adapter(RRPC_JT808_BUSY_REFUSE);
    terminal t = make_terminal("13912345678", 2019);
    uint16_t serial;
    uint8_t wire[256];
    size_t n;
    CHECK(rrpc_jt808_adapter_terminal_authenticated(a, t.phone, t.phone_len, 1) == RRPC_STATUS_OK);
    serial = submit(a, 1, &t, 0x41, "q", RRPC_JT808_COMPLETION_ANSWER, 9000, 0, false);
    CHECK(submit_to(a, 2, &t, 0x41, NULL, 0, RRPC_JT808_COMPLETION_ANSWER, 9000, 0,
                                    NULL) == RRPC_STATUS_BUSY);
    CHECK(contains(rrpc_last_error_message(), "busy policy: refuse"));
    /* Failure ack: answered at once, the pair is free again. */
    n = ack(wire, sizeof wire, &t, serial, 1);
    feed(a, 1, wire, n, 5);
    CHECK(last_token == 1 && strcmp(last_payload, "{\"jt808\":\"error\",\"reason\":\"failure\",\"result\":1,\"serial\":0}") == 0);
    submit(a, 2, &t, 0x41, "q", RRPC_JT808_COMPLETION_ANSWER, 9000, 6, false);
    CHECK(rrpc_jt808_adapter_free(a) == RRPC_STATUS_OK); /* with a request held: dropped, no leak */
}

/* Every configured bound refuses with RRPC_STATUS_LIMIT_REACHED, naming itself. */
static void limit_checks(void)
{
    rrpc_jt808_adapter_config cfg;
    rrpc_jt808_adapter *a = NULL;
    terminal t = make_terminal("13800138000", 2013);
    terminal u = make_terminal("13800138001", 2013);
    uint8_t wire[256];
    size_t n;
    CHECK(rrpc_jt808_adapter_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    /* Reassembly limits and the escape mode are checked at creation. */
    CHECK(cfg.reassembly_max_partials == 256 && cfg.reassembly_max_partials_per_terminal == 4);
    CHECK(cfg.reassembly_max_packets == 16384 && cfg.reassembly_max_packets_per_terminal == 1024);
    CHECK(cfg.lenient_escapes == 0);
    cfg.reassembly_max_packets_per_terminal = cfg.reassembly_max_packets + 1;
    CHECK(rrpc_jt808_adapter_new(&cfg, &a) == RRPC_STATUS_INVALID_ARGUMENT && a == NULL);
    CHECK(contains(rrpc_last_error_message(), "max_packets_per_terminal"));
    cfg.reassembly_max_packets_per_terminal = 1024;
    cfg.reassembly_max_bytes = 0;
    CHECK(rrpc_jt808_adapter_new(&cfg, &a) == RRPC_STATUS_INVALID_ARGUMENT && a == NULL);
    CHECK(contains(rrpc_last_error_message(), "max_bytes 0"));
    cfg.reassembly_max_bytes = 4194304;
    {
        unsigned char two = 2; /* a byte a C `bool` cannot hold: garbage in the struct */
        memcpy(&cfg.lenient_escapes, &two, 1);
    }
    CHECK(rrpc_jt808_adapter_new(&cfg, &a) == RRPC_STATUS_INVALID_ARGUMENT && a == NULL);
    CHECK(contains(rrpc_last_error_message(), "lenient_escapes must be 0 (false) or 1 (true), not 2"));
    cfg.lenient_escapes = 1;
    cfg.max_pending = 1;
    cfg.max_terminals = 1;
    cfg.max_connections = 1;
    CHECK(rrpc_jt808_adapter_new(&cfg, &a) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_set_send(a, on_send, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_set_event_callback(a, on_event, NULL) == RRPC_STATUS_OK);
    the_adapter = a;

    /* One terminal on one connection: another terminal, or another connection, is refused. */
    CHECK(rrpc_jt808_adapter_terminal_authenticated(a, t.phone, t.phone_len, 1) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_terminal_authenticated(a, u.phone, u.phone_len, 1) == RRPC_STATUS_LIMIT_REACHED);
    CHECK(contains(rrpc_last_error_message(), "max_terminals"));
    CHECK(rrpc_jt808_adapter_terminal_authenticated(a, t.phone, t.phone_len, 2) == RRPC_STATUS_LIMIT_REACHED);
    CHECK(contains(rrpc_last_error_message(), "max_connections"));
    n = encode(wire, sizeof wire, &t, 0x0002, 1, NULL, 0, 0, 0);
    CHECK(rrpc_jt808_adapter_on_bytes(a, 2, wire, n, 0) == RRPC_STATUS_LIMIT_REACHED);
    CHECK(contains(rrpc_last_error_message(), "max_connections"));
    {
        rrpc_jt808_frame f;
        bool taken = true;
        rrpc_jt808_decoder *d = NULL;
        CHECK(rrpc_jt808_decoder_new(0, &d) == RRPC_STATUS_OK);
        CHECK(rrpc_jt808_decoder_push(d, wire, n) == RRPC_STATUS_OK);
        CHECK(rrpc_jt808_decoder_next(d, &f, &taken) == RRPC_STATUS_OK && taken);
        /* Frames handed over decoded take no connection slot. */
        CHECK(rrpc_jt808_adapter_on_frame(a, 2, &f, 0, &taken) == RRPC_STATUS_OK && !taken);
        CHECK(rrpc_jt808_decoder_free(d) == RRPC_STATUS_OK);
    }

    /* One request held (max_pending 1): the next is refused; a held token is ALREADY_EXISTS. */
    submit(a, 1, &t, 0x41, "a", RRPC_JT808_COMPLETION_ACK, 5000, 0, false);
    CHECK(submit_to(a, 2, &t, 0x41, NULL, 0, 0, 5000, 0, NULL) ==
          RRPC_STATUS_LIMIT_REACHED);
    CHECK(contains(rrpc_last_error_message(), "max_pending"));
    CHECK(submit_to(a, 1, &t, 0x41, NULL, 0, 0, 5000, 0, NULL) ==
          RRPC_STATUS_ALREADY_EXISTS);
    CHECK(rrpc_jt808_adapter_free(a) == RRPC_STATUS_OK);
}

/* ------------------------------------------------ callbacks that are released */

static int slow_send(void *user_data, uint64_t conn, const uint8_t *phone, size_t phone_len, const uint8_t *bytes,
                     size_t len)
{
    (void)conn; (void)phone; (void)phone_len; (void)bytes; (void)len;
    slow_body(user_data);
    return 0;
}

static void slow_event(void *user_data, rrpc_jt808_adapter *adapter, const rrpc_jt808_event *ev)
{
    (void)adapter; (void)ev;
    slow_body(user_data);
}

static volatile int quick_sends, quick_events;

static int quick_send(void *user_data, uint64_t conn, const uint8_t *phone, size_t phone_len, const uint8_t *bytes,
                      size_t len)
{
    (void)user_data; (void)conn; (void)phone; (void)phone_len; (void)bytes; (void)len;
    quick_sends++;
    return 0;
}

static void quick_event(void *user_data, rrpc_jt808_adapter *adapter, const rrpc_jt808_event *ev)
{
    (void)user_data; (void)adapter; (void)ev;
    quick_events++;
}

/* Callbacks that try to replace themselves (refused, nothing changes), replace the
 * other callback (allowed), and free the adapter (refused). */
static int refused_inside;

static int self_replacing_send(void *user_data, uint64_t conn, const uint8_t *phone, size_t phone_len,
                               const uint8_t *bytes, size_t len)
{
    rrpc_jt808_adapter *a = user_data;
    (void)conn; (void)phone; (void)phone_len; (void)bytes; (void)len;
    if (rrpc_jt808_adapter_set_send(a, quick_send, NULL) == RRPC_STATUS_WRONG_STATE) refused_inside++;
    if (rrpc_jt808_adapter_free(a) == RRPC_STATUS_WRONG_STATE) refused_inside++;
    if (rrpc_jt808_adapter_set_event_callback(a, quick_event, NULL) == RRPC_STATUS_OK) refused_inside += 10;
    return 0;
}

static void self_replacing_event(void *user_data, rrpc_jt808_adapter *adapter, const rrpc_jt808_event *ev)
{
    (void)user_data; (void)ev;
    if (rrpc_jt808_adapter_set_event_callback(adapter, quick_event, NULL) == RRPC_STATUS_WRONG_STATE)
        refused_inside++;
    if (rrpc_jt808_adapter_free(adapter) == RRPC_STATUS_WRONG_STATE) refused_inside++;
    if (rrpc_jt808_adapter_set_send(adapter, quick_send, NULL) == RRPC_STATUS_OK) refused_inside += 10;
}

static rrpc_jt808_adapter *release_adapter;
static terminal release_terminal;
static uint64_t release_token = 100;

/* On another thread: a heartbeat from the terminal, which the event callback sees. */
static void *heartbeat_thread(void *unused)
{
    uint8_t wire[64];
    size_t n = encode(wire, sizeof wire, &release_terminal, 0x0002, 1, NULL, 0, 0, 0);
    (void)unused;
    CHECK(rrpc_jt808_adapter_on_bytes(release_adapter, 1, wire, n, 0) == RRPC_STATUS_OK);
    return NULL;
}

/* On another thread: a request, which goes out through the send function. */
static void *submit_thread(void *unused)
{
    (void)unused;
    CHECK(submit_to(release_adapter, release_token++, &release_terminal, 0x41, (const uint8_t *)"x", 1,
                                    RRPC_JT808_COMPLETION_ACK, 60000, 0, NULL) == RRPC_STATUS_OK);
    return NULL;
}

static rrpc_status replace_event_callback(void)
{
    return rrpc_jt808_adapter_set_event_callback(release_adapter, quick_event, NULL);
}

static rrpc_status replace_send(void)
{
    return rrpc_jt808_adapter_set_send(release_adapter, quick_send, NULL);
}

static rrpc_status free_adapter(void)
{
    return rrpc_jt808_adapter_free(release_adapter);
}

static rrpc_status install_slow_event(slow_state *st)
{
    return rrpc_jt808_adapter_set_event_callback(release_adapter, slow_event, st);
}

static rrpc_status install_slow_send(slow_state *st)
{
    return rrpc_jt808_adapter_set_send(release_adapter, slow_send, st);
}

/* The slow callback `install` sets, replaced by `replace` while it sleeps in `thread` (run
 * on another thread): the replacement waits for it, and only the quick callback, which
 * counts in `*quick`, runs after. */
static void replaced_while_running(rrpc_status (*install)(slow_state *), void *(*thread)(void *),
                                   rrpc_status (*replace)(void), volatile int *quick)
{
    slow_state *st = slow_new();
    CHECK(install(st) == RRPC_STATUS_OK);
    RELEASE_WHILE_RUNNING(thread, NULL, st, replace());
    *quick = 0;
    thread(NULL);
    CHECK(*quick == 1);
}

static void release_checks(void)
{
    rrpc_jt808_adapter_config cfg;
    slow_state *st;
    CHECK(rrpc_jt808_adapter_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_new(&cfg, &release_adapter) == RRPC_STATUS_OK);
    release_terminal = make_terminal("13700137000", 2013);
    CHECK(rrpc_jt808_adapter_terminal_authenticated(release_adapter, release_terminal.phone,
                                                    release_terminal.phone_len, 1) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_set_send(release_adapter, quick_send, NULL) == RRPC_STATUS_OK);

    /* The event callback, replaced while it sleeps on another thread: the replacement
     * waits for it, and only the new one runs after. */
    replaced_while_running(install_slow_event, heartbeat_thread, replace_event_callback, &quick_events);

    /* The send function, replaced while it sleeps inside a submit on another thread. */
    replaced_while_running(install_slow_send, submit_thread, replace_send, &quick_sends);

    /* From inside: a callback cannot replace itself or free the adapter (nothing
     * changes: it runs again next time), but it may replace the other callback. */
    refused_inside = 0;
    CHECK(rrpc_jt808_adapter_set_event_callback(release_adapter, self_replacing_event, NULL) == RRPC_STATUS_OK);
    heartbeat_thread(NULL);
    CHECK(refused_inside == 12);
    CHECK(rrpc_jt808_adapter_set_event_callback(release_adapter, self_replacing_event, NULL) == RRPC_STATUS_OK);
    heartbeat_thread(NULL);
    heartbeat_thread(NULL);
    CHECK(refused_inside == 36);
    CHECK(rrpc_jt808_adapter_set_send(release_adapter, self_replacing_send, release_adapter) == RRPC_STATUS_OK);
    submit_thread(NULL);
    CHECK(refused_inside == 48);
    submit_thread(NULL);
    CHECK(refused_inside == 60);

    /* Free waits for a callback in flight on another thread; the thread returns
     * through the adapter without touching freed memory (valgrind watches). */
    st = slow_new();
    CHECK(rrpc_jt808_adapter_set_event_callback(release_adapter, slow_event, st) == RRPC_STATUS_OK);
    RELEASE_WHILE_RUNNING(heartbeat_thread, NULL, st, free_adapter());
    release_adapter = NULL;
}

static void thousand_terminals(void)
{
    rrpc_jt808_adapter *a = new_adapter(RRPC_JT808_BUSY_QUEUE);
    rrpc_jt808_adapter_stats st;
    static terminal ts[1000];
    static uint16_t serials[1000];
    uint8_t wire[256];
    char digits[16];
    int i;
    size_t n;
    memset(replied, 0, sizeof replied);
    for (i = 0; i < 1000; i++) {
        snprintf(digits, sizeof digits, "1390000%04d", i);
        ts[i] = make_terminal(digits, 2013);
        n = encode(wire, sizeof wire, &ts[i], 0x0002, 1, NULL, 0, 0, 0); /* heartbeat */
        feed(a, (uint64_t)i, wire, n, 0);
        CHECK(rrpc_jt808_adapter_terminal_authenticated(a, ts[i].phone, ts[i].phone_len, (uint64_t)i) ==
              RRPC_STATUS_OK);
    }
    for (i = 0; i < 1000; i++) {
        serials[i] = submit(a, (uint64_t)(i + 1), &ts[i], 0x41, "ping", RRPC_JT808_COMPLETION_ACK, 60000, 1, false);
        CHECK(sent_conn == (uint64_t)i);
        submit(a, (uint64_t)(i + 1001), &ts[i], 0xf0, "ask", RRPC_JT808_COMPLETION_ANSWER, 60000, 1, false);
    }
    /* Answers in reverse, uplinks before acks, acks interleaved. */
    for (i = 999; i >= 0; i--) {
        char content[32];
        snprintf(content, sizeof content, "answer %d", i);
        n = uplink(wire, sizeof wire, &ts[i], 0xf0, content);
        feed(a, (uint64_t)i, wire, n, 2);
        CHECK(last_token == (uint64_t)(i + 1001) && strcmp(last_payload, content) == 0);
        n = ack(wire, sizeof wire, &ts[(i * 7) % 1000], serials[(i * 7) % 1000], 0);
        feed(a, (uint64_t)((i * 7) % 1000), wire, n, 2);
    }
    for (i = 1; i <= 2000; i++) CHECK(replied[i] == 1);
    CHECK(rrpc_jt808_adapter_get_stats(a, &st, sizeof st) == RRPC_STATUS_OK);
    CHECK(st.pending == 0 && st.acked == 1000 && st.answered == 1000 && st.terminals == 1000);
    CHECK(st.connections == 1000 && st.unknown_acks == 0);
    CHECK(rrpc_jt808_adapter_free(a) == RRPC_STATUS_OK);
}

int main(void)
{
    codec_checks();
    adapter_checks();
    refuse_checks();
    limit_checks();
    release_checks();
    thousand_terminals();
    printf("jt808 harness: %d checks passed\n", checks);
    return 0;
}
