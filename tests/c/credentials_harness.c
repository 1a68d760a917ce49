/* Cloud credentials from C: the vendors' SDK values (see src/credentials.rs and
 * scripts/vendor-vectors.py), the defaults of the _init functions, and bad input
 * (NULL, invalid UTF-8, identity injection, empty or non-Base64 secrets, times out
 * of range, unknown sign methods), none of which writes the output or names the
 * secret in the last-error message. Prints "credentials harness: N checks passed" and
 * exits 0, or names the first failed check and exits 1. Built and run by
 * tests/c_api/credentials_c.rs; also clean under valgrind. */
#define HARNESS_NAME "credentials harness"
#include "harness.h"

#include <stddef.h>
#include <string.h>

/* One issued field: the value the vendor's SDK gives (NULL: not checked). */
static void same(const char *field, const char *got, const char *want)
{
    checks++;
    if (want != NULL && strcmp(got, want) != 0) {
        fprintf(stderr, "credentials harness: %s is \"%s\", not \"%s\"\n", field, got, want);
        exit(1);
    }
}

/* Credentials issued as the vendor's SDK issues them (a NULL string or port 0: not checked). */
static void issued(const rrpc_credentials *c, const char *client_id, const char *username, const char *password,
                   const char *host, uint16_t port)
{
    same("client_id", c->client_id, client_id);
    same("username", c->username, username);
    same("password", c->password, password);
    same("host", c->host, host);
    CHECK(port == 0 || c->port == port);
}

/* A refused call (of the Alibaba params `a`, or else of the Tencent params `t`): the status,
 * the output untouched, the reason named, no secret (neither the sample's nor the one given). */
static void refused(const rrpc_credentials_alibaba_params *a, const rrpc_credentials_tencent_params *t,
                    rrpc_status want, const char *reason)
{
    rrpc_credentials c;
    const char *secret = a != NULL ? a->device_secret : t->device_psk;
    memset(&c, 0x5a, sizeof c);
    CHECK((a != NULL ? rrpc_credentials_alibaba(a, &c) : rrpc_credentials_tencent(t, &c)) == want);
    CHECK(c.client_id[0] == 0x5a && c.password[0] == 0x5a && c.port == 0x5a5a);
    CHECK(strstr(rrpc_last_error_message(), reason) != NULL);
    CHECK(strstr(rrpc_last_error_message(), SAMPLE_SECRET) == NULL);
    CHECK(strstr(rrpc_last_error_message(), SAMPLE_PSK) == NULL);
    CHECK(secret == NULL || *secret == '\0' || strstr(rrpc_last_error_message(), secret) == NULL);
}

/* A text field of the sample set to a bad value: which params ('a' Alibaba, 't' Tencent),
 * where the field lies in them, the value, and the refusal (status and reason). */
typedef struct {
    char family;
    size_t field;
    const char *value;
    rrpc_status want;
    const char *reason;
} bad_text;

#define ALIBABA(field) 'a', offsetof(rrpc_credentials_alibaba_params, field)
#define TENCENT(field) 't', offsetof(rrpc_credentials_tencent_params, field)

static const bad_text BAD_TEXT[] = {
    /* NULL pointers. */
    {ALIBABA(device_secret), NULL, RRPC_STATUS_NULL_POINTER, "device_secret is NULL"},
    {TENCENT(product_id), NULL, RRPC_STATUS_NULL_POINTER, "product_id is NULL"},
    /* Bad Alibaba input. */
    {ALIBABA(device_name), "dev\xff", RRPC_STATUS_INVALID_UTF8, "device_name is not valid UTF-8"},
    {ALIBABA(device_name), "dev/2", RRPC_STATUS_INVALID_IDENTITY, "device name contains the topic separator"},
    {ALIBABA(product_key), "pk+", RRPC_STATUS_INVALID_IDENTITY, "product key contains an MQTT wildcard"},
    {ALIBABA(device_name), "a&b", RRPC_STATUS_INVALID_IDENTITY, "device name contains the separator '&'"},
    {ALIBABA(client_id), "x|securemode=3", RRPC_STATUS_INVALID_IDENTITY, "client id contains the separator '|'"},
    {ALIBABA(device_secret), "", RRPC_STATUS_INVALID_ARGUMENT, "device secret is empty"},
    {ALIBABA(region), "cn.shanghai", RRPC_STATUS_INVALID_ARGUMENT, "region may hold only"},
    /* Bad Tencent input (a bad PSK is not named either). */
    {TENCENT(device_psk), "not base64!", RRPC_STATUS_INVALID_ARGUMENT, "device PSK is not Base64"},
    {TENCENT(device_psk), "", RRPC_STATUS_INVALID_ARGUMENT, "device PSK is empty"},
    {TENCENT(conn_id), "abc;e", RRPC_STATUS_INVALID_ARGUMENT, "connection id must be 5 letters or digits"},
    {TENCENT(device_name), "dev;1", RRPC_STATUS_INVALID_IDENTITY, "device name contains the separator ';'"},
    {TENCENT(product_id), "PID#", RRPC_STATUS_INVALID_IDENTITY, "product id contains an MQTT wildcard"},
};

int main(void)
{
    rrpc_credentials c;
    rrpc_credentials_alibaba_params a;
    rrpc_credentials_tencent_params t;
    size_t i;

    /* Defaults. */
    sample_credentials(&a, &t);
    CHECK(a.sign_method == RRPC_SIGN_METHOD_HMACSHA256 && a.tls && !a.custom_rrpc);
    CHECK(a.client_id == NULL && a.region == NULL && a.instance_id == NULL);
    CHECK(t.sdk_app_id == 12010126u && t.sign_method == RRPC_SIGN_METHOD_HMACSHA256 && t.tls);
    CHECK(sizeof c.client_id == RRPC_CREDENTIALS_ID_SIZE);
    CHECK(sizeof c.password == RRPC_CREDENTIALS_PASSWORD_SIZE);
    CHECK(sizeof c.host == RRPC_CREDENTIALS_HOST_SIZE);

    /* aliyun-iot-linkkit 1.2.13 (h2client): HMAC-SHA256, id {pk}.{dn}. */
    CHECK(rrpc_credentials_alibaba(&a, &c) == RRPC_STATUS_OK);
    issued(&c, "a1B2c3D4e5F.sensor-01|securemode=2,signmethod=hmacsha256,timestamp=1700000000123|",
           "sensor-01&a1B2c3D4e5F", "6c7ec5593a51edd2896a0a671054a08bf9ca882d1beadcea1097bdbbaa565bc2",
           "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com", 8883);

    /* aliyun-iot-linkkit 1.2.13 (LinkKit): HMAC-SHA1, id {pk}&{dn}, seconds, no TLS. */
    a.client_id = "a1B2c3D4e5F&sensor-01";
    a.sign_method = RRPC_SIGN_METHOD_HMACSHA1;
    a.timestamp = 1700000000;
    a.tls = false;
    a.region = "cn-beijing";
    CHECK(rrpc_credentials_alibaba(&a, &c) == RRPC_STATUS_OK);
    issued(&c, "a1B2c3D4e5F&sensor-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000|", NULL,
           "44a1a7816039b48ee97e2ac5fcc34519c99597b2", "a1B2c3D4e5F.iot-as-mqtt.cn-beijing.aliyuncs.com", 1883);

    /* Custom RRPC topic and an enterprise instance. */
    sample_credentials(&a, &t);
    a.custom_rrpc = true;
    a.instance_id = "iot-06z00abc1de2fgh";
    CHECK(rrpc_credentials_alibaba(&a, &c) == RRPC_STATUS_OK);
    CHECK(strstr(c.client_id, ",timestamp=1700000000123,ext=3|") != NULL);
    issued(&c, NULL, NULL, NULL, "iot-06z00abc1de2fgh.mqtt.iothub.aliyuncs.com", 0);

    /* tencent-iot-device 1.0.0: sdkappid 21010406, ms expiry, HMAC-SHA1. */
    t.sdk_app_id = 21010406;
    t.expiry = 1700000000123ULL;
    t.sign_method = RRPC_SIGN_METHOD_HMACSHA1;
    CHECK(rrpc_credentials_tencent(&t, &c) == RRPC_STATUS_OK);
    issued(&c, "ABCDEFGHIJdev001", "ABCDEFGHIJdev001;21010406;Ab3dE;1700000000123",
           "507ae7d8fe4f61be26963ba8badc47f29aab108c;hmacsha1", "ABCDEFGHIJ.iotcloud.tencentdevices.com", 8883);

    /* The documented formula with the defaults (HMAC-SHA256, sdkappid 12010126). */
    sample_credentials(&a, &t);
    CHECK(rrpc_credentials_tencent(&t, &c) == RRPC_STATUS_OK);
    issued(&c, NULL, "ABCDEFGHIJdev001;12010126;Ab3dE;1700003600",
           "4d841733dc15c85047eb9ac7fbedd85ca3cd92ebbe75d7bd6756d5aa7298e0f0;hmacsha256", NULL, 0);

    /* A random connection id when none is given: 5 letters or digits. */
    t.conn_id = NULL;
    CHECK(rrpc_credentials_tencent(&t, &c) == RRPC_STATUS_OK);
    {
        const char *conn = c.username + strlen("ABCDEFGHIJdev001;12010126;");
        for (i = 0; i < 5; i++) CHECK((conn[i] >= '0' && conn[i] <= '9') || (conn[i] >= 'A' && conn[i] <= 'Z') || (conn[i] >= 'a' && conn[i] <= 'z'));
        CHECK(conn[5] == ';');
    }

    /* NULL pointers to the params or the output. */
    CHECK(rrpc_credentials_alibaba_params_init(NULL, sizeof(rrpc_credentials_alibaba_params)) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_credentials_tencent_params_init(NULL, sizeof(rrpc_credentials_tencent_params)) == RRPC_STATUS_NULL_POINTER);
    sample_credentials(&a, &t);
    CHECK(rrpc_credentials_alibaba(NULL, &c) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_credentials_alibaba(&a, NULL) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_credentials_tencent(NULL, &c) == RRPC_STATUS_NULL_POINTER);

    /* Bad text: NULL, invalid UTF-8, identity injection, bad secrets. */
    for (i = 0; i < sizeof BAD_TEXT / sizeof BAD_TEXT[0]; i++) {
        const bad_text *b = &BAD_TEXT[i];
        sample_credentials(&a, &t);
        memcpy((b->family == 'a' ? (char *)&a : (char *)&t) + b->field, &b->value, sizeof b->value);
        check_case = b->reason;
        refused(b->family == 'a' ? &a : NULL, b->family == 't' ? &t : NULL, b->want, b->reason);
    }
    check_case = NULL;

    /* Numbers out of range. */
    sample_credentials(&a, &t);
    a.timestamp = 0;
    refused(&a, NULL, RRPC_STATUS_INVALID_ARGUMENT, "timestamp must be 1 to 9999999999999");
    a.timestamp = 10000000000000ULL;
    refused(&a, NULL, RRPC_STATUS_INVALID_ARGUMENT, "timestamp must be 1 to 9999999999999");
    sample_credentials(&a, &t);
    a.sign_method = 7;
    refused(&a, NULL, RRPC_STATUS_INVALID_ARGUMENT, "sign_method 7");
    t.expiry = 0;
    refused(NULL, &t, RRPC_STATUS_INVALID_ARGUMENT, "expiry must be 1 to 9999999999999");

    /* The secret-derived output can be cleared by the application. */
    memset(&c, 0, sizeof c);
    printf("credentials harness: %d checks passed\n", checks);
    return 0;
}
