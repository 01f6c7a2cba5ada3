/*
 * Live migration's two ends as the application runs them: the source's
 * vm.send-migration (its own confined thread connects and streams), and
 * `rtvmm run --incoming tcp:HOST:PORT` (listen, accept one source, receive,
 * and tell it RUNNING once the vCPUs are placed and about to run).
 */
#ifndef RTVMM_APP_MIGRATION_H
#define RTVMM_APP_MIGRATION_H

#include <stdbool.h>
#include <sys/socket.h>

#include "base/err.h"
#include "vmm/migrate.h"
#include "vmm/vm.h"

/*
 * Parses "tcp:HOST:PORT" (HOST a numeric IPv4 address, or an IPv6 one in
 * brackets: no name lookup) into `sa`; -EINVAL with `e` naming what is wrong.
 */
int migration__parse_url(const char *url, struct sockaddr_storage *sa, socklen_t *len,
			 struct err *e);

/*
 * The thread outgoing migrations run on, of class "migration" (its own seccomp
 * filter: the TCP connection, the dirty log, the state reads); started before
 * the sandbox, idle until asked.
 */
struct migration_worker;
int migration__start_worker(struct migration_worker **out);
/* Cancels the migration under way, waits for its end (its `done` called) and refuses new ones. */
void migration__quit(struct migration_worker *w);
/* migration__quit, then frees the worker. */
void migration__stop_worker(struct migration_worker *w);

/*
 * How a migration ended, on the worker's thread: 0, the destination runs the
 * guest (the caller stops this VM); else -errno with `e` saying why.
 */
typedef void (*migration_done_fn)(void *opaque, int err, const struct migrate_stats *st,
				  const struct err *e);

/*
 * Starts migrating `vm` to `url` on the worker and returns (`p` is copied,
 * its `cancel` replaced by the worker's own); `done` is called when it ends.
 * -EBUSY when one is under way, -EINVAL (`e`) for a bad url.
 */
int migration__start_send(struct migration_worker *w, struct vm *vm, const char *url,
			  const struct migrate_params *p, migration_done_fn done, void *opaque,
			  struct err *e);

/* Asks the migration under way to give up before its switch-over completes; false when none runs. */
bool migration__cancel(struct migration_worker *w);

/* The migration under way, or else the last one: what vm.migration shows. */
struct migration_status {
	const char *state;         /* "none", "active", "succeeded", "failed", "cancelled" */
	char url[128];
	uint64_t elapsed_ns;       /* since it started, until it ended */
	char error[512];           /* why it failed, "" otherwise */
};

void migration__status(struct migration_worker *w, struct migration_status *out);

/* An incoming migration: the listening socket, then the source's connection. */
struct migration_incoming {
	int listen_fd;
	int fd;
	struct migrate_stats st;
	bool answered;             /* the source got its last answer (RUNNING, or ERROR at a failure) */
};

/* Listens on `url` (before the VM is built, so that a busy port refuses early). */
int migration__listen(struct migration_incoming *in, const char *url, struct err *e);

/*
 * Accepts the source and receives the VM into `vm` (built, not run). A peer
 * that sends no rtvmm hello is dropped (a line on stderr) and the next one
 * awaited; a stop signal meanwhile ends the wait (-EINTR, recorded in `vm`).
 */
int migration__receive(struct migration_incoming *in, struct vm *vm, struct err *e);

/* vm_hooks.guest_ready for an incoming migration: tells the source RUNNING. */
int migration__ready(void *in);

/*
 * Closes what is open; a source never told RUNNING is told ERROR first (the
 * guest did not run here: it resumes there), with `why` when known (NULL:
 * see this side's log).
 */
void migration__close(struct migration_incoming *in, const char *why);

#endif
