/*
 * Documents on their way to stats-socket clients, without ever blocking the thread that sends
 * them: each client is a non-blocking socket with one document of at most max_bytes; flushing
 * writes what each socket takes now, closes a client once its document is out, and drops one
 * that has not taken it within timeout_s. So a client that never reads costs a slot and some
 * memory for a while, never the housekeeping thread's time (MAC aging, rates). Pure C (no
 * DPDK), tested on its own.
 */
#ifndef RTVMM_DATAPLANE_OUTBOX_H
#define RTVMM_DATAPLANE_OUTBOX_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBOX_CLIENTS 16

struct outbox_client {
	int fd;                    /* -1 = free slot */
	char *data;
	size_t len, off;
	double deadline;
};

struct outbox {
	struct outbox_client c[OUTBOX_CLIENTS];
	size_t max_bytes;
	double timeout_s;
	uint64_t refused;          /* clients turned away: no free slot, or a document too big */
	uint64_t expired;          /* clients dropped for not reading within timeout_s */
};

void outbox__init(struct outbox *o, size_t max_bytes, double timeout_s);

/* Whether a client could be taken now (a slot is free). */
bool outbox__has_room(const struct outbox *o);

/*
 * Takes client `fd` (non-blocking) and `data` (malloc'd, `len` bytes, freed by the outbox) and
 * writes what the socket takes at once. -ENOSPC (no free slot) or -EMSGSIZE (len > max_bytes):
 * the fd is closed and the data freed.
 */
int outbox__add(struct outbox *o, int fd, char *data, size_t len, double now);

/* Turns client `fd` away (closes it, counts it as refused). */
void outbox__refuse(struct outbox *o, int fd);

/* Fills `p` (OUTBOX_CLIENTS entries) with the clients waiting to write; returns how many. */
unsigned outbox__pollfds(const struct outbox *o, struct pollfd *p);

/* Writes what every client's socket takes now; closes finished, failed and expired clients. */
void outbox__flush(struct outbox *o, double now);

/* Closes every client. */
void outbox__close_all(struct outbox *o);

#endif
