/* Links against an installed (or add_subdirectory'd) librrpc and checks that the
 * header and the library agree. Built by tests/cmake-consumer/CMakeLists.txt and by
 * tests/tooling/packaging.rs (pkg-config). Never connects: the broker port is 1.
 * Prints "consumer ok <version>" and exits 0, or says what failed and exits 1. */
#include <rrpc.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, rrpc_status st)
{
    fprintf(stderr, "consumer: %s: status %u (%s): %s\n", what, (unsigned)st,
            rrpc_status_str(st), rrpc_last_error_message());
    return 1;
}

int main(void)
{
    const char *version = rrpc_version();
    if (version == NULL || strcmp(version, RRPC_VERSION) != 0) {
        fprintf(stderr, "consumer: rrpc_version() is \"%s\" but rrpc.h says \"%s\"\n",
                version ? version : "(null)", RRPC_VERSION);
        return 1;
    }

    rrpc_mqtt_config mqtt;
    rrpc_status st = rrpc_mqtt_config_init(&mqtt, sizeof mqtt);
    if (st != RRPC_STATUS_OK) return fail("rrpc_mqtt_config_init", st);
    mqtt.host = "127.0.0.1";
    mqtt.port = 1;

    rrpc_client_config cfg;
    st = rrpc_client_config_init(&cfg, sizeof cfg);
    if (st != RRPC_STATUS_OK) return fail("rrpc_client_config_init", st);
    cfg.mqtt = &mqtt;

    rrpc_client *client = NULL;
    st = rrpc_client_new(&cfg, &client);
    if (st != RRPC_STATUS_OK) return fail("rrpc_client_new", st);
    if (client == NULL) {
        fprintf(stderr, "consumer: rrpc_client_new returned OK but no client\n");
        return 1;
    }

    st = rrpc_client_add_device(client, RRPC_DIALECT_ALIBABA, "a1B2c3", "dev1", NULL);
    if (st != RRPC_STATUS_OK) {
        fail("rrpc_client_add_device(dev1)", st);
        if ((st = rrpc_client_free(client)) != RRPC_STATUS_OK) fail("rrpc_client_free", st);
        return 1;
    }
    st = rrpc_client_add_device(client, RRPC_DIALECT_ALIBABA, "a1B2c3", "a/b", NULL);
    if (st != RRPC_STATUS_INVALID_IDENTITY) {
        fprintf(stderr, "consumer: device name \"a/b\" gave status %u (%s), expected %u (%s)\n",
                (unsigned)st, rrpc_status_str(st), (unsigned)RRPC_STATUS_INVALID_IDENTITY,
                rrpc_status_str(RRPC_STATUS_INVALID_IDENTITY));
        if ((st = rrpc_client_free(client)) != RRPC_STATUS_OK) fail("rrpc_client_free", st);
        return 1;
    }

    st = rrpc_client_free(client);
    if (st != RRPC_STATUS_OK) return fail("rrpc_client_free", st);

    printf("consumer ok %s\n", version);
    return 0;
}
