/* The router C API with no network at all: a gateway for 1,000 sub-devices on
 * wildcard filters, mixed dialects, per-device and shared callbacks, re-entrant
 * calls, and the bad inputs of the router issue. Prints "router harness: N checks
 * passed" and exits 0, or names the first failed check and exits 1.
 * Built and run by tests/c_api/router_c.rs; also clean under valgrind. */
#define HARNESS_NAME "router harness"
#include "harness.h"

#include <string.h>

/* What the publish function saw. */
static char last_topic[256];
static char last_payload[256];
static size_t last_len;
static int published;
static int publish_result; /* returned by the publish function */

static rrpc_router *the_router; /* for re-entry from the publish function */
static int reentered;

/* The router reads no clock: every call that needs the time gets this one, which the
 * test moves (requests come at 1000 ms, with a 1000 ms timeout). */
static uint64_t clock_ms = 1000;

static int32_t publish(void *user_data, const char *topic, const uint8_t *payload, size_t len, int32_t qos)
{
    (void)user_data;
    if (len == 7 && memcmp(payload, "reenter", 7) == 0 && !reentered) {
        /* Re-entrant from the publish function: a gateway whose MQTT stack loops a
         * message back synchronously. */
        const char *t = "/sys/pk/dev13/rrpc/request/from-publish";
        rrpc_message_kind kind = 99;
        reentered = 1;
        CHECK(rrpc_router_handle_message(the_router, (const uint8_t *)t, strlen(t), (const uint8_t *)"inner", 5, false,
                                         clock_ms, &kind) == RRPC_STATUS_OK);
        CHECK(kind == RRPC_MESSAGE_REQUEST);
        CHECK(rrpc_router_free(the_router) == RRPC_STATUS_WRONG_STATE);
    }
    snprintf(last_topic, sizeof last_topic, "%s", topic);
    last_len = len < sizeof last_payload ? len : sizeof last_payload - 1;
    if (last_len) memcpy(last_payload, payload, last_len);
    last_payload[last_len] = 0;
    published++;
    return qos == 0 ? publish_result : 99;
}

/* Shared callback: echo by token, and remember the last request. */
static uint64_t last_token;
static char last_device[64];
static char last_id[64];
static int32_t last_content_type;
static int shared_calls;

static void shared_cb(void *user_data, rrpc_router *router, const rrpc_request *req)
{
    (void)user_data;
    shared_calls++;
    last_token = req->token;
    snprintf(last_device, sizeof last_device, "%s/%s", req->product_key, req->device_name);
    snprintf(last_id, sizeof last_id, "%s", req->message_id);
    last_content_type = req->content_type;
    if (req->payload_len == 5 && memcmp(req->payload, "defer", 5) == 0) return; /* answered later */
    if (req->payload_len == 4 && memcmp(req->payload, "free", 4) == 0) {
        CHECK(rrpc_router_free(router) == RRPC_STATUS_WRONG_STATE);
        return;
    }
    if (req->payload_len == 6 && memcmp(req->payload, "nested", 6) == 0) {
        /* Re-entrant: handle another message from inside the callback. */
        const char *t = "/sys/pk/dev7/rrpc/request/nested-inner";
        rrpc_message_kind kind = 99;
        CHECK(rrpc_router_handle_message(router, (const uint8_t *)t, strlen(t), (const uint8_t *)"x", 1, false, clock_ms,
                                         &kind) == RRPC_STATUS_OK);
        CHECK(kind == RRPC_MESSAGE_REQUEST);
    }
    CHECK(rrpc_router_reply(router, req->token, req->payload, req->payload_len, clock_ms) == RRPC_STATUS_OK);
}

/* A device with its own callback. */
static int own_calls;
static void own_cb(void *user_data, rrpc_router *router, const rrpc_request *req)
{
    own_calls++;
    CHECK(strcmp((const char *)user_data, "own") == 0);
    CHECK(req->dialect == RRPC_DIALECT_TENCENT);
    CHECK(rrpc_router_reply(router, req->token, (const uint8_t *)"ok", 2, clock_ms) == RRPC_STATUS_OK);
}

static int filters_seen;
static char filters[8][64];
static void on_filter(void *user_data, const char *filter)
{
    (void)user_data;
    if (filters_seen < 8) snprintf(filters[filters_seen], sizeof filters[0], "%s", filter);
    filters_seen++;
}

static rrpc_message_kind handle_retained(rrpc_router *r, const char *topic, const char *payload, bool retained)
{
    rrpc_message_kind kind = 99;
    CHECK(rrpc_router_handle_message(r, (const uint8_t *)topic, strlen(topic), (const uint8_t *)payload,
                                     strlen(payload), retained, clock_ms, &kind) == RRPC_STATUS_OK);
    return kind;
}

static rrpc_message_kind handle(rrpc_router *r, const char *topic, const char *payload)
{
    return handle_retained(r, topic, payload, false);
}

int main(void)
{
    rrpc_router_config cfg;
    rrpc_router *r = NULL;
    rrpc_router_stats st;
    char topic[128], name[32];

    CHECK(rrpc_router_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    CHECK(cfg.max_pending == 1024 && cfg.max_devices == 100000);
    /* Every bound has a documented maximum, refused at creation, not at the
     * allocation that would abort the process. */
    {
        rrpc_router_config bad;
/* The defaults with one bound out of range: refused, nothing made, the field named. */
#define REFUSED_BOUND(field, value)                                                      \
    do {                                                                                 \
        bad = cfg;                                                                       \
        bad.field = (value);                                                             \
        CHECK(rrpc_router_new(&bad, &r) == RRPC_STATUS_INVALID_ARGUMENT && r == NULL);   \
        CHECK(strstr(rrpc_last_error_message(), #field " is ") != NULL);                 \
    } while (0)
        REFUSED_BOUND(max_pending, UINT32_MAX);
        REFUSED_BOUND(max_pending, 65537);
        REFUSED_BOUND(max_pending, 0);
        REFUSED_BOUND(max_devices, 1000001);
        REFUSED_BOUND(max_payload, UINT32_MAX);
        REFUSED_BOUND(request_timeout_ms, 600001);
#undef REFUSED_BOUND
        /* At the maximum, and a device table that fills. */
        bad = cfg;
        bad.max_pending = 65536;
        bad.max_devices = 2;
        CHECK(rrpc_router_new(&bad, &r) == RRPC_STATUS_OK);
        CHECK(rrpc_router_add_device(r, RRPC_DIALECT_ALIBABA, "pk", "a", NULL, NULL, NULL) == RRPC_STATUS_OK);
        CHECK(rrpc_router_add_device(r, RRPC_DIALECT_TENCENT, "pk", "a", NULL, NULL, NULL) == RRPC_STATUS_OK);
        CHECK(rrpc_router_add_device(r, RRPC_DIALECT_ALIBABA, "pk", "b", NULL, NULL, NULL) ==
              RRPC_STATUS_LIMIT_REACHED);
        CHECK(rrpc_router_remove_device(r, RRPC_DIALECT_ALIBABA, "pk", "a", NULL, clock_ms) == RRPC_STATUS_OK);
        CHECK(rrpc_router_add_device(r, RRPC_DIALECT_ALIBABA, "pk", "b", NULL, NULL, NULL) == RRPC_STATUS_OK);
        CHECK(rrpc_router_free(r) == RRPC_STATUS_OK);
        r = NULL;
    }
    cfg.request_timeout_ms = 1000;
    CHECK(rrpc_router_new(&cfg, &r) == RRPC_STATUS_OK);
    the_router = r;
    CHECK(rrpc_router_set_publish(r, publish, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_set_request_callback(r, shared_cb, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_tick(r, clock_ms, NULL) == RRPC_STATUS_OK);

    /* A gateway for 1,000 sub-devices dev0..dev999, plus a Tencent device with its own callback. */
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "dev%d", i);
        CHECK(rrpc_router_add_device(r, RRPC_DIALECT_ALIBABA, "pk", name, NULL, NULL, NULL) == RRPC_STATUS_OK);
    }
    CHECK(rrpc_router_add_device(r, RRPC_DIALECT_TENCENT, "pid", "t1", NULL, own_cb, "own") == RRPC_STATUS_OK);
    CHECK(rrpc_router_add_device(r, RRPC_DIALECT_ALIBABA, "pk", "dev5", NULL, NULL, NULL) == RRPC_STATUS_ALREADY_EXISTS);
    CHECK(rrpc_router_add_device(r, RRPC_DIALECT_ALIBABA, "pk", "a/b", NULL, NULL, NULL) == RRPC_STATUS_INVALID_IDENTITY);

    CHECK(rrpc_router_get_filters(r, RRPC_FILTERS_WILDCARD, on_filter, NULL) == RRPC_STATUS_OK);
    CHECK(filters_seen == 2);
    CHECK(strcmp(filters[0], "/sys/+/+/rrpc/request/+") == 0);
    CHECK(strcmp(filters[1], "$rrpc/rxd/+/+/+") == 0);
    filters_seen = 0;
    CHECK(rrpc_router_get_filters(r, RRPC_FILTERS_PER_DEVICE, on_filter, NULL) == RRPC_STATUS_OK);
    CHECK(filters_seen == 1001);
    CHECK(rrpc_router_get_filters(r, 7, on_filter, NULL) == RRPC_STATUS_INVALID_ARGUMENT);

    /* Requests interleaved across the sub-devices, each answered on its own topic. */
    for (int round = 0; round < 3; round++) {
        for (int i = round; i < 1000; i += 97) {
            snprintf(topic, sizeof topic, "/sys/pk/dev%d/rrpc/request/%d%d", i, round, i);
            CHECK(handle(r, topic, "hello") == RRPC_MESSAGE_REQUEST);
            char want[128];
            snprintf(want, sizeof want, "/sys/pk/dev%d/rrpc/response/%d%d", i, round, i);
            CHECK(strcmp(last_topic, want) == 0);
            CHECK(strcmp(last_payload, "hello") == 0);
        }
    }
    /* A ContentType rides in the message-id level: the view has the bare id and the
     * type, the reply goes out on the whole level; without one, content_type is -1. */
    CHECK(handle(r, "/sys/pk/dev3/rrpc/request/889455942124347392;ct=65", "serial") == RRPC_MESSAGE_REQUEST);
    CHECK(strcmp(last_id, "889455942124347392") == 0 && last_content_type == 65);
    CHECK(strcmp(last_topic, "/sys/pk/dev3/rrpc/response/889455942124347392;ct=65") == 0);
    CHECK(handle(r, "/sys/pk/dev3/rrpc/request/889455942124347393", "plain") == RRPC_MESSAGE_REQUEST);
    CHECK(strcmp(last_id, "889455942124347393") == 0 && last_content_type == -1);
    /* The duplicate check uses the message id alone: another ContentType suffix
     * (or a malformed one) on a seen id is the same request again. */
    CHECK(handle(r, "/sys/pk/dev3/rrpc/request/889455942124347392", "serial") == RRPC_MESSAGE_DROPPED);
    CHECK(handle(r, "/sys/pk/dev3/rrpc/request/889455942124347392;ct=0", "serial") == RRPC_MESSAGE_DROPPED);
    CHECK(handle(r, "/sys/pk/dev3/rrpc/request/889455942124347393;ct=065", "plain") == RRPC_MESSAGE_DROPPED);

    /* A retained request is never executed, whoever left it on the topic. */
    {
        int before_calls = published;
        CHECK(handle_retained(r, "/sys/pk/dev4/rrpc/request/r1", "retained", true) == RRPC_MESSAGE_DROPPED);
        CHECK(published == before_calls);
        CHECK(handle_retained(r, "/sys/pk/dev4/thing/event", "x", true) == RRPC_MESSAGE_NOT_RRPC);
        CHECK(handle_retained(r, "/sys/pk/dev4/rrpc/request/", "x", true) == RRPC_MESSAGE_MALFORMED);
        /* (A `retained` byte other than 0 or 1, which a C `bool` cannot hold, is refused:
         * tests/rust_api/router_concurrency.rs passes one.) The same id, delivered live afterwards, is a new request. */
        CHECK(handle(r, "/sys/pk/dev4/rrpc/request/r1", "live") == RRPC_MESSAGE_REQUEST);
        CHECK(published == before_calls + 1);
    }

    /* Mixed dialects: the Tencent device's own callback. */
    CHECK(handle(r, "$rrpc/rxd/pid/t1/41440", "q") == RRPC_MESSAGE_REQUEST);
    CHECK(own_calls == 1 && strcmp(last_topic, "$rrpc/txd/pid/t1/41440") == 0 && strcmp(last_payload, "ok") == 0);

    /* Not ours, malformed, unknown device, duplicate. */
    CHECK(handle(r, "/sys/pk/dev1/thing/event/property/post", "x") == RRPC_MESSAGE_NOT_RRPC);
    CHECK(handle(r, "/sys/pk/dev1/rrpc/request/", "x") == RRPC_MESSAGE_MALFORMED);       /* empty id */
    CHECK(handle(r, "/sys/pk/dev1/rrpc/request/1/2", "x") == RRPC_MESSAGE_MALFORMED);    /* extra level */
    CHECK(handle(r, "/sys/pk/rrpc/request/1", "x") == RRPC_MESSAGE_MALFORMED);           /* missing level */
    CHECK(handle(r, "/sys/pk/ghost/rrpc/request/1", "x") == RRPC_MESSAGE_DROPPED);       /* unregistered */
    CHECK(handle(r, "/sys/pk/dev1/rrpc/request/11", "x") == RRPC_MESSAGE_DROPPED);       /* duplicate of round 1 */
    {
        const uint8_t bad[] = {'/', 's', 'y', 's', '/', 0xff, 0xfe, '/', 'd', '/', 'r', 'r', 'p', 'c'};
        rrpc_message_kind kind = 99;
        CHECK(rrpc_router_handle_message(r, bad, sizeof bad, NULL, 0, false, clock_ms, &kind) == RRPC_STATUS_OK);
        CHECK(kind == RRPC_MESSAGE_MALFORMED); /* not UTF-8 */
    }
    /* A topic handed over without its NUL: only topic_len bytes count. */
    {
        const char *t = "/sys/pk/dev2/rrpc/request/77GARBAGE";
        rrpc_message_kind kind = 99;
        CHECK(rrpc_router_handle_message(r, (const uint8_t *)t, strlen(t) - 7, NULL, 0, false, clock_ms, &kind) ==
              RRPC_STATUS_OK);
        CHECK(kind == RRPC_MESSAGE_REQUEST && strcmp(last_topic, "/sys/pk/dev2/rrpc/response/77") == 0);
    }

    /* Re-entrancy: a callback that handles another message; one that tries to free. */
    CHECK(handle(r, "/sys/pk/dev7/rrpc/request/nested-outer", "nested") == RRPC_MESSAGE_REQUEST);
    CHECK(strcmp(last_topic, "/sys/pk/dev7/rrpc/response/nested-outer") == 0);
    CHECK(handle(r, "/sys/pk/dev8/rrpc/request/f1", "free") == RRPC_MESSAGE_REQUEST);

    /* Re-entrancy from the publish function: it handles another request. */
    CHECK(handle(r, "/sys/pk/dev13/rrpc/request/outer", "reenter") == RRPC_MESSAGE_REQUEST);
    CHECK(reentered == 1);

    /* Deferred reply, second reply, unknown token. */
    CHECK(handle(r, "/sys/pk/dev9/rrpc/request/d1", "defer") == RRPC_MESSAGE_REQUEST);
    uint64_t deferred = last_token;
    int before = published;
    CHECK(rrpc_router_reply(r, deferred, (const uint8_t *)"later", 5, clock_ms) == RRPC_STATUS_OK);
    CHECK(published == before + 1 && strcmp(last_payload, "later") == 0);
    CHECK(rrpc_router_reply(r, deferred, (const uint8_t *)"again", 5, clock_ms) == RRPC_STATUS_ALREADY_REPLIED);
    CHECK(rrpc_router_reply(r, deferred ^ 0x5555, NULL, 0, clock_ms) == RRPC_STATUS_UNKNOWN_TOKEN);

    /* Publish function failing: reported, the request stays pending, and the same
     * token is answered once a working publish function is back. */
    CHECK(handle(r, "/sys/pk/dev10/rrpc/request/p1", "defer") == RRPC_MESSAGE_REQUEST);
    uint64_t failing = last_token;
    publish_result = -1;
    CHECK(rrpc_router_reply(r, failing, (const uint8_t *)"x", 1, clock_ms) == RRPC_STATUS_SEND_FAILED);
    CHECK(rrpc_router_get_stats(r, &st, sizeof st) == RRPC_STATUS_OK && st.pending == 2); /* p1, "free" */
    publish_result = 0;
    before = published;
    CHECK(rrpc_router_reply(r, failing, (const uint8_t *)"retry", 5, clock_ms) == RRPC_STATUS_OK);
    CHECK(published == before + 1 && strcmp(last_payload, "retry") == 0);
    CHECK(strcmp(last_topic, "/sys/pk/dev10/rrpc/response/p1") == 0);
    CHECK(rrpc_router_reply(r, failing, (const uint8_t *)"x", 1, clock_ms) == RRPC_STATUS_ALREADY_REPLIED);

    /* Removing a device with a request pending: the reply is refused cleanly. */
    CHECK(handle(r, "/sys/pk/dev11/rrpc/request/r1", "defer") == RRPC_MESSAGE_REQUEST);
    uint64_t orphan = last_token;
    CHECK(rrpc_router_remove_device(r, RRPC_DIALECT_ALIBABA, "pk", "dev11", NULL, clock_ms) == RRPC_STATUS_OK);
    CHECK(rrpc_router_reply(r, orphan, NULL, 0, clock_ms) == RRPC_STATUS_DEVICE_REMOVED);
    CHECK(rrpc_router_remove_device(r, RRPC_DIALECT_ALIBABA, "pk", "dev11", NULL, clock_ms) == RRPC_STATUS_NOT_FOUND);
    CHECK(handle(r, "/sys/pk/dev11/rrpc/request/r2", "x") == RRPC_MESSAGE_DROPPED);

    /* Deadlines without threads: the application's clock moves; the router says when the
     * next deadline is due (every request here came at 1000 ms with a 1000 ms timeout),
     * tick expires what is due, and a late reply is refused. */
    CHECK(handle(r, "/sys/pk/dev12/rrpc/request/e1", "defer") == RRPC_MESSAGE_REQUEST);
    uint64_t late = last_token;
    uint64_t next = 0;
    CHECK(rrpc_router_next_deadline(r, &next) == RRPC_STATUS_OK && next == 2000);
    CHECK(rrpc_router_next_deadline(r, NULL) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_router_get_stats(r, &st, sizeof st) == RRPC_STATUS_OK);
    uint64_t expired_before = st.expired;
    clock_ms = 1500;
    CHECK(rrpc_router_tick(r, clock_ms, &next) == RRPC_STATUS_OK && next == 2000);
    CHECK(rrpc_router_get_stats(r, &st, sizeof st) == RRPC_STATUS_OK && st.expired == expired_before);
    clock_ms = 2001;
    CHECK(rrpc_router_tick(r, clock_ms, &next) == RRPC_STATUS_OK && next == UINT64_MAX);
    CHECK(rrpc_router_get_stats(r, &st, sizeof st) == RRPC_STATUS_OK && st.expired > expired_before);
    CHECK(rrpc_router_reply(r, late, NULL, 0, clock_ms) == RRPC_STATUS_EXPIRED);

    /* Bad handles and buffers. */
    CHECK(rrpc_router_handle_message(NULL, (const uint8_t *)"t", 1, NULL, 0, false, clock_ms, NULL) ==
          RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_router_handle_message(r, NULL, 5, NULL, 0, false, clock_ms, NULL) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_router_reply(NULL, 1, NULL, 0, clock_ms) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_router_add_device(r, 99, "pk", "x", NULL, NULL, NULL) == RRPC_STATUS_INVALID_ARGUMENT);

    CHECK(rrpc_router_get_stats(r, &st, sizeof st) == RRPC_STATUS_OK);
    CHECK(st.devices == 1000); /* 1,000 + t1 - dev11 */
    CHECK(st.unknown_device == 2 && st.duplicates == 4 && st.malformed == 5 && st.not_rrpc == 2);
    CHECK(st.retained == 1);
    /* The unanswered "free" request expired with e1 at the 2001 ms tick. */
    CHECK(st.send_failures == 1 && st.late_replies == 1 && st.pending == 0 && st.expired == 2);
    CHECK(rrpc_router_free(r) == RRPC_STATUS_OK);
    CHECK(rrpc_router_free(NULL) == RRPC_STATUS_OK);
    printf("router harness: %d checks passed\n", checks);
    return 0;
}
