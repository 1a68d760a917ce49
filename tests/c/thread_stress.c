/* Thread stress: one client serving devices while many threads use it at once, built
 * with -fsanitize=thread (or address,undefined) and run against a broker.
 *
 *   thread_stress PORT SECONDS
 *
 * While caller threads (a caller in this process) call the devices through the
 * broker, replier threads answer the requests by token, a churn thread adds and
 * removes devices, a swapper thread replaces the request and connection callbacks
 * and frees the replaced user_data at once (the release rule of
 * rrpc_client_set_request_callback), and a reader thread polls stats, the connection state
 * and the client id. Checks: every call to a device that is never removed succeeds
 * with its own payload; calls to removed devices succeed or time out; the requests
 * the callbacks saw add up to the client's `requests` counter; every reply status is
 * one the header allows.
 *
 * How the release rule is made visible to a sanitizer: each callback's last access
 * to its user_data is a release increment of a counter, and the swapper reads that
 * counter with acquire before it frees the user_data. A callback that ran after (or
 * during) its replacement would touch freed memory (AddressSanitizer) or race with the
 * free (ThreadSanitizer). The library's own synchronization is invisible to
 * ThreadSanitizer (the Rust code is not instrumented), so nothing here relies on it
 * to order plain accesses: a new user_data is published with a release store that the
 * callback reads with acquire. */
#define HARNESS_NAME "thread_stress"
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define PK "stressPK"
#define STABLE 4
#define CHURN 4
#define CALLERS 4
#define REPLIERS 4
#define LIVE 0x11feu
#define DEAD 0xdeadu

typedef struct {
    atomic_int ready;      /* release-stored once initialized, acquire-loaded first */
    unsigned magic;        /* LIVE until freed */
    atomic_ulong calls;    /* release-incremented as the callback's last access */
} cb_state;

typedef struct job {
    struct job *next;
    uint64_t token;
    size_t len;
    unsigned char payload[];
} job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    int closed;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0};

static rrpc_client *client;
static rrpc_caller *caller;
static atomic_int stop_flag;
static atomic_ulong seen_requests;    /* calls counted by freed callback states */
static atomic_ulong replies_ok, replies_refused, swaps, churns, polls, conn_events;
static atomic_ulong stable_calls, stable_ok, churn_calls, churn_ok, churn_timeouts;
static atomic_int failed;

#define FAIL(...)                                          \
    do {                                                   \
        fprintf(stderr, HARNESS_NAME ": " __VA_ARGS__);    \
        fputc('\n', stderr);                               \
        atomic_store(&failed, 1);                          \
    } while (0)

static cb_state *state_new(void)
{
    cb_state *s = malloc(sizeof *s);
    if (s == NULL) abort();
    s->magic = LIVE;
    atomic_init(&s->calls, 0);
    atomic_init(&s->ready, 0);
    atomic_store_explicit(&s->ready, 1, memory_order_release);
    return s;
}

/* The callback's first access: pairs with the release in state_new, so that the
 * hand-over of user_data through the library is visible to ThreadSanitizer. */
static int state_ready(cb_state *s)
{
    return atomic_load_explicit(&s->ready, memory_order_acquire) == 1 && s->magic == LIVE;
}

/* Called once the callback holding `s` was replaced: orders every access of that
 * callback before the free, through the counter. */
static void state_free(cb_state *s)
{
    unsigned long n = atomic_load_explicit(&s->calls, memory_order_acquire);
    atomic_fetch_add(&seen_requests, n);
    s->magic = DEAD;
    free(s);
}

static void enqueue(const rrpc_request *req)
{
    job *j = malloc(sizeof *j + req->payload_len);
    if (j == NULL) abort();
    j->next = NULL;
    j->token = req->token;
    j->len = req->payload_len;
    if (req->payload_len) memcpy(j->payload, req->payload, req->payload_len);
    pthread_mutex_lock(&q.lock);
    if (q.closed) { /* shutting down: the request expires unanswered */
        pthread_mutex_unlock(&q.lock);
        free(j);
        return;
    }
    if (q.tail) q.tail->next = j; else q.head = j;
    q.tail = j;
    pthread_cond_signal(&q.cond);
    pthread_mutex_unlock(&q.lock);
}

static void check_request(const rrpc_request *req)
{
    if (req->token == 0 || req->dialect != RRPC_DIALECT_ALIBABA || strcmp(req->product_key, PK) != 0 ||
        req->device_name == NULL || req->message_id == NULL || req->message_id[0] == '\0')
        FAIL("malformed request handed to the callback");
    /* Payloads name their device: "<device>:<thread>:<seq>". */
    size_t dn = strlen(req->device_name);
    if (req->payload_len <= dn || memcmp(req->payload, req->device_name, dn) != 0 || req->payload[dn] != ':')
        FAIL("request for %s carries another device's payload", req->device_name);
}

/* Two callbacks, so that replacing one changes the function as well as user_data. */
static void on_request_a(void *user_data, rrpc_client *c, const rrpc_request *req)
{
    cb_state *s = user_data;
    if (!state_ready(s) || c != client) FAIL("callback A ran with released user_data");
    check_request(req);
    enqueue(req);
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_release);
}

static void on_request_b(void *user_data, rrpc_client *c, const rrpc_request *req)
{
    cb_state *s = user_data;
    if (!state_ready(s) || c != client) FAIL("callback B ran with released user_data");
    check_request(req);
    /* Reply inside the callback for half of B's requests: the other path. */
    if (req->token % 2 == 0) {
        rrpc_status st = rrpc_client_reply(c, req->token, req->payload, req->payload_len);
        if (st == RRPC_STATUS_OK) atomic_fetch_add(&replies_ok, 1);
        else if (st == RRPC_STATUS_EXPIRED || st == RRPC_STATUS_DEVICE_REMOVED || st == RRPC_STATUS_BUSY ||
                 st == RRPC_STATUS_NOT_CONNECTED) atomic_fetch_add(&replies_refused, 1);
        else FAIL("reply inside the callback: %s", rrpc_status_str(st));
    } else {
        enqueue(req);
    }
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_release);
}

static void on_connection(void *user_data, const rrpc_connection_event *ev)
{
    cb_state *s = user_data;
    if (!state_ready(s) || ev == NULL) FAIL("connection callback ran with released user_data");
    atomic_fetch_add(&conn_events, 1);
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_release);
}

static void *replier(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&q.lock);
        while (q.head == NULL && !q.closed) pthread_cond_wait(&q.cond, &q.lock);
        job *j = q.head;
        if (j) {
            q.head = j->next;
            if (!q.head) q.tail = NULL;
        }
        pthread_mutex_unlock(&q.lock);
        if (j == NULL) return NULL;
        rrpc_status st;
        int tries = 0;
        do {
            st = rrpc_client_reply(client, j->token, j->payload, j->len);
            if (st == RRPC_STATUS_BUSY || st == RRPC_STATUS_NOT_CONNECTED) sleep_ms(1);
        } while ((st == RRPC_STATUS_BUSY || st == RRPC_STATUS_NOT_CONNECTED) && ++tries < 1000);
        if (st == RRPC_STATUS_OK) atomic_fetch_add(&replies_ok, 1);
        else if (st == RRPC_STATUS_EXPIRED || st == RRPC_STATUS_DEVICE_REMOVED) atomic_fetch_add(&replies_refused, 1);
        else FAIL("deferred reply: %s", rrpc_status_str(st));
        free(j);
    }
}

static void *swapper(void *arg)
{
    cb_state **current = arg; /* [0] request callback, [1] connection callback */
    unsigned long n = 0;
    while (!atomic_load(&stop_flag)) {
        cb_state *next = state_new();
        rrpc_status st = rrpc_client_set_request_callback(client, n % 2 ? on_request_a : on_request_b, next);
        if (st != RRPC_STATUS_OK) FAIL("set_request_callback: %s", rrpc_status_str(st));
        state_free(current[0]);
        current[0] = next;
        if (n % 8 == 0) {
            cb_state *c = state_new();
            st = rrpc_client_set_connection_callback(client, on_connection, c);
            if (st != RRPC_STATUS_OK) FAIL("set_connection_callback: %s", rrpc_status_str(st));
            state_free(current[1]);
            current[1] = c;
        }
        n++;
        atomic_fetch_add(&swaps, 1);
        sleep_ms(1);
    }
    return NULL;
}

static void *churner(void *arg)
{
    (void)arg;
    unsigned long n = 0;
    while (!atomic_load(&stop_flag)) {
        char dn[16];
        snprintf(dn, sizeof dn, "c%lu", n % CHURN);
        rrpc_status st;
        while ((st = rrpc_client_add_device(client, RRPC_DIALECT_ALIBABA, PK, dn, NULL)) == RRPC_STATUS_BUSY)
            sleep_ms(1);
        if (st != RRPC_STATUS_OK) FAIL("add_device %s: %s", dn, rrpc_status_str(st));
        sleep_ms(20);
        st = rrpc_client_remove_device(client, RRPC_DIALECT_ALIBABA, PK, dn, NULL);
        if (st != RRPC_STATUS_OK) FAIL("remove_device %s: %s", dn, rrpc_status_str(st));
        n++;
        atomic_fetch_add(&churns, 1);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_flag)) {
        rrpc_client_stats stats;
        bool connected;
        char id[256];
        size_t len;
        if (rrpc_client_get_stats(client, &stats, sizeof stats) != RRPC_STATUS_OK ||
            rrpc_client_is_connected(client, &connected) != RRPC_STATUS_OK ||
            rrpc_client_get_client_id(client, id, sizeof id, &len) != RRPC_STATUS_OK || strlen(id) != len)
            FAIL("reading the client's state failed: %s", rrpc_last_error_message());
        atomic_fetch_add(&polls, 1);
        sleep_ms(1);
    }
    return NULL;
}

static void *calling(void *arg)
{
    long t = (long)(intptr_t)arg;
    unsigned long seq = 0;
    while (!atomic_load(&stop_flag)) {
        int churned = seq % 4 == 3; /* every fourth call goes to a device that comes and goes */
        char dn[16], payload[64];
        snprintf(dn, sizeof dn, churned ? "c%lu" : "s%lu", (unsigned long)((seq + (unsigned long)t) % (churned ? CHURN : STABLE)));
        int len = snprintf(payload, sizeof payload, "%s:%ld:%lu", dn, t, seq);
        rrpc_caller_call_params p;
        if (rrpc_caller_call_params_init(&p, sizeof p) != RRPC_STATUS_OK) {
            FAIL("call_params_init: %s", rrpc_last_error_message());
            return NULL;
        }
        p.product_key = PK;
        p.device_name = dn;
        p.payload = (const uint8_t *)payload;
        p.payload_len = (size_t)len;
        p.timeout_ms = churned ? 1000 : 8000;
        rrpc_response *resp = NULL;
        rrpc_status st = rrpc_caller_call(caller, &p, &resp);
        if (st != RRPC_STATUS_OK) {
            FAIL("call: %s", rrpc_status_str(st));
            return NULL;
        }
        rrpc_response_view v;
        if (rrpc_response_get_view(resp, &v, sizeof v) != RRPC_STATUS_OK) abort();
        int echoed = v.success && v.code == RRPC_CODE_SUCCESS && v.payload_len == (size_t)len &&
                     memcmp(v.payload, payload, (size_t)len) == 0;
        if (churned) {
            atomic_fetch_add(&churn_calls, 1);
            if (echoed) atomic_fetch_add(&churn_ok, 1);
            else if (v.code == RRPC_CODE_TIMEOUT) atomic_fetch_add(&churn_timeouts, 1);
            else FAIL("call to %s: code %s, %s", dn, rrpc_code_str(v.code), v.error_message ? v.error_message : "");
        } else {
            atomic_fetch_add(&stable_calls, 1);
            if (echoed) atomic_fetch_add(&stable_ok, 1);
            else FAIL("call to %s: code %s (%s), %zu bytes", dn, rrpc_code_str(v.code),
                      v.error_message ? v.error_message : "", v.payload_len);
        }
        if (rrpc_response_free(resp) != RRPC_STATUS_OK) FAIL("response_free: %s", rrpc_last_error_message());
        seq++;
    }
    return NULL;
}

static atomic_ulong warnings;
static void on_log(void *user_data, rrpc_log_level level, const char *message)
{
    (void)user_data;
    if (level <= RRPC_LOG_WARN) {
        atomic_fetch_add(&warnings, 1);
        fprintf(stderr, HARNESS_NAME ": library log %u: %s\n", level, message);
    }
}

/* A new client or caller (`family`) on the broker on 127.0.0.1:`port`, with its own
 * client id, into `out`. */
#define NEW_ON_BROKER(family, port, id, out)                                      \
    do {                                                                          \
        rrpc_mqtt_config mqtt_ = local_mqtt(port);                                \
        rrpc_##family##_config cfg_;                                              \
        mqtt_.client_id = (id);                                                   \
        CHECK(rrpc_##family##_config_init(&cfg_, sizeof cfg_) == RRPC_STATUS_OK); \
        cfg_.mqtt = &mqtt_;                                                       \
        CHECK(rrpc_##family##_new(&cfg_, (out)) == RRPC_STATUS_OK);               \
    } while (0)

int main(int argc, char **argv)
{
    CHECK(argc == 3);
    uint16_t port = (uint16_t)strtoul(argv[1], NULL, 10);
    long seconds = strtol(argv[2], NULL, 10);
    CHECK(port != 0 && seconds > 0);
    CHECK(rrpc_set_log_handler(on_log, NULL, RRPC_LOG_WARN) == RRPC_STATUS_OK);

    NEW_ON_BROKER(client, port, "thread-stress-device", &client);
    for (int i = 0; i < STABLE; i++) {
        char dn[16];
        snprintf(dn, sizeof dn, "s%d", i);
        CHECK(rrpc_client_add_device(client, RRPC_DIALECT_ALIBABA, PK, dn, NULL) == RRPC_STATUS_OK);
    }
    cb_state *current[2] = {state_new(), state_new()};
    CHECK(rrpc_client_set_request_callback(client, on_request_a, current[0]) == RRPC_STATUS_OK);
    CHECK(rrpc_client_set_connection_callback(client, on_connection, current[1]) == RRPC_STATUS_OK);
    CHECK(rrpc_client_start(client) == RRPC_STATUS_OK);
    NEW_ON_BROKER(caller, port, "thread-stress-caller", &caller);

    pthread_t repliers[REPLIERS], callers[CALLERS], swap_th, churn_th, read_th;
    for (int i = 0; i < REPLIERS; i++) CHECK(pthread_create(&repliers[i], NULL, replier, NULL) == 0);
    CHECK(pthread_create(&swap_th, NULL, swapper, current) == 0);
    CHECK(pthread_create(&churn_th, NULL, churner, NULL) == 0);
    CHECK(pthread_create(&read_th, NULL, reader, NULL) == 0);
    for (long i = 0; i < CALLERS; i++) CHECK(pthread_create(&callers[i], NULL, calling, (void *)(intptr_t)i) == 0);

    /* mono_ms uses CHECK, which counts in a plain int: the main thread's only. */
    uint64_t end = mono_ms() + (uint64_t)seconds * 1000;
    while (mono_ms() < end && !atomic_load(&failed)) sleep_ms(50);
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < CALLERS; i++) CHECK(pthread_join(callers[i], NULL) == 0);
    CHECK(pthread_join(swap_th, NULL) == 0);
    CHECK(pthread_join(churn_th, NULL) == 0);
    CHECK(pthread_join(read_th, NULL) == 0);

    /* The repliers answer what is queued while the client is still connected; then
     * stop: afterwards no callback runs, so the last states may go. */
    pthread_mutex_lock(&q.lock);
    q.closed = 1;
    pthread_cond_broadcast(&q.cond);
    pthread_mutex_unlock(&q.lock);
    for (int i = 0; i < REPLIERS; i++) CHECK(pthread_join(repliers[i], NULL) == 0);
    CHECK(rrpc_client_stop(client) == RRPC_STATUS_OK);

    rrpc_client_stats stats;
    CHECK(rrpc_client_get_stats(client, &stats, sizeof stats) == RRPC_STATUS_OK);
    CHECK(rrpc_client_free(client) == RRPC_STATUS_OK);
    state_free(current[0]);
    state_free(current[1]);
    CHECK(rrpc_caller_free(caller) == RRPC_STATUS_OK);

    unsigned long seen = atomic_load(&seen_requests) - atomic_load(&conn_events);
    printf(HARNESS_NAME ": %lu stable calls (%lu ok), %lu churned calls (%lu ok, %lu timed out), "
           "%lu requests seen (client counted %llu), %lu replies ok, %lu refused, %lu callback swaps, "
           "%lu add/remove cycles, %lu state polls, %lu connection events, %lu warnings\n",
           atomic_load(&stable_calls), atomic_load(&stable_ok), atomic_load(&churn_calls), atomic_load(&churn_ok),
           atomic_load(&churn_timeouts), seen, (unsigned long long)stats.requests, atomic_load(&replies_ok),
           atomic_load(&replies_refused), atomic_load(&swaps), atomic_load(&churns), atomic_load(&polls),
           atomic_load(&conn_events), atomic_load(&warnings));
    CHECK(!atomic_load(&failed));
    CHECK(atomic_load(&stable_calls) >= 20);
    CHECK(atomic_load(&stable_ok) == atomic_load(&stable_calls));
    CHECK(atomic_load(&swaps) >= 20 && atomic_load(&churns) >= 5 && atomic_load(&polls) >= 20);
    CHECK(seen == stats.requests);
    CHECK(stats.replied == atomic_load(&replies_ok));
    printf(HARNESS_NAME ": %d checks passed\n", checks);
    return 0;
}
