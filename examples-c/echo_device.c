/* echo_device: answers every RRPC request with its own payload.
 *
 *   echo_device --host 127.0.0.1 --port 1883 --dialect alibaba \
 *               --product-key a1B2c3 --device-name dev1 [--device-name dev2 ...]
 *               [--topic /a1B2c3/dev1/user/update] [--yield] [--max-requests N]
 *               [--mqtt5] [--tls] [--ca-file ca.pem] [--cert c.pem --key c.key] [--tls-server-name N]
 *
 * Prints one line per request on stdout: "request <dialect> <pk>/<dn> id=<id> len=<n>",
 * followed by " ct=<n>" when the request carries a ContentType.
 * --yield runs the client in yield mode on the main thread instead of thread mode.
 * --max-requests exits cleanly after N requests (for leak checks under valgrind).
 * --quiet prints nothing per request (for benchmarks).
 * --presence announces the devices (retained online/offline, last will) so that
 * callers can tell OFFLINE and HALFCONN.
 * --tls connects over TLS, verified against the system's CA store or --ca-file (which
 * implies --tls); --cert and --key add a client certificate (mutual TLS).
 * Connection changes (up, lost, connect failed, retry in N ms) go to stderr.
 * Exits on SIGINT/SIGTERM, freeing everything.
 */
#define _POSIX_C_SOURCE 200809L
#include <rrpc.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEVICES 64

static volatile sig_atomic_t stop_requested = 0;
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static volatile unsigned long handled = 0;
static int quiet = 0;

static void on_request(void *user_data, rrpc_client *client, const rrpc_request *req)
{
    (void)user_data;
    if (!quiet) {
        char dialect[64];
        if (rrpc_dialect_name(req->dialect, dialect, sizeof dialect, NULL) != RRPC_STATUS_OK)
            snprintf(dialect, sizeof dialect, "%u", (unsigned)req->dialect);
        printf("request %s %s/%s id=%s len=%zu", dialect, req->product_key, req->device_name,
               req->message_id, req->payload_len);
        if (req->content_type >= 0) printf(" ct=%d", (int)req->content_type);
        /* The method, service or command name of the dialects that carry one (1.1). */
        if (RRPC_HAS_FIELD(req, rrpc_request, name) && req->name) printf(" name=%s", req->name);
        printf("\n");
    }
    if (!quiet) fflush(stdout);
    rrpc_status st = rrpc_client_reply(client, req->token, req->payload, req->payload_len);
    if (st != RRPC_STATUS_OK)
        fprintf(stderr, "echo_device: reply failed: %s\n", rrpc_last_error_message());
    handled++;
}

static void on_connection(void *user_data, const rrpc_connection_event *ev)
{
    (void)user_data;
    if (ev->state == RRPC_CONNECTION_CONNECTED)
        fprintf(stderr, "echo_device: connection: up\n");
    else if (ev->state == RRPC_CONNECTION_DISCONNECTED)
        fprintf(stderr, "echo_device: connection: %s: %s\n",
                ev->cause == RRPC_DISCONNECT_LOST ? "lost"
                : ev->cause == RRPC_DISCONNECT_CONNECT_FAILED ? "connect failed" : "stopped",
                ev->reason);
    else
        fprintf(stderr, "echo_device: connection: retry %u in %llu ms\n", ev->attempt,
                (unsigned long long)ev->delay_ms);
}

static int fail(const char *what, rrpc_status st)
{
    fprintf(stderr, "echo_device: %s failed (%s): %s\n", what, rrpc_status_str(st),
            rrpc_last_error_message());
    return 1;
}

/* fail(), then releases the client. */
static int fail_free(rrpc_client *client, const char *what, rrpc_status st)
{
    int rc = fail(what, st);
    if (rrpc_client_free(client) != RRPC_STATUS_OK)
        fprintf(stderr, "echo_device: rrpc_client_free: %s\n", rrpc_last_error_message());
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: echo_device --host H --port P --dialect NAME (alibaba, tencent, azure, ...)\n"
            "                   --product-key PK --device-name DN [--device-name DN2 ...]\n"
            "                   [--topic /custom/topic] [--yield] [--max-requests N]\n"
            "                   [--client-id ID] [--connect-timeout-ms MS] [--quiet] [--presence]\n"
            "                   [--mqtt5] [--tls] [--ca-file PEM] [--cert PEM --key PEM] [--tls-server-name NAME]\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *dialect_name = "alibaba", *pk = NULL, *topic = NULL;
    const char *client_id = NULL;
    const char *ca_file = NULL, *cert_file = NULL, *key_file = NULL, *server_name = NULL;
    const char *names[MAX_DEVICES];
    int n_names = 0, use_yield = 0, presence = 0, tls = 0, mqtt5 = 0;
    long port = 1883, connect_timeout = -1;
    unsigned long max_requests = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--yield") == 0) { use_yield = 1; continue; }
        if (strcmp(a, "--quiet") == 0) { quiet = 1; continue; }
        if (strcmp(a, "--presence") == 0) { presence = 1; continue; }
        if (strcmp(a, "--tls") == 0) { tls = 1; continue; }
        if (strcmp(a, "--mqtt5") == 0) { mqtt5 = 1; continue; }
        if (v == NULL) { usage(); return 2; }
        if (strcmp(a, "--host") == 0) host = v;
        else if (strcmp(a, "--port") == 0) port = strtol(v, NULL, 10);
        else if (strcmp(a, "--dialect") == 0) dialect_name = v;
        else if (strcmp(a, "--product-key") == 0) pk = v;
        else if (strcmp(a, "--device-name") == 0 && n_names < MAX_DEVICES) names[n_names++] = v;
        else if (strcmp(a, "--topic") == 0) topic = v;
        else if (strcmp(a, "--client-id") == 0) client_id = v;
        else if (strcmp(a, "--max-requests") == 0) max_requests = strtoul(v, NULL, 10);
        else if (strcmp(a, "--connect-timeout-ms") == 0) connect_timeout = strtol(v, NULL, 10);
        else if (strcmp(a, "--ca-file") == 0) { ca_file = v; tls = 1; }
        else if (strcmp(a, "--cert") == 0) { cert_file = v; tls = 1; }
        else if (strcmp(a, "--key") == 0) { key_file = v; tls = 1; }
        else if (strcmp(a, "--tls-server-name") == 0) { server_name = v; tls = 1; }
        else { usage(); return 2; }
        i++;
    }
    if (pk == NULL || n_names == 0 || port <= 0 || port > 65535) { usage(); return 2; }

    rrpc_dialect dialect;
    rrpc_status st = rrpc_dialect_from_name(dialect_name, &dialect);
    if (st != RRPC_STATUS_OK) return fail("--dialect", st);

    rrpc_mqtt_config mqtt;
    if ((st = rrpc_mqtt_config_init(&mqtt, sizeof mqtt)) != RRPC_STATUS_OK)
        return fail("rrpc_mqtt_config_init", st);
    mqtt.host = host;
    mqtt.port = (uint16_t)port;
    if (mqtt5) mqtt.mqtt_version = RRPC_MQTT_V5; /* needed by the mqtt5 dialect */
    mqtt.client_id = client_id;
    if (connect_timeout >= 0) mqtt.connect_timeout_ms = (uint32_t)connect_timeout;
    mqtt.tls = tls != 0;
    mqtt.tls_ca_file = ca_file;
    mqtt.tls_cert_file = cert_file;
    mqtt.tls_key_file = key_file;
    mqtt.tls_server_name = server_name;

    rrpc_client_config cfg;
    if ((st = rrpc_client_config_init(&cfg, sizeof cfg)) != RRPC_STATUS_OK)
        return fail("rrpc_client_config_init", st);
    cfg.mqtt = &mqtt;
    cfg.presence = presence != 0;

    rrpc_client *client = NULL;
    if ((st = rrpc_client_new(&cfg, &client)) != RRPC_STATUS_OK) return fail("rrpc_client_new", st);
    for (int i = 0; i < n_names; i++) {
        st = rrpc_client_add_device(client, dialect, pk, names[i], topic);
        if (st != RRPC_STATUS_OK) return fail_free(client, "rrpc_client_add_device", st);
    }
    if ((st = rrpc_client_set_request_callback(client, on_request, NULL)) != RRPC_STATUS_OK)
        return fail_free(client, "rrpc_client_set_request_callback", st);
    if ((st = rrpc_client_set_connection_callback(client, on_connection, NULL)) != RRPC_STATUS_OK)
        return fail_free(client, "rrpc_client_set_connection_callback", st);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    if (use_yield) {
        fprintf(stderr, "echo_device: yield mode, %s:%ld\n", host, port);
        while (!stop_requested && (max_requests == 0 || handled < max_requests)) {
            st = rrpc_client_yield(client, 100);
            if (st == RRPC_STATUS_CONNECT_FAILED)
                fprintf(stderr, "echo_device: %s (retrying)\n", rrpc_last_error_message());
            else if (st != RRPC_STATUS_OK) return fail_free(client, "rrpc_client_yield", st);
        }
    } else {
        if ((st = rrpc_client_start(client)) != RRPC_STATUS_OK)
            return fail_free(client, "rrpc_client_start", st);
        fprintf(stderr, "echo_device: connected to %s:%ld\n", host, port);
        while (!stop_requested && (max_requests == 0 || handled < max_requests))
            sleep_ms(20);
    }
    /* No wait for the last reply: stopping (inside rrpc_client_free) sends what is
     * queued before it disconnects. */
    rrpc_client_stats stats;
    if ((st = rrpc_client_get_stats(client, &stats, sizeof stats)) != RRPC_STATUS_OK)
        return fail_free(client, "rrpc_client_get_stats", st);
    fprintf(stderr, "echo_device: %llu requests, %llu replies, %llu dropped as malformed\n",
            (unsigned long long)stats.requests, (unsigned long long)stats.replied,
            (unsigned long long)stats.malformed);
    if ((st = rrpc_client_free(client)) != RRPC_STATUS_OK) return fail("rrpc_client_free", st);
    return 0;
}
