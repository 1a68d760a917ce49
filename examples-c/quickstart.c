/* The README's quickstart: an Alibaba-style device that answers every RRPC call. */
#define _POSIX_C_SOURCE 200809L
#include <rrpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void on_request(void *user_data, rrpc_client *client, const rrpc_request *req)
{
    (void)user_data;
    printf("request %s: %zu bytes\n", req->message_id, req->payload_len);
    fflush(stdout);
    if (rrpc_client_reply(client, req->token, (const uint8_t *)"ok", 2) != RRPC_STATUS_OK) /* QoS 0, once */
        fprintf(stderr, "reply: %s\n", rrpc_last_error_message());
}

int main(int argc, char **argv)
{
    rrpc_mqtt_config mqtt;
    rrpc_client_config cfg;
    rrpc_client *client = NULL;
    if (rrpc_mqtt_config_init(&mqtt, sizeof mqtt) != RRPC_STATUS_OK ||
        rrpc_client_config_init(&cfg, sizeof cfg) != RRPC_STATUS_OK)
        return 1;
    mqtt.host = "127.0.0.1";
    mqtt.port = argc > 1 ? (uint16_t)atoi(argv[1]) : 1883;
    cfg.mqtt = &mqtt;

    if (rrpc_client_new(&cfg, &client) != RRPC_STATUS_OK ||
        rrpc_client_add_device(client, RRPC_DIALECT_ALIBABA, "a1B2c3", "dev1", NULL) != RRPC_STATUS_OK ||
        rrpc_client_set_request_callback(client, on_request, NULL) != RRPC_STATUS_OK ||
        rrpc_client_start(client) != RRPC_STATUS_OK) { /* background thread */
        fprintf(stderr, "rrpc: %s\n", rrpc_last_error_message());
        return rrpc_client_free(client) == RRPC_STATUS_OK ? 1 : 2;
    }
    fprintf(stderr, "quickstart: connected\n");
    pause(); /* callbacks run on the client's thread; stop with a signal */
    return rrpc_client_free(client) == RRPC_STATUS_OK ? 0 : 1;
}
