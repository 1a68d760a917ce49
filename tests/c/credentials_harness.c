/* Cloud credentials from C: the vendors' SDK values (see src/credentials.rs and
 * scripts/vendor-vectors.py), the defaults of the _init functions, and bad input
 * (NULL, invalid UTF-8, identity injection, empty or non-Base64 secrets, times out
 * of range, unknown sign methods), none of which writes the output or names the
 * secret in the last-error message. Prints "credentials harness: N checks passed" and
 * exits 0, or names the first failed check and exits 1. Built and run by
 * tests/c_api/credentials_c.rs; also clean under valgrind. */
#define HARNESS_NAME "credentials harness"
#include "harness.h"

#include <string.h>

static const char *SECRET = "Xk3mZq9PbT2vLw8RyN5cHd7JfG4sAe6U";
static const char *PSK = "bXlfZGV2aWNlX3BzazEyMw==";

static rrpc_credentials_alibaba_params alibaba(void)
{
    rrpc_credentials_alibaba_params p;
    CHECK(rrpc_credentials_alibaba_params_init(&p, sizeof p) == RRPC_STATUS_OK);
    p.product_key = "a1B2c3D4e5F";
    p.device_name = "sensor-01";
    p.device_secret = SECRET;
    p.timestamp = 1700000000123ULL;
    return p;
}

static rrpc_credentials_tencent_params tencent(void)
{
    rrpc_credentials_tencent_params p;
    CHECK(rrpc_credentials_tencent_params_init(&p, sizeof p) == RRPC_STATUS_OK);
    p.product_id = "ABCDEFGHIJ";
    p.device_name = "dev001";
    p.device_psk = PSK;
    p.conn_id = "Ab3dE";
    p.expiry = 1700003600;
    return p;
}

/* A refused call: the status, the output untouched, the reason named, no secret. */
static void refused_alibaba(const rrpc_credentials_alibaba_params *p, rrpc_status want, const char *reason)
{
    rrpc_credentials c;
    memset(&c, 0x5a, sizeof c);
    CHECK(rrpc_credentials_alibaba(p, &c) == want);
    CHECK(c.client_id[0] == 0x5a && c.password[0] == 0x5a && c.port == 0x5a5a);
    CHECK(strstr(rrpc_last_error_message(), reason) != NULL);
    CHECK(strstr(rrpc_last_error_message(), SECRET) == NULL);
}

static void refused_tencent(const rrpc_credentials_tencent_params *p, rrpc_status want, const char *reason)
{
    rrpc_credentials c;
    memset(&c, 0x5a, sizeof c);
    CHECK(rrpc_credentials_tencent(p, &c) == want);
    CHECK(c.client_id[0] == 0x5a && c.password[0] == 0x5a && c.port == 0x5a5a);
    CHECK(strstr(rrpc_last_error_message(), reason) != NULL);
    CHECK(strstr(rrpc_last_error_message(), PSK) == NULL);
}

int main(void)
{
    rrpc_credentials c;
    rrpc_credentials_alibaba_params a = alibaba();
    rrpc_credentials_tencent_params t = tencent();

    /* Defaults. */
    CHECK(a.sign_method == RRPC_SIGN_METHOD_HMACSHA256 && a.tls && !a.custom_rrpc);
    CHECK(a.client_id == NULL && a.region == NULL && a.instance_id == NULL);
    CHECK(t.sdk_app_id == 12010126u && t.sign_method == RRPC_SIGN_METHOD_HMACSHA256 && t.tls);
    CHECK(sizeof c.client_id == RRPC_CREDENTIALS_ID_SIZE);
    CHECK(sizeof c.password == RRPC_CREDENTIALS_PASSWORD_SIZE);
    CHECK(sizeof c.host == RRPC_CREDENTIALS_HOST_SIZE);

    /* aliyun-iot-linkkit 1.2.13 (h2client): HMAC-SHA256, id {pk}.{dn}. */
    CHECK(rrpc_credentials_alibaba(&a, &c) == RRPC_STATUS_OK);
    CHECK(strcmp(c.client_id, "a1B2c3D4e5F.sensor-01|securemode=2,signmethod=hmacsha256,timestamp=1700000000123|") == 0);
    CHECK(strcmp(c.username, "sensor-01&a1B2c3D4e5F") == 0);
    CHECK(strcmp(c.password, "6c7ec5593a51edd2896a0a671054a08bf9ca882d1beadcea1097bdbbaa565bc2") == 0);
    CHECK(strcmp(c.host, "a1B2c3D4e5F.iot-as-mqtt.cn-shanghai.aliyuncs.com") == 0);
    CHECK(c.port == 8883);

    /* aliyun-iot-linkkit 1.2.13 (LinkKit): HMAC-SHA1, id {pk}&{dn}, seconds, no TLS. */
    a.client_id = "a1B2c3D4e5F&sensor-01";
    a.sign_method = RRPC_SIGN_METHOD_HMACSHA1;
    a.timestamp = 1700000000;
    a.tls = false;
    a.region = "cn-beijing";
    CHECK(rrpc_credentials_alibaba(&a, &c) == RRPC_STATUS_OK);
    CHECK(strcmp(c.client_id, "a1B2c3D4e5F&sensor-01|securemode=3,signmethod=hmacsha1,timestamp=1700000000|") == 0);
    CHECK(strcmp(c.password, "44a1a7816039b48ee97e2ac5fcc34519c99597b2") == 0);
    CHECK(strcmp(c.host, "a1B2c3D4e5F.iot-as-mqtt.cn-beijing.aliyuncs.com") == 0);
    CHECK(c.port == 1883);

    /* Custom RRPC topic and an enterprise instance. */
    a = alibaba();
    a.custom_rrpc = true;
    a.instance_id = "iot-06z00abc1de2fgh";
    CHECK(rrpc_credentials_alibaba(&a, &c) == RRPC_STATUS_OK);
    CHECK(strstr(c.client_id, ",timestamp=1700000000123,ext=3|") != NULL);
    CHECK(strcmp(c.host, "iot-06z00abc1de2fgh.mqtt.iothub.aliyuncs.com") == 0);

    /* tencent-iot-device 1.0.0: sdkappid 21010406, ms expiry, HMAC-SHA1. */
    t.sdk_app_id = 21010406;
    t.expiry = 1700000000123ULL;
    t.sign_method = RRPC_SIGN_METHOD_HMACSHA1;
    CHECK(rrpc_credentials_tencent(&t, &c) == RRPC_STATUS_OK);
    CHECK(strcmp(c.client_id, "ABCDEFGHIJdev001") == 0);
    CHECK(strcmp(c.username, "ABCDEFGHIJdev001;21010406;Ab3dE;1700000000123") == 0);
    CHECK(strcmp(c.password, "507ae7d8fe4f61be26963ba8badc47f29aab108c;hmacsha1") == 0);
    CHECK(strcmp(c.host, "ABCDEFGHIJ.iotcloud.tencentdevices.com") == 0);
    CHECK(c.port == 8883);

    /* The documented formula with the defaults (HMAC-SHA256, sdkappid 12010126). */
    t = tencent();
    CHECK(rrpc_credentials_tencent(&t, &c) == RRPC_STATUS_OK);
    CHECK(strcmp(c.username, "ABCDEFGHIJdev001;12010126;Ab3dE;1700003600") == 0);
    CHECK(strcmp(c.password, "4d841733dc15c85047eb9ac7fbedd85ca3cd92ebbe75d7bd6756d5aa7298e0f0;hmacsha256") == 0);

    /* A random connection id when none is given: 5 letters or digits. */
    t.conn_id = NULL;
    CHECK(rrpc_credentials_tencent(&t, &c) == RRPC_STATUS_OK);
    {
        const char *conn = c.username + strlen("ABCDEFGHIJdev001;12010126;");
        int i;
        for (i = 0; i < 5; i++) CHECK((conn[i] >= '0' && conn[i] <= '9') || (conn[i] >= 'A' && conn[i] <= 'Z') || (conn[i] >= 'a' && conn[i] <= 'z'));
        CHECK(conn[5] == ';');
    }

    /* NULL pointers. */
    CHECK(rrpc_credentials_alibaba_params_init(NULL, sizeof(rrpc_credentials_alibaba_params)) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_credentials_tencent_params_init(NULL, sizeof(rrpc_credentials_tencent_params)) == RRPC_STATUS_NULL_POINTER);
    a = alibaba();
    CHECK(rrpc_credentials_alibaba(NULL, &c) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_credentials_alibaba(&a, NULL) == RRPC_STATUS_NULL_POINTER);
    a.device_secret = NULL;
    refused_alibaba(&a, RRPC_STATUS_NULL_POINTER, "device_secret is NULL");
    t = tencent();
    CHECK(rrpc_credentials_tencent(NULL, &c) == RRPC_STATUS_NULL_POINTER);
    t.product_id = NULL;
    refused_tencent(&t, RRPC_STATUS_NULL_POINTER, "product_id is NULL");

    /* Bad Alibaba input. */
    a = alibaba();
    a.device_name = "dev\xff";
    refused_alibaba(&a, RRPC_STATUS_INVALID_UTF8, "device_name is not valid UTF-8");
    a = alibaba();
    a.device_name = "dev/2";
    refused_alibaba(&a, RRPC_STATUS_INVALID_IDENTITY, "device name contains the topic separator");
    a = alibaba();
    a.product_key = "pk+";
    refused_alibaba(&a, RRPC_STATUS_INVALID_IDENTITY, "product key contains an MQTT wildcard");
    a = alibaba();
    a.device_name = "a&b";
    refused_alibaba(&a, RRPC_STATUS_INVALID_IDENTITY, "device name contains the separator '&'");
    a = alibaba();
    a.client_id = "x|securemode=3";
    refused_alibaba(&a, RRPC_STATUS_INVALID_IDENTITY, "client id contains the separator '|'");
    a = alibaba();
    a.device_secret = "";
    refused_alibaba(&a, RRPC_STATUS_INVALID_ARGUMENT, "device secret is empty");
    a = alibaba();
    a.timestamp = 0;
    refused_alibaba(&a, RRPC_STATUS_INVALID_ARGUMENT, "timestamp must be 1 to 9999999999999");
    a.timestamp = 10000000000000ULL;
    refused_alibaba(&a, RRPC_STATUS_INVALID_ARGUMENT, "timestamp must be 1 to 9999999999999");
    a = alibaba();
    a.sign_method = 7;
    refused_alibaba(&a, RRPC_STATUS_INVALID_ARGUMENT, "sign_method 7");
    a = alibaba();
    a.region = "cn.shanghai";
    refused_alibaba(&a, RRPC_STATUS_INVALID_ARGUMENT, "region may hold only");

    /* Bad Tencent input. */
    t = tencent();
    t.device_psk = "not base64!";
    refused_tencent(&t, RRPC_STATUS_INVALID_ARGUMENT, "device PSK is not Base64");
    CHECK(strstr(rrpc_last_error_message(), "not base64!") == NULL);
    t = tencent();
    t.device_psk = "";
    refused_tencent(&t, RRPC_STATUS_INVALID_ARGUMENT, "device PSK is empty");
    t = tencent();
    t.conn_id = "abc;e";
    refused_tencent(&t, RRPC_STATUS_INVALID_ARGUMENT, "connection id must be 5 letters or digits");
    t = tencent();
    t.expiry = 0;
    refused_tencent(&t, RRPC_STATUS_INVALID_ARGUMENT, "expiry must be 1 to 9999999999999");
    t = tencent();
    t.device_name = "dev;1";
    refused_tencent(&t, RRPC_STATUS_INVALID_IDENTITY, "device name contains the separator ';'");
    t = tencent();
    t.product_id = "PID#";
    refused_tencent(&t, RRPC_STATUS_INVALID_IDENTITY, "product id contains an MQTT wildcard");

    /* The secret-derived output can be cleared by the application. */
    memset(&c, 0, sizeof c);
    printf("credentials harness: %d checks passed\n", checks);
    return 0;
}
