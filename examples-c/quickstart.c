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
    rrpc_client_reply(client, req->token, (const uint8_t *)"ok", 2); /* QoS 0, once */
}

int main(int argc, char **argv)
{
    rrpc_client_config cfg;
    rrpc_client *client = NULL;
    rrpc_client_config_init(&cfg);
    cfg.mqtt.host = "127.0.0.1";
    cfg.mqtt.port = argc > 1 ? (uint16_t)atoi(argv[1]) : 1883;

    if (rrpc_client_new(&cfg, &client) != RRPC_STATUS_OK ||
        rrpc_client_add_device(client, RRPC_DIALECT_ALIBABA, "a1B2c3", "dev1", NULL) != RRPC_STATUS_OK ||
        rrpc_client_set_callback(client, on_request, NULL) != RRPC_STATUS_OK ||
        rrpc_client_start(client) != RRPC_STATUS_OK) { /* background thread */
        fprintf(stderr, "rrpc: %s\n", rrpc_last_error_message());
        rrpc_client_free(client);
        return 1;
    }
    fprintf(stderr, "quickstart: connected\n");
    pause(); /* callbacks run on the client's thread; stop with a signal */
    rrpc_client_free(client);
    return 0;
}
