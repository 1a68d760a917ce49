/* deferred_reply: the callback only queues the request; a worker thread answers it
 * later by token, the way a device answers when the work takes a while (a sensor
 * read, a motor move) and must not block the client.
 *
 *   deferred_reply --host 127.0.0.1 --port 1883 --dialect alibaba \
 *                  --product-key a1B2c3 --device-name dev1 [--delay-ms 20]
 *                  [--max-requests N] [--presence 1]
 *
 * The reply is "done:" followed by the request payload. Prints one line per reply.
 */
#define _POSIX_C_SOURCE 200809L
#include <rrpc.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
    struct job *next;
    uint64_t token;
    size_t len;
    unsigned char payload[]; /* copied: the request's buffer dies with the callback */
};

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    int closed;
};

static struct queue q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0};
static volatile sig_atomic_t stop_requested = 0;
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

/* Runs on the client's thread: copy, enqueue, return at once. */
static void on_request(void *user_data, rrpc_client *client, const rrpc_request *req)
{
    (void)user_data; (void)client;
    struct job *j = malloc(sizeof *j + req->payload_len);
    if (j == NULL) return; /* the request expires; the caller sees a timeout */
    j->next = NULL;
    j->token = req->token;
    j->len = req->payload_len;
    if (req->payload_len) memcpy(j->payload, req->payload, req->payload_len);
    pthread_mutex_lock(&q.lock);
    if (q.tail) q.tail->next = j; else q.head = j;
    q.tail = j;
    pthread_cond_signal(&q.cond);
    pthread_mutex_unlock(&q.lock);
}

struct worker_args { rrpc_client *client; long delay_ms; unsigned long max; unsigned long done; };

/* Any thread may reply by token. */
static void *worker(void *p)
{
    struct worker_args *w = p;
    for (;;) {
        pthread_mutex_lock(&q.lock);
        while (q.head == NULL && !q.closed) pthread_cond_wait(&q.cond, &q.lock);
        struct job *j = q.head;
        if (j) { q.head = j->next; if (!q.head) q.tail = NULL; }
        pthread_mutex_unlock(&q.lock);
        if (j == NULL) return NULL; /* closed and drained */

        struct timespec ts = {w->delay_ms / 1000, (w->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        unsigned char *out = malloc(5 + j->len);
        if (out) {
            memcpy(out, "done:", 5);
            if (j->len) memcpy(out + 5, j->payload, j->len);
            rrpc_status st = rrpc_client_reply(w->client, j->token, out, 5 + j->len);
            if (st == RRPC_STATUS_OK) printf("replied token=%llu len=%zu\n", (unsigned long long)j->token, j->len);
            else printf("reply refused token=%llu: %s\n", (unsigned long long)j->token, rrpc_status_str(st));
            fflush(stdout);
            free(out);
        }
        free(j);
        pthread_mutex_lock(&q.lock);
        w->done++;
        pthread_mutex_unlock(&q.lock);
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *dialect_name = "alibaba", *pk = NULL, *dn = NULL;
    long port = 1883, delay_ms = 20, presence = 0;
    unsigned long max_requests = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = strtol(v, NULL, 10);
        else if (!strcmp(a, "--dialect")) dialect_name = v;
        else if (!strcmp(a, "--product-key")) pk = v;
        else if (!strcmp(a, "--device-name")) dn = v;
        else if (!strcmp(a, "--delay-ms")) delay_ms = strtol(v, NULL, 10);
        else if (!strcmp(a, "--max-requests")) max_requests = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--presence")) presence = strtol(v, NULL, 10);
        else { fprintf(stderr, "deferred_reply: unknown option %s\n", a); return 2; }
    }
    if (!pk || !dn || port <= 0 || port > 65535 || delay_ms < 0) {
        fprintf(stderr, "usage: deferred_reply --host H --port P --dialect D --product-key PK --device-name DN [--delay-ms MS]\n");
        return 2;
    }

    rrpc_dialect dialect;
    rrpc_mqtt_config mqtt;
    rrpc_client_config cfg;
    rrpc_client *client = NULL;
    rrpc_status st;
    if ((st = rrpc_dialect_from_name(dialect_name, &dialect)) != RRPC_STATUS_OK ||
        (st = rrpc_mqtt_config_init(&mqtt, sizeof mqtt)) != RRPC_STATUS_OK ||
        (st = rrpc_client_config_init(&cfg, sizeof cfg)) != RRPC_STATUS_OK) {
        fprintf(stderr, "deferred_reply: %s\n", rrpc_last_error_message());
        return 1;
    }
    mqtt.host = host;
    mqtt.port = (uint16_t)port;
    cfg.mqtt = &mqtt;
    cfg.presence = presence != 0;
    if ((st = rrpc_client_new(&cfg, &client)) != RRPC_STATUS_OK ||
        (st = rrpc_client_add_device(client, dialect, pk, dn, NULL)) != RRPC_STATUS_OK ||
        (st = rrpc_client_set_request_callback(client, on_request, NULL)) != RRPC_STATUS_OK ||
        (st = rrpc_client_start(client)) != RRPC_STATUS_OK) {
        fprintf(stderr, "deferred_reply: %s: %s\n", rrpc_status_str(st), rrpc_last_error_message());
        if (rrpc_client_free(client) != RRPC_STATUS_OK)
            fprintf(stderr, "deferred_reply: rrpc_client_free: %s\n", rrpc_last_error_message());
        return 1;
    }
    fprintf(stderr, "deferred_reply: connected to %s:%ld\n", host, port);

    struct worker_args w = {client, delay_ms, max_requests, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, worker, &w) != 0) {
        fprintf(stderr, "deferred_reply: cannot start the worker thread\n");
        if (rrpc_client_free(client) != RRPC_STATUS_OK)
            fprintf(stderr, "deferred_reply: rrpc_client_free: %s\n", rrpc_last_error_message());
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (;;) {
        pthread_mutex_lock(&q.lock);
        unsigned long done = w.done;
        pthread_mutex_unlock(&q.lock);
        if (stop_requested || (max_requests != 0 && done >= max_requests)) break;
        sleep_ms(20);
    }

    /* Order matters: stop the client (no more callbacks), drain the worker,
     * then free the client the worker was using. */
    int rc = 0;
    if ((st = rrpc_client_stop(client)) != RRPC_STATUS_OK) {
        fprintf(stderr, "deferred_reply: rrpc_client_stop: %s\n", rrpc_last_error_message());
        rc = 1;
    }
    pthread_mutex_lock(&q.lock);
    q.closed = 1;
    pthread_cond_broadcast(&q.cond);
    pthread_mutex_unlock(&q.lock);
    pthread_join(th, NULL);
    if ((st = rrpc_client_free(client)) != RRPC_STATUS_OK) {
        fprintf(stderr, "deferred_reply: rrpc_client_free: %s\n", rrpc_last_error_message());
        rc = 1;
    }
    return rc;
}
