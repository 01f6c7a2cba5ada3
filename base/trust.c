/* Trust checks for local unix sockets: directory ownership and modes, listeners, peer uids. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/trust.h"

/* A decimal id, or -1 when `s` is not one. */
static long long parse_id(const char *s)
{
	char *end;
	long long v;

	if (!*s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < 0 || v >= (long long)TRUST_NO_UID)
		return -1;
	return v;
}

int trust__user(const char *name, uid_t *uid, gid_t *primary_gid)
{
	long long id = parse_id(name);
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (id >= 0) {
		*uid = (uid_t)id;
		if (primary_gid)
			*primary_gid = getpwuid_r(*uid, &pw, buf, sizeof(buf), &res) == 0 && res
				       ? pw.pw_gid : (gid_t)id;
		return 0;
	}
	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) || !res)
		return -ENOENT;
	*uid = pw.pw_uid;
	if (primary_gid)
		*primary_gid = pw.pw_gid;
	return 0;
}

int trust__group(const char *name, gid_t *gid)
{
	long long id = parse_id(name);
	struct group gr, *res = NULL;
	char buf[4096];

	if (id >= 0) {
		*gid = (gid_t)id;
		return 0;
	}
	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) || !res)
		return -ENOENT;
	*gid = gr.gr_gid;
	return 0;
}

bool trust__uid_ok(const struct trust_uids *t, uid_t uid)
{
	if (t->only != TRUST_NO_UID)
		return uid == t->only;
	return uid == 0 || uid == getuid() || uid == geteuid() ||
	       (t->service != TRUST_NO_UID && uid == t->service);
}

/* A directory may belong to root, this process or the service user (never to the one peer trusted). */
static bool dir_owner_ok(const struct trust_uids *t, uid_t uid)
{
	const struct trust_uids any = { .service = t->service, .only = TRUST_NO_UID };

	return trust__uid_ok(&any, uid);
}

/* Checks one directory: `last` is the socket's own, the others are its ancestors. */
static int check_dir(const char *dir, const struct stat *st, bool last, const struct trust_uids *t,
		     const char *what, struct err *e)
{
	if (!S_ISDIR(st->st_mode))
		return err__set(e, -ENOTDIR, "%s: %s is not a directory", what, dir);
	if (!dir_owner_ok(t, st->st_uid))
		return err__set(e, -EPERM, "%s: directory %s is owned by uid %u, not by this user or "
				"root: whoever owns it can swap the socket (and get guest RAM)",
				what, dir, (unsigned)st->st_uid);
	if (last && (st->st_mode & (S_IWGRP | S_IWOTH)))
		return err__set(e, -EPERM, "%s: directory %s is %s-writable (mode %04o): anyone who can "
				"write there can swap the socket and get guest RAM; use a 0700 directory "
				"such as %s", what, dir, st->st_mode & S_IWOTH ? "world" : "group",
				(unsigned)(st->st_mode & 07777), TRUST_DEFAULT_RUN_DIR);
	if (!last && (st->st_mode & (S_IWGRP | S_IWOTH)) && !(st->st_mode & S_ISVTX))
		return err__set(e, -EPERM, "%s: directory %s above the socket is %s-writable without the "
				"sticky bit (mode %04o): anyone can rename what is below it",
				what, dir, st->st_mode & S_IWOTH ? "world" : "group",
				(unsigned)(st->st_mode & 07777));
	return 0;
}

/* Checks `dir` (resolved) and every directory above it. */
static int check_tree(const char *dir, const struct trust_uids *t, const char *what, struct err *e)
{
	char real[PATH_MAX], *slash;
	struct stat st;
	bool last = true;
	int err;

	if (!realpath(dir, real)) {
		err = -errno;
		return err__set(e, err, "%s: directory %s: %s", what, dir, strerror(-err));
	}
	for (;;) {
		if (stat(real, &st)) {
			err = -errno;
			return err__set(e, err, "%s: %s: %s", what, real, strerror(-err));
		}
		err = check_dir(real, &st, last, t, what, e);
		if (err)
			return err;
		last = false;
		slash = strrchr(real, '/');
		if (!slash || !strcmp(real, "/"))
			return 0;
		if (slash == real)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
}

int trust__socket_dir(const char *path, const struct trust_uids *t, const char *what, struct err *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash)
		return check_tree(".", t, what, e);
	if ((size_t)(slash - path) >= sizeof(dir))
		return err__set(e, -ENAMETOOLONG, "%s: %s: path too long", what, path);
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return check_tree(slash == path ? "/" : dir, t, what, e);
}

/* mkdir -p for the parents of `dir`, 0755. */
static int make_parents(const char *dir, struct err *e)
{
	char buf[PATH_MAX], *p;
	int err;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return err__set(e, -ENAMETOOLONG, "run directory %s: path too long", dir);
	for (p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST) {
			err = -errno;
			return err__set(e, err, "run directory %s: cannot create %s: %s", dir, buf,
					strerror(-err));
		}
		*p = '/';
	}
	return 0;
}

int trust__make_run_dir(const char *dir, uid_t owner, gid_t group, const struct trust_uids *t,
			struct err *e)
{
	char what[PATH_MAX + 16];
	int err;

	snprintf(what, sizeof(what), "run directory %s", dir);
	err = make_parents(dir, e);
	if (err)
		return err;
	if (mkdir(dir, 0700) == 0) {
		/* mkdir applies the umask: say 0700 exactly. */
		if (chmod(dir, 0700) || ((owner != TRUST_NO_UID || group != (gid_t)-1) &&
					 chown(dir, owner, group))) {
			err = -errno;
			return err__set(e, err, "%s: cannot set its owner or mode: %s", what, strerror(-err));
		}
	} else if (errno != EEXIST) {
		err = -errno;
		return err__set(e, err, "%s: cannot create it: %s", what, strerror(-err));
	}
	return check_tree(dir, t, what, e);
}

bool trust__socket_in_use(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	bool in_use;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;
	/* Only "nobody listens" and "nothing there" mean free; anything else may be a listener. */
	in_use = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
		 (errno != ECONNREFUSED && errno != ENOENT);
	close(fd);
	return in_use;
}

int trust__peer(int fd, const struct trust_uids *t, const char *what, struct err *e)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int err;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		err = -errno;
		return err__set(e, err, "%s: cannot read the peer's credentials: %s", what, strerror(-err));
	}
	if (trust__uid_ok(t, cred.uid))
		return 0;
	if (t->only != TRUST_NO_UID)
		return err__set(e, -EPERM, "%s: peer pid %d runs as uid %u, but the plan expects the "
				"backend as uid %u: refused (it would get guest RAM)",
				what, (int)cred.pid, (unsigned)cred.uid, (unsigned)t->only);
	return err__set(e, -EPERM, "%s: peer pid %d runs as uid %u, neither root, this process's uid "
			"%u nor the service user: refused (it would get guest RAM); set the NIC's "
			"backend_user to trust it", what, (int)cred.pid, (unsigned)cred.uid,
			(unsigned)geteuid());
}
