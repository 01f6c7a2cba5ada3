/*
 * Who may be trusted with a local unix socket. Whoever can open a vhost-user
 * socket's path, or answer on it, gets the memfd of all guest RAM, so a socket
 * lives only in a directory nobody else can write, a server never unlinks a
 * path somebody still listens on, and a peer must be a known uid.
 */
#ifndef RTVMM_BASE_TRUST_H
#define RTVMM_BASE_TRUST_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/err.h"

#define TRUST_DEFAULT_RUN_DIR "/run/rtvmm"
#define TRUST_NO_UID ((uid_t)-1)

/*
 * The uids a socket may trust: root, this process's real and effective uid,
 * and `service` (the user the tools drop to), each unless TRUST_NO_UID.
 * An explicit `only` replaces the whole set with one uid.
 */
struct trust_uids {
	uid_t service;
	uid_t only;
};

/* Resolves a user name or a decimal uid; -ENOENT when no such user. */
int trust__user(const char *name, uid_t *uid, gid_t *primary_gid);

/* Resolves a group name or a decimal gid; -ENOENT when no such group. */
int trust__group(const char *name, gid_t *gid);

/* Whether `uid` is in the set `t` describes. */
bool trust__uid_ok(const struct trust_uids *t, uid_t uid);

/*
 * Checks the directory that holds socket `path`: it must be owned by a
 * trusted uid and writable by nobody else (no group or world write), and no
 * directory above it may be group/world writable without the sticky bit.
 * `what` names the socket in the message ("vms[0].nics[0].socket").
 */
int trust__socket_dir(const char *path, const struct trust_uids *t, const char *what, struct err *e);

/*
 * Creates `dir` (and missing parents, 0755) as a 0700 directory owned by
 * `owner`:`group` (TRUST_NO_UID / (gid_t)-1: left to this process) when it is
 * missing; an existing one is left as it is and checked like a socket's.
 */
int trust__make_run_dir(const char *dir, uid_t owner, gid_t group, const struct trust_uids *t,
			struct err *e);

/* Whether some process listens on unix socket `path` (a connect() succeeds). */
bool trust__socket_in_use(const char *path);

/* Checks the peer of connected unix socket `fd` with SO_PEERCRED against `t`. */
int trust__peer(int fd, const struct trust_uids *t, const char *what, struct err *e);

#endif
