#include "dataplane/privs.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "base/trust.h"

int dp_privs__resolve(const char *user, const char *group, uid_t *uid, gid_t *gid, struct err *e)
{
	*uid = TRUST_NO_UID;
	*gid = (gid_t)-1;
	if (!user[0])
		return 0;
	if (trust__user(user, uid, gid))
		return err__set(e, -ENOENT, "user '%s' (--user, plan host.user) does not exist", user);
	if (group[0] && trust__group(group, gid))
		return err__set(e, -ENOENT, "group '%s' (--user USER:GROUP, plan host.group) does not "
				"exist", group);
	return 0;
}

int dp_privs__no_new_privs(struct err *e)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return err__set(e, -errno, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
	return 0;
}

int dp_privs__drop(uid_t uid, gid_t gid, struct err *e)
{
	if (setgroups(1, &gid))
		return err__set(e, -errno, "setgroups(%u): %s", (unsigned)gid, strerror(errno));
	if (setresgid(gid, gid, gid))
		return err__set(e, -errno, "setresgid(%u): %s", (unsigned)gid, strerror(errno));
	if (setresuid(uid, uid, uid))
		return err__set(e, -errno, "setresuid(%u): %s", (unsigned)uid, strerror(errno));
	return dp_privs__check(uid, gid, e);
}

/* Checks one thread's status file; `tid` names it in messages. */
static int check_thread(const char *tid, uid_t uid, gid_t gid, struct err *e)
{
	char path[64], line[256], comm[32] = "?";
	unsigned long long cap_eff = ~0ull, cap_prm = ~0ull;
	unsigned u[4] = { ~0u, ~0u, ~0u, ~0u }, g[4] = { ~0u, ~0u, ~0u, ~0u }, i;
	int nnp = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
	f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : err__set(e, -errno, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Name: %31s", comm) == 1)
			continue;
		if (sscanf(line, "Uid: %u %u %u %u", &u[0], &u[1], &u[2], &u[3]) == 4 ||
		    sscanf(line, "Gid: %u %u %u %u", &g[0], &g[1], &g[2], &g[3]) == 4 ||
		    sscanf(line, "CapEff: %llx", &cap_eff) == 1 ||
		    sscanf(line, "CapPrm: %llx", &cap_prm) == 1)
			continue;
		sscanf(line, "NoNewPrivs: %d", &nnp);
	}
	fclose(f);
	for (i = 0; i < 4; i++)
		if (u[i] != uid || g[i] != gid)
			return err__set(e, -EPERM, "thread %s (%s) still has uids %u/%u/%u/%u gids "
					"%u/%u/%u/%u, not %u:%u", tid, comm, u[0], u[1], u[2], u[3],
					g[0], g[1], g[2], g[3], (unsigned)uid, (unsigned)gid);
	if (cap_eff || cap_prm)
		return err__set(e, -EPERM, "thread %s (%s) still has capabilities (CapEff %llx, CapPrm "
				"%llx)", tid, comm, cap_eff, cap_prm);
	if (nnp != 1)
		return err__set(e, -EPERM, "thread %s (%s) lacks no_new_privs", tid, comm);
	return 0;
}

int dp_privs__check(uid_t uid, gid_t gid, struct err *e)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int rc = 0;

	if (!d)
		return err__set(e, -errno, "/proc/self/task: %s", strerror(errno));
	while (!rc && (de = readdir(d)))
		if (de->d_name[0] != '.')
			rc = check_thread(de->d_name, uid, gid, e);
	closedir(d);
	return rc;
}
