/*
 * rt/: applies placements to real threads on this machine and reads them back
 * from the kernel. Worker threads block on a pipe (never spin), so a
 * SCHED_FIFO worker cannot starve the test on a 2-cpu machine.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <numa.h>

#include "rt/rt.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* A named thread that waits for commands: 'r' = report the cpu it runs on, 'q' = quit. */
struct worker {
	pthread_t th;
	char name[16];
	pid_t tid;
	int cmd[2];
	int resp[2];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pid_t tid = gettid();
	char c;

	pthread_setname_np(pthread_self(), w->name);
	if (write(w->resp[1], &tid, sizeof(tid)) != sizeof(tid))
		return NULL;
	while (read(w->cmd[0], &c, 1) == 1 && c != 'q') {
		int cpu = sched_getcpu();

		if (write(w->resp[1], &cpu, sizeof(cpu)) != sizeof(cpu))
			break;
	}
	return NULL;
}

static void worker_start(struct worker *w, const char *name)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	assert_int_equal(pipe2(w->cmd, O_CLOEXEC), 0);
	assert_int_equal(pipe2(w->resp, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&w->th, NULL, worker_main, w), 0);
	assert_int_equal(read(w->resp[0], &w->tid, sizeof(w->tid)), sizeof(w->tid));
}

/* Wakes the worker and returns the cpu it ran on. */
static int worker_ping(struct worker *w)
{
	int cpu = -1;

	assert_int_equal(write(w->cmd[1], "r", 1), 1);
	assert_int_equal(read(w->resp[0], &cpu, sizeof(cpu)), sizeof(cpu));
	return cpu;
}

static void worker_stop(struct worker *w)
{
	assert_int_equal(write(w->cmd[1], "q", 1), 1);
	pthread_join(w->th, NULL);
	close(w->cmd[0]);
	close(w->cmd[1]);
	close(w->resp[0]);
	close(w->resp[1]);
}

/* The highest cpu this process may use (cpu 1 on the 2-cpu test machine). */
static int last_usable_cpu(void)
{
	cpu_set_t set;
	int cpu, last = -1;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set))
			last = cpu;
	return last;
}

static struct rt_sched sched_plan(int cpu, enum rt_policy policy, int prio)
{
	struct rt_sched s;

	memset(&s, 0, sizeof(s));
	CPU_ZERO(&s.cpus);
	if (cpu >= 0)
		CPU_SET(cpu, &s.cpus);
	s.policy = policy;
	s.priority = prio;
	return s;
}

static void test_rt_fifo_pinned_thread_reads_back_as_planned_and_stays(void **state)
{
	struct worker w;
	struct rt_thread t;
	struct err e = { 0 };
	int cpu = last_usable_cpu(), i, r;
	struct rt_sched s = sched_plan(cpu, RT_POLICY_FIFO, 10);

	(void)state;
	worker_start(&w, "vcpu0");
	r = rt__apply(w.tid, &s, &e);
	if (r == -EPERM) {
		worker_stop(&w);
		skip();   /* not root / no CAP_SYS_NICE: e.msg says so */
	}
	assert_int_equal(r, 0);

	for (i = 0; i < 200; i++)      /* 200 wakeups, each on the pinned cpu */
		assert_int_equal(worker_ping(&w), cpu);

	assert_int_equal(rt__read(w.tid, &t), 0);
	assert_int_equal(t.tid, w.tid);
	assert_string_equal(t.name, "vcpu0");
	assert_int_equal(CPU_COUNT(&t.cpus), 1);
	assert_true(CPU_ISSET(cpu, &t.cpus));
	assert_int_equal(t.policy, SCHED_FIFO);
	assert_int_equal(t.priority, 10);
	assert_int_equal(t.last_cpu, cpu);
	if (numa_available() >= 0)
		assert_int_equal(t.node, numa_node_of_cpu(cpu));
	assert_true(rt__matches(&t, &s));

	/* the same thread does not match a different plan */
	s.priority = 11;
	assert_false(rt__matches(&t, &s));
	worker_stop(&w);
}

static void test_rt_other_unpinned_resets_policy_and_keeps_affinity(void **state)
{
	struct worker w;
	struct rt_thread before, after;
	struct err e = { 0 };
	struct rt_sched fifo = sched_plan(last_usable_cpu(), RT_POLICY_RR, 5);
	struct rt_sched other = sched_plan(-1, RT_POLICY_OTHER, 0);

	(void)state;
	worker_start(&w, "emu-io");
	/* a fresh thread, unpinned SCHED_OTHER, has the process's affinity */
	assert_int_equal(rt__apply(w.tid, &other, &e), 0);
	assert_int_equal(rt__read(w.tid, &before), 0);
	assert_int_equal(before.policy, SCHED_OTHER);
	assert_int_equal(before.priority, 0);
	assert_true(rt__matches(&before, &other));

	if (rt__apply(w.tid, &fifo, &e) == 0) {
		/* back from RR to OTHER: policy resets, the pinning is left alone */
		assert_int_equal(rt__apply(w.tid, &other, &e), 0);
		assert_int_equal(rt__read(w.tid, &after), 0);
		assert_int_equal(after.policy, SCHED_OTHER);
		assert_int_equal(after.priority, 0);
		assert_true(CPU_EQUAL(&after.cpus, &fifo.cpus));
		assert_true(rt__matches(&after, &other));
		assert_false(rt__matches(&after, &fifo));
	}
	worker_stop(&w);
}

static void test_rt_cpu_not_online_is_rejected_naming_it(void **state)
{
	struct worker w;
	struct rt_thread before, after;
	struct err e = { 0 };
	struct rt_sched s = sched_plan(1000, RT_POLICY_FIFO, 10);
	char tid[32];

	(void)state;
	worker_start(&w, "vcpu3");
	assert_int_equal(rt__read(w.tid, &before), 0);
	assert_int_equal(rt__apply(w.tid, &s, &e), -EINVAL);
	assert_int_equal(e.code, -EINVAL);
	snprintf(tid, sizeof(tid), "tid %d", (int)w.tid);
	assert_non_null(strstr(e.msg, tid));
	assert_non_null(strstr(e.msg, "vcpu3"));
	assert_non_null(strstr(e.msg, "cpu 1000 not online"));
	/* nothing was changed */
	assert_int_equal(rt__read(w.tid, &after), 0);
	assert_true(CPU_EQUAL(&before.cpus, &after.cpus));
	assert_int_equal(after.policy, SCHED_OTHER);
	worker_stop(&w);
}

static void test_rt_priority_out_of_range_is_rejected(void **state)
{
	struct worker w;
	struct err e = { 0 };
	struct rt_sched fifo0 = sched_plan(0, RT_POLICY_FIFO, 0);
	struct rt_sched rr100 = sched_plan(0, RT_POLICY_RR, 100);
	struct rt_sched other5 = sched_plan(0, RT_POLICY_OTHER, 5);

	(void)state;
	worker_start(&w, "vcpu1");
	assert_int_equal(rt__apply(w.tid, &fifo0, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "priority 0"));
	assert_non_null(strstr(e.msg, "fifo (1..99)"));
	assert_int_equal(rt__apply(w.tid, &rr100, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "priority 100"));
	assert_int_equal(rt__apply(w.tid, &other5, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "other (0..0)"));
	worker_stop(&w);
}

static void test_rt_dead_thread_is_an_error(void **state)
{
	struct rt_thread t;
	struct err e = { 0 };
	struct rt_sched s = sched_plan(0, RT_POLICY_OTHER, 0);
	struct worker w;
	pid_t gone;

	(void)state;
	worker_start(&w, "gone");
	gone = w.tid;
	worker_stop(&w);
	/* the tid may be recycled in theory; on an idle test machine it is not */
	assert_int_equal(rt__read(gone, &t), -ESRCH);
	assert_int_equal(rt__apply(gone, &s, &e), -ESRCH);
	assert_non_null(strstr(e.msg, "No such process"));
}

/* Column start of `word` in `line`. */
static long col(const char *line, const char *word)
{
	const char *p = strstr(line, word);

	assert_non_null(p);
	return p - line;
}

static void test_rt_table_has_aligned_columns(void **state)
{
	struct rt_thread rows[3];
	char buf[2048], *lines[4], *save = NULL, *l;
	FILE *f;
	int n = 0;

	(void)state;
	memset(rows, 0, sizeof(rows));
	rows[0] = (struct rt_thread){ .tid = 1234, .name = "vcpu0", .policy = SCHED_FIFO, .priority = 10,
				      .last_cpu = 1, .node = 0 };
	CPU_SET(1, &rows[0].cpus);
	rows[1] = (struct rt_thread){ .tid = 99, .name = "rtvmm-emulator", .policy = SCHED_OTHER,
				      .last_cpu = -1, .node = -1 };
	CPU_SET(0, &rows[1].cpus);
	CPU_SET(2, &rows[1].cpus);
	CPU_SET(3, &rows[1].cpus);
	CPU_SET(4, &rows[1].cpus);
	assert_int_equal(rt__read(gettid(), &rows[2]), 0);   /* a real row: this thread */

	f = fmemopen(buf, sizeof(buf), "w");
	assert_non_null(f);
	rt__print_table(f, rows, 3);
	fclose(f);

	for (l = strtok_r(buf, "\n", &save); l && n < 4; l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	assert_int_equal(n, 4);
	/* header: thread tid cpus policy prio last_cpu node */
	assert_int_equal(col(lines[0], "thread"), 0);
	assert_true(col(lines[0], "tid") < col(lines[0], "cpus"));
	assert_true(col(lines[0], "cpus") < col(lines[0], "policy"));
	assert_true(col(lines[0], "policy") < col(lines[0], "prio"));
	assert_true(col(lines[0], "prio") < col(lines[0], "last_cpu"));
	assert_true(col(lines[0], "last_cpu") < col(lines[0], "node"));

	assert_int_equal(col(lines[1], "vcpu0"), 0);
	assert_non_null(strstr(lines[1], " 1234 "));
	assert_non_null(strstr(lines[2], "0,2-4"));
	/* cpus and policy start in the header's columns in every row */
	assert_int_equal(col(lines[1], " 1 ") + 1, col(lines[0], "cpus"));
	assert_int_equal(col(lines[2], "0,2-4"), col(lines[0], "cpus"));
	assert_int_equal(col(lines[1], "fifo"), col(lines[0], "policy"));
	assert_int_equal(col(lines[2], "other"), col(lines[0], "policy"));
	assert_int_equal(strlen(lines[1]), strlen(lines[0]));
	assert_int_equal(strlen(lines[2]), strlen(lines[0]));
	/* unknown last cpu and node print as "-"; the row ends with the node */
	assert_string_equal(lines[1] + strlen(lines[1]) - 2, " 0");
	assert_string_equal(lines[2] + strlen(lines[2]) - 2, " -");
	assert_int_equal(col(lines[3], rows[2].name), 0);
}

static void test_rt_dma_latency_held_at_zero_until_closed(void **state)
{
	struct err e = { 0 };
	int32_t v = -1;
	int fd, rd;

	(void)state;
	fd = rt__hold_dma_latency(&e);
	if (fd == -ENOENT || fd == -EACCES || fd == -EPERM) {
		print_message("skip: %s\n", e.msg);
		skip();
	}
	assert_true(fd >= 0);
	rd = open("/dev/cpu_dma_latency", O_RDONLY);
	assert_true(rd >= 0);
	assert_int_equal(read(rd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 0);
	close(rd);
	close(fd);
}

/* Runs rt__lock_all_memory in a child (MCL_FUTURE would stick to this process); returns its result code. */
static int lock_in_child(rlim_t memlock, bool drop_ipc_lock, char *msg, size_t len)
{
	int p[2], status;
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct err e = { 0 };
		struct rlimit rl = { memlock, memlock };
		int r;

		close(p[0]);
		if (drop_ipc_lock) {
			struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
			struct __user_cap_data_struct d[2];

			if (syscall(SYS_capget, &h, d) == 0) {
				d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
				syscall(SYS_capset, &h, d);
			}
		}
		if (memlock != RLIM_INFINITY)
			setrlimit(RLIMIT_MEMLOCK, &rl);
		r = rt__lock_all_memory(&e);
		if (r == 0) {
			/* locked: VmLck in /proc/self/status is non-zero */
			FILE *f = fopen("/proc/self/status", "r");
			char line[256];
			long kb = 0;

			while (f && fgets(line, sizeof(line), f))
				sscanf(line, "VmLck: %ld kB", &kb);
			snprintf(e.msg, sizeof(e.msg), "VmLck %ld kB", kb);
			if (kb <= 0)
				r = -EIO;
		}
		if (write(p[1], e.msg, strlen(e.msg) + 1) < 0)
			_exit(100);
		_exit(-r);
	}
	close(p[1]);
	n = read(p[0], msg, len - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return -WEXITSTATUS(status);
}

static void test_rt_mlockall_locks_or_names_rlimit_memlock(void **state)
{
	char msg[512];
	int r;

	(void)state;
#ifdef UNDER_ASAN
	skip();   /* ASan's mlockall interceptor does nothing and returns 0 */
#endif
	r = lock_in_child(RLIM_INFINITY, false, msg, sizeof(msg));
	if (r == -EPERM || r == -ENOMEM)
		assert_non_null(strstr(msg, "RLIMIT_MEMLOCK"));   /* unprivileged run */
	else
		assert_int_equal(r, 0);

	/* without CAP_IPC_LOCK: a small limit is ENOMEM, a zero limit EPERM; both name the limit */
	r = lock_in_child(64 * 1024, true, msg, sizeof(msg));
	assert_int_equal(r, -ENOMEM);
	assert_non_null(strstr(msg, "RLIMIT_MEMLOCK"));
	r = lock_in_child(0, true, msg, sizeof(msg));
	assert_int_equal(r, -EPERM);
	assert_non_null(strstr(msg, "RLIMIT_MEMLOCK"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rt_fifo_pinned_thread_reads_back_as_planned_and_stays),
		cmocka_unit_test(test_rt_other_unpinned_resets_policy_and_keeps_affinity),
		cmocka_unit_test(test_rt_cpu_not_online_is_rejected_naming_it),
		cmocka_unit_test(test_rt_priority_out_of_range_is_rejected),
		cmocka_unit_test(test_rt_dead_thread_is_an_error),
		cmocka_unit_test(test_rt_table_has_aligned_columns),
		cmocka_unit_test(test_rt_dma_latency_held_at_zero_until_closed),
		cmocka_unit_test(test_rt_mlockall_locks_or_names_rlimit_memlock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
