/* A program built against another release's rrpc.h runs against this library
 * (tests/tooling/abi.rs). Compiled twice, against edited copies of include/rrpc.h:
 *
 * - OLD_HEADER: an older header, whose rrpc_router_config lacks max_devices, whose
 *   rrpc_mqtt_config lacks max_incoming_packet and whose rrpc_router_stats lacks
 *   devices. The library reads only what the old structs hold: the missing fields
 *   take their defaults (the memory right after each struct holds values the
 *   library would refuse or that would limit it), and a shorter stats struct is
 *   filled without a byte written past it.
 * - NEWER_HEADER: a newer header, whose rrpc_router_config has one more field at
 *   its end. The library refuses it with RRPC_STATUS_STRUCT_SIZE, naming the struct.
 *
 * Prints "checks passed" and exits 0, or names the failed check and exits 1. */
#include <rrpc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks = 0;
#define CHECK(cond)                                                                      \
    do {                                                                                 \
        checks++;                                                                        \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "abi_compat: check failed at line %d: %s (last error: %s)\n", \
                    __LINE__, #cond, rrpc_last_error_message());                         \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define GUARD 0xA5
#define DEVICES 3

#if defined(OLD_HEADER)

static void on_request(void *user_data, struct rrpc_router *router,
                       const struct rrpc_request *request)
{
    (void)user_data;
    (void)router;
    (void)request;
}

/* A settings struct followed by the value a newer library's next field would read
 * if it read past struct_size. */
struct router_config_and_trap {
    rrpc_router_config config;
    uint32_t trap;
};

struct mqtt_config_and_trap {
    rrpc_mqtt_config config;
    uint32_t trap;
};

/* The counters followed by bytes that must stay untouched. */
struct stats_and_guard {
    rrpc_router_stats stats;
    unsigned char guard[64];
};

static void old_router(void)
{
    struct router_config_and_trap c;
    struct stats_and_guard s;
    rrpc_router *router = NULL;
    char name[16];
    size_t i;
    int d;

    /* max_devices 1, were it read from the word after the old struct. */
    memset(&c, 0, sizeof c);
    c.trap = 1;
    CHECK(rrpc_router_config_init(&c.config, sizeof c.config) == RRPC_STATUS_OK);
    CHECK(c.config.struct_size == sizeof c.config);
    CHECK(c.trap == 1);
    CHECK(rrpc_router_new(&c.config, &router) == RRPC_STATUS_OK);
    for (d = 0; d < DEVICES; d++) {
        snprintf(name, sizeof name, "dev%d", d);
        CHECK(rrpc_router_add_device(router, RRPC_DIALECT_ALIBABA, "pk", name, NULL, on_request,
                                     NULL) == RRPC_STATUS_OK);
    }

    memset(&s, GUARD, sizeof s);
    CHECK(rrpc_router_get_stats(router, &s.stats, sizeof s.stats) == RRPC_STATUS_OK);
    CHECK(s.stats.messages == 0 && s.stats.requests == 0 && s.stats.pending == 0);
    for (i = 0; i < sizeof s.guard; i++) {
        CHECK(s.guard[i] == GUARD);
    }
    CHECK(rrpc_router_free(router) == RRPC_STATUS_OK);
}

static void old_mqtt(void)
{
    struct mqtt_config_and_trap m;
    rrpc_client_config config;
    rrpc_client *client = NULL;

    /* max_incoming_packet above its maximum, were it read past the old struct. */
    memset(&m, 0, sizeof m);
    m.trap = 0xFFFFFFFFu;
    CHECK(rrpc_mqtt_config_init(&m.config, sizeof m.config) == RRPC_STATUS_OK);
    CHECK(m.config.struct_size == sizeof m.config);
    CHECK(m.trap == 0xFFFFFFFFu);
    m.config.host = "127.0.0.1";
    m.config.port = 1;
    CHECK(rrpc_client_config_init(&config, sizeof config) == RRPC_STATUS_OK);
    config.mqtt = &m.config;
    if ((rrpc_features() & RRPC_FEATURE_CLIENT) == 0) {
        return;
    }
    CHECK(rrpc_client_new(&config, &client) == RRPC_STATUS_OK);
    CHECK(rrpc_client_free(client) == RRPC_STATUS_OK);
}

int main(void)
{
    old_router();
    old_mqtt();
    printf("checks passed: %d\n", checks);
    return 0;
}

#elif defined(NEWER_HEADER)

int main(void)
{
    rrpc_router_config config;
    rrpc_router *router = NULL;

    /* _init with the newer size: the library does not know the new field. */
    memset(&config, 0, sizeof config);
    CHECK(rrpc_router_config_init(&config, sizeof config) == RRPC_STATUS_STRUCT_SIZE);
    CHECK(strstr(rrpc_last_error_message(), "rrpc_router_config") != NULL);

    /* The same struct filled by hand and passed to _new: refused too, nothing made. */
    CHECK(rrpc_router_config_init(&config, offsetof(rrpc_router_config, future_field)) ==
          RRPC_STATUS_OK);
    config.struct_size = (uint32_t)sizeof config;
    config.future_field = 7;
    CHECK(rrpc_router_new(&config, &router) == RRPC_STATUS_STRUCT_SIZE);
    CHECK(router == NULL);
    CHECK(strstr(rrpc_last_error_message(), "rrpc_router_config") != NULL);

    printf("checks passed: %d\n", checks);
    return 0;
}

#else
#error "define OLD_HEADER or NEWER_HEADER"
#endif
