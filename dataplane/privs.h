/*
 * The dataplane's privileges: root only for setup (EAL, hugepages, ports, sockets), then the
 * configured service user. no_new_privs is set before the EAL starts its threads, so every
 * thread inherits it; the drop changes the credentials of every thread (glibc broadcasts
 * setresuid/setresgid), and the check reads each thread's status from /proc.
 */
#ifndef RTVMM_DATAPLANE_PRIVS_H
#define RTVMM_DATAPLANE_PRIVS_H

#include <sys/types.h>

#include "base/err.h"

/*
 * Resolves `user` and `group` (names or ids; "" group = the user's primary group) into uid
 * and gid; with `user` "", TRUST_NO_UID and (gid_t)-1. -ENOENT naming the missing one.
 */
int dp_privs__resolve(const char *user, const char *group, uid_t *uid, gid_t *gid, struct err *e);

/* Sets no_new_privs on the calling thread (and so on every thread it starts later). */
int dp_privs__no_new_privs(struct err *e);

/*
 * Becomes uid:gid for good in every thread: supplementary groups = {gid}, real, effective and
 * saved ids, no capabilities left; then dp_privs__check.
 */
int dp_privs__drop(uid_t uid, gid_t gid, struct err *e);

/*
 * Checks every thread of this process (/proc/self/task/N/status): all four uids are `uid`,
 * all four gids `gid`, CapEff and CapPrm are 0, NoNewPrivs is 1; -EPERM naming the thread.
 */
int dp_privs__check(uid_t uid, gid_t gid, struct err *e);

#endif
