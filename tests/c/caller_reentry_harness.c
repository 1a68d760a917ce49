/* Re-entrancy from a caller's response callback, from C: inside rrpc_caller_response_cb,
 * rrpc_client_stop, rrpc_client_yield and rrpc_client_free (of a running client and of
 * one in yield mode), rrpc_caller_free and rrpc_caller_call would wait for the very
 * thread that runs the callback. Each returns RRPC_STATUS_WRONG_STATE with a message,
 * changes nothing, and everything is released normally afterwards (valgrind, which runs
 * this harness too, reports any leak).
 *
 *   caller_reentry_harness PORT   against a broker on PORT
 *
 * Prints "caller reentry harness: N checks passed" and exits 0, or names the failed
 * check. Built and run by tests/c_api/caller_reentry_c.rs. */
#define _POSIX_C_SOURCE 200809L
#define HARNESS_NAME "caller reentry harness"
#include "harness.h"

#include <string.h>

typedef struct {
    rrpc_client *running;  /* started, thread mode */
    rrpc_client *yielding; /* yield mode */
    rrpc_caller *caller;
    rrpc_status stop, yield, free_running, free_yielding, caller_free, caller_call;
    char message[512];
    uint32_t code;
    volatile int done;
} inside;

static void on_response(void *user_data, const rrpc_response *response)
{
    inside *in = user_data;
    rrpc_response_view v;
    if (rrpc_response_get_view(response, &v, sizeof v) == RRPC_STATUS_OK) in->code = v.code;
    in->stop = rrpc_client_stop(in->running);
    strncpy(in->message, rrpc_last_error_message(), sizeof in->message - 1);
    in->yield = rrpc_client_yield(in->yielding, 0);
    in->free_running = rrpc_client_free(in->running);
    in->free_yielding = rrpc_client_free(in->yielding);
    in->caller_free = rrpc_caller_free(in->caller);
    rrpc_caller_call_params p;
    CHECK(rrpc_caller_call_params_init(&p, sizeof p) == RRPC_STATUS_OK);
    p.product_key = "pk";
    p.device_name = "nobody";
    p.timeout_ms = 1000;
    rrpc_response *r = NULL;
    in->caller_call = rrpc_caller_call(in->caller, &p, &r);
    in->done = 1;
}

static rrpc_client *client(int port)
{
    rrpc_mqtt_config mqtt = local_mqtt((uint16_t)port);
    rrpc_client_config cfg;
    CHECK(rrpc_client_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    cfg.mqtt = &mqtt;
    rrpc_client *c = NULL;
    CHECK(rrpc_client_new(&cfg, &c) == RRPC_STATUS_OK);
    return c;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    inside in;
    memset(&in, 0, sizeof in);
    in.running = client(port);
    CHECK(rrpc_client_start(in.running) == RRPC_STATUS_OK);
    in.yielding = client(port);
    CHECK(rrpc_client_yield(in.yielding, 50) == RRPC_STATUS_OK);

    rrpc_mqtt_config cmqtt = local_mqtt((uint16_t)port);
    cmqtt.connect_timeout_ms = 5000;
    rrpc_caller_config ccfg;
    CHECK(rrpc_caller_config_init(&ccfg, sizeof ccfg) == RRPC_STATUS_OK);
    ccfg.mqtt = &cmqtt;
    CHECK(rrpc_caller_new(&ccfg, &in.caller) == RRPC_STATUS_OK);

    /* Nobody answers: the callback runs on the caller's own thread at the timeout. */
    rrpc_caller_call_params p;
    CHECK(rrpc_caller_call_params_init(&p, sizeof p) == RRPC_STATUS_OK);
    p.product_key = "pk";
    p.device_name = "mute";
    p.timeout_ms = 1000;
    CHECK(rrpc_caller_call_async(in.caller, &p, on_response, &in) == RRPC_STATUS_OK);
    for (int i = 0; i < 500 && !in.done; i++) sleep_ms(10);
    CHECK(in.done);
    CHECK(in.code == RRPC_CODE_TIMEOUT);
    CHECK(in.stop == RRPC_STATUS_WRONG_STATE);
    CHECK(strstr(in.message, "rrpc_client_stop") != NULL);
    CHECK(strstr(in.message, "callback") != NULL);
    CHECK(in.yield == RRPC_STATUS_WRONG_STATE);
    CHECK(in.free_running == RRPC_STATUS_WRONG_STATE);
    CHECK(in.free_yielding == RRPC_STATUS_WRONG_STATE);
    CHECK(in.caller_free == RRPC_STATUS_WRONG_STATE);
    CHECK(in.caller_call == RRPC_STATUS_WRONG_STATE);

    /* Nothing was released inside: all of it still works, and is released here. */
    CHECK(rrpc_client_yield(in.yielding, 0) == RRPC_STATUS_OK);
    CHECK(rrpc_client_stop(in.running) == RRPC_STATUS_OK);
    CHECK(rrpc_client_free(in.running) == RRPC_STATUS_OK);
    CHECK(rrpc_client_free(in.yielding) == RRPC_STATUS_OK);
    rrpc_response *r = NULL;
    p.device_name = "mute2";
    CHECK(rrpc_caller_call(in.caller, &p, &r) == RRPC_STATUS_OK);
    rrpc_response_view v;
    CHECK(rrpc_response_get_view(r, &v, sizeof v) == RRPC_STATUS_OK);
    CHECK(v.code == RRPC_CODE_TIMEOUT);
    CHECK(rrpc_response_free(r) == RRPC_STATUS_OK);
    CHECK(rrpc_caller_free(in.caller) == RRPC_STATUS_OK);
    printf("caller reentry harness: %d checks passed\n", checks);
    return 0;
}
