/* paho_bare_echo: the baseline of the gateway benchmark. The same Paho MQTT C loop as
 * examples-c/paho_gateway.c, WITHOUT librrpc: it subscribes /sys/{pk}/+/rrpc/request/+
 * and answers every message by publishing its payload, unchanged (QoS 0), on the same
 * topic with /rrpc/request/ replaced by /rrpc/response/. No identity checks, no
 * duplicate suppression, no deadlines, no counters: the cost of the MQTT client alone.
 *
 *   paho_bare_echo --host 127.0.0.1 --port 1883 --product-key a1B2c3 --devices 1000
 *                  [--quiet] [--max-requests N] [--client-id ID]
 *
 * --devices is accepted for the same command line as the gateway and only appears in
 * the exit line (the wildcard covers every device name). Prints
 * "paho_bare_echo: connected" on stderr once subscribed, one line per request on
 * stdout ("request <topic> len=<n>") unless --quiet, and the count at exit. Exits
 * cleanly on SIGINT/SIGTERM or after --max-requests requests.
 *
 * Paho MQTT C never sets TCP_NODELAY and has no option for it (see paho_gateway.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <MQTTClient.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECEIVE_TIMEOUT_MS 100UL

static const char REQUEST[] = "/rrpc/request/";
static const char RESPONSE[] = "/rrpc/response/";

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The last "/rrpc/request/" in topic[0..len) (the message id holds no '/'), or NULL. */
static const char *find_request(const char *topic, size_t len)
{
    size_t n = sizeof REQUEST - 1;
    if (len < n) return NULL;
    for (size_t i = len - n + 1; i-- > 0;)
        if (memcmp(topic + i, REQUEST, n) == 0) return topic + i;
    return NULL;
}

static int connect_and_subscribe(MQTTClient mqtt, const char *filter)
{
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    opts.keepAliveInterval = 30;
    opts.cleansession = 1;
    opts.connectTimeout = 5;
    int rc = MQTTClient_connect(mqtt, &opts);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "paho_bare_echo: connect failed: %s (%d)\n", MQTTClient_strerror(rc), rc);
        return rc;
    }
    rc = MQTTClient_subscribe(mqtt, filter, 0);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "paho_bare_echo: subscribe %s failed: %s (%d)\n", filter, MQTTClient_strerror(rc), rc);
        MQTTClient_disconnect(mqtt, 0);
    }
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: paho_bare_echo --host H --port P --product-key PK --devices N\n"
                    "                      [--quiet] [--max-requests N] [--client-id ID]\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *pk = NULL, *client_id = NULL;
    long port = 1883, n_devices = 0;
    unsigned long max_requests = 0, handled = 0, failed = 0;
    int quiet = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quiet") == 0) { quiet = 1; continue; }
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
    if (pk == NULL || port <= 0 || port > 65535 || n_devices < 0 || strlen(pk) > 128) {
        usage();
        return 2;
    }

    char filter[200], uri[300], default_id[64];
    snprintf(filter, sizeof filter, "/sys/%s/+/rrpc/request/+", pk);
    snprintf(uri, sizeof uri, "tcp://%s:%ld", host, port);
    if (client_id == NULL) {
        snprintf(default_id, sizeof default_id, "paho_bare_echo-%ld", (long)getpid());
        client_id = default_id;
    }
    MQTTClient mqtt = NULL;
    int rc = MQTTClient_create(&mqtt, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    if (rc != MQTTCLIENT_SUCCESS) {
        fprintf(stderr, "paho_bare_echo: MQTTClient_create failed: %s (%d)\n", MQTTClient_strerror(rc), rc);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (connect_and_subscribe(mqtt, filter) != MQTTCLIENT_SUCCESS) {
        MQTTClient_destroy(&mqtt);
        return 1;
    }
    fprintf(stderr, "paho_bare_echo: connected\n");

    /* Reply topics: the request topic plus one byte; a heap buffer grown on demand. */
    char *reply_topic = NULL;
    size_t reply_cap = 0;
    long backoff_ms = 100;
    while (!stop_requested && (max_requests == 0 || handled < max_requests)) {
        char *topic = NULL;
        int topic_len = 0;
        MQTTClient_message *msg = NULL;
        rc = MQTTClient_receive(mqtt, &topic, &topic_len, &msg, RECEIVE_TIMEOUT_MS);
        if ((rc == MQTTCLIENT_SUCCESS || rc == MQTTCLIENT_TOPICNAME_TRUNCATED) && msg != NULL) {
            size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
            const char *at = rc == MQTTCLIENT_SUCCESS ? find_request(topic, tlen) : NULL;
            if (at != NULL && tlen + 2 > reply_cap) {
                char *grown = realloc(reply_topic, tlen + 2);
                if (grown != NULL) {
                    reply_topic = grown;
                    reply_cap = tlen + 2;
                }
            }
            if (at != NULL && tlen + 2 <= reply_cap) {
                size_t head = (size_t)(at - topic), rest = tlen - head - (sizeof REQUEST - 1);
                memcpy(reply_topic, topic, head);
                memcpy(reply_topic + head, RESPONSE, sizeof RESPONSE - 1);
                memcpy(reply_topic + head + sizeof RESPONSE - 1, at + sizeof REQUEST - 1, rest);
                reply_topic[tlen + 1] = '\0';
                if (!quiet) {
                    printf("request %.*s len=%d\n", (int)tlen, topic, msg->payloadlen);
                    fflush(stdout);
                }
                static const char empty[1] = {0};
                rc = MQTTClient_publish(mqtt, reply_topic, msg->payloadlen,
                                        msg->payloadlen > 0 ? msg->payload : (const void *)empty, 0, 0, NULL);
                if (rc != MQTTCLIENT_SUCCESS) failed++;
                handled++;
            }
            MQTTClient_freeMessage(&msg);
            MQTTClient_free(topic);
        } else if (rc != MQTTCLIENT_SUCCESS) {
            if (topic != NULL) MQTTClient_free(topic);
            if (msg != NULL) MQTTClient_freeMessage(&msg);
            if (stop_requested) break;
            if (!MQTTClient_isConnected(mqtt)) {
                fprintf(stderr, "paho_bare_echo: not connected (%d): reconnecting in %ld ms\n", rc, backoff_ms);
                for (long waited = 0; waited < backoff_ms && !stop_requested; waited += 50) sleep_ms(50);
                if (stop_requested) break;
                if (connect_and_subscribe(mqtt, filter) == MQTTCLIENT_SUCCESS) {
                    fprintf(stderr, "paho_bare_echo: connected\n");
                    backoff_ms = 100;
                } else if (backoff_ms < 5000) {
                    backoff_ms *= 2;
                }
            } else {
                sleep_ms(10);
            }
        }
    }
    if (MQTTClient_isConnected(mqtt)) MQTTClient_disconnect(mqtt, 100);
    MQTTClient_destroy(&mqtt);
    free(reply_topic);
    fprintf(stderr, "paho_bare_echo: %lu requests (--devices %ld), %lu publish failures\n", handled, n_devices,
            failed);
    return 0;
}
