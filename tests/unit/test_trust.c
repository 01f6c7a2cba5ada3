/* base/trust: socket directories, run directories, listeners and peer uids. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/trust.h"

static const struct trust_uids anyone_known = { .service = TRUST_NO_UID, .only = TRUST_NO_UID };
static char top[64];

static int setup(void **state)
{
	(void)state;
	snprintf(top, sizeof(top), "/tmp/rtvmm-trust-XXXXXX");
	return mkdtemp(top) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

/* Makes TOP/NAME with `mode` (exactly) and returns "TOP/NAME/s.sock". */
static const char *dir_with(const char *name, mode_t mode)
{
	static char sock[192];
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/%s", top, name);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(chmod(dir, mode), 0);
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	return sock;
}

static void expect_refused(const char *sock, const char *fragment)
{
	struct err e = { 0 };

	assert_int_equal(trust__socket_dir(sock, &anyone_known, "nic", &e), -EPERM);
	if (!strstr(e.msg, fragment))
		fail_msg("'%s' does not say '%s'", e.msg, fragment);
}

static void test_socket_dir_modes(void **state)
{
	struct err e = { 0 };

	(void)state;
	assert_int_equal(trust__socket_dir(dir_with("tight", 0700), &anyone_known, "nic", &e), 0);
	assert_int_equal(trust__socket_dir(dir_with("readable", 0755), &anyone_known, "nic", &e), 0);
	expect_refused(dir_with("group", 0770), "group-writable (mode 0770)");
	expect_refused(dir_with("world", 0777), "world-writable");
	/* /tmp itself is world-writable with the sticky bit: fine above a socket, not as its home. */
	expect_refused("/tmp/s.sock", "directory /tmp is world-writable");
}

static void test_socket_dir_ancestors(void **state)
{
	char sock[192];
	struct err e = { 0 };

	(void)state;
	dir_with("open", 0777);
	snprintf(sock, sizeof(sock), "%s/open/in", top);
	assert_int_equal(mkdir(sock, 0700), 0);
	strcat(sock, "/s.sock");
	expect_refused(sock, "above the socket is world-writable without the sticky bit");

	dir_with("sticky", 01777);
	snprintf(sock, sizeof(sock), "%s/sticky/in", top);
	assert_int_equal(mkdir(sock, 0700), 0);
	strcat(sock, "/s.sock");
	assert_int_equal(trust__socket_dir(sock, &anyone_known, "nic", &e), 0);
}

static void test_socket_dir_owner(void **state)
{
	struct trust_uids service = { .service = 4242, .only = TRUST_NO_UID };
	const char *sock = dir_with("foreign", 0700);
	char dir[192];
	struct err e = { 0 };

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(dir, sizeof(dir), "%s/foreign", top);
	assert_int_equal(chown(dir, 4242, 4242), 0);
	expect_refused(sock, "owned by uid 4242");
	/* The service user's own directory is trusted. */
	assert_int_equal(trust__socket_dir(sock, &service, "nic", &e), 0);
	assert_int_equal(trust__socket_dir("/nonexistent-rtvmm/s.sock", &service, "nic", &e), -ENOENT);
}

static void test_make_run_dir(void **state)
{
	char dir[192];
	struct stat st;
	struct err e = { 0 };

	(void)state;
	snprintf(dir, sizeof(dir), "%s/run/rtvmm", top);
	umask(022);
	assert_int_equal(trust__make_run_dir(dir, TRUST_NO_UID, (gid_t)-1, &anyone_known, &e), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* Already there and fine: kept. */
	assert_int_equal(trust__make_run_dir(dir, TRUST_NO_UID, (gid_t)-1, &anyone_known, &e), 0);
	/* Already there and world-writable: refused, not repaired behind the owner's back. */
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(trust__make_run_dir(dir, TRUST_NO_UID, (gid_t)-1, &anyone_known, &e), -EPERM);
	assert_non_null(strstr(e.msg, "run directory"));
	if (geteuid() == 0) {
		snprintf(dir, sizeof(dir), "%s/run/svc", top);
		assert_int_equal(trust__make_run_dir(dir, 4242, 4243, &anyone_known, &e), -EPERM);
		assert_int_equal(stat(dir, &st), 0);
		assert_int_equal(st.st_uid, 4242);
		assert_int_equal(st.st_gid, 4243);
	}
}

static void test_socket_in_use(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/l.sock", top);
	assert_false(trust__socket_in_use(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_true(trust__socket_in_use(sa.sun_path));
	close(fd);
	/* The file stays, nobody listens: stale, free to replace. */
	assert_int_equal(access(sa.sun_path, F_OK), 0);
	assert_false(trust__socket_in_use(sa.sun_path));
}

static void test_peer(void **state)
{
	struct trust_uids only_other = { .service = TRUST_NO_UID, .only = 4242 };
	struct trust_uids only_me = { .service = TRUST_NO_UID, .only = geteuid() };
	struct err e = { 0 };
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(trust__peer(sv[0], &anyone_known, "nic", &e), 0);
	assert_int_equal(trust__peer(sv[0], &only_me, "nic", &e), 0);
	assert_int_equal(trust__peer(sv[0], &only_other, "nic", &e), -EPERM);
	assert_non_null(strstr(e.msg, "expects the backend as uid 4242"));
	close(sv[0]);
	close(sv[1]);
}

static void test_user_and_group_names(void **state)
{
	uid_t uid;
	gid_t gid;

	(void)state;
	assert_int_equal(trust__user("root", &uid, &gid), 0);
	assert_int_equal(uid, 0);
	assert_int_equal(trust__user("4242", &uid, NULL), 0);
	assert_int_equal(uid, 4242);
	assert_int_equal(trust__user("no-such-user-rtvmm", &uid, &gid), -ENOENT);
	assert_int_equal(trust__group("root", &gid), 0);
	assert_int_equal(gid, 0);
	assert_int_equal(trust__group("no-such-group-rtvmm", &gid), -ENOENT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_socket_dir_modes),
		T(test_socket_dir_ancestors),
		T(test_socket_dir_owner),
		T(test_make_run_dir),
		T(test_socket_in_use),
		T(test_peer),
		T(test_user_and_group_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
