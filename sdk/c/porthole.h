/*
 * Porthole's control API for C (and, through the DLL, for C#, VBA, AIMMS
 * and anything that calls a C function): TunnelStart, TunnelStop,
 * TunnelStopAll. The Porthole tray app (or `porthole agent`) opens the
 * tunnels; this small library only talks to it over its private endpoint
 * (a per-user named pipe on Windows, a Unix socket elsewhere). No Go
 * runtime, no threads, nothing else is loaded into the calling process.
 *
 * Tunnels started here belong to the process: the library keeps one
 * connection open, and when the process exits (however it ends) Porthole
 * closes the tunnels it started, unless they were already open.
 *
 *   int port = porthole_tunnel_start("mysql", 0);
 *   if (port < 0) fprintf(stderr, "%s\n", porthole_last_error());
 *   ... connect to 127.0.0.1:port ...
 *   porthole_tunnel_stop("mysql");
 *
 * Not thread-safe: call it from one thread (or guard it).
 */
#ifndef PORTHOLE_H
#define PORTHOLE_H

#ifdef _WIN32
#  ifdef PORTHOLE_BUILD_DLL
#    define PORTHOLE_API __declspec(dllexport)
#  else
#    define PORTHOLE_API
#  endif
#  define PORTHOLE_CALL __stdcall
#else
#  define PORTHOLE_API
#  define PORTHOLE_CALL
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Opens the tunnel named context on port (0: its usual port) and returns
   the local port it listens on (127.0.0.1), or -1 (see
   porthole_last_error). An open tunnel answers its port. */
PORTHOLE_API int PORTHOLE_CALL porthole_tunnel_start(const char *context, int port);

/* Closes the tunnel and its connections: 0, or -1. */
PORTHOLE_API int PORTHOLE_CALL porthole_tunnel_stop(const char *context);

/* Closes every open tunnel: how many were open, or -1. */
PORTHOLE_API int PORTHOLE_CALL porthole_tunnel_stop_all(void);

/* The last failure, in words for the user ("" after a success). */
PORTHOLE_API const char *PORTHOLE_CALL porthole_last_error(void);

/* Closes the connection now: the tunnels this process started close. */
PORTHOLE_API void PORTHOLE_CALL porthole_disconnect(void);

#ifdef __cplusplus
}
#endif
#endif
