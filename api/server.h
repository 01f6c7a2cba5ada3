/*
 * A small HTTP/1.1 + JSON server on a unix socket (libmicrohttpd, jansson), served by one
 * thread named "api": a table of routes (method, path, handler), JSON bodies in and out, and
 * every bad request answered with a JSON error (404 unknown path, 405 wrong verb, 400
 * malformed or oversized body) while it keeps serving. It knows nothing of VMs: the
 * application binds the routes (app/control.c).
 */
#ifndef RTVMM_API_SERVER_H
#define RTVMM_API_SERVER_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "base/err.h"

/* What a handler answers: a status and a JSON body (NULL: none, e.g. 204). */
struct api_answer {
	int status;
	json_t *body;                   /* owned by the answer */
	/* Called once the answer went out (or the client left): an action after the reply. */
	void (*after)(void *opaque);
	void *after_opaque;
};

/* Handles one request; `body` is the parsed JSON body, NULL when the request had none. */
typedef void (*api_handler)(void *opaque, const json_t *body, struct api_answer *out);

struct api_route {
	const char *method;             /* "GET", "PUT" */
	const char *path;               /* "/api/v1/vm.info" */
	api_handler handler;
};

struct api_server_config {
	const char *socket_path;
	const struct api_route *routes;
	unsigned nr_routes;
	void *opaque;                   /* each handler's first argument */
	unsigned max_connections;       /* 0: 16 */
	unsigned timeout_s;             /* an idle connection is closed after this; 0: 5 s */
	size_t max_body;                /* a larger body is refused (400); 0: 64 KiB */
	uid_t owner;                    /* (uid_t)-1: the socket stays ours; else chown'd to it */
	gid_t group;
};

struct api_server;

/*
 * Creates the socket (mode 0600; refused when a live server holds the path, a stale
 * socket is replaced) and starts the "api" thread serving it. The thread announces
 * THREAD_CLASS_API as it starts (base/thread_class.h).
 */
int api_server__start(struct api_server **out, const struct api_server_config *cfg,
		      struct err *e);

/* Stops the thread (open connections are closed), removes the socket and frees `s`. */
void api_server__stop(struct api_server *s);

/* Sets `a` to `status` with `body` (a new reference is taken over; NULL: no body). */
void api_answer__json(struct api_answer *a, int status, json_t *body);

/* Sets `a` to `status` with the body {"error": MESSAGE}. */
__attribute__((format(printf, 3, 4)))
void api_answer__error(struct api_answer *a, int status, const char *fmt, ...);

/* A request whose handler answers later, from another thread. */
struct api_deferred;

/*
 * From a handler: it answers later (api_deferred__answer), and whatever `a`
 * holds now is dropped. The client waits; this server serves other requests
 * meanwhile. The handle is good until answered, which must happen before
 * api_server__stop.
 */
struct api_deferred *api_answer__defer(struct api_answer *a);

/*
 * From any thread, once: answers the deferred request with `a` (its status,
 * body and after-action are taken over); the API thread sends it.
 */
void api_deferred__answer(struct api_deferred *d, struct api_answer *a);

#endif
