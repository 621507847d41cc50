/*
 * docs/clients/example.c - a complete libbitnet-client program: asks bitnetd
 * for its status and prints it, then shows how an error reply looks.
 *
 *   cc example.c $(pkg-config --cflags --libs bitnet-client) -o example
 *   ./example [SOCKET]
 *
 * The build compiles this file and a test runs it, so it stays correct.
 */
#include <stdio.h>

#include <bitnet/client.h>

int main(int argc, char **argv)
{
    bitnet_client *client;
    int rc = bitnet_client_connect(argc > 1 ? argv[1] : NULL, &client);
    if (rc < 0) {
        fprintf(stderr, "cannot reach bitnetd: %s\n", bitnet_client_strerror(rc));
        return 3;
    }

    char *reply;
    rc = bitnet_client_call(client, "io.bitnetd.Query.GetStatus", NULL, &reply);
    if (rc < 0) {
        fprintf(stderr, "GetStatus failed: %s\n", bitnet_client_error_message(client));
        bitnet_client_close(client);
        return 1;
    }
    printf("status: %s\n", reply);
    bitnet_client_free(reply);

    /* A Varlink error comes back as BITNET_CLIENT_EVARLINK with its name. */
    rc = bitnet_client_call(client, "io.bitnetd.Query.NoSuchMethod", "{}", &reply);
    if (rc == BITNET_CLIENT_EVARLINK)
        printf("error: %s %s\n", bitnet_client_error_name(client),
               bitnet_client_error_parameters(client));

    bitnet_client_close(client);
    return 0;
}
