/* A C program that uses librrpc the plain way, for the valgrind suppression test:
 * many clients created and freed, then one that connects in yield mode on this
 * (the main) thread, answers nothing, stops and is freed.
 *
 *   valgrind_probe PORT
 */
#define HARNESS_NAME "valgrind_probe"
#include "harness.h"

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    rrpc_mqtt_config mqtt = local_mqtt((uint16_t)strtoul(argv[1], NULL, 10));
    rrpc_client_config cfg;
    CHECK(rrpc_client_config_init(&cfg, sizeof cfg) == RRPC_STATUS_OK);
    cfg.mqtt = &mqtt;
    /* The leak the suppression covers does not grow with use. */
    for (int i = 0; i < 20; i++) {
        rrpc_client *c = NULL;
        CHECK(rrpc_client_new(&cfg, &c) == RRPC_STATUS_OK);
        CHECK(rrpc_client_free(c) == RRPC_STATUS_OK);
    }
    rrpc_client *client = NULL;
    CHECK(rrpc_client_new(&cfg, &client) == RRPC_STATUS_OK);
    CHECK(rrpc_client_add_device(client, RRPC_DIALECT_ALIBABA, "a1Probe", "dev1", NULL) == RRPC_STATUS_OK);
    bool connected = false;
    for (int i = 0; i < 100 && !connected; i++) {
        CHECK(rrpc_client_yield(client, 50) == RRPC_STATUS_OK);
        CHECK(rrpc_client_is_connected(client, &connected) == RRPC_STATUS_OK);
    }
    CHECK(connected);
    CHECK(rrpc_client_stop(client) == RRPC_STATUS_OK);
    CHECK(rrpc_client_free(client) == RRPC_STATUS_OK);
    printf(HARNESS_NAME ": %d checks passed\n", checks);
    return 0;
}
