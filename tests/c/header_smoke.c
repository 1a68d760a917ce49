/* Compiled as C99 and as C++11 with -Wall -Wextra -Werror -pedantic by
 * tests/tooling/header/mod.rs: every declaration of rrpc.h must be valid in both, and every
 * status is used (RRPC_NODISCARD). */
#include <rrpc.h>

static void on_request(void *user_data, rrpc_client *client, const rrpc_request *req)
{
    (void)user_data;
    if (RRPC_HAS_FIELD(req, rrpc_request, content_type) && req->content_type >= 0)
        (void)req->content_type;
    if (rrpc_client_reply(client, req->token, req->payload, req->payload_len) != RRPC_STATUS_OK)
        (void)rrpc_last_error_message();
}

static void on_log(void *user_data, rrpc_log_level level, const char *message)
{
    (void)user_data; (void)level; (void)message;
}

static void on_response(void *user_data, const rrpc_response *response)
{
    rrpc_response_view view;
    (void)user_data;
    if (rrpc_response_get_view(response, &view, sizeof view) == RRPC_STATUS_OK)
        (void)rrpc_code_str(view.code);
}

static int32_t on_publish(void *user_data, const char *topic, const uint8_t *payload, size_t len, int32_t qos)
{
    (void)user_data; (void)topic; (void)payload; (void)len;
    return qos;
}

static void on_router_request(void *user_data, rrpc_router *router, const rrpc_request *req)
{
    (void)user_data;
    if (rrpc_router_reply(router, req->token, req->payload, req->payload_len, req->deadline_ms - 1) !=
        RRPC_STATUS_OK)
        (void)rrpc_last_error_message();
}

static void on_filter(void *user_data, const char *filter)
{
    (void)user_data; (void)filter;
}

static void on_connection(void *user_data, const rrpc_connection_event *event)
{
    (void)user_data;
    if (event->state == RRPC_CONNECTION_DISCONNECTED && event->cause == RRPC_DISCONNECT_LOST)
        (void)event->reason;
    if (RRPC_HAS_FIELD(event, rrpc_connection_event, attempt))
        (void)event->attempt;
    (void)event->delay_ms;
}

static void on_jt808_event(void *user_data, rrpc_jt808_adapter *adapter, const rrpc_jt808_event *event)
{
    (void)user_data; (void)adapter;
    if (event->kind == RRPC_JT808_EVENT_REPLY && RRPC_HAS_FIELD(event, rrpc_jt808_event, message))
        (void)event->payload_len;
}

static int32_t on_jt808_send(void *user_data, uint64_t conn, const uint8_t *phone, size_t phone_len,
                             const uint8_t *bytes, size_t len)
{
    (void)user_data; (void)conn; (void)phone; (void)phone_len; (void)bytes; (void)len;
    return 0;
}

int header_smoke(void);
int header_smoke(void)
{
    rrpc_mqtt_config mqtt;
    rrpc_client_config cfg;
    rrpc_client *client = NULL;
    rrpc_client_stats stats;
    rrpc_dialect dialect = RRPC_DIALECT_ALIBABA;
    uint64_t now = 0;
    bool connected = false;
    char id[64];
    size_t id_len = 0;
    rrpc_status st = rrpc_mqtt_config_init(&mqtt, sizeof mqtt);
    mqtt.host = "127.0.0.1";
    mqtt.mqtt_version = RRPC_MQTT_V5;
    st = rrpc_client_config_init(&cfg, sizeof cfg);
    cfg.mqtt = &mqtt;
    st = rrpc_client_new(&cfg, &client);
    st = rrpc_dialect_from_name("tencent", &dialect);
    st = rrpc_client_add_device(client, dialect, "pk", "dn", NULL);
    st = rrpc_client_remove_device(client, dialect, "pk", "dn", NULL);
    st = rrpc_client_set_request_callback(client, on_request, NULL);
    st = rrpc_client_set_connection_callback(client, on_connection, NULL);
    st = rrpc_client_start(client);
    st = rrpc_client_stop(client);
    st = rrpc_client_yield(client, 0);
    st = rrpc_client_is_connected(client, &connected);
    st = rrpc_client_get_stats(client, &stats, sizeof stats);
    st = rrpc_client_get_client_id(client, id, sizeof id, &id_len);
    st = rrpc_monotonic_ms(&now);
    st = rrpc_set_log_handler(on_log, NULL, RRPC_LOG_WARN);
    st = rrpc_client_free(client);

    {
        rrpc_caller_config ccfg;
        rrpc_caller_call_params params;
        rrpc_caller *caller = NULL;
        rrpc_response *response = NULL;
        rrpc_caller_stats cstats;
        char json[512];
        size_t json_len = 0;
        st = rrpc_caller_config_init(&ccfg, sizeof ccfg);
        ccfg.mqtt = &mqtt;
        st = rrpc_caller_new(&ccfg, &caller);
        st = rrpc_caller_set_connection_callback(caller, on_connection, NULL);
        st = rrpc_caller_call_params_init(&params, sizeof params);
        params.product_key = "pk";
        params.device_name = "dn";
        params.custom_topic = NULL;
        params.timeout_ms = 1000;
        st = rrpc_caller_call(caller, &params, &response);
        st = rrpc_response_to_json(response, json, sizeof json, &json_len);
        st = rrpc_response_to_xml(response, json, sizeof json, NULL);
        st = rrpc_response_free(response);
        st = rrpc_caller_call_async(caller, &params, on_response, NULL);
        st = rrpc_caller_get_stats(caller, &cstats, sizeof cstats);
        st = rrpc_caller_free(caller);
    }
    {
        rrpc_router_config rcfg;
        rrpc_router *router = NULL;
        rrpc_router_stats rstats;
        rrpc_message_kind kind = RRPC_MESSAGE_NOT_RRPC;
        uint64_t next_deadline = 0;
        st = rrpc_router_config_init(&rcfg, sizeof rcfg);
        st = rrpc_router_new(&rcfg, &router);
        st = rrpc_router_set_publish(router, on_publish, NULL);
        st = rrpc_router_set_request_callback(router, on_router_request, NULL);
        st = rrpc_router_add_device(router, RRPC_DIALECT_ALIBABA, "pk", "dn", NULL, on_router_request, NULL);
        st = rrpc_router_get_filters(router, RRPC_FILTERS_WILDCARD, on_filter, NULL);
        st = rrpc_router_handle_message(router, (const uint8_t *)"t", 1, NULL, 0, false, now, &kind);
        st = rrpc_router_tick(router, now, &next_deadline);
        st = rrpc_router_next_deadline(router, &next_deadline);
        st = rrpc_router_get_stats(router, &rstats, sizeof rstats);
        st = rrpc_router_remove_device(router, RRPC_DIALECT_ALIBABA, "pk", "dn", NULL, now);
        st = rrpc_router_free(router);
    }
    {
        rrpc_jt808_adapter_config acfg;
        rrpc_jt808_adapter_submit_params sp;
        rrpc_jt808_adapter *adapter = NULL;
        rrpc_jt808_adapter_stats astats;
        rrpc_jt808_header header = {0x8900, 2013, 0, 0, 1, {0}, 6, 0, 0};
        uint8_t frame[64];
        size_t len = 0;
        bool queued = false;
        st = rrpc_jt808_adapter_config_init(&acfg, sizeof acfg);
        acfg.lenient_escapes = true;
        st = rrpc_jt808_adapter_new(&acfg, &adapter);
        st = rrpc_jt808_adapter_set_send(adapter, on_jt808_send, NULL);
        st = rrpc_jt808_adapter_set_event_callback(adapter, on_jt808_event, NULL);
        st = rrpc_jt808_adapter_submit_params_init(&sp, sizeof sp);
        st = rrpc_jt808_phone_from_digits("13800138000", 2013, sp.phone, sizeof sp.phone, &sp.phone_len);
        sp.deadline_ms = now + 1000;
        st = rrpc_jt808_adapter_submit(adapter, &sp, now, &queued);
        st = rrpc_jt808_adapter_get_stats(adapter, &astats, sizeof astats);
        st = rrpc_jt808_adapter_free(adapter);
        st = rrpc_jt808_encode(&header, NULL, 0, frame, sizeof frame, &len);
        st = rrpc_jt808_encode(&header, NULL, 0, NULL, 0, NULL);
    }
    (void)rrpc_version();
    if ((rrpc_features() & (RRPC_FEATURE_CLIENT | RRPC_FEATURE_CALLER | RRPC_FEATURE_TLS | RRPC_FEATURE_CREDENTIALS | RRPC_FEATURE_JT808 | RRPC_FEATURE_MQTT5)) == 0u)
        return 2;
    (void)rrpc_last_error_message();
    return st == RRPC_STATUS_OK || st == RRPC_STATUS_STRUCT_SIZE ? 0 : (int)rrpc_status_str(st)[0];
}
