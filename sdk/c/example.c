/* Opens a tunnel, prints its port, waits for a line on standard input,
   and exits without closing it: Porthole closes it when the process is
   gone. porthole-example CONTEXT [PORT]; a failure prints ERROR: ... */
#include <stdio.h>
#include <stdlib.h>
#include "porthole.h"

int main(int argc, char **argv) {
    char line[64];
    if (argc < 2) {
        fprintf(stderr, "usage: porthole-example CONTEXT [PORT]\n");
        return 2;
    }
    int port = porthole_tunnel_start(argv[1], argc > 2 ? atoi(argv[2]) : 0);
    if (port < 0) {
        printf("ERROR: %s\n", porthole_last_error());
        fflush(stdout);
        return 1;
    }
    printf("PORT %d\n", port);
    fflush(stdout);
    if (porthole_tunnel_start("no-such-tunnel", 0) < 0) {
        printf("REFUSED %s\n", porthole_last_error());
        fflush(stdout);
    }
    fgets(line, sizeof line, stdin);
    return 0;
}
