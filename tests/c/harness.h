/* What the C test harnesses share: CHECK, which names the failed check and exits 1, the
 * clock, and the slow callbacks that test callback release (a callback that sleeps on
 * another thread while the main thread releases it). Define HARNESS_NAME (a string) before
 * including it; define HARNESS_THREADS too for RELEASE_WHILE_RUNNING, and build with
 * -pthread. */
#ifndef RRPC_TEST_HARNESS_H
#define RRPC_TEST_HARNESS_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#endif

#include <rrpc.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int checks = 0;
/* The case a table-driven check is on (named in a failure), or NULL. */
static const char *check_case = NULL;
#define CHECK(cond)                                                                              \
    do {                                                                                         \
        checks++;                                                                                \
        if (!(cond)) {                                                                           \
            fprintf(stderr, HARNESS_NAME ": check failed at line %d%s%s: %s (last error: %s)\n", \
                    __LINE__, check_case ? " in case " : "", check_case ? check_case : "",      \
                    #cond, rrpc_last_error_message());                                           \
            exit(1);                                                                             \
        }                                                                                        \
    } while (0)

static inline void sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static inline uint64_t mono_ms(void)
{
    uint64_t t = 0;
    CHECK(rrpc_monotonic_ms(&t) == RRPC_STATUS_OK);
    return t;
}

/* The defaults of rrpc_mqtt_config_init, for a broker on 127.0.0.1:`port`. */
static inline rrpc_mqtt_config local_mqtt(uint16_t port)
{
    rrpc_mqtt_config m;
    CHECK(rrpc_mqtt_config_init(&m, sizeof m) == RRPC_STATUS_OK);
    m.host = "127.0.0.1";
    m.port = port;
    return m;
}

/* The sample device of both clouds (the values of scripts/vendor-vectors.py): valid input
 * for rrpc_credentials_alibaba and rrpc_credentials_tencent, the _init defaults otherwise. */
#define SAMPLE_SECRET "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U"
#define SAMPLE_PSK "bXlfZGV2aWNlX3BzazEyMw=="
static inline void sample_credentials(rrpc_credentials_alibaba_params *a, rrpc_credentials_tencent_params *t)
{
    CHECK(rrpc_credentials_alibaba_params_init(a, sizeof *a) == RRPC_STATUS_OK);
    CHECK(rrpc_credentials_tencent_params_init(t, sizeof *t) == RRPC_STATUS_OK);
    a->product_key = "a1B2c3D4e5F";
    a->device_name = "sensor-01";
    a->device_secret = SAMPLE_SECRET;
    a->timestamp = 1700000000123ULL;
    t->product_id = "ABCDEFGHIJ";
    t->device_name = "dev001";
    t->device_psk = SAMPLE_PSK;
    t->conn_id = "Ab3dE";
    t->expiry = 1700003600;
}

/* How long a slow callback sleeps. */
#define SLEEP_MS 300

/* The user_data of a slow callback: heap memory the release must let us free. */
typedef struct {
    volatile int started;  /* set when the callback begins */
    volatile int finished; /* set just before it returns */
    int calls;
} slow_state;

static inline slow_state *slow_new(void)
{
    slow_state *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    return s;
}

/* The body of a slow callback: note the start, sleep, touch the state last. */
static inline void slow_body(void *user_data)
{
    slow_state *s = user_data;
    s->started = 1;
    sleep_ms(SLEEP_MS);
    s->calls++;
    s->finished = 1;
}

#ifdef HARNESS_THREADS
#include <pthread.h>

/* Starts `fn(arg)` on a thread, waits until its slow callback runs, runs `release` (an
 * expression giving an rrpc_status) on this thread, checks that it waited for the callback,
 * frees the callback's state at once and joins the thread. */
#define RELEASE_WHILE_RUNNING(fn, arg, state, release)                       \
    do {                                                                     \
        pthread_t th_;                                                       \
        uint64_t t0_;                                                        \
        CHECK(pthread_create(&th_, NULL, fn, (void *)(arg)) == 0);           \
        t0_ = mono_ms();                                                     \
        while (!(state)->started) {                                          \
            CHECK(mono_ms() - t0_ < 5000);                                   \
            sleep_ms(1);                                                     \
        }                                                                    \
        t0_ = mono_ms();                                                     \
        CHECK((release) == RRPC_STATUS_OK);                                  \
        CHECK((state)->finished == 1 && (state)->calls == 1);                \
        CHECK(mono_ms() - t0_ >= SLEEP_MS / 3);                              \
        free(state);                                                         \
        CHECK(pthread_join(th_, NULL) == 0);                                 \
    } while (0)
#endif

#endif
