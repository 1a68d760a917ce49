/* Callback release, from C: after rrpc_router_set_request_callback, rrpc_router_set_publish,
 * rrpc_router_remove_device, rrpc_set_log_handler, rrpc_client_set_request_callback,
 * rrpc_client_set_connection_callback or a _free returns, the callback it replaced is not
 * running and never runs again, so the user_data it had may be freed at once. Each case
 * starts a callback that sleeps on another thread, releases it from the main thread,
 * checks that the release waited for it, and frees its user_data right away (valgrind,
 * which runs this harness too, reports any later touch). From inside the callback itself
 * the release is refused with RRPC_STATUS_WRONG_STATE.
 *
 *   release_harness                 the router and log cases (no network)
 *   release_harness PORT DEAD_PORT  also the client cases, against a broker on PORT;
 *                                   nothing listens on DEAD_PORT
 *
 * Prints "release harness: N checks passed" and exits 0, or names the failed check.
 * Built and run by tests/c_api/release_c.rs. */
#define _POSIX_C_SOURCE 200809L
#define HARNESS_NAME "release harness"
#define HARNESS_THREADS
#include "harness.h"

#include <string.h>

/* ---------------------------------------------------------------- router */

static rrpc_router *router;
static int refused_inside;

static void slow_router_cb(void *user_data, rrpc_router *r, const rrpc_request *req)
{
    (void)r; (void)req;
    slow_body(user_data);
}

static int quick_calls;
static void quick_router_cb(void *user_data, rrpc_router *r, const rrpc_request *req)
{
    (void)user_data;
    quick_calls++;
    CHECK(rrpc_router_reply(r, req->token, NULL, 0, mono_ms()) == RRPC_STATUS_OK);
}

static int32_t slow_publish(void *user_data, const char *topic, const uint8_t *payload, size_t len, int32_t qos)
{
    (void)topic; (void)payload; (void)len; (void)qos;
    slow_body(user_data);
    return 0;
}

static int32_t quick_publish(void *user_data, const char *topic, const uint8_t *payload, size_t len, int32_t qos)
{
    (void)user_data; (void)topic; (void)payload; (void)len; (void)qos;
    return 0;
}

/* Callbacks that try to release themselves. */
static void self_replacing_cb(void *user_data, rrpc_router *r, const rrpc_request *req)
{
    (void)user_data;
    if (rrpc_router_set_request_callback(r, quick_router_cb, NULL) == RRPC_STATUS_WRONG_STATE) refused_inside++;
    if (rrpc_router_free(r) == RRPC_STATUS_WRONG_STATE) refused_inside++;
    CHECK(rrpc_router_reply(r, req->token, NULL, 0, mono_ms()) == RRPC_STATUS_OK);
}

static void self_removing_cb(void *user_data, rrpc_router *r, const rrpc_request *req)
{
    (void)user_data; (void)req;
    if (rrpc_router_remove_device(r, RRPC_DIALECT_ALIBABA, "pk", "self", NULL, mono_ms()) == RRPC_STATUS_WRONG_STATE)
        refused_inside++;
    /* Another device may be removed from here. */
    if (rrpc_router_remove_device(r, RRPC_DIALECT_ALIBABA, "pk", "other", NULL, mono_ms()) == RRPC_STATUS_OK)
        refused_inside += 10;
}

static int32_t self_replacing_publish(void *user_data, const char *topic, const uint8_t *payload, size_t len,
                                      int32_t qos)
{
    (void)user_data; (void)topic; (void)payload; (void)len; (void)qos;
    if (rrpc_router_set_publish(router, quick_publish, NULL) == RRPC_STATUS_WRONG_STATE) refused_inside++;
    return 0;
}

static void handle(const char *topic)
{
    rrpc_message_kind kind = 99;
    CHECK(rrpc_router_handle_message(router, (const uint8_t *)topic, strlen(topic), (const uint8_t *)"x", 1, false,
                                     mono_ms(), &kind) == RRPC_STATUS_OK);
}

static void *handle_thread(void *topic)
{
    handle(topic);
    return NULL;
}

static uint64_t token_seen;
static void remember_cb(void *user_data, rrpc_router *r, const rrpc_request *req)
{
    (void)user_data; (void)r;
    token_seen = req->token;
}

static void *reply_thread(void *unused)
{
    (void)unused;
    CHECK(rrpc_router_reply(router, token_seen, (const uint8_t *)"y", 1, mono_ms()) == RRPC_STATUS_OK);
    return NULL;
}

static void router_cases(void)
{
    rrpc_router_config cfg;
    CHECK(rrpc_router_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    CHECK(rrpc_router_new(&cfg, &router) == RRPC_STATUS_OK);
    CHECK(rrpc_router_set_publish(router, quick_publish, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_add_device(router, RRPC_DIALECT_ALIBABA, "pk", "shared", NULL, NULL, NULL) == RRPC_STATUS_OK);

    /* The shared callback, replaced while it sleeps on another thread. */
    slow_state *s1 = slow_new();
    CHECK(rrpc_router_set_request_callback(router, slow_router_cb, s1) == RRPC_STATUS_OK);
    RELEASE_WHILE_RUNNING(handle_thread, "/sys/pk/shared/rrpc/request/1", s1,
                          rrpc_router_set_request_callback(router, quick_router_cb, NULL));
    handle("/sys/pk/shared/rrpc/request/2");
    CHECK(quick_calls == 1); /* the new one runs, the old one never again */

    /* A device's own callback, removed with the device while it sleeps. */
    slow_state *s2 = slow_new();
    CHECK(rrpc_router_add_device(router, RRPC_DIALECT_ALIBABA, "pk", "own", NULL, slow_router_cb, s2) ==
          RRPC_STATUS_OK);
    RELEASE_WHILE_RUNNING(handle_thread, "/sys/pk/own/rrpc/request/1", s2,
                          rrpc_router_remove_device(router, RRPC_DIALECT_ALIBABA, "pk", "own", NULL, mono_ms()));
    handle("/sys/pk/own/rrpc/request/2"); /* an unknown device now: dropped */

    /* The publish function, replaced while it sleeps inside a reply on another thread. */
    CHECK(rrpc_router_set_request_callback(router, remember_cb, NULL) == RRPC_STATUS_OK);
    handle("/sys/pk/shared/rrpc/request/3");
    slow_state *s3 = slow_new();
    CHECK(rrpc_router_set_publish(router, slow_publish, s3) == RRPC_STATUS_OK);
    RELEASE_WHILE_RUNNING(reply_thread, NULL, s3, rrpc_router_set_publish(router, quick_publish, NULL));

    /* From inside: a callback cannot replace itself or free the router, a device's own
     * callback cannot remove its device (another device it may), a publish function
     * cannot replace itself. Each refusal changes nothing. */
    CHECK(rrpc_router_set_request_callback(router, self_replacing_cb, NULL) == RRPC_STATUS_OK);
    handle("/sys/pk/shared/rrpc/request/4");
    CHECK(refused_inside == 2);
    CHECK(rrpc_router_add_device(router, RRPC_DIALECT_ALIBABA, "pk", "self", NULL, self_removing_cb, NULL) ==
          RRPC_STATUS_OK);
    CHECK(rrpc_router_add_device(router, RRPC_DIALECT_ALIBABA, "pk", "other", NULL, quick_router_cb, NULL) ==
          RRPC_STATUS_OK);
    handle("/sys/pk/self/rrpc/request/1");
    CHECK(refused_inside == 13);
    CHECK(rrpc_router_remove_device(router, RRPC_DIALECT_ALIBABA, "pk", "self", NULL, mono_ms()) == RRPC_STATUS_OK);
    CHECK(rrpc_router_set_request_callback(router, remember_cb, NULL) == RRPC_STATUS_OK);
    handle("/sys/pk/shared/rrpc/request/5");
    CHECK(rrpc_router_set_publish(router, self_replacing_publish, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_reply(router, token_seen, NULL, 0, mono_ms()) == RRPC_STATUS_OK);
    CHECK(refused_inside == 14);

    /* Free waits for a callback in flight on another thread, then none runs. */
    slow_state *s4 = slow_new();
    CHECK(rrpc_router_set_request_callback(router, slow_router_cb, s4) == RRPC_STATUS_OK);
    RELEASE_WHILE_RUNNING(handle_thread, "/sys/pk/shared/rrpc/request/6", s4, rrpc_router_free(router));
    router = NULL;

    /* Free waits for a publish function in flight inside a reply on another thread; that
     * reply then finishes on memory that is still there (valgrind would see otherwise). */
    CHECK(rrpc_router_new(&cfg, &router) == RRPC_STATUS_OK);
    CHECK(rrpc_router_set_request_callback(router, remember_cb, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_add_device(router, RRPC_DIALECT_ALIBABA, "pk", "shared", NULL, NULL, NULL) == RRPC_STATUS_OK);
    handle("/sys/pk/shared/rrpc/request/7");
    slow_state *s5 = slow_new();
    CHECK(rrpc_router_set_publish(router, slow_publish, s5) == RRPC_STATUS_OK);
    RELEASE_WHILE_RUNNING(reply_thread, NULL, s5, rrpc_router_free(router));
    router = NULL;
}

/* ------------------------------------------------------------------- log */

static void slow_log(void *user_data, rrpc_log_level level, const char *message)
{
    (void)level; (void)message;
    slow_body(user_data);
}

static int log_refused;
static void self_replacing_log(void *user_data, rrpc_log_level level, const char *message)
{
    (void)user_data; (void)level; (void)message;
    if (rrpc_set_log_handler(NULL, NULL, RRPC_LOG_OFF) == RRPC_STATUS_WRONG_STATE) log_refused++;
}

/* Something that logs at debug level: registering a device on a client. */
static void *log_something(void *unused)
{
    rrpc_mqtt_config mqtt = local_mqtt(1883);
    rrpc_client_config cfg;
    rrpc_client *c = NULL;
    (void)unused;
    CHECK(rrpc_client_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    cfg.mqtt = &mqtt;
    CHECK(rrpc_client_new(&cfg, &c) == RRPC_STATUS_OK);
    CHECK(rrpc_client_add_device(c, RRPC_DIALECT_ALIBABA, "pk", "logged", NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_client_free(c) == RRPC_STATUS_OK);
    return NULL;
}

static void log_cases(void)
{
    slow_state *s = slow_new();
    CHECK(rrpc_set_log_handler(slow_log, s, RRPC_LOG_DEBUG) == RRPC_STATUS_OK);
    RELEASE_WHILE_RUNNING(log_something, NULL, s, rrpc_set_log_handler(NULL, NULL, RRPC_LOG_OFF));
    CHECK(rrpc_set_log_handler(self_replacing_log, NULL, RRPC_LOG_DEBUG) == RRPC_STATUS_OK);
    log_something(NULL);
    CHECK(log_refused >= 1);
    CHECK(rrpc_set_log_handler(NULL, NULL, RRPC_LOG_OFF) == RRPC_STATUS_OK);
}

/* ---------------------------------------------------------------- client */

static void slow_request_cb(void *user_data, rrpc_client *c, const rrpc_request *req)
{
    CHECK(rrpc_client_reply(c, req->token, req->payload, req->payload_len) == RRPC_STATUS_OK);
    slow_body(user_data);
}

typedef struct {
    int connected, stopped, connect_failed, retries, refused_inside;
    char reason[256];
} events;

static void on_connection(void *user_data, const rrpc_connection_event *ev)
{
    events *e = user_data;
    if (ev->state == RRPC_CONNECTION_CONNECTED) e->connected++;
    if (ev->state == RRPC_CONNECTION_RECONNECTING && ev->attempt >= 1) e->retries++;
    if (ev->state == RRPC_CONNECTION_DISCONNECTED) {
        CHECK(ev->reason != NULL);
        snprintf(e->reason, sizeof e->reason, "%s", ev->reason);
        if (ev->cause == RRPC_DISCONNECT_STOPPED) e->stopped++;
        if (ev->cause == RRPC_DISCONNECT_CONNECT_FAILED) e->connect_failed++;
    }
}

static rrpc_client *the_client;
static void self_replacing_connection_cb(void *user_data, const rrpc_connection_event *ev)
{
    events *e = user_data;
    (void)ev;
    if (rrpc_client_set_connection_callback(the_client, NULL, NULL) == RRPC_STATUS_WRONG_STATE)
        e->refused_inside++;
}

static volatile int answered;
static void on_response(void *user_data, const rrpc_response *response)
{
    rrpc_response_view v;
    (void)user_data;
    CHECK(rrpc_response_get_view(response, &v, sizeof v) == RRPC_STATUS_OK);
    CHECK(v.success && v.code == RRPC_CODE_SUCCESS);
    answered = 1;
}

typedef struct {
    rrpc_caller *caller;
} call_arg;

static void *call_thread(void *arg)
{
    call_arg *a = arg;
    rrpc_caller_call_params p;
    CHECK(rrpc_caller_call_params_init(&p, sizeof p) == RRPC_STATUS_OK);
    p.product_key = "pk";
    p.device_name = "slow";
    p.timeout_ms = 5000;
    CHECK(rrpc_caller_call_async(a->caller, &p, on_response, NULL) == RRPC_STATUS_OK);
    return NULL;
}

static void client_cases(uint16_t port, uint16_t dead_port)
{
    rrpc_mqtt_config mqtt = local_mqtt(port);
    rrpc_client_config cfg;
    rrpc_client *c = NULL;
    events *ev = calloc(1, sizeof *ev);
    CHECK(ev != NULL);
    CHECK(rrpc_client_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    cfg.mqtt = &mqtt;
    CHECK(rrpc_client_new(&cfg, &c) == RRPC_STATUS_OK);
    CHECK(rrpc_client_add_device(c, RRPC_DIALECT_ALIBABA, "pk", "slow", NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_client_set_connection_callback(c, on_connection, ev) == RRPC_STATUS_OK);
    slow_state *s = slow_new();
    CHECK(rrpc_client_set_request_callback(c, slow_request_cb, s) == RRPC_STATUS_OK);
    CHECK(rrpc_client_start(c) == RRPC_STATUS_OK);
    CHECK(ev->connected == 1);

    rrpc_caller_config ccfg;
    rrpc_caller *caller = NULL;
    CHECK(rrpc_caller_config_init(&ccfg, sizeof ccfg) == RRPC_STATUS_OK);
    ccfg.mqtt = &mqtt;
    ccfg.presence = false;
    CHECK(rrpc_caller_new(&ccfg, &caller) == RRPC_STATUS_OK);

    /* The request callback, replaced while it sleeps on the client's thread. */
    call_arg a = {caller};
    RELEASE_WHILE_RUNNING(call_thread, &a, s, rrpc_client_set_request_callback(c, NULL, NULL));
    for (uint64_t t0 = mono_ms(); !answered; sleep_ms(5)) CHECK(mono_ms() - t0 < 5000);

    /* A clean stop is an event with its cause; the connection callback is released
     * by replacing it, and cannot replace itself from inside. */
    CHECK(rrpc_client_stop(c) == RRPC_STATUS_OK);
    CHECK(ev->stopped == 1 && strstr(ev->reason, "stopped") != NULL);
    events *ev2 = calloc(1, sizeof *ev2);
    CHECK(ev2 != NULL);
    the_client = c;
    CHECK(rrpc_client_set_connection_callback(c, self_replacing_connection_cb, ev2) == RRPC_STATUS_OK);
    free(ev); /* released above: no event reaches it any more */
    CHECK(rrpc_client_start(c) == RRPC_STATUS_OK);
    CHECK(ev2->refused_inside >= 1);
    CHECK(rrpc_caller_free(caller) == RRPC_STATUS_OK);
    CHECK(rrpc_client_free(c) == RRPC_STATUS_OK);
    free(ev2);

    /* A failed first connection: the status, a last error that says it never connected,
     * and the event with its cause; nothing is left running. */
    events *ev3 = calloc(1, sizeof *ev3);
    CHECK(ev3 != NULL);
    mqtt.port = dead_port;
    mqtt.connect_timeout_ms = 2000;
    CHECK(rrpc_client_new(&cfg, &c) == RRPC_STATUS_OK);
    CHECK(rrpc_client_set_connection_callback(c, on_connection, ev3) == RRPC_STATUS_OK);
    CHECK(rrpc_client_start(c) == RRPC_STATUS_CONNECT_FAILED);
    CHECK(strstr(rrpc_last_error_message(), "rrpc_client_start: could not connect to 127.0.0.1:") != NULL);
    CHECK(ev3->connect_failed == 1 && ev3->connected == 0 && ev3->reason[0] != 0);
    CHECK(rrpc_client_free(c) == RRPC_STATUS_OK);
    free(ev3);
}

int main(int argc, char **argv)
{
    router_cases();
    log_cases();
    if (argc >= 3) client_cases((uint16_t)atoi(argv[1]), (uint16_t)atoi(argv[2]));
    printf("release harness: %d checks passed\n", checks);
    return 0;
}
