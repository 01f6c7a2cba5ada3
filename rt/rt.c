/*
 * Real-time scheduling: apply a thread's placement (affinity, policy,
 * priority) by tid, read back what the kernel actually did, report it.
 *
 * Order in rt__apply matters: affinity first, then the RT policy, so a
 * thread never runs as SCHED_FIFO on a cpu the plan did not give it.
 */
#include "rt/rt.h"

#include "base/cpus.h"

#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const char *rt__kernel_policy_name(int policy)
{
	switch (policy) {
	case SCHED_OTHER: return "other";
	case SCHED_FIFO: return "fifo";
	case SCHED_RR: return "rr";
	case SCHED_BATCH: return "batch";
	case SCHED_IDLE: return "idle";
#ifdef SCHED_DEADLINE
	case SCHED_DEADLINE: return "deadline";
#endif
	default: return "?";
	}
}

static int sched_policy_of(enum rt_policy p)
{
	switch (p) {
	case RT_POLICY_FIFO: return SCHED_FIFO;
	case RT_POLICY_RR: return SCHED_RR;
	case RT_POLICY_OTHER:
	default: return SCHED_OTHER;
	}
}

/* A cpu list ("0-3,8"); "-" for an empty set (not pinned). */
static const char *format_cpus(const cpu_set_t *set, char *buf, size_t len)
{
	cpus__format(set, buf, (unsigned)len);
	if (!buf[0])
		snprintf(buf, len, "-");
	return buf;
}

/* Reads a small /proc or /sys file into buf (NUL-terminated, trailing newline kept). */
static int read_small(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	buf[n] = '\0';
	return (int)n;
}

/* A /proc file holding one integer. */
static int read_long(const char *path, long *v)
{
	char buf[64], *end;
	int ret = read_small(path, buf, sizeof(buf));

	if (ret < 0)
		return ret;
	errno = 0;
	*v = strtol(buf, &end, 10);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

int rt__read_throttling(long *runtime_us, long *period_us)
{
	long runtime, period;
	int ret = read_long("/proc/sys/kernel/sched_rt_runtime_us", &runtime);

	if (!ret)
		ret = read_long("/proc/sys/kernel/sched_rt_period_us", &period);
	if (ret)
		return ret;
	*runtime_us = runtime;
	*period_us = period;
	return 0;
}

/* Parses a kernel cpu list ("0-1,4") into set; -EINVAL on junk. */
static int parse_cpu_list(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s && *s != '\n') {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s || a < 0)
			return -EINVAL;
		b = a;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			if (end == s + 1 || b < a)
				return -EINVAL;
			s = end;
		}
		for (; a <= b && a < CPU_SETSIZE; a++)
			CPU_SET((int)a, set);
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -EINVAL;
	}
	return 0;
}

static int online_cpus(cpu_set_t *set)
{
	char buf[1024];
	int r = read_small("/sys/devices/system/cpu/online", buf, sizeof(buf));

	if (r < 0)
		return r;
	return parse_cpu_list(buf, set);
}

/* comm of a thread: /proc/self/task/TID/comm, or /proc/TID/comm for a thread of another process. */
static void thread_name(pid_t tid, char *name, size_t len)
{
	char path[64], buf[64];
	int r;

	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
	r = read_small(path, buf, sizeof(buf));
	if (r < 0) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)tid);
		r = read_small(path, buf, sizeof(buf));
	}
	if (r < 0) {
		snprintf(name, len, "?");
		return;
	}
	buf[strcspn(buf, "\n")] = '\0';
	buf[len - 1 < sizeof(buf) - 1 ? len - 1 : sizeof(buf) - 1] = '\0';  /* comm is at most 15 chars */
	memcpy(name, buf, strlen(buf) + 1);
}

/* Field 39 (processor) of /proc/.../stat; the comm in field 2 may hold spaces and ')', so parse after the last ')'. */
static int thread_last_cpu(pid_t tid)
{
	char path[64], buf[1024];
	const char *p;
	int field, r;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	r = read_small(path, buf, sizeof(buf));
	if (r < 0) {
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
		r = read_small(path, buf, sizeof(buf));
	}
	if (r < 0)
		return -1;
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	/* p is now at " S ppid ...": field 3 starts after the next space. */
	for (field = 2; field < 39; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	return atoi(p);
}

static int cpu_node(int cpu)
{
	static int numa_ok = -2;

	if (cpu < 0)
		return -1;
	if (numa_ok == -2)
		numa_ok = numa_available();
	if (numa_ok < 0)
		return -1;
	return numa_node_of_cpu(cpu);
}

int rt__apply(pid_t tid, const struct rt_sched *s, struct err *e)
{
	int policy = sched_policy_of(s->policy);
	int lo = sched_get_priority_min(policy), hi = sched_get_priority_max(policy);
	char name[16], cpus[256];
	struct sched_param sp = { .sched_priority = s->priority };
	int err;

	thread_name(tid, name, sizeof(name));
	format_cpus(&s->cpus, cpus, sizeof(cpus));

	if (s->priority < lo || s->priority > hi)
		return err__set(e, -EINVAL, "rt: thread %s (tid %d): priority %d is out of range for %s (%d..%d)",
				name, (int)tid, s->priority, rt__kernel_policy_name(policy), lo, hi);

	if (CPU_COUNT(&s->cpus) > 0) {
		cpu_set_t online, bad;

		if (online_cpus(&online) == 0) {
			CPU_XOR(&bad, &s->cpus, &online);
			CPU_AND(&bad, &bad, &s->cpus);
			if (CPU_COUNT(&bad) > 0) {
				char badl[256], onl[256];

				return err__set(e, -EINVAL, "rt: thread %s (tid %d): cpus %s: cpu %s not online (online: %s)",
						name, (int)tid, cpus, format_cpus(&bad, badl, sizeof(badl)),
						format_cpus(&online, onl, sizeof(onl)));
			}
		}
		if (sched_setaffinity(tid, sizeof(s->cpus), &s->cpus) < 0) {
			err = -errno;
			return err__set(e, err, "rt: thread %s (tid %d): sched_setaffinity(cpus %s): %s%s",
					name, (int)tid, cpus, strerror(-err),
					err == -EINVAL ? " (cpus outside this process's cpuset?)" :
					err == -EPERM ? " (needs CAP_SYS_NICE for another user's thread)" : "");
		}
	}

	if (sched_setscheduler(tid, policy, &sp) < 0) {
		err = -errno;
		return err__set(e, err, "rt: thread %s (tid %d): sched_setscheduler(%s, priority %d) on cpus %s: %s%s",
				name, (int)tid, rt__kernel_policy_name(policy), s->priority, cpus, strerror(-err),
				err == -EPERM ? " (needs root or CAP_SYS_NICE and RLIMIT_RTPRIO >= priority;"
						" with RT group scheduling, a cgroup cpu.rt_runtime_us > 0)" : "");
	}
	return 0;
}

int rt__read(pid_t tid, struct rt_thread *out)
{
	struct sched_param sp;
	int policy;

	memset(out, 0, sizeof(*out));
	out->tid = tid;
	if (sched_getaffinity(tid, sizeof(out->cpus), &out->cpus) < 0)
		return -errno;
	policy = sched_getscheduler(tid);
	if (policy < 0)
		return -errno;
	out->policy = policy & ~SCHED_RESET_ON_FORK;
	if (sched_getparam(tid, &sp) < 0)
		return -errno;
	out->priority = sp.sched_priority;
	thread_name(tid, out->name, sizeof(out->name));
	out->last_cpu = thread_last_cpu(tid);
	out->node = cpu_node(out->last_cpu);
	return 0;
}

bool rt__matches(const struct rt_thread *t, const struct rt_sched *s)
{
	if (CPU_COUNT(&s->cpus) > 0 && !CPU_EQUAL(&t->cpus, &s->cpus))
		return false;
	if (t->policy != sched_policy_of(s->policy))
		return false;
	return t->priority == s->priority;
}

void rt__print_table(FILE *out, const struct rt_thread *rows, unsigned n)
{
	char cpus[256];
	int wname = (int)strlen("thread"), wcpus = (int)strlen("cpus");
	unsigned i;

	for (i = 0; i < n; i++) {
		int l = (int)strlen(rows[i].name);

		if (l > wname)
			wname = l;
		l = (int)strlen(format_cpus(&rows[i].cpus, cpus, sizeof(cpus)));
		if (l > wcpus)
			wcpus = l;
	}
	fprintf(out, "%-*s %7s  %-*s  %-6s %4s %8s %4s\n", wname, "thread", "tid", wcpus, "cpus",
		"policy", "prio", "last_cpu", "node");
	for (i = 0; i < n; i++) {
		const struct rt_thread *r = &rows[i];
		char last[16], node[16];

		if (r->last_cpu >= 0)
			snprintf(last, sizeof(last), "%d", r->last_cpu);
		else
			snprintf(last, sizeof(last), "-");
		if (r->node >= 0)
			snprintf(node, sizeof(node), "%d", r->node);
		else
			snprintf(node, sizeof(node), "-");
		fprintf(out, "%-*s %7d  %-*s  %-6s %4d %8s %4s\n", wname, r->name, (int)r->tid, wcpus,
			format_cpus(&r->cpus, cpus, sizeof(cpus)), rt__kernel_policy_name(r->policy), r->priority,
			last, node);
	}
}

int rt__lock_all_memory(struct err *e)
{
	int err;

	if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0)
		return 0;
	err = -errno;
	return err__set(e, err, "rt: mlockall(MCL_CURRENT|MCL_FUTURE): %s%s", strerror(-err),
			err == -EPERM ? " (needs CAP_IPC_LOCK or a RLIMIT_MEMLOCK (ulimit -l) large enough for the whole process)" :
			err == -ENOMEM ? " (RLIMIT_MEMLOCK (ulimit -l) is below the process size; raise it or run with CAP_IPC_LOCK)" :
			"");
}

int rt__hold_dma_latency(struct err *e)
{
	static const char path[] = "/dev/cpu_dma_latency";
	int32_t zero = 0;
	ssize_t n;
	int fd, err;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ENOENT)
			return err__set(e, err, "rt: %s does not exist (kernel without PM QoS?): cpus may enter deep C-states, expect wakeup latency", path);
		return err__set(e, err, "rt: open %s: %s%s", path, strerror(-err),
				err == -EACCES || err == -EPERM ? " (needs root)" : "");
	}
	n = write(fd, &zero, sizeof(zero));
	if (n != (ssize_t)sizeof(zero)) {
		err = n < 0 ? -errno : -EIO;
		close(fd);
		return err__set(e, err, "rt: write 0 to %s: %s", path, strerror(-err));
	}
	return fd;
}
