/* call_device: calls a device the way the RRpc API does, and prints the response
 * as JSON (or XML), for C test rigs and C services.
 *
 *   call_device --host 127.0.0.1 --port 1883 --product-key a1B2c3 --device-name dev1
 *               --payload "hello" --timeout 3000 [--dialect alibaba|tencent]
 *               [--topic /a1B2c3/dev1/user/update] [--xml] [--concurrent N]
 *
 * --concurrent N makes N calls at once with rrpc_caller_call_async and prints one
 * line per response; otherwise one blocking rrpc_caller_call.
 * Exit status: 0 SUCCESS, 2 invalid parameters, 3 TIMEOUT, 4 OFFLINE, 5 HALFCONN,
 * 6 UNKNOWN, 7 system error (broker unreachable).
 */
#define _POSIX_C_SOURCE 200809L
#include <rrpc.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int exit_status(const rrpc_response *r)
{
    rrpc_response_view v;
    if (rrpc_response_get_view(r, &v, sizeof v) != RRPC_STATUS_OK) return 7;
    if (!v.success) return (v.error_code && strcmp(v.error_code, "InvalidParameter") == 0) ? 2 : 7;
    switch (v.code) {
    case RRPC_CODE_SUCCESS: return 0;
    case RRPC_CODE_TIMEOUT: return 3;
    case RRPC_CODE_OFFLINE: return 4;
    case RRPC_CODE_HALFCONN: return 5;
    default: return 6;
    }
}

static void print_response(const rrpc_response *r, int xml)
{
    size_t len = 0;
    /* First ask for the length, then print into a buffer of that size. */
    rrpc_status st = xml ? rrpc_response_to_xml(r, NULL, 0, &len) : rrpc_response_to_json(r, NULL, 0, &len);
    if (st != RRPC_STATUS_BUFFER_TOO_SMALL) {
        fprintf(stderr, "call_device: %s\n", rrpc_last_error_message());
        return;
    }
    char *buf = malloc(len + 1);
    if (buf == NULL) return;
    if ((xml ? rrpc_response_to_xml(r, buf, len + 1, NULL) : rrpc_response_to_json(r, buf, len + 1, NULL)) ==
        RRPC_STATUS_OK)
        printf("%s%s", buf, xml ? "" : "\n");
    free(buf);
}

/* State shared with the response callbacks of --concurrent. */
struct batch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int left, worst;
};

static void on_response(void *user_data, const rrpc_response *response)
{
    struct batch *b = user_data;
    pthread_mutex_lock(&b->lock);
    print_response(response, 0);
    int st = exit_status(response);
    if (st > b->worst) b->worst = st;
    b->left--;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* Releases the caller; 7 (a system error) when that fails, else `status`. */
static int free_caller(rrpc_caller *caller, int status)
{
    if (rrpc_caller_free(caller) != RRPC_STATUS_OK) {
        fprintf(stderr, "call_device: rrpc_caller_free: %s\n", rrpc_last_error_message());
        return 7;
    }
    return status;
}

int main(int argc, char **argv)
{
    rrpc_mqtt_config mqtt;
    rrpc_caller_config cfg;
    rrpc_caller_call_params params;
    if (rrpc_mqtt_config_init(&mqtt, sizeof mqtt) != RRPC_STATUS_OK ||
        rrpc_caller_config_init(&cfg, sizeof cfg) != RRPC_STATUS_OK ||
        rrpc_caller_call_params_init(&params, sizeof params) != RRPC_STATUS_OK) {
        fprintf(stderr, "call_device: %s\n", rrpc_last_error_message());
        return 7;
    }
    mqtt.host = "127.0.0.1";
    cfg.mqtt = &mqtt;
    const char *payload = "", *dialect = "alibaba";
    int xml = 0, concurrent = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--xml")) { xml = 1; continue; }
        if (v == NULL) { fprintf(stderr, "call_device: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--host")) mqtt.host = v;
        else if (!strcmp(a, "--port")) mqtt.port = (uint16_t)atoi(v);
        else if (!strcmp(a, "--product-key")) params.product_key = v;
        else if (!strcmp(a, "--device-name")) params.device_name = v;
        else if (!strcmp(a, "--payload")) payload = v;
        else if (!strcmp(a, "--timeout")) params.timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--dialect")) dialect = v;
        else if (!strcmp(a, "--topic")) params.custom_topic = v;
        else if (!strcmp(a, "--concurrent")) concurrent = atoi(v);
        else { fprintf(stderr, "call_device: unknown option %s\n", a); return 2; }
        i++;
    }
    if (params.product_key == NULL || params.device_name == NULL) {
        fprintf(stderr, "usage: call_device --host H --port P --product-key PK --device-name DN "
                        "--payload TEXT --timeout MS [--dialect alibaba|tencent] [--topic T] [--xml] "
                        "[--concurrent N]\n");
        return 2;
    }
    if (rrpc_dialect_from_name(dialect, &params.dialect) != RRPC_STATUS_OK) {
        fprintf(stderr, "call_device: %s\n", rrpc_last_error_message());
        return 2;
    }
    params.payload = (const uint8_t *)payload;
    params.payload_len = strlen(payload);

    rrpc_caller *caller = NULL;
    rrpc_status st = rrpc_caller_new(&cfg, &caller);
    if (st != RRPC_STATUS_OK) {
        fprintf(stderr, "call_device: %s\n", rrpc_last_error_message());
        return st == RRPC_STATUS_CONNECT_FAILED ? 7 : 2;
    }

    int status;
    if (concurrent > 0) {
        struct batch b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, concurrent, 0};
        for (int i = 0; i < concurrent; i++) {
            if (rrpc_caller_call_async(caller, &params, on_response, &b) != RRPC_STATUS_OK) {
                fprintf(stderr, "call_device: %s\n", rrpc_last_error_message());
                pthread_mutex_lock(&b.lock);
                b.left--;
                b.worst = 7;
                pthread_mutex_unlock(&b.lock);
            }
        }
        pthread_mutex_lock(&b.lock);
        while (b.left > 0) pthread_cond_wait(&b.cond, &b.lock);
        status = b.worst;
        pthread_mutex_unlock(&b.lock);
    } else {
        rrpc_response *r = NULL;
        if (rrpc_caller_call(caller, &params, &r) != RRPC_STATUS_OK) {
            fprintf(stderr, "call_device: %s\n", rrpc_last_error_message());
            return free_caller(caller, 2);
        }
        print_response(r, xml);
        status = exit_status(r);
        if (rrpc_response_free(r) != RRPC_STATUS_OK) {
            fprintf(stderr, "call_device: rrpc_response_free: %s\n", rrpc_last_error_message());
            status = 7;
        }
    }
    return free_caller(caller, status);
}
