/* Dialects from C, with no network at all: a dialect registered with rrpc_dialect_register
 * (and the definitions it refuses, each naming its field), names by the one buffer rule,
 * and a router serving an Azure device, a registered-dialect device and an Alibaba one:
 * the request's name, replies with a status code in the reply topic (and none where the
 * dialect has no {status}), and one Azure device per connection. Prints "dialect harness:
 * N checks passed" and exits 0, or names the first failed check and exits 1.
 * Built and run by tests/c_api/dialect_c.rs; also clean under valgrind. */
#define HARNESS_NAME "dialect harness"
#include "harness.h"

#include <string.h>

/* What the publish function saw. */
static char last_topic[256];
static char last_payload[64];
static int published;

static int32_t publish(void *user_data, const char *topic, const uint8_t *payload, size_t len, int32_t qos)
{
    (void)user_data;
    (void)qos;
    snprintf(last_topic, sizeof last_topic, "%s", topic);
    snprintf(last_payload, sizeof last_payload, "%.*s", (int)len, len ? (const char *)payload : "");
    published++;
    return 0;
}

/* The last request, copied: its strings live only during the callback. */
static uint64_t last_token;
static rrpc_dialect last_dialect;
static char last_id[64];
static char last_name[64];
static int had_name; /* the view has the field and it is not NULL */

static void on_request(void *user_data, rrpc_router *router, const rrpc_request *req)
{
    (void)user_data;
    (void)router;
    last_token = req->token;
    last_dialect = req->dialect;
    snprintf(last_id, sizeof last_id, "%s", req->message_id);
    CHECK(RRPC_HAS_FIELD(req, rrpc_request, name));
    had_name = req->name != NULL;
    snprintf(last_name, sizeof last_name, "%s", had_name ? req->name : "");
}

static uint64_t clock_ms = 1000;

static rrpc_message_kind handle(rrpc_router *r, const char *topic)
{
    rrpc_message_kind kind = 99;
    CHECK(rrpc_router_handle_message(r, (const uint8_t *)topic, strlen(topic), (const uint8_t *)"{}", 2, false,
                                     clock_ms, &kind) == RRPC_STATUS_OK);
    return kind;
}

/* A definition of the "acme" dialect, from the defaults. */
static rrpc_dialect_config acme_config(void)
{
    rrpc_dialect_config c;
    CHECK(rrpc_dialect_config_init(&c, sizeof c) == RRPC_STATUS_OK);
    c.name = "acme";
    c.request = "acme/{pk}/{dn}/rpc/call-{id}/{name}";
    c.response = "acme/{pk}/{dn}/rpc/reply-{id}/{status}";
    return c;
}

/* A definition refused with RRPC_STATUS_INVALID_DIALECT, the message naming `field` and
 * saying `what`; nothing written to the out-parameter. */
static void refused(const char *name, rrpc_dialect_config c, const char *field, const char *what)
{
    rrpc_dialect d = 12345;
    char prefix[64];
    check_case = name;
    CHECK(rrpc_dialect_register(&c, &d) == RRPC_STATUS_INVALID_DIALECT);
    CHECK(d == 12345);
    snprintf(prefix, sizeof prefix, "rrpc_dialect_register: %s: ", field);
    CHECK(strncmp(rrpc_last_error_message(), prefix, strlen(prefix)) == 0);
    CHECK(strstr(rrpc_last_error_message(), what) != NULL);
    check_case = NULL;
}

int main(void)
{
    rrpc_dialect_config c;
    rrpc_dialect acme = 0, again = 0, found = 0;
    char buf[64];
    size_t len = 0;

    /* The defaults: 8000 ms, no strings. */
    CHECK(rrpc_dialect_config_init(&c, sizeof c) == RRPC_STATUS_OK);
    CHECK(c.struct_size == sizeof c && c.default_timeout_ms == 8000);
    CHECK(c.name == NULL && c.subscribe == NULL && c.request == NULL && c.response == NULL);
    CHECK(rrpc_dialect_config_init(&c, 2) == RRPC_STATUS_STRUCT_SIZE);
    CHECK(rrpc_dialect_config_init(NULL, sizeof c) == RRPC_STATUS_NULL_POINTER);

    /* Registered, from RRPC_DIALECT_USER_FIRST; the same definition again is the same value. */
    c = acme_config();
    CHECK(rrpc_dialect_register(&c, &acme) == RRPC_STATUS_OK);
    CHECK(acme >= RRPC_DIALECT_USER_FIRST);
    CHECK(rrpc_dialect_register(&c, &again) == RRPC_STATUS_OK && again == acme);
    CHECK(rrpc_dialect_from_name("acme", &found) == RRPC_STATUS_OK && found == acme);

    /* Names by the one buffer rule. */
    CHECK(rrpc_dialect_name(acme, NULL, 0, &len) == RRPC_STATUS_BUFFER_TOO_SMALL && len == 4);
    memset(buf, 'x', sizeof buf);
    CHECK(rrpc_dialect_name(acme, buf, 4, &len) == RRPC_STATUS_BUFFER_TOO_SMALL && len == 4 && buf[0] == 'x');
    CHECK(rrpc_dialect_name(acme, buf, 5, &len) == RRPC_STATUS_OK && len == 4 && strcmp(buf, "acme") == 0);
    CHECK(rrpc_dialect_name(RRPC_DIALECT_AZURE, buf, sizeof buf, NULL) == RRPC_STATUS_OK);
    CHECK(strcmp(buf, "azure") == 0);
    CHECK(rrpc_dialect_name(RRPC_DIALECT_ALIBABA_CUSTOM, buf, sizeof buf, &len) == RRPC_STATUS_OK);
    CHECK(strcmp(buf, "alibaba-custom") == 0 && len == 14);
    CHECK(rrpc_dialect_name(acme + 1, buf, sizeof buf, &len) == RRPC_STATUS_INVALID_ARGUMENT);
    CHECK(rrpc_dialect_name(99, buf, sizeof buf, &len) == RRPC_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(rrpc_last_error_message(), "dialect 99") != NULL);

    /* Refusals, each naming its field. */
    c = acme_config();
    c.name = "Acme Corp";
    refused("bad name", c, "name", "a-z 0-9");
    c = acme_config();
    c.name = "azure";
    refused("built-in name", c, "name", "built-in");
    c = acme_config();
    c.response = "acme/{pk}/{dn}/rpc/answer-{id}";
    refused("taken name", c, "name", "already registered");
    c = acme_config();
    c.name = "noid";
    c.request = "noid/{dn}/rpc";
    c.response = "noid/{dn}/rpc/reply";
    refused("no id", c, "request", "has no {id}");
    c = acme_config();
    c.name = "typo";
    c.request = "typo/{dn}/{msgid}";
    refused("unknown placeholder", c, "request", "unknown placeholder {msgid}");
    c = acme_config();
    c.name = "wild";
    c.request = "wild/+/{dn}/{id}";
    c.response = "wild/{dn}/{id}";
    refused("wildcard", c, "request", "");
    c = acme_config();
    c.name = "noreq";
    c.request = "noreq/{dn}/{id}";
    c.response = "noreq/{dn}/{id}/{name}";
    refused("reply placeholder", c, "response", "{name}");
    c = acme_config();
    c.name = "deaf";
    c.request = "deaf/{pk}/{dn}/{id}";
    c.response = "deaf/{pk}/{dn}/{id}/r";
    c.subscribe = "other/{pk}/{dn}/+";
    refused("filter", c, "subscribe", "");
    c = acme_config();
    c.name = "slow";
    c.request = "slow/{dn}/{id}";
    c.response = "slow/{dn}/{id}/r";
    c.default_timeout_ms = 0;
    refused("timeout 0", c, "default_timeout_ms", "is 0");
    c.default_timeout_ms = 600001;
    refused("timeout too long", c, "default_timeout_ms", "600000");
    c = acme_config();
    c.name = "twin";
    c.request = "$iothub/methods/POST/{name}/?$rid={id}";
    c.response = "twin/{id}";
    refused("overlap", c, "request", "azure");
    /* Pointers and sizes, before any definition is looked at. */
    c = acme_config();
    c.request = NULL;
    CHECK(rrpc_dialect_register(&c, &found) == RRPC_STATUS_NULL_POINTER);
    CHECK(strstr(rrpc_last_error_message(), "config->request") != NULL);
    c = acme_config();
    c.name = "\xff";
    CHECK(rrpc_dialect_register(&c, &found) == RRPC_STATUS_INVALID_UTF8);
    c = acme_config();
    CHECK(rrpc_dialect_register(&c, NULL) == RRPC_STATUS_NULL_POINTER);
    CHECK(rrpc_dialect_register(NULL, &found) == RRPC_STATUS_NULL_POINTER);
    c.struct_size = 2;
    CHECK(rrpc_dialect_register(&c, &found) == RRPC_STATUS_STRUCT_SIZE);
    CHECK(rrpc_dialect_from_name("noid", &found) == RRPC_STATUS_INVALID_ARGUMENT);
    CHECK(strcmp(rrpc_status_str(RRPC_STATUS_INVALID_DIALECT), "unknown status") != 0);

    /* A router with an Azure device, an acme device and an Alibaba device. */
    rrpc_router_config rc;
    rrpc_router *r = NULL;
    CHECK(rrpc_router_config_init(&rc, sizeof rc) == RRPC_STATUS_OK);
    CHECK(rrpc_router_new(&rc, &r) == RRPC_STATUS_OK);
    CHECK(rrpc_router_set_publish(r, publish, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_set_request_callback(r, on_request, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_add_device(r, RRPC_DIALECT_AZURE, "hub", "thermostat", NULL, NULL, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_add_device(r, acme, "p1", "d1", NULL, NULL, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_add_device(r, RRPC_DIALECT_ALIBABA, "pk", "dev", NULL, NULL, NULL) == RRPC_STATUS_OK);
    /* Azure's topics name no device: a second Azure device on the router is refused. */
    CHECK(rrpc_router_add_device(r, RRPC_DIALECT_AZURE, "hub", "boiler", NULL, NULL, NULL) ==
          RRPC_STATUS_ALREADY_EXISTS);
    CHECK(strstr(rrpc_last_error_message(), "one device of it per connection") != NULL);
    CHECK(strstr(rrpc_last_error_message(), "azure") != NULL);

    /* Azure: the method name reaches the callback, the reply carries the status. */
    CHECK(handle(r, "$iothub/methods/POST/reboot/?$rid=42") == RRPC_MESSAGE_REQUEST);
    CHECK(last_dialect == RRPC_DIALECT_AZURE);
    CHECK(had_name && strcmp(last_name, "reboot") == 0 && strcmp(last_id, "42") == 0);
    /* Codes outside 100-599 are refused and keep the token. */
    CHECK(rrpc_router_reply_status(r, last_token, 99, NULL, 0, clock_ms) == RRPC_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(rrpc_last_error_message(), "status 99") != NULL);
    CHECK(rrpc_router_reply_status(r, last_token, 600, NULL, 0, clock_ms) == RRPC_STATUS_INVALID_ARGUMENT);
    CHECK(rrpc_router_reply_status(r, last_token, 65536 + 404, NULL, 0, clock_ms) == RRPC_STATUS_INVALID_ARGUMENT);
    CHECK(published == 0);
    CHECK(rrpc_router_reply_status(r, last_token, 404, (const uint8_t *)"{\"err\":1}", 9, clock_ms) ==
          RRPC_STATUS_OK);
    CHECK(strcmp(last_topic, "$iothub/methods/res/404/?$rid=42") == 0);
    CHECK(strcmp(last_payload, "{\"err\":1}") == 0);
    CHECK(rrpc_router_reply_status(r, last_token, 200, NULL, 0, clock_ms) == RRPC_STATUS_ALREADY_REPLIED);
    /* A plain reply is 200. */
    CHECK(handle(r, "$iothub/methods/POST/getTemp/?$rid=43") == RRPC_MESSAGE_REQUEST);
    CHECK(strcmp(last_name, "getTemp") == 0);
    CHECK(rrpc_router_reply(r, last_token, (const uint8_t *)"21", 2, clock_ms) == RRPC_STATUS_OK);
    CHECK(strcmp(last_topic, "$iothub/methods/res/200/?$rid=43") == 0);

    /* The registered dialect: routed like a built-in one, its {status} filled in. */
    CHECK(handle(r, "acme/p1/d1/rpc/call-7/setMode") == RRPC_MESSAGE_REQUEST);
    CHECK(last_dialect == acme);
    CHECK(had_name && strcmp(last_name, "setMode") == 0 && strcmp(last_id, "7") == 0);
    CHECK(rrpc_router_reply_status(r, last_token, 202, (const uint8_t *)"ok", 2, clock_ms) == RRPC_STATUS_OK);
    CHECK(strcmp(last_topic, "acme/p1/d1/rpc/reply-7/202") == 0);
    CHECK(handle(r, "acme/p1/d2/rpc/call-8/setMode") == RRPC_MESSAGE_DROPPED); /* not registered */

    /* Alibaba has no {status} and no name: the status is ignored, the name NULL. */
    CHECK(handle(r, "/sys/pk/dev/rrpc/request/1001") == RRPC_MESSAGE_REQUEST);
    CHECK(!had_name);
    CHECK(rrpc_router_reply_status(r, last_token, 404, (const uint8_t *)"x", 1, clock_ms) == RRPC_STATUS_OK);
    CHECK(strcmp(last_topic, "/sys/pk/dev/rrpc/response/1001") == 0);

    /* Once the Azure device is removed, another may take its place. */
    CHECK(rrpc_router_remove_device(r, RRPC_DIALECT_AZURE, "hub", "thermostat", NULL, clock_ms) == RRPC_STATUS_OK);
    CHECK(rrpc_router_add_device(r, RRPC_DIALECT_AZURE, "hub", "boiler", NULL, NULL, NULL) == RRPC_STATUS_OK);
    CHECK(rrpc_router_free(r) == RRPC_STATUS_OK);

    printf("dialect harness: %d checks passed\n", checks);
    return 0;
}
