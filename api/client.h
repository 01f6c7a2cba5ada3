/* One HTTP/1.1 request to rtvmm's API over its unix socket, and its answer (rtvmm ctl, rtvmm up). */
#ifndef RTVMM_API_CLIENT_H
#define RTVMM_API_CLIENT_H

#include <stddef.h>

#include "base/err.h"

struct api_reply {
	int status;     /* HTTP status, e.g. 200, 204, 404 */
	char *body;     /* the body, NUL-terminated (malloc'd; "" when none) */
	size_t len;
};

/*
 * Sends `method` `uri` (e.g. "PUT", "/api/v1/vm.pause") with the JSON `body`
 * (NULL: none) to the API socket `socket_path` and reads the whole answer
 * within `timeout_ms`. Returns 0 with `out` filled (any HTTP status), or -errno
 * with `e` saying what failed (no socket, no server, timeout, a malformed answer).
 */
int api_client__call(const char *socket_path, const char *method, const char *uri,
		     const char *body, int timeout_ms, struct api_reply *out, struct err *e);

/* Frees the body of `r`. */
void api_reply__free(struct api_reply *r);

#endif
