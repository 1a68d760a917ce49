/* Compiled as C99 and as C++11 with -Wall -Wextra -Werror -pedantic by
 * tests/header.rs: every declaration of rrpc.h must be valid in both. */
#include <rrpc.h>

static void on_request(void *user_data, rrpc_client *client, const rrpc_request *req)
{
    (void)user_data;
    rrpc_client_reply(client, req->token, req->payload, req->payload_len);
}

static void on_log(void *user_data, uint32_t level, const char *message)
{
    (void)user_data; (void)level; (void)message;
}

int header_smoke(void);
int header_smoke(void)
{
    rrpc_client_config cfg;
    rrpc_client *client = NULL;
    rrpc_stats stats;
    uint32_t dialect = RRPC_DIALECT_ALIBABA;
    uint64_t now = 0;
    bool connected = false;
    char id[64];
    size_t id_len = 0;
    rrpc_status st = rrpc_client_config_init(&cfg);
    cfg.host = "127.0.0.1";
    st = rrpc_client_new(&cfg, &client);
    st = rrpc_dialect_from_name("tencent", &dialect);
    st = rrpc_client_add_device(client, dialect, "pk", "dn", NULL);
    st = rrpc_client_remove_device(client, dialect, "pk", "dn", NULL);
    st = rrpc_client_set_callback(client, on_request, NULL);
    st = rrpc_client_start(client);
    st = rrpc_client_stop(client);
    st = rrpc_client_yield(client, 0);
    st = rrpc_client_is_connected(client, &connected);
    st = rrpc_client_get_stats(client, &stats);
    st = rrpc_client_get_client_id(client, id, sizeof id, &id_len);
    st = rrpc_monotonic_ms(&now);
    st = rrpc_set_log_handler(on_log, NULL, RRPC_LOG_WARN);
    st = rrpc_client_free(client);
    (void)rrpc_version();
    (void)rrpc_last_error_message();
    return st == RRPC_STATUS_OK ? 0 : (int)rrpc_status_str(st)[0];
}
