/* Porthole's control API client; see porthole.h and package control for
   the protocol (one request line, one answer line). */
#define PORTHOLE_BUILD_DLL
#include "porthole.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  include <windows.h>
typedef HANDLE conn_t;
#  define NO_CONN INVALID_HANDLE_VALUE
#else
#  include <sys/socket.h>
#  include <sys/un.h>
#  include <unistd.h>
#  include <errno.h>
typedef int conn_t;
#  define NO_CONN (-1)
#endif

static conn_t conn = NO_CONN;
static char last_error[1200];
static char inbuf[2048];
static size_t inlen;

/* copy_str copies src into dst (n bytes), cutting it short if needed. */
static void copy_str(char *dst, size_t n, const char *src) {
    size_t len = strlen(src);
    if (len >= n) len = n - 1;
    memcpy(dst, src, len);
    dst[len] = 0;
}

static void set_error(const char *msg) { copy_str(last_error, sizeof last_error, msg); }

static void endpoint(char *out, size_t n) {
    const char *env = getenv("PORTHOLE_CONTROL");
    if (env && *env) {
        copy_str(out, n, env);
        return;
    }
#ifdef _WIN32
    const char *user = getenv("USERNAME");
    snprintf(out, n, "\\\\.\\pipe\\porthole-control-%s", user ? user : "");
#else
    const char *run = getenv("XDG_RUNTIME_DIR");
    if (run && *run)
        snprintf(out, n, "%s/porthole/control.sock", run);
    else {
        const char *tmp = getenv("TMPDIR");
        snprintf(out, n, "%s/porthole-%d/control.sock", tmp && *tmp ? tmp : "/tmp", (int)getuid());
    }
#endif
}

static void disconnect(void) {
    if (conn == NO_CONN) return;
#ifdef _WIN32
    CloseHandle(conn);
#else
    close(conn);
#endif
    conn = NO_CONN;
    inlen = 0;
}

static int send_all(const char *s, size_t n) {
    while (n > 0) {
#ifdef _WIN32
        DWORD w = 0;
        if (!WriteFile(conn, s, (DWORD)n, &w, NULL)) return -1;
#else
        ssize_t w = write(conn, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
#endif
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* read_line reads one answer line into out (without the newline). */
static int read_line(char *out, size_t n) {
    for (;;) {
        char *nl = memchr(inbuf, '\n', inlen);
        if (nl) {
            size_t len = (size_t)(nl - inbuf);
            size_t copy = len < n - 1 ? len : n - 1;
            memcpy(out, inbuf, copy);
            out[copy] = 0;
            memmove(inbuf, nl + 1, inlen - len - 1);
            inlen -= len + 1;
            return 0;
        }
        if (inlen == sizeof inbuf) return -1;
#ifdef _WIN32
        DWORD r = 0;
        if (!ReadFile(conn, inbuf + inlen, (DWORD)(sizeof inbuf - inlen), &r, NULL) || r == 0) return -1;
#else
        ssize_t r = read(conn, inbuf + inlen, sizeof inbuf - inlen);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
#endif
        inlen += (size_t)r;
    }
}

static int connect_once(void) {
    char path[512];
    if (conn != NO_CONN) return 0;
    endpoint(path, sizeof path);
#ifdef _WIN32
    conn = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (conn == INVALID_HANDLE_VALUE) {
        snprintf(last_error, sizeof last_error,
                 "Porthole is not running (start the tray app or porthole agent): cannot open %s (error %lu)",
                 path, (unsigned long)GetLastError());
        return -1;
    }
#else
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        set_error("the control socket's path is too long");
        return -1;
    }
    strcpy(sa.sun_path, path);
    conn = socket(AF_UNIX, SOCK_STREAM, 0);
    if (conn < 0 || connect(conn, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(last_error, sizeof last_error,
                 "Porthole is not running (start the tray app or porthole agent): cannot connect to %s: %s",
                 path, strerror(errno));
        disconnect();
        return -1;
    }
#endif
    return 0;
}

/* ask sends one request and puts the answer after "OK" into rest. */
static int ask(const char *request, char *rest, size_t n) {
    char line[1100];
    if (connect_once() < 0) return -1;
    if (send_all(request, strlen(request)) < 0 || send_all("\n", 1) < 0 || read_line(line, sizeof line) < 0) {
        set_error("Porthole closed the connection (the tray app or agent stopped?)");
        disconnect();
        return -1;
    }
    if (strncmp(line, "ERR ", 4) == 0) {
        set_error(line + 4);
        return -1;
    }
    if (strncmp(line, "OK", 2) != 0) {
        set_error("unexpected answer from Porthole");
        return -1;
    }
    copy_str(rest, n, line[2] == ' ' ? line + 3 : "");
    last_error[0] = 0;
    return 0;
}

static int valid_name(const char *context) {
    if (!context || !*context || strlen(context) > 64) return 0;
    for (const char *p = context; *p; p++)
        if (*p <= ' ' || *p == 0x7f) return 0;
    return 1;
}

int PORTHOLE_CALL porthole_tunnel_start(const char *context, int port) {
    char req[128], rest[64];
    if (!valid_name(context)) {
        set_error("name the tunnel, like mysql (1-64 characters, no spaces)");
        return -1;
    }
    if (port < 0 || port > 65535) {
        set_error("the port must be 0 (the tunnel's usual one) or 1-65535");
        return -1;
    }
    snprintf(req, sizeof req, "START %s %d HOLD", context, port);
    if (ask(req, rest, sizeof rest) < 0) return -1;
    return atoi(rest);
}

int PORTHOLE_CALL porthole_tunnel_stop(const char *context) {
    char req[128], rest[64];
    if (!valid_name(context)) {
        set_error("name the tunnel, like mysql (1-64 characters, no spaces)");
        return -1;
    }
    snprintf(req, sizeof req, "STOP %s", context);
    return ask(req, rest, sizeof rest);
}

int PORTHOLE_CALL porthole_tunnel_stop_all(void) {
    char rest[64];
    if (ask("STOPALL", rest, sizeof rest) < 0) return -1;
    return atoi(rest);
}

const char *PORTHOLE_CALL porthole_last_error(void) { return last_error; }

void PORTHOLE_CALL porthole_disconnect(void) { disconnect(); }
