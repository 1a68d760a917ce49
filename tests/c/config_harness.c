/* Config values C gets wrong: a flag field (a `bool`, 0 or 1) whose byte holds 2, as one
 * filled from garbage (memcpy, a union, an uninitialised struct) would, and client ids that would break
 * every connect (`#`, `+`), the presence connection topic (`/`) or the log (control
 * characters). Each is refused with RRPC_STATUS_INVALID_ARGUMENT and a last-error message
 * that names the field and the rule; 0 and 1 are accepted. Nothing connects. Prints
 * "config harness: N checks passed" and exits 0, or names the first failed check and
 * exits 1. Built and run by tests/c_api/ffi_client.rs. */
#define HARNESS_NAME "config harness"
#include "harness.h"

#include <string.h>

static void refused(rrpc_status st, const char *needle)
{
    CHECK(st == RRPC_STATUS_INVALID_ARGUMENT);
    if (strstr(rrpc_last_error_message(), needle) == NULL) {
        fprintf(stderr, "config harness: \"%s\" not in \"%s\"\n", needle,
                rrpc_last_error_message());
        exit(1);
    }
}

/* Stores `byte` in a flag's memory, as garbage would: a C `bool` assigned 2 holds 1. */
static void poke(bool *flag, unsigned char byte)
{
    memcpy(flag, &byte, 1);
}

/* The MQTT settings of client_config(). */
static rrpc_mqtt_config mqtt;

/* The defaults, for a broker on port 1 (nothing connects); resets `mqtt` too. */
static rrpc_client_config client_config(void)
{
    rrpc_client_config c;
    mqtt = local_mqtt(1);
    CHECK(rrpc_client_config_init(&c, sizeof c) == RRPC_STATUS_OK);
    c.mqtt = &mqtt;
    return c;
}

static rrpc_status new_client(const rrpc_client_config *c)
{
    rrpc_client *client = NULL;
    rrpc_status st = rrpc_client_new(c, &client);
    CHECK((st == RRPC_STATUS_OK) == (client != NULL));
    CHECK(rrpc_client_free(client) == RRPC_STATUS_OK);
    return st;
}

/* Client ids that would break every connect, the presence topic or the log, and why. */
static const struct {
    const char *id;
    const char *reason;
} BAD_IDS[] = {
    {"dev#1", "contains an MQTT wildcard"},
    {"dev+1", "contains an MQTT wildcard"},
    {"site/dev1", "contains a topic level separator"},
    {"dev\x01", "contains a control character"},
    {"", "client id must be 1 to 256 bytes"},
};

int main(void)
{
    size_t i;
    rrpc_client_config c;
    rrpc_mqtt_config kmqtt = local_mqtt(1);
    rrpc_caller_config k;
    rrpc_router_config r;
    rrpc_jt808_adapter_config j;
    rrpc_router *router = NULL;
    rrpc_jt808_adapter *adapter = NULL;
    rrpc_caller *caller = NULL;
    rrpc_credentials creds;
    rrpc_credentials_alibaba_params a;
    rrpc_credentials_tencent_params t;

    /* The defaults, and both valid values of every flag. */
    c = client_config();
    CHECK(mqtt.clean_session == 1 && mqtt.tls == 0 && mqtt.tls_insecure_skip_verify == 0);
    CHECK(c.presence == 0 && c.accept_queued == 0);
    CHECK(new_client(&c) == RRPC_STATUS_OK);
    c.presence = 1;
    c.accept_queued = 1;
    CHECK(new_client(&c) == RRPC_STATUS_OK);

    /* 2 in each flag of the client's config: the defaults but for `flag`. */
#define CLIENT_FLAG_REFUSED(flag, byte, reason) \
    do {                                        \
        c = client_config();                    \
        poke(&(flag), byte);                    \
        refused(new_client(&c), reason);        \
    } while (0)
    CLIENT_FLAG_REFUSED(mqtt.clean_session, 2, "config->mqtt->clean_session must be 0 (false) or 1 (true), not 2");
    CLIENT_FLAG_REFUSED(mqtt.tls, 2, "config->mqtt->tls must be 0 (false) or 1 (true), not 2");
    CLIENT_FLAG_REFUSED(mqtt.tls_insecure_skip_verify, 2, "config->mqtt->tls_insecure_skip_verify must be 0");
    CLIENT_FLAG_REFUSED(c.presence, 2, "config->presence must be 0 (false) or 1 (true), not 2");
    CLIENT_FLAG_REFUSED(c.accept_queued, 255, "config->accept_queued must be 0 (false) or 1 (true), not 255");
#undef CLIENT_FLAG_REFUSED

    /* The caller's and the router's flags. */
    /* The caller's and the JT/T 808 adapter's flags; the router has none. */
    CHECK(rrpc_caller_config_init(&k, sizeof k) == RRPC_STATUS_OK);
    CHECK(k.presence == 1);
    k.mqtt = &kmqtt;
    poke(&k.presence, 2);
    refused(rrpc_caller_new(&k, &caller), "config->presence must be 0 (false) or 1 (true)");
    CHECK(caller == NULL);
    k.presence = 1;
    poke(&kmqtt.clean_session, 7);
    refused(rrpc_caller_new(&k, &caller), "config->mqtt->clean_session must be 0");
    CHECK(rrpc_jt808_adapter_config_init(&j, sizeof j) == RRPC_STATUS_OK);
    CHECK(j.lenient_escapes == 0);
    poke(&j.lenient_escapes, 2);
    refused(rrpc_jt808_adapter_new(&j, &adapter), "lenient_escapes must be 0 (false) or 1 (true), not 2");
    CHECK(adapter == NULL);
    j.lenient_escapes = 1;
    CHECK(rrpc_jt808_adapter_new(&j, &adapter) == RRPC_STATUS_OK);
    CHECK(rrpc_jt808_adapter_free(adapter) == RRPC_STATUS_OK);
    CHECK(rrpc_router_config_init(&r, sizeof r) == RRPC_STATUS_OK);
    CHECK(rrpc_router_new(&r, &router) == RRPC_STATUS_OK);
    CHECK(rrpc_router_free(router) == RRPC_STATUS_OK);

    /* The credentials' input flags. */
    sample_credentials(&a, &t);
    CHECK(a.tls == 1 && a.custom_rrpc == 0);
    CHECK(rrpc_credentials_alibaba(&a, &creds) == RRPC_STATUS_OK);
    poke(&a.tls, 2);
    refused(rrpc_credentials_alibaba(&a, &creds), "params->tls must be 0 (false) or 1 (true)");
    sample_credentials(&a, &t);
    poke(&a.custom_rrpc, 2);
    refused(rrpc_credentials_alibaba(&a, &creds), "params->custom_rrpc must be 0");
    CHECK(t.tls == 1);
    CHECK(rrpc_credentials_tencent(&t, &creds) == RRPC_STATUS_OK);
    poke(&t.tls, 2);
    refused(rrpc_credentials_tencent(&t, &creds), "params->tls must be 0 (false) or 1 (true)");

    /* Client ids. */
    c = client_config();
    for (i = 0; i < sizeof BAD_IDS / sizeof BAD_IDS[0]; i++) {
        mqtt.client_id = BAD_IDS[i].id;
        refused(new_client(&c), BAD_IDS[i].reason);
    }
    mqtt.client_id = "a1B2c3D4e5F.dev1|securemode=2,signmethod=hmacsha256,timestamp=1700000000000|";
    CHECK(new_client(&c) == RRPC_STATUS_OK);
    kmqtt.clean_session = 1;
    kmqtt.client_id = "caller#";
    refused(rrpc_caller_new(&k, &caller), "contains an MQTT wildcard");

    printf("config harness: %d checks passed\n", checks);
    return 0;
}
