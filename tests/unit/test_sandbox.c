/*
 * The sandbox (app/sandbox.c) without KVM: each case runs in a child process,
 * since filters and the drop cannot be undone. A thread announces its class and
 * is confined (Seccomp 2, NoNewPrivs 1, read from the parent's /proc); a
 * forbidden call ends the child with 159 and the report line; confined
 * threads survive the drop to nobody (glibc's SIGSETXID), which leaves every
 * thread at nobody's uid with no capabilities.
 */
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/nic_stats.h"
#include "app/sandbox.h"
#include "base/thread_class.h"

struct child {
	pid_t pid;
	int ready;                 /* the child writes its thread's tid here once confined */
	int go;                    /* the parent writes here to let the thread go on */
	int err;                   /* the child's stderr */
};

struct worker {
	enum thread_class cls;
	int ready, go;
	bool forbidden;            /* make a forbidden call once let go */
	const char *stats;         /* else read a stats socket there (an API thread's vm.counters) */
};

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	pid_t tid = (pid_t)syscall(SYS_gettid);
	char c;

	thread_class__enter(w->cls, "worker");
	if (write(w->ready, &tid, sizeof(tid)) != sizeof(tid) || read(w->go, &c, 1) != 1)
		return NULL;
	if (w->forbidden)
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	if (w->stats) {
		struct err e = { 0 };
		char *text = NULL;
		size_t len = 0;
		int rc = nic_stats__fetch(w->stats, 5000, 4096, &text, &len, &e);

		fprintf(stderr, "fetch %d: %s %s\n", rc, rc ? e.msg : "read", rc ? "" : text);
		free(text);
	}
	return NULL;
}

/* Forks a child that sets the sandbox up with `user`, confines one `cls` thread and, with `drop`, drops. */
static void child_start_stats(struct child *ch, const char *user, enum thread_class cls,
			      bool forbidden, bool drop, const char *stats)
{
	int ready[2], go[2], err[2], inner[2];

	assert_int_equal(pipe(inner), 0);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(err), 0);
	ch->pid = fork();
	assert_true(ch->pid >= 0);
	if (ch->pid == 0) {
		struct sandbox_config cfg = { .user = user };
		struct worker w = { .cls = cls, .ready = drop ? inner[1] : ready[1], .go = go[0],
				    .forbidden = forbidden, .stats = stats };
		struct vm_hooks hooks = { 0 };
		struct err e = { 0 };
		pthread_t t;
		char c;

		dup2(err[1], STDERR_FILENO);
		if (sandbox__init(&cfg, &e)) {
			fprintf(stderr, "sandbox__init: %s\n", e.msg);
			_exit(90);
		}
		if (pthread_create(&t, NULL, worker_thread, &w))
			_exit(91);
		if (drop) {
			pid_t tid;

			/* The worker is confined before the drop, as session and console threads are. */
			if (read(inner[0], &tid, sizeof(tid)) != sizeof(tid))
				_exit(92);
			sandbox__hook(&hooks);
			if (hooks.vcpus_started(NULL, NULL))
				_exit(93);
			if (write(ready[1], &tid, sizeof(tid)) != sizeof(tid))
				_exit(94);
		}
		if (read(go[0], &c, 1) != 1)   /* one byte for this thread, one for the worker */
			_exit(95);
		pthread_join(t, NULL);
		exit(0);   /* atexit handlers (and LeakSanitizer in sanitizer builds) under the filter */
	}
	close(inner[0]);
	close(inner[1]);
	close(ready[1]);
	close(err[1]);
	ch->ready = ready[0];
	ch->go = go[1];
	ch->err = err[0];
	close(go[0]);
}

static void child_start(struct child *ch, const char *user, enum thread_class cls, bool forbidden,
			bool drop)
{
	child_start_stats(ch, user, cls, forbidden, drop, NULL);
}

/* Waits until the child's worker is confined (and the drop done); returns its tid. */
static pid_t child_ready(struct child *ch)
{
	pid_t tid = 0;

	assert_int_equal(read(ch->ready, &tid, sizeof(tid)), sizeof(tid));
	return tid;
}

/* Lets the child go on; returns its exit status and its stderr in `out`. */
static int child_finish(struct child *ch, char *out, size_t len)
{
	ssize_t n, off = 0;
	int status;

	assert_int_equal(write(ch->go, "gg", 2), 2);
	close(ch->go);
	while ((n = read(ch->err, out + off, len - 1 - (size_t)off)) > 0)
		off += n;
	out[off] = '\0';
	close(ch->err);
	close(ch->ready);
	assert_int_equal(waitpid(ch->pid, &status, 0), ch->pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The value of `key` in /proc/PID/task/TID/status, tabs and spaces squeezed. */
static void proc_field(pid_t pid, pid_t tid, const char *key, char *val, size_t len)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	f = fopen(path, "r");
	assert_non_null(f);
	val[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		char *v = line + kl + 1, *o = val;

		if (strncmp(line, key, kl) || line[kl] != ':')
			continue;
		while (*v == '\t' || *v == ' ')
			v++;
		for (; *v && *v != '\n' && (size_t)(o - val) + 1 < len; v++)
			if (!((*v == '\t' || *v == ' ') && o > val && o[-1] == ' '))
				*o++ = *v == '\t' ? ' ' : *v;
		*o = '\0';
	}
	fclose(f);
}

static void test_sandbox_confines_a_thread_of_its_class(void **state)
{
	struct child ch;
	char v[128], out[1024];
	pid_t tid;

	(void)state;
	child_start(&ch, NULL, THREAD_CLASS_CONSOLE, false, false);
	tid = child_ready(&ch);
	proc_field(ch.pid, tid, "Seccomp", v, sizeof(v));
	assert_string_equal(v, "2");
	proc_field(ch.pid, tid, "NoNewPrivs", v, sizeof(v));
	assert_string_equal(v, "1");
	proc_field(ch.pid, ch.pid, "Seccomp", v, sizeof(v));
	assert_string_equal(v, "0");        /* the main thread only after the drop */
	assert_int_equal(child_finish(&ch, out, sizeof(out)), 0);
	assert_null(strstr(out, "forbidden"));
}

static void test_sandbox_forbidden_call_reports_the_thread_and_ends_with_159(void **state)
{
	const enum thread_class classes[] = { THREAD_CLASS_VCPU, THREAD_CLASS_SESSION,
					      THREAD_CLASS_CONSOLE, THREAD_CLASS_IO, THREAD_CLASS_API };
	char out[1024], want[160];
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		struct child ch;

		child_start(&ch, NULL, classes[i], true, false);
		child_ready(&ch);
		assert_int_equal(child_finish(&ch, out, sizeof(out)), SANDBOX_VIOLATION_STATUS);
		snprintf(want, sizeof(want), "rtvmm: sandbox: thread %sworker (%s filter) made a forbidden "
			 "system call %d (socket); stopping\n",
			 classes[i] == THREAD_CLASS_SESSION ? "vu-" : classes[i] == THREAD_CLASS_IO ? "io-" : "",
			 thread_class__name(classes[i]),
			 SYS_socket);
		if (!strstr(out, want))
			fail_msg("no '%s' in the child's stderr: %s", want, out);
	}
}

/* The stats socket's peer: answers one connection with a short document. */
static void *stats_peer(void *arg)
{
	int fd = accept(*(int *)arg, NULL, NULL);

	if (fd >= 0) {
		(void)!write(fd, "{\"version\": 1}", 14);
		close(fd);
	}
	return NULL;
}

/* The API thread's filter lets vm.counters read a NIC backend's stats socket (socket, connect). */
static void test_sandbox_api_thread_reads_a_stats_socket(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/rtvmm-sbstats-XXXXXX", out[1024];
	struct child ch;
	pthread_t t;
	int lfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/dp.sock", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, stats_peer, &lfd), 0);
	child_start_stats(&ch, NULL, THREAD_CLASS_API, false, false, sa.sun_path);
	child_ready(&ch);
	assert_int_equal(child_finish(&ch, out, sizeof(out)), 0);
	pthread_join(t, NULL);
	close(lfd);
	unlink(sa.sun_path);
	rmdir(dir);
	if (!strstr(out, "fetch 0: read {\"version\": 1}"))
		fail_msg("the API thread could not read the stats socket: %s", out);
}

static void test_sandbox_confined_threads_survive_the_drop_which_leaves_no_privilege(void **state)
{
	const enum thread_class classes[] = { THREAD_CLASS_SESSION, THREAD_CLASS_CONSOLE,
					      THREAD_CLASS_IO };
	struct passwd *pw = getpwnam("nobody");
	char v[128], want[64], out[1024];
	unsigned i;

	(void)state;
	if (geteuid() != 0 || !pw)
		skip();
	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		struct child ch;
		pid_t tid;

		child_start(&ch, "nobody", classes[i], false, true);
		tid = child_ready(&ch);
		snprintf(want, sizeof(want), "%u %u %u %u", (unsigned)pw->pw_uid, (unsigned)pw->pw_uid,
			 (unsigned)pw->pw_uid, (unsigned)pw->pw_uid);
		proc_field(ch.pid, tid, "Uid", v, sizeof(v));
		assert_string_equal(v, want);
		proc_field(ch.pid, ch.pid, "Uid", v, sizeof(v));
		assert_string_equal(v, want);
		proc_field(ch.pid, ch.pid, "Seccomp", v, sizeof(v));
		assert_string_equal(v, "2");    /* the main thread confined itself after the drop */
		proc_field(ch.pid, tid, "CapEff", v, sizeof(v));
		assert_string_equal(v, "0000000000000000");
		proc_field(ch.pid, ch.pid, "CapPrm", v, sizeof(v));
		assert_string_equal(v, "0000000000000000");
		assert_int_equal(child_finish(&ch, out, sizeof(out)), 0);
		assert_null(strstr(out, "forbidden"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sandbox_confines_a_thread_of_its_class),
		cmocka_unit_test(test_sandbox_forbidden_call_reports_the_thread_and_ends_with_159),
		cmocka_unit_test(test_sandbox_api_thread_reads_a_stats_socket),
		cmocka_unit_test(test_sandbox_confined_threads_survive_the_drop_which_leaves_no_privilege),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
