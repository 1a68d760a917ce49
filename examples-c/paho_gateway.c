/* paho_gateway: a gateway that owns its MQTT connection (Eclipse Paho MQTT C, the
 * synchronous MQTTClient API) and uses librrpc's transport-less router for RRPC.
 *
 *   paho_gateway --host 127.0.0.1 --port 1883 --product-key a1B2c3 --devices 1000
 *                [--quiet] [--max-requests N] [--client-id ID]
 *
 * Serves the Alibaba system-topic RRPC requests of sub-devices dev0 ... dev{N-1} on
 * ONE Paho connection and answers each with its own payload, unchanged:
 *
 *   - one rrpc_router, N devices sharing its callback, which replies with the payload;
 *   - the router's publish function is MQTTClient_publish (QoS 0, not retained);
 *   - the wildcard filters of rrpc_router_get_filters(RRPC_FILTERS_WILDCARD) are
 *     subscribed (one filter, /sys/+/+/rrpc/request/+, for any number of devices);
 *   - the main loop feeds every message from MQTTClient_receive to
 *     rrpc_router_handle_message with the time (rrpc_monotonic_ms; the router reads
 *     no clock) and calls rrpc_router_tick every iteration, waking no later than the
 *     next deadline it reports.
 *
 * Prints "paho_gateway: connected, serving N devices" on stderr once subscribed, one
 * line per request on stdout ("request <pk>/<dn> id=<id> len=<n>") unless --quiet,
 * and the router's counters on stderr at exit. Exits cleanly on SIGINT/SIGTERM, or
 * after --max-requests requests (for leak checks under valgrind), freeing the router
 * and the Paho client. If the connection drops, it reconnects and subscribes again.
 *
 * Latency note: Paho MQTT C never sets TCP_NODELAY on its socket and has no option
 * for it (and no public way to reach the file descriptor). Each reply is a single
 * writev(), so a request/response exchange does not wait on Nagle, but replies that
 * follow each other closely may be coalesced by the kernel.
 */
#define _POSIX_C_SOURCE 200809L
#include <MQTTClient.h>
#include <rrpc.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECEIVE_TIMEOUT_MS 100UL
#define MAX_DEVICES 1000000L

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct gateway {
    MQTTClient mqtt;
    rrpc_router *router;
    char **filters; /* the wildcard filters to (re)subscribe, owned */
    size_t n_filters;
    int filter_oom;
    int quiet;
    unsigned long handled;
    uint64_t now_ms; /* the time the message being handled was given to the router */
};

/* The router's clock: CLOCK_MONOTONIC in ms. */
static uint64_t now_ms(void)
{
    uint64_t t = 0;
    if (rrpc_monotonic_ms(&t) != RRPC_STATUS_OK)
        fprintf(stderr, "paho_gateway: rrpc_monotonic_ms: %s\n", rrpc_last_error_message());
    return t;
}

/* The router's publish function: hands the reply to Paho (QoS 0, not retained). */
static int32_t publish(void *user_data, const char *topic, const uint8_t *payload, size_t len, int32_t qos)
{
    struct gateway *gw = user_data;
    static const char empty[1] = {0};
    (void)qos; /* always 0 */
    if (len > (size_t)INT_MAX) return -1;
    int rc = MQTTClient_publish(gw->mqtt, topic, (int)len, payload ? (const void *)payload : (const void *)empty,
                                0, 0, NULL);
    return rc == MQTTCLIENT_SUCCESS ? 0 : -1;
}

/* The callback every sub-device shares: echo the payload. */
static void on_request(void *user_data, rrpc_router *router, const rrpc_request *req)
{
    struct gateway *gw = user_data;
    if (!gw->quiet) {
        printf("request %s/%s id=%s len=%zu\n", req->product_key, req->device_name, req->message_id,
               req->payload_len);
        fflush(stdout);
    }
    rrpc_status st = rrpc_router_reply(router, req->token, req->payload, req->payload_len, gw->now_ms);
    if (st != RRPC_STATUS_OK)
        fprintf(stderr, "paho_gateway: reply failed (%s): %s\n", rrpc_status_str(st), rrpc_last_error_message());
    gw->handled++;
}

static void on_filter(void *user_data, const char *filter)
{
    struct gateway *gw = user_data;
    char **grown = realloc(gw->filters, (gw->n_filters + 1) * sizeof *grown);
    char *copy = malloc(strlen(filter) + 1);
    if (grown == NULL || copy == NULL) {
        free(copy);
        if (grown != NULL) gw->filters = grown;
        gw->filter_oom = 1;
        return;
    }
    strcpy(copy, filter);
    gw->filters = grown;
    gw->filters[gw->n_filters++] = copy;
}

/* Connects and subscribes every filter; MQTTCLIENT_SUCCESS or a Paho error code. */
static int connect_and_subscribe(struct gateway *gw)
{
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    opts.keepAliveInterval = 30;
    opts.cleansession = 1;
    opts.connectTimeout = 5;
    int rc = MQTTClient_connect(gw->mqtt, &opts);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "paho_gateway: connect failed: %s (%d)\n", MQTTClient_strerror(rc), rc);
        return rc;
    }
    for (size_t i = 0; i < gw->n_filters; i++) {
        rc = MQTTClient_subscribe(gw->mqtt, gw->filters[i], 0);
        if (rc != MQTTCLIENT_SUCCESS) {
            fprintf(stderr, "paho_gateway: subscribe %s failed: %s (%d)\n", gw->filters[i],
                    MQTTClient_strerror(rc), rc);
            MQTTClient_disconnect(gw->mqtt, 0);
            return rc;
        }
    }
    return MQTTCLIENT_SUCCESS;
}

static void print_stats(rrpc_router *router)
{
    rrpc_router_stats s;
    if (rrpc_router_get_stats(router, &s, sizeof s) != RRPC_STATUS_OK) {
        fprintf(stderr, "paho_gateway: rrpc_router_get_stats: %s\n", rrpc_last_error_message());
        return;
    }
    fprintf(stderr,
            "paho_gateway: stats messages=%llu requests=%llu replied=%llu expired=%llu duplicates=%llu "
            "malformed=%llu unknown_device=%llu table_full=%llu too_large=%llu late_replies=%llu "
            "bad_tokens=%llu send_failures=%llu not_rrpc=%llu pending=%llu devices=%llu\n",
            (unsigned long long)s.messages, (unsigned long long)s.requests, (unsigned long long)s.replied,
            (unsigned long long)s.expired, (unsigned long long)s.duplicates, (unsigned long long)s.malformed,
            (unsigned long long)s.unknown_device, (unsigned long long)s.table_full,
            (unsigned long long)s.too_large, (unsigned long long)s.late_replies,
            (unsigned long long)s.bad_tokens, (unsigned long long)s.send_failures,
            (unsigned long long)s.not_rrpc, (unsigned long long)s.pending, (unsigned long long)s.devices);
}

static void usage(void)
{
    fprintf(stderr, "usage: paho_gateway --host H --port P --product-key PK --devices N\n"
                    "                    [--quiet] [--max-requests N] [--client-id ID]\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *pk = NULL, *client_id = NULL;
    long port = 1883, n_devices = 0;
    unsigned long max_requests = 0;
    struct gateway gw;
    memset(&gw, 0, sizeof gw);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quiet") == 0) { gw.quiet = 1; continue; }
        if (v == NULL) { usage(); return 2; }
        if (strcmp(a, "--host") == 0) host = v;
        else if (strcmp(a, "--port") == 0) port = strtol(v, NULL, 10);
        else if (strcmp(a, "--product-key") == 0) pk = v;
        else if (strcmp(a, "--devices") == 0) n_devices = strtol(v, NULL, 10);
        else if (strcmp(a, "--max-requests") == 0) max_requests = strtoul(v, NULL, 10);
        else if (strcmp(a, "--client-id") == 0) client_id = v;
        else { usage(); return 2; }
        i++;
    }
    if (pk == NULL || port <= 0 || port > 65535 || n_devices <= 0 || n_devices > MAX_DEVICES) {
        usage();
        return 2;
    }

    /* The router: N sub-devices, one shared callback, Paho as the publisher. */
    rrpc_router_config cfg;
    rrpc_status st = rrpc_router_config_init(&cfg, sizeof cfg);
    if (st == RRPC_STATUS_OK) st = rrpc_router_new(&cfg, &gw.router);
    if (st != RRPC_STATUS_OK) {
        fprintf(stderr, "paho_gateway: rrpc_router_new: %s\n", rrpc_last_error_message());
        return 1;
    }
    int exit_code = 1;
    char name[32];
    /* Shared by every device added below. */
    if (rrpc_router_set_request_callback(gw.router, on_request, &gw) != RRPC_STATUS_OK) {
        fprintf(stderr, "paho_gateway: rrpc_router_set_request_callback: %s\n", rrpc_last_error_message());
        goto out_router;
    }
    for (long i = 0; i < n_devices; i++) {
        snprintf(name, sizeof name, "dev%ld", i);
        st = rrpc_router_add_device(gw.router, RRPC_DIALECT_ALIBABA, pk, name, NULL, NULL, NULL);
        if (st != RRPC_STATUS_OK) {
            fprintf(stderr, "paho_gateway: add %s/%s: %s\n", pk, name, rrpc_last_error_message());
            goto out_router;
        }
    }
    st = rrpc_router_get_filters(gw.router, RRPC_FILTERS_WILDCARD, on_filter, &gw);
    if (st != RRPC_STATUS_OK || gw.filter_oom || gw.n_filters == 0) {
        fprintf(stderr, "paho_gateway: no subscription filters: %s\n", rrpc_last_error_message());
        goto out_router;
    }

    /* The Paho client: synchronous mode (no callbacks set, so MQTTClient_receive works). */
    char uri[300], default_id[64];
    snprintf(uri, sizeof uri, "tcp://%s:%ld", host, port);
    if (client_id == NULL) {
        snprintf(default_id, sizeof default_id, "paho_gateway-%ld", (long)getpid());
        client_id = default_id;
    }
    int rc = MQTTClient_create(&gw.mqtt, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "paho_gateway: MQTTClient_create failed: %s (%d)\n", MQTTClient_strerror(rc), rc);
        goto out_router;
    }
    if (rrpc_router_set_publish(gw.router, publish, &gw) != RRPC_STATUS_OK) {
        fprintf(stderr, "paho_gateway: rrpc_router_set_publish: %s\n", rrpc_last_error_message());
        goto out_mqtt;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (connect_and_subscribe(&gw) != MQTTCLIENT_SUCCESS) goto out_mqtt;
    fprintf(stderr, "paho_gateway: connected, serving %ld devices\n", n_devices);

    long backoff_ms = 100;
    uint64_t next_deadline = UINT64_MAX;
    while (!stop_requested && (max_requests == 0 || gw.handled < max_requests)) {
        char *topic = NULL;
        int topic_len = 0;
        MQTTClient_message *msg = NULL;
        /* Wake up for the next message, or when the earliest request is due. */
        uint64_t now = now_ms();
        unsigned long wait_ms = RECEIVE_TIMEOUT_MS;
        if (next_deadline != UINT64_MAX)
            wait_ms = next_deadline <= now ? 0 : (unsigned long)(next_deadline - now) < wait_ms
                                                     ? (unsigned long)(next_deadline - now) : wait_ms;
        rc = MQTTClient_receive(gw.mqtt, &topic, &topic_len, &msg, wait_ms);
        if ((rc == MQTTCLIENT_SUCCESS || rc == MQTTCLIENT_TOPICNAME_TRUNCATED) && msg != NULL) {
            /* topicLen 0 means "NUL-terminated"; otherwise it is the exact length
             * (TOPICNAME_TRUNCATED: the topic holds a NUL, which makes it malformed). */
            size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
            size_t plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
            rrpc_message_kind kind = 0;
            gw.now_ms = now_ms();
            /* A retained request is never executed: pass the flag on. */
            if (rrpc_router_handle_message(gw.router, (const uint8_t *)topic, tlen,
                                           plen ? (const uint8_t *)msg->payload : NULL, plen,
                                           msg->retained != 0, gw.now_ms, &kind) != RRPC_STATUS_OK)
                fprintf(stderr, "paho_gateway: rrpc_router_handle_message: %s\n", rrpc_last_error_message());
            MQTTClient_freeMessage(&msg);
            MQTTClient_free(topic);
        } else if (rc != MQTTCLIENT_SUCCESS) {
            if (topic != NULL) MQTTClient_free(topic);
            if (msg != NULL) MQTTClient_freeMessage(&msg);
            if (stop_requested) break; /* a signal interrupted Paho's select */
            if (!MQTTClient_isConnected(gw.mqtt)) {
                fprintf(stderr, "paho_gateway: not connected (%d): reconnecting in %ld ms\n", rc, backoff_ms);
                for (long waited = 0; waited < backoff_ms && !stop_requested; waited += 50) sleep_ms(50);
                if (stop_requested) break;
                if (connect_and_subscribe(&gw) == MQTTCLIENT_SUCCESS) {
                    fprintf(stderr, "paho_gateway: connected, serving %ld devices\n", n_devices);
                    backoff_ms = 100;
                } else if (backoff_ms < 5000) {
                    backoff_ms *= 2;
                }
            } else {
                sleep_ms(10); /* a transient error: do not spin */
            }
        }
        if (rrpc_router_tick(gw.router, now_ms(), &next_deadline) != RRPC_STATUS_OK)
            fprintf(stderr, "paho_gateway: rrpc_router_tick: %s\n", rrpc_last_error_message());
    }
    exit_code = 0;
    if (MQTTClient_isConnected(gw.mqtt)) MQTTClient_disconnect(gw.mqtt, 100);

out_mqtt:
    if (rrpc_router_set_publish(gw.router, NULL, NULL) != RRPC_STATUS_OK) {
        fprintf(stderr, "paho_gateway: rrpc_router_set_publish: %s\n", rrpc_last_error_message());
        exit_code = 1;
    }
    MQTTClient_destroy(&gw.mqtt);
out_router:
    print_stats(gw.router);
    if (rrpc_router_free(gw.router) != RRPC_STATUS_OK) {
        fprintf(stderr, "paho_gateway: rrpc_router_free: %s\n", rrpc_last_error_message());
        exit_code = 1;
    }
    for (size_t i = 0; i < gw.n_filters; i++) free(gw.filters[i]);
    free(gw.filters);
    return exit_code;
}
