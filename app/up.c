/*
 * rtvmm up / ctl list / down. Each VM of a host plan is its own `rtvmm run PLAN --vm NAME`
 * process (one VM per process, as Firecracker), detached in a session of its own, its output in
 * RUN/NAME.log, its API on RUN/NAME.sock and COM1 on RUN/NAME.console (unless the plan sets
 * serial:); the plan's dataplane is one more process, its DPDK runtime directory removed
 * after it. The state file RUN/state records who was started (pid and the kernel's start
 * time of that pid, so a recycled pid is never taken for ours); the VMs themselves are asked
 * over their API.
 */
#include "app/up.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/client.h"
#include "base/cpus.h"
#include "base/trust.h"
#include "config/check.h"
#include "config/parse.h"
#include "numa/topology.h"
#include "rt/rt.h"

#define UP_STATE_FILE "state"
#define UP_DATAPLANE_SOCKET "dataplane.sock"
#define UP_API_TIMEOUT_MS 2000
#define UP_DEFAULT_TIMEOUT_S 60     /* up: until every VM is Running */
#define UP_DEFAULT_GRACE_S 30       /* down: from the power button to vm.shutdown */
#define UP_STEP_S 5                 /* down: from vm.shutdown to SIGKILL, SIGTERM to SIGKILL */
#define UP_LOG_TAIL 15
#define UP_EAL_LOCK_WAIT_MS 3000    /* down: for a gone dataplane's last threads to end */
#define UP_PREFIX_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

#define API_VM_INFO "/api/v1/vm.info"
#define API_VM_PLACEMENT "/api/v1/vm.placement"
#define API_VM_POWER_BUTTON "/api/v1/vm.power-button"
#define API_VM_SHUTDOWN "/api/v1/vm.shutdown"

/* One process `up` started: the dataplane or a VM. */
struct up_proc {
	char name[64];
	pid_t pid;                     /* 0: not started */
	unsigned long long start;      /* /proc/PID/stat starttime: who this pid is */
	char log[PATH_MAX];
	char api[108];                 /* a VM's API socket; the dataplane's stats socket */
	bool gone;                     /* seen ended */
	double grace_s;                /* down: from the power button to vm.shutdown */
	int status;                    /* wait status when it was our child and ended, else -1 */
};

struct up_state {
	char plan[PATH_MAX];           /* absolute */
	char run_dir[PATH_MAX];
	bool has_dataplane;
	struct up_proc dataplane;
	char file_prefix[64];          /* the dataplane's EAL --file-prefix: its runtime directory */
	unsigned nr_vms;
	struct up_proc *vms;
};

/* ---- processes ---- */

/* The kernel's start time of `pid` (clock ticks since boot), 0 when it is gone or a zombie. */
static unsigned long long proc_start(pid_t pid)
{
	unsigned long long start = 0;
	char path[64], buf[1024], *p;
	unsigned i;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');            /* the command name may hold spaces and parentheses */
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return 0;
	p += 2;
	for (i = 0; i < 19 && p; i++) {   /* field 3 (state) to field 22 (starttime) */
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (p)
		start = strtoull(p, NULL, 10);
	return start;
}

/* Whether `p` still runs; reaps it when it is our child. */
static bool proc_alive(struct up_proc *p)
{
	int status;

	if (!p->pid || p->gone)
		return false;
	if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
		p->status = status;
		p->gone = true;
		return false;
	}
	if (proc_start(p->pid) != p->start)
		p->gone = true;
	return !p->gone;
}

/*
 * Starts `argv` in a session of its own, stdin /dev/null, stdout and stderr to `log`
 * (truncated); fills p->pid and p->start. An exec failure comes back through a close-on-exec pipe.
 */
static int proc_spawn(struct up_proc *p, char *const argv[], struct err *e)
{
	int fds[2], logfd, nullfd, child_err = 0;
	ssize_t n;
	pid_t pid;

	logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0)
		return err__set(e, -errno, "%s: cannot create its log %s: %s", p->name, p->log,
				strerror(errno));
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0 || pipe2(fds, O_CLOEXEC)) {
		int err = -errno;

		if (nullfd >= 0)
			close(nullfd);
		close(logfd);
		return err__set(e, err, "%s: cannot start it: %s", p->name, strerror(-err));
	}
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			child_err = errno;
		else
			execv(argv[0], argv);
		child_err = child_err ? child_err : errno;
		if (write(fds[1], &child_err, sizeof(child_err)) < 0)
			_exit(127);
		_exit(127);
	}
	child_err = pid < 0 ? errno : 0;
	close(fds[1]);
	close(nullfd);
	close(logfd);
	if (pid > 0) {
		do
			n = read(fds[0], &child_err, sizeof(child_err));
		while (n < 0 && errno == EINTR);
		if (n != sizeof(child_err))
			child_err = 0;
	}
	close(fds[0]);
	if (pid > 0 && child_err)
		waitpid(pid, NULL, 0);
	if (child_err)
		return err__set(e, -child_err, "%s: cannot run %s: %s", p->name, argv[0],
				strerror(child_err));
	p->pid = pid;
	p->start = proc_start(pid);
	p->gone = false;
	p->status = -1;
	return 0;
}

/*
 * Sleeps `ms`, or less when SIGINT, SIGTERM or SIGHUP arrives (they are blocked while `up`
 * waits): returns the signal, 0 after the whole sleep.
 */
static int nap(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	sigset_t stop;
	int sig;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sig = sigtimedwait(&stop, NULL, &ts);
	return sig > 0 ? sig : 0;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- logs ---- */

/* Prints the last `lines` lines of `path`, indented, to stderr. */
static void log_tail(const char *path, unsigned lines)
{
	char buf[8192], *p;
	unsigned seen = 0;
	ssize_t n;
	off_t size;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "rtvmm:   (no log %s: %s)\n", path, strerror(errno));
		return;
	}
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "rtvmm:   (its log %s is empty)\n", path);
		return;
	}
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[--n] = '\0';
	for (p = buf + n; p > buf; p--)
		if (p[-1] == '\n' && ++seen == lines)
			break;
	fprintf(stderr, "rtvmm:   last lines of %s:\n", path);
	while (p && *p) {
		char *nl = strchr(p, '\n');

		fprintf(stderr, "rtvmm:   | %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : NULL;
	}
}

/* The status of rtvmm's stop report ("rtvmm: stopped after ...: ..., exit status N"), or -1. */
static int log_exit_status(const char *path)
{
	char line[1024];
	int status = -1;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *s = strstr(line, ", exit status ");

		if (!strncmp(line, "rtvmm: stopped after ", 21) && s)
			status = atoi(s + 14);
	}
	fclose(f);
	return status;
}

/* "dead, exit status N" (from the wait status, else the log), "dead, killed by SIGKILL", "dead". */
static const char *dead_text(const struct up_proc *p, char *buf, size_t len)
{
	int st;

	if (p->status >= 0 && WIFSIGNALED(p->status)) {
		snprintf(buf, len, "dead, killed by signal %d", WTERMSIG(p->status));
		return buf;
	}
	st = p->status >= 0 ? WEXITSTATUS(p->status) : log_exit_status(p->log);
	if (st >= 0)
		snprintf(buf, len, "dead, exit status %d", st);
	else
		snprintf(buf, len, "dead");
	return buf;
}

/* ---- the state file ---- */

static json_t *proc_json(const struct up_proc *p)
{
	return json_pack("{s:s, s:I, s:I, s:s, s:s}", "name", p->name, "pid", (json_int_t)p->pid,
			 "start", (json_int_t)p->start, "log", p->log, "socket", p->api);
}

/* Writes the state file (a new file renamed over the old one); `create`: refuse an existing one. */
static int state_write(const struct up_state *st, bool create, struct err *e)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 32];
	json_t *root, *vms, *dp;
	unsigned i;
	int fd, err;

	snprintf(path, sizeof(path), "%s/" UP_STATE_FILE, st->run_dir);
	if (create) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			return err__set(e, -EEXIST, "%s: already up (state file %s): `rtvmm ctl list "
					"--run-dir %s` shows it, `rtvmm down --run-dir %s` stops it",
					st->run_dir, path, st->run_dir, st->run_dir);
		if (fd < 0)
			return err__set(e, -errno, "%s: cannot create it: %s", path, strerror(errno));
		close(fd);
	}
	vms = json_array();
	for (i = 0; i < st->nr_vms; i++)
		if (st->vms[i].pid)
			json_array_append_new(vms, proc_json(&st->vms[i]));
	dp = json_null();
	if (st->has_dataplane && st->dataplane.pid) {
		dp = proc_json(&st->dataplane);
		json_object_set_new(dp, "file_prefix", json_string(st->file_prefix));
	}
	root = json_pack("{s:s, s:s, s:o, s:o}", "plan", st->plan, "run_dir", st->run_dir,
			 "dataplane", dp, "vms", vms);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	err = root && json_dump_file(root, tmp, JSON_INDENT(1)) == 0 ? 0 : -EIO;
	json_decref(root);
	if (!err && chmod(tmp, 0600))
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err) {
		unlink(tmp);
		return err__set(e, err, "%s: cannot write it: %s", path, strerror(-err));
	}
	return 0;
}

static int proc_from_json(struct up_proc *p, json_t *o)
{
	const char *name, *log, *sock;
	json_int_t pid, start;

	memset(p, 0, sizeof(*p));
	if (json_unpack(o, "{s:s, s:I, s:I, s:s, s:s}", "name", &name, "pid", &pid, "start", &start,
			"log", &log, "socket", &sock) || pid <= 0)
		return -EINVAL;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->log, sizeof(p->log), "%s", log);
	snprintf(p->api, sizeof(p->api), "%s", sock);
	p->pid = (pid_t)pid;
	p->start = (unsigned long long)start;
	p->status = -1;
	return 0;
}

static void state_free(struct up_state *st)
{
	free(st->vms);
	st->vms = NULL;
	st->nr_vms = 0;
}

/* An EAL file prefix `up` gives: "rtvmm-" and at most 40 of UP_PREFIX_CHARS (no '/', no ".."). */
static bool prefix_ok(const char *prefix)
{
	size_t n = strlen(prefix);

	return n > 6 && n <= 46 && !strncmp(prefix, "rtvmm-", 6) &&
	       strspn(prefix, UP_PREFIX_CHARS) == n;
}

/* Reads RUN/state; -ENOENT when nothing is up there. */
static int state_read(struct up_state *st, const char *run_dir, struct err *e)
{
	char path[PATH_MAX + 16];
	json_error_t je;
	json_t *root, *vms, *dp, *v;
	const char *plan, *prefix = NULL;
	struct stat sb;
	size_t i;
	int fd, err = 0;

	memset(st, 0, sizeof(*st));
	snprintf(st->run_dir, sizeof(st->run_dir), "%s", run_dir);
	snprintf(path, sizeof(path), "%s/" UP_STATE_FILE, run_dir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return err__set(e, -ENOENT, "%s: nothing is up there (no state file %s)", run_dir, path);
	if (fd < 0)
		return err__set(e, -errno, "%s: %s", path, strerror(errno));
	/*
	 * The run directory belongs to host.user, whom the processes drop to: only a file `up`
	 * wrote as this user decides what `down` signals and removes.
	 */
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() || sb.st_nlink != 1) {
		close(fd);
		return err__set(e, -EPERM, "%s: not a state file written by uid %u (a regular file, one "
				"link): refusing to act on it", path, (unsigned)geteuid());
	}
	root = json_loadfd(fd, 0, &je);
	close(fd);
	if (!root)
		return err__set(e, -EINVAL, "%s:%d: not a state file of rtvmm up: %s", path, je.line,
				je.text);
	if (json_unpack(root, "{s:s, s:o, s:o}", "plan", &plan, "dataplane", &dp, "vms", &vms) ||
	    !json_is_array(vms)) {
		err = err__set(e, -EINVAL, "%s: not a state file of rtvmm up (plan, dataplane, vms)", path);
		goto out;
	}
	snprintf(st->plan, sizeof(st->plan), "%s", plan);
	st->has_dataplane = !json_is_null(dp);
	/* file_prefix: absent in a state file an older rtvmm wrote (then its directory stays). */
	if (st->has_dataplane && (proc_from_json(&st->dataplane, dp) ||
				  json_unpack(dp, "{s?s}", "file_prefix", &prefix) ||
				  (prefix && !prefix_ok(prefix)))) {
		err = err__set(e, -EINVAL, "%s: dataplane: expected name, pid, start, log, socket and "
			       "file_prefix (rtvmm-NAME)", path);
		goto out;
	}
	if (prefix)
		snprintf(st->file_prefix, sizeof(st->file_prefix), "%s", prefix);
	st->vms = calloc(json_array_size(vms) + 1, sizeof(*st->vms));
	if (!st->vms) {
		err = err__set(e, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	json_array_foreach(vms, i, v) {
		if (proc_from_json(&st->vms[i], v)) {
			err = err__set(e, -EINVAL, "%s: vms[%zu]: expected name, pid, start, log, socket",
				       path, i);
			state_free(st);
			goto out;
		}
		st->nr_vms++;
	}
out:
	json_decref(root);
	return err;
}

/* Removes `path` when it is a socket (a stale API or stats socket), nothing else. */
static void unlink_socket(const char *path)
{
	struct stat sb;

	if (path[0] && lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path);
}

/* Removes the state file and the sockets `up` named (API, console, dataplane stats) left. */
static void state_remove(const struct up_state *st)
{
	char path[PATH_MAX + 80];
	unsigned i;

	for (i = 0; i < st->nr_vms; i++) {
		unlink_socket(st->vms[i].api);
		snprintf(path, sizeof(path), "%s/%s.console", st->run_dir, st->vms[i].name);
		unlink_socket(path);
	}
	if (st->has_dataplane)
		unlink_socket(st->dataplane.api);
	snprintf(path, sizeof(path), "%s/" UP_STATE_FILE, st->run_dir);
	unlink(path);
}

/* ---- the VMs' APIs ---- */

/* GET/PUT `uri` on `sock`: the parsed JSON body when `out` (NULL for 204), the HTTP status. */
static int api_json(const char *sock, const char *method, const char *uri, json_t **out,
		    struct err *e)
{
	struct api_reply r;
	json_error_t je;
	int err;

	if (out)
		*out = NULL;
	err = api_client__call(sock, method, uri, NULL, UP_API_TIMEOUT_MS, &r, e);
	if (err)
		return err;
	if (r.status / 100 != 2) {
		err = err__set(e, -EPROTO, "%s %s: HTTP %d %.200s", method, uri, r.status, r.body);
	} else if (out) {
		*out = json_loadb(r.body, r.len, 0, &je);
		if (!*out)
			err = err__set(e, -EPROTO, "%s %s: the answer is not JSON: %s", method, uri,
				       je.text);
	}
	api_reply__free(&r);
	return err;
}

/* What the table shows of one VM. */
struct vm_view {
	const struct up_proc *proc;
	char state[96];                /* "Running", "Paused", "dead, exit status 1", "no answer" */
	char why[600];                 /* why it is not known, for the text table's note */
	json_t *info;                  /* vm.info, or NULL */
	json_t *placement;             /* the placement extension, or NULL */
};

static void view_free(struct vm_view *v)
{
	json_decref(v->info);
	json_decref(v->placement);
	v->info = v->placement = NULL;
}

/* Asks a running VM for vm.info and its placement. */
static void view_query(struct vm_view *v, struct up_proc *p)
{
	struct err e = { 0 };
	const char *state;

	memset(v, 0, sizeof(*v));
	v->proc = p;
	if (!proc_alive(p)) {
		dead_text(p, v->state, sizeof(v->state));
		return;
	}
	if (api_json(p->api, "GET", API_VM_INFO, &v->info, &e)) {
		snprintf(v->state, sizeof(v->state), "no answer");
		snprintf(v->why, sizeof(v->why), "%s", e.msg);
		return;
	}
	state = json_string_value(json_object_get(v->info, "state"));
	snprintf(v->state, sizeof(v->state), "%s", state ? state : "?");
	if (api_json(p->api, "GET", API_VM_PLACEMENT, &v->placement, &e))
		snprintf(v->why, sizeof(v->why), "%s", e.msg);
}

/* ---- reading the placement extension ---- */

/* The placement extension's thread named `name` ("vcpu0"), or NULL. */
static json_t *placement_thread(json_t *pl, const char *name)
{
	json_t *threads = json_object_get(pl, "threads"), *t;
	size_t i;

	json_array_foreach(threads, i, t) {
		const char *n = json_string_value(json_object_get(t, "name"));

		if (n && !strcmp(n, name))
			return t;
	}
	return NULL;
}

/* "1/fifo/10" for a thread of the placement extension: its allowed cpus, policy and priority. */
static const char *thread_text(json_t *t, char *buf, size_t len)
{
	const char *cpus = json_string_value(json_object_get(t, "cpus"));
	const char *policy = json_string_value(json_object_get(t, "policy"));
	json_t *prio = json_object_get(t, "priority");

	snprintf(buf, len, "%s/%s/%lld", cpus ? cpus : "?", policy ? policy : "?",
		 json_is_integer(prio) ? (long long)json_integer_value(prio) : -1LL);
	return buf;
}

/*
 * Whether the placement the VM reads back from the kernel is the plan's: guest RAM on the
 * plan's node, the API thread on the emulator cpus, every vCPU's cpus, policy and priority;
 * `why` says what differs.
 */
static bool placement_proven(json_t *pl, const struct plan_vm *pvm, char *why, size_t len)
{
	json_t *pages = json_object_get(json_object_get(pl, "memory"), "pages_per_node"), *n, *th;
	const char *node;
	unsigned i;
	size_t k;

	/* Guest RAM: every page touched so far on the plan's node, when it names one. */
	json_object_foreach(pages, node, n) {
		if (pvm->memory.node < 0 || atoi(node) == pvm->memory.node || !json_integer_value(n))
			continue;
		snprintf(why, len, "guest RAM: %lld pages on node %s, the plan says node %d (%s:%u)",
			 (long long)json_integer_value(n), node, pvm->memory.node, pvm->memory.loc.key,
			 pvm->memory.loc.line);
		return false;
	}
	/* The API thread: where the plan's emulator threads are (vm.placement's as_planned). */
	json_array_foreach(json_object_get(pl, "threads"), k, th) {
		const char *role = json_string_value(json_object_get(th, "role"));
		char got[256];

		if (!role || strcmp(role, "api") || !json_is_false(json_object_get(th, "as_planned")))
			continue;
		snprintf(why, len, "the api thread: the kernel says %s, not the plan's emulator "
			 "placement (%s:%u)", thread_text(th, got, sizeof(got)), pvm->emulator.loc.key,
			 pvm->emulator.loc.line);
		return false;
	}
	for (i = 0; i < pvm->nr_vcpus; i++) {
		const struct plan_sched *s = &pvm->vcpus[i];
		char name[16], want[256], got[256], cpus[200];
		json_t *t;

		snprintf(name, sizeof(name), "vcpu%u", i);
		t = placement_thread(pl, name);
		if (CPU_COUNT(&s->cpus))
			cpus__format(&s->cpus, cpus, sizeof(cpus));
		else
			snprintf(cpus, sizeof(cpus), "?");
		snprintf(want, sizeof(want), "%s/%s/%d", cpus, rt__policy_name(s->policy), s->priority);
		if (!t) {
			snprintf(why, len, "%s: the API reports no placement", name);
			return false;
		}
		thread_text(t, got, sizeof(got));
		/* An unpinned vCPU: only its policy and priority are the plan's. */
		if (!CPU_COUNT(&s->cpus) && strchr(got, '/'))
			memcpy(want, got, (size_t)(strchr(got, '/') - got));
		if (strcmp(got, want)) {
			snprintf(why, len, "%s: the kernel says %s, the plan %s (%s:%u)", name, got, want,
				 s->loc.key, s->loc.line);
			return false;
		}
	}
	return true;
}

/* ---- the table ---- */

/* "net0 up, net1 down" from vm.info's NICs, "disk0" from its disks; "-" when none. */
static void devices_text(json_t *info, json_t *pl, const char *kind, char *buf, size_t len)
{
	json_t *devs = json_object_get(json_object_get(info, "devices"), kind), *d;
	size_t i, off = 0;

	(void)pl;
	buf[0] = '\0';
	json_array_foreach(devs, i, d) {
		const char *name = json_string_value(json_object_get(d, "name"));
		const char *link = json_string_value(json_object_get(d, "link"));

		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s%s%s", off ? ", " : "",
						name ? name : "?", link ? " " : "", link ? link : "");
	}
	if (!buf[0])
		snprintf(buf, len, "-");
}

/* "node 0" where guest RAM is, from the placement extension. */
static void memory_text(json_t *pl, char *buf, size_t len)
{
	json_t *mem = json_object_get(pl, "memory");
	json_t *node = json_object_get(mem, "node");
	json_t *size = json_object_get(mem, "size_mib");

	if (json_is_integer(node) && json_integer_value(node) >= 0)
		snprintf(buf, len, "node %lld", (long long)json_integer_value(node));
	else
		snprintf(buf, len, "?");
	if (json_is_integer(size)) {
		size_t off = strlen(buf);

		snprintf(buf + off, len - off, " (%lld MiB)", (long long)json_integer_value(size));
	}
}

#define TABLE_COLS 8

/* ---- the dataplane's poll threads, read back from the kernel ---- */

#define UP_MAX_POLL 64

static int thread_tid_cmp(const void *a, const void *b)
{
	const struct rt_thread *x = a, *y = b;

	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/* The threads of process `pid` named dp-pollN (the dataplane's poll lcores), as the kernel has them. */
static unsigned poll_threads(pid_t pid, struct rt_thread *out, unsigned max)
{
	struct dirent *de;
	char path[64];
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end || tid <= 0 || rt__read((pid_t)tid, &out[n]))
			continue;
		if (!strncmp(out[n].name, "dp-poll", 7))
			n++;
	}
	closedir(d);
	qsort(out, n, sizeof(*out), thread_tid_cmp);
	return n;
}

/* "dp-poll1 -> cpu 1 fifo 50" for each poll thread. */
static void poll_threads_text(const struct rt_thread *t, unsigned n, char *buf, size_t len)
{
	size_t at = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < n && at < len; i++) {
		char cpus[64];

		cpus__format(&t[i].cpus, cpus, sizeof(cpus));
		at += (size_t)snprintf(buf + at, len - at, "%s%s -> cpu %s %s %d", i ? ", " : "",
				       t[i].name, cpus, rt__kernel_policy_name(t[i].policy),
				       t[i].priority);
	}
}

/*
 * The placement proof of the dataplane: for each plan poll core N, a thread dp-pollN alone on
 * cpu N at the plan's policy and priority, as the kernel reports it; -EPERM naming the first
 * thread that is not.
 */
static int dataplane_proven(const struct up_proc *dp, const struct plan_dataplane *pdp,
			    struct err *e)
{
	struct rt_thread t[UP_MAX_POLL];
	unsigned n = poll_threads(dp->pid, t, UP_MAX_POLL), i;
	char name[16], cpus[64], text[1024];
	int cpu;

	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		struct rt_sched want = { .policy = pdp->policy, .priority = pdp->priority };

		if (!CPU_ISSET(cpu, &pdp->cores))
			continue;
		snprintf(name, sizeof(name), "dp-poll%d", cpu);
		for (i = 0; i < n && strcmp(t[i].name, name); i++)
			;
		if (i == n)
			return err__set(e, -ESRCH, "dataplane: no poll thread %s for plan core %d "
					"(host.dataplane.cores) in pid %d", name, cpu, (int)dp->pid);
		CPU_ZERO(&want.cpus);
		CPU_SET(cpu, &want.cpus);
		if (!rt__matches(&t[i], &want)) {
			cpus__format(&t[i].cpus, cpus, sizeof(cpus));
			return err__set(e, -EPERM, "dataplane: poll thread %s (tid %d) reads back as "
					"cpus %s, %s %d; the plan asks cpu %d, %s %d", name,
					(int)t[i].tid, cpus, rt__kernel_policy_name(t[i].policy),
					t[i].priority, cpu, rt__policy_name(pdp->policy), pdp->priority);
		}
	}
	poll_threads_text(t, n, text, sizeof(text));
	fprintf(stderr, "rtvmm: dataplane: poll threads as planned (read back from the kernel): %s\n",
		text);
	return 0;
}

/* One row, each column padded to its width but the last one with text. */
static void row_print(FILE *out, const size_t *w, const char *const *cells)
{
	unsigned c, last = TABLE_COLS - 1;

	while (last && !cells[last][0])
		last--;
	for (c = 0; c < last; c++)
		fprintf(out, "%-*s  ", (int)w[c], cells[c]);
	fprintf(out, "%s\n", cells[last]);
}

static const char *const table_head[TABLE_COLS] = {
	"VM", "PID", "STATE", "VCPU -> CPUS/POLICY/PRIO", "MEMORY", "NICS", "DISKS", "CONSOLE",
};

/* vm.info's serial socket (rtvmm ctl SOCKET console attaches there), or NULL. */
static const char *console_of(json_t *info)
{
	return json_string_value(json_object_get(json_object_get(info, "serial"), "socket"));
}

/* Prints the table of `views` (one row per vCPU; the VM's columns on its first). */
static void table_print(FILE *out, struct up_state *st, struct vm_view *views)
{
	size_t w[TABLE_COLS];
	char cell[TABLE_COLS][600];
	const char *ptrs[TABLE_COLS];
	unsigned i, c, pass;

	if (st->has_dataplane) {
		struct rt_thread t[UP_MAX_POLL];
		char dead[96], polls[1024];
		bool alive = proc_alive(&st->dataplane);
		unsigned n = alive ? poll_threads(st->dataplane.pid, t, UP_MAX_POLL) : 0;

		fprintf(out, "dataplane: pid %d, %s, stats socket %s, log %s\n", (int)st->dataplane.pid,
			alive ? "running" : dead_text(&st->dataplane, dead, sizeof(dead)),
			st->dataplane.api, st->dataplane.log);
		if (n) {
			poll_threads_text(t, n, polls, sizeof(polls));
			fprintf(out, "dataplane poll threads (from the kernel): %s\n", polls);
		}
	}
	for (c = 0; c < TABLE_COLS; c++)
		w[c] = strlen(table_head[c]);
	/* Pass 0 measures the columns, pass 1 prints. */
	for (pass = 0; pass < 2; pass++) {
		if (pass)
			row_print(out, w, table_head);
		for (i = 0; i < st->nr_vms; i++) {
			struct vm_view *v = &views[i];
			json_t *vcpus = json_object_get(v->info, "vcpus");
			unsigned n = json_is_integer(vcpus) ? (unsigned)json_integer_value(vcpus) : 0;
			unsigned k;

			for (k = 0; k == 0 || k < n; k++) {
				char tname[16], tt[256];
				json_t *t;

				memset(cell, 0, sizeof(cell));
				if (k == 0) {
					snprintf(cell[0], sizeof(cell[0]), "%s", v->proc->name);
					snprintf(cell[1], sizeof(cell[1]), "%d", (int)v->proc->pid);
					snprintf(cell[2], sizeof(cell[2]), "%s", v->state);
					if (v->info) {
						memory_text(v->placement, cell[4], sizeof(cell[4]));
						devices_text(v->info, v->placement, "nics", cell[5],
							     sizeof(cell[5]));
						devices_text(v->info, v->placement, "disks", cell[6],
							     sizeof(cell[6]));
						snprintf(cell[7], sizeof(cell[7]), "%s",
							 console_of(v->info) ? console_of(v->info) : "-");
					}
				}
				snprintf(tname, sizeof(tname), "vcpu%u", k);
				t = placement_thread(v->placement, tname);
				if (n)
					snprintf(cell[3], sizeof(cell[3]), "%s -> %s", tname,
						 t ? thread_text(t, tt, sizeof(tt)) : "?");
				for (c = 0; c < TABLE_COLS; c++) {
					ptrs[c] = cell[c];
					if (!pass && strlen(cell[c]) > w[c])
						w[c] = strlen(cell[c]);
				}
				if (pass)
					row_print(out, w, ptrs);
			}
			if (pass && v->why[0])
				fprintf(out, "  %s: %s\n", v->proc->name, v->why);
		}
	}
}

/* The whole state as JSON: the processes, and each VM's vm.info and placement as it answered. */
static json_t *table_json(struct up_state *st, struct vm_view *views)
{
	json_t *vms = json_array(), *dp = json_null();
	unsigned i;

	if (st->has_dataplane) {
		char dead[96];
		bool alive = proc_alive(&st->dataplane);

		struct rt_thread t[UP_MAX_POLL];
		unsigned n = alive ? poll_threads(st->dataplane.pid, t, UP_MAX_POLL) : 0, k;
		json_t *polls = json_array();

		for (k = 0; k < n; k++) {
			char cpus[64];

			cpus__format(&t[k].cpus, cpus, sizeof(cpus));
			json_array_append_new(polls, json_pack("{s:s, s:I, s:s, s:s, s:i, s:i}", "thread",
							       t[k].name, "tid", (json_int_t)t[k].tid,
							       "cpus", cpus, "policy",
							       rt__kernel_policy_name(t[k].policy),
							       "priority", t[k].priority, "cpu",
							       t[k].last_cpu));
		}
		dp = json_pack("{s:I, s:s, s:s, s:s, s:o}", "pid", (json_int_t)st->dataplane.pid,
			       "state", alive ? "running" : dead_text(&st->dataplane, dead, sizeof(dead)),
			       "stats_socket", st->dataplane.api, "log", st->dataplane.log,
			       "poll_threads", polls);
	}
	for (i = 0; i < st->nr_vms; i++) {
		struct vm_view *v = &views[i];
		json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s}", "name", v->proc->name, "pid",
				      (json_int_t)v->proc->pid, "state", v->state, "api_socket",
				      v->proc->api, "log", v->proc->log);

		if (v->why[0])
			json_object_set_new(o, "error", json_string(v->why));
		json_object_set_new(o, "console_socket", console_of(v->info) ?
				    json_string(console_of(v->info)) : json_null());
		if (v->info)
			json_object_set(o, "info", v->info);
		if (v->placement)
			json_object_set(o, "placement", v->placement);
		json_array_append_new(vms, o);
	}
	return json_pack("{s:s, s:s, s:o, s:o}", "plan", st->plan, "run_dir", st->run_dir,
			 "dataplane", dp, "vms", vms);
}

/* ---- stopping ---- */

/* Waits up to `s` seconds until none of `procs` runs; true when none does. */
static bool wait_gone(struct up_proc *const *procs, unsigned n, double s)
{
	double end = now_s() + s;
	unsigned i, alive;

	for (;;) {
		for (i = 0, alive = 0; i < n; i++)
			alive += proc_alive(procs[i]);
		if (!alive)
			return true;
		if (now_s() >= end)
			return false;
		nap(100);
	}
}

/* Where a VM is on the way down. */
enum stop_step { STOP_BUTTON, STOP_SHUTDOWN, STOP_KILL, STOP_GIVEN_UP };

/* The API call `uri` to VM `p`, or SIGTERM when its API does not answer; said on stderr. */
static void stop_call(struct up_proc *p, const char *uri, const char *said)
{
	struct err e = { 0 };

	if (!api_json(p->api, "PUT", uri, NULL, &e)) {
		fprintf(stderr, "rtvmm: %s: %s (pid %d)\n", p->name, said, (int)p->pid);
		return;
	}
	fprintf(stderr, "rtvmm: %s: %s; SIGTERM instead (pid %d)\n", p->name, e.msg, (int)p->pid);
	kill(p->pid, SIGTERM);
}

/*
 * Stops the VMs of `st`, each on its own clock: the power button (when `button`), after its
 * grace_s vm.shutdown, UP_STEP_S later SIGKILL, each step said on stderr. An API that does not
 * answer gets SIGTERM instead (rtvmm presses the power button then, or stops at once while it
 * is being built). Returns the number of VMs that still run.
 */
static unsigned stop_vms(struct up_state *st, bool button)
{
	enum stop_step *step = calloc(st->nr_vms + 1, sizeof(*step));
	double *next = calloc(st->nr_vms + 1, sizeof(*next));
	unsigned i, running, left = 0;
	char dead[96];

	if (!step || !next) {
		free(step);
		free(next);
		return st->nr_vms;
	}
	for (i = 0; i < st->nr_vms; i++) {
		struct up_proc *p = &st->vms[i];

		if (!proc_alive(p)) {
			fprintf(stderr, "rtvmm: %s: %s (pid %d)\n", p->name,
				dead_text(p, dead, sizeof(dead)), (int)p->pid);
			step[i] = STOP_GIVEN_UP;
			continue;
		}
		if (button) {
			stop_call(p, API_VM_POWER_BUTTON, "power button pressed");
			next[i] = now_s() + p->grace_s;
		} else {
			step[i] = STOP_SHUTDOWN;
			stop_call(p, API_VM_SHUTDOWN, "vm.shutdown");
			next[i] = now_s() + UP_STEP_S;
		}
	}
	do {
		running = 0;
		for (i = 0; i < st->nr_vms; i++) {
			struct up_proc *p = &st->vms[i];

			if (step[i] == STOP_GIVEN_UP || !proc_alive(p))
				continue;
			running++;
			if (now_s() < next[i])
				continue;
			next[i] = now_s() + UP_STEP_S;
			switch (step[i]++) {
			case STOP_BUTTON:
				fprintf(stderr, "rtvmm: %s: still running %.0f s after the power button\n",
					p->name, p->grace_s);
				stop_call(p, API_VM_SHUTDOWN, "vm.shutdown");
				break;
			case STOP_SHUTDOWN:
				fprintf(stderr, "rtvmm: %s: still running %d s later: SIGKILL (pid %d)\n",
					p->name, UP_STEP_S, (int)p->pid);
				kill(p->pid, SIGKILL);
				break;
			default:
				fprintf(stderr, "rtvmm: %s: pid %d survives SIGKILL\n", p->name,
					(int)p->pid);
				running--;
				break;
			}
		}
	} while (running && !nap(100));
	for (i = 0; i < st->nr_vms; i++)
		left += proc_alive(&st->vms[i]);
	free(step);
	free(next);
	return left;
}

/* Stops the dataplane: SIGTERM, then SIGKILL after UP_STEP_S * 2; false when it survives. */
static bool stop_dataplane(struct up_state *st)
{
	struct up_proc *dp = &st->dataplane;

	if (!st->has_dataplane || !proc_alive(dp))
		return true;
	fprintf(stderr, "rtvmm: dataplane: SIGTERM (pid %d)\n", (int)dp->pid);
	kill(dp->pid, SIGTERM);
	if (wait_gone(&dp, 1, UP_STEP_S * 2))
		return true;
	fprintf(stderr, "rtvmm: dataplane: still running %d s after SIGTERM: SIGKILL\n", UP_STEP_S * 2);
	kill(dp->pid, SIGKILL);
	if (wait_gone(&dp, 1, UP_STEP_S))
		return true;
	fprintf(stderr, "rtvmm: dataplane: pid %d survives SIGKILL\n", (int)dp->pid);
	return false;
}

/*
 * Where the EAL puts its file prefixes' runtime directories, as DPDK chooses it: /var/run/dpdk
 * for root, else $XDG_RUNTIME_DIR/dpdk or /tmp/dpdk (the dataplane has our uid and environment).
 */
static void eal_runtime_base(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	snprintf(buf, len, "%s/dpdk", getuid() == 0 ? "/var/run" : xdg && xdg[0] ? xdg : "/tmp");
}

/*
 * Whether a process holds the EAL's lock on `dfd`/config: a primary process of that prefix.
 * Asked for up to UP_EAL_LOCK_WAIT_MS: a process whose main thread is a zombie may still be
 * ending its other threads, and holds its files and locks until the last one is gone.
 */
static bool eal_config_locked(int dfd)
{
	int fd = openat(dfd, "config", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	bool locked = true;
	int waited;

	if (fd < 0)
		return false;
	for (waited = 0; locked && waited <= UP_EAL_LOCK_WAIT_MS; waited += 50) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

		locked = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
		if (locked && nap(50))
			break;
	}
	close(fd);
	return locked;
}

/*
 * Removes the dataplane's EAL runtime directory (BASE/dpdk/PREFIX) once the dataplane is gone,
 * as DPDK leaves it behind: only a real directory (no symlink on the way from BASE/dpdk, none
 * followed inside), owned by our uid, holding no directory, its config locked by no process.
 * Says on stderr what it removed or why it left it.
 */
static void remove_eal_runtime(const struct up_state *st)
{
	char base[PATH_MAX], why[400] = "";
	int bfd, dfd = -1, fd;
	struct dirent *de;
	struct stat sb;
	DIR *d;

	if (!st->has_dataplane || !prefix_ok(st->file_prefix))
		return;
	eal_runtime_base(base, sizeof(base));
	bfd = open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (bfd >= 0)
		dfd = openat(bfd, st->file_prefix, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		if (errno != ENOENT)
			fprintf(stderr, "rtvmm: dataplane: its EAL runtime directory %s/%s stays: %s\n",
				base, st->file_prefix, strerror(errno));
		goto out_base;
	}
	if (fstat(dfd, &sb) || sb.st_uid != getuid())
		snprintf(why, sizeof(why), "owned by uid %u, not by uid %u", (unsigned)sb.st_uid,
			 (unsigned)getuid());
	else if (eal_config_locked(dfd))
		snprintf(why, sizeof(why), "a DPDK process of that prefix still runs");
	fd = dup(dfd);
	d = why[0] || fd < 0 ? NULL : fdopendir(fd);
	if (!d && fd >= 0)
		close(fd);
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(sb.st_mode))
			snprintf(why, sizeof(why), "it holds a directory %.200s", de->d_name);
		else if (unlinkat(dfd, de->d_name, 0) && errno != ENOENT)
			snprintf(why, sizeof(why), "%.200s: %s", de->d_name, strerror(errno));
	}
	if (d)
		closedir(d);
	if (!why[0] && unlinkat(bfd, st->file_prefix, AT_REMOVEDIR))
		snprintf(why, sizeof(why), "%s", strerror(errno));
	if (why[0])
		fprintf(stderr, "rtvmm: dataplane: its EAL runtime directory %s/%s stays: %s\n", base,
			st->file_prefix, why);
	else
		fprintf(stderr, "rtvmm: dataplane: removed its EAL runtime directory %s/%s\n", base,
			st->file_prefix);
	close(dfd);
out_base:
	if (bfd >= 0)
		close(bfd);
}

/* ---- the run directory ---- */

/* The plan's name: its file name without .yaml / .yml. */
static void plan_name(const struct plan *plan, char *buf, size_t len)
{
	const char *base = strrchr(plan->file, '/');
	char *dot;

	if (snprintf(buf, len, "%s", base ? base + 1 : plan->file) >= (int)len)
		buf[0] = '\0';
	dot = strrchr(buf, '.');
	if (dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml")))
		*dot = '\0';
}

/* RUN: --run-dir, else host.run_dir/PLANNAME (/run/rtvmm/PLANNAME by default). */
static int run_dir_of(const struct plan *plan, const char *given, char *buf, size_t len,
		      struct err *e)
{
	char name[PATH_MAX];
	int n;

	if (given)
		n = snprintf(buf, len, "%s", given);
	else {
		plan_name(plan, name, sizeof(name));
		n = snprintf(buf, len, "%s/%s", plan->host.run_dir, name);
	}
	if (n < 0 || (size_t)n >= len)
		return err__set(e, -ENAMETOOLONG, "%s: the run directory %s is too long", plan->file, buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return 0;
}

/*
 * Creates RUN 0700 for the plan's host.user (who must be able to remove its sockets once the
 * processes dropped to it), as the tools create host.run_dir, and that one first when RUN is in
 * it; an existing RUN must pass the same trust checks.
 */
static int run_dir_make(const struct plan *plan, const char *run_dir, struct err *e)
{
	struct trust_uids tu = { .service = TRUST_NO_UID, .only = TRUST_NO_UID };
	const struct plan_host *h = &plan->host;
	gid_t gid = (gid_t)-1;
	size_t rl = strlen(h->run_dir);
	uid_t owner;
	int err;

	if (h->user[0] && trust__user(h->user, &tu.service, &gid))
		return err__set(e, -ENOENT, "%s: host.user '%s': no such user on this host", plan->file,
				h->user);
	if (h->group[0] && trust__group(h->group, &gid))
		return err__set(e, -ENOENT, "%s: host.group '%s': no such group on this host",
				plan->file, h->group);
	owner = geteuid() == 0 ? tu.service : TRUST_NO_UID;
	if (owner == TRUST_NO_UID)
		gid = (gid_t)-1;
	if (rl && !strncmp(run_dir, h->run_dir, rl) && run_dir[rl] == '/') {
		err = trust__make_run_dir(h->run_dir, owner, gid, &tu, e);
		if (err)
			return err;
	}
	return trust__make_run_dir(run_dir, owner, gid, &tu, e);
}

/* ---- up ---- */

/* Checks the whole plan against this host, findings on stderr; false when there are errors. */
static bool plan_checks(const struct plan *plan)
{
	struct err e = { 0 };
	int n = plan__check_host(plan, stderr, &e);

	if (n < 0)
		fprintf(stderr, "rtvmm: %s\n", e.msg);
	return n == 0;
}

/* rtvmm-dataplane: $RTVMM_DATAPLANE, else beside rtvmm (installed) or in dataplane/ (build tree). */
static int dataplane_path(const char *self, char *buf, size_t len, struct err *e)
{
	const char *env = getenv("RTVMM_DATAPLANE");
	const char *slash = strrchr(self, '/');
	int dir = slash ? (int)(slash - self) : 0;

	if (env && env[0]) {
		snprintf(buf, len, "%s", env);
		if (access(buf, X_OK))
			return err__set(e, -errno, "RTVMM_DATAPLANE=%s: %s", env, strerror(errno));
		return 0;
	}
	snprintf(buf, len, "%.*s/rtvmm-dataplane", dir, self);
	if (!access(buf, X_OK))
		return 0;
	snprintf(buf, len, "%.*s/dataplane/rtvmm-dataplane", dir, self);
	if (!access(buf, X_OK))
		return 0;
	return err__set(e, -ENOENT, "the plan has a host.dataplane section but rtvmm-dataplane is "
			"neither beside %s nor in %.*s/dataplane/ (set RTVMM_DATAPLANE)", self, dir, self);
}

/* Whether `path` is a socket created at or after `since` (a stale one from an earlier run is not). */
static bool fresh_socket(const char *path, time_t since)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ctim.tv_sec >= since;
}

/*
 * Starts the plan's dataplane (its stats socket in RUN) and waits until it listens on every
 * socket the VMs connect to (their NICs in mode client) and on its stats socket.
 */
static int start_dataplane(struct up_state *st, const struct plan *plan, const char *self,
			   double deadline, struct err *e)
{
	char exe[PATH_MAX], prefix[64], name[PATH_MAX];
	struct up_proc *dp = &st->dataplane;
	time_t since = time(NULL);
	unsigned v, i, k;
	int err, sig;

	err = dataplane_path(self, exe, sizeof(exe), e);
	if (err)
		return err;
	/* One EAL runtime directory per plan: two plans' dataplanes may run on one host. */
	plan_name(plan, name, sizeof(name));
	for (k = 0; name[k]; k++)
		if (!strchr(UP_PREFIX_CHARS, name[k]))
			name[k] = '_';
	snprintf(prefix, sizeof(prefix), "rtvmm-%.40s", name);
	snprintf(st->file_prefix, sizeof(st->file_prefix), "%s", prefix);
	snprintf(dp->name, sizeof(dp->name), "dataplane");
	if (snprintf(dp->log, sizeof(dp->log), "%s/dataplane.log", st->run_dir) >= (int)sizeof(dp->log) ||
	    snprintf(dp->api, sizeof(dp->api), "%s/" UP_DATAPLANE_SOCKET, st->run_dir) >=
	    (int)sizeof(dp->api))
		return err__set(e, -ENAMETOOLONG, "dataplane: its stats socket %s/" UP_DATAPLANE_SOCKET
				" is longer than a unix socket path (%zu bytes): give a shorter --run-dir",
				st->run_dir, sizeof(dp->api) - 1);
	{
		char *argv[] = { exe, "run", st->plan, "--stats-socket", dp->api, "--file-prefix",
				 prefix, NULL };

		err = proc_spawn(dp, argv, e);
	}
	if (err)
		return err;
	st->has_dataplane = true;
	err = state_write(st, false, e);
	if (err)
		return err;
	fprintf(stderr, "rtvmm: dataplane: started (pid %d, log %s)\n", (int)dp->pid, dp->log);
	for (;;) {
		bool ready = fresh_socket(dp->api, since);

		for (v = 0; v < plan->nr_vms && ready; v++)
			for (i = 0; i < plan->vms[v].nr_nics && ready; i++)
				if (plan->vms[v].nics[i].mode == PLAN_NIC_CLIENT)
					ready = fresh_socket(plan->vms[v].nics[i].socket, since);
		if (ready)
			return 0;
		if (!proc_alive(dp)) {
			char dead[96];

			err = err__set(e, -ECHILD, "dataplane: %s before its sockets were up",
				       dead_text(dp, dead, sizeof(dead)));
			break;
		}
		if (now_s() > deadline) {
			err = err__set(e, -ETIMEDOUT, "dataplane: its vhost-user sockets are not all up "
				       "after the timeout");
			break;
		}
		sig = nap(100);
		if (sig)
			return err__set(e, -EINTR, "interrupted by signal %d", sig);
	}
	return err;
}

/*
 * Starts VM `pvm` as `rtvmm run PLAN --vm NAME --api-socket RUN/NAME.sock` (or its api_socket),
 * with `--dataplane-stats RUN/dataplane.sock` when `up` started the dataplane.
 */
static int start_vm(struct up_state *st, struct up_proc *p, const struct plan_vm *pvm,
		    const char *self, struct err *e)
{
	char exe[PATH_MAX], name[sizeof(pvm->name)], serial[sizeof(p->api) + 8];
	int n, err;

	snprintf(exe, sizeof(exe), "%s", self);
	snprintf(name, sizeof(name), "%s", pvm->name);
	snprintf(p->name, sizeof(p->name), "%s", pvm->name);
	/* The plan's api_socket when it names one, else RUN/NAME.sock. */
	if (pvm->api_socket[0])
		n = snprintf(p->api, sizeof(p->api), "%s", pvm->api_socket);
	else
		n = snprintf(p->api, sizeof(p->api), "%s/%s.sock", st->run_dir, pvm->name);
	if (n < 0 || (size_t)n >= sizeof(p->api) ||
	    snprintf(p->log, sizeof(p->log), "%s/%s.log", st->run_dir, pvm->name) >= (int)sizeof(p->log))
		return err__set(e, -ENAMETOOLONG, "%s: its API socket %s/%s.sock is longer than a "
				"unix socket path (%zu bytes): give a shorter --run-dir", pvm->name,
				st->run_dir, pvm->name, sizeof(p->api) - 1);
	/* COM1: where the plan's serial says, else a socket RUN/NAME.console (rtvmm ctl console). */
	n = snprintf(serial, sizeof(serial), "socket=%s/%s.console", st->run_dir, pvm->name);
	if (!pvm->serial.loc.line && (n < 0 || (size_t)n - 7 >= sizeof(p->api)))
		return err__set(e, -ENAMETOOLONG, "%s: its console socket %s is longer than a unix "
				"socket path (%zu bytes): give a shorter --run-dir", pvm->name,
				serial + 7, sizeof(p->api) - 1);
	{
		/* The dataplane `up` started serves every NIC of the plan: vm.counters asks it. */
		char *argv[12] = { exe, "run", st->plan, "--vm", name, "--api-socket", p->api };
		unsigned a = 7;

		if (st->has_dataplane) {
			argv[a++] = "--dataplane-stats";
			argv[a++] = st->dataplane.api;
		}
		if (!pvm->serial.loc.line) {   /* the plan's serial: key wins */
			argv[a++] = "--serial";
			argv[a++] = serial;
		}
		argv[a] = NULL;
		err = proc_spawn(p, argv, e);
	}
	if (err)
		return err;
	fprintf(stderr, "rtvmm: %s: started (pid %d, log %s)\n", p->name, (int)p->pid, p->log);
	return state_write(st, false, e);
}

/* An API or console socket `up` would create that the plan uses for something else. */
static const char *socket_clash(const struct plan *plan, const char *run_dir)
{
	static char path[PATH_MAX + 128];
	unsigned v, w, i, k;

	for (k = 0; k < 2 * plan->nr_vms; k++) {
		v = k / 2;
		if (k % 2 ? plan->vms[v].serial.loc.line != 0 : plan->vms[v].api_socket[0] != '\0')
			continue;
		snprintf(path, sizeof(path), "%s/%s.%s", run_dir, plan->vms[v].name,
			 k % 2 ? "console" : "sock");
		for (w = 0; w < plan->nr_vms; w++) {
			for (i = 0; i < plan->vms[w].nr_nics; i++)
				if (!strcmp(path, plan->vms[w].nics[i].socket))
					return path;
			for (i = 0; i < plan->vms[w].nr_disks; i++)
				if (!strcmp(path, plan->vms[w].disks[i].socket))
					return path;
		}
	}
	return NULL;
}

/*
 * Waits until every VM answers Running with its placement proven; fills `views`. A VM that
 * exits, or is not there by `deadline`, fails `up`: false, with why on stderr.
 */
static bool wait_running(struct up_state *st, const struct plan *plan, struct vm_view *views,
			 double deadline)
{
	bool *done = calloc(st->nr_vms + 1, sizeof(*done));
	unsigned i, left = st->nr_vms;
	bool ok = true;

	if (!done)
		return false;
	while (left && ok) {
		for (i = 0; i < st->nr_vms && ok; i++) {
			const struct plan_vm *pvm = plan__find_vm(plan, st->vms[i].name);
			char why[1024];

			if (done[i])
				continue;
			view_free(&views[i]);
			view_query(&views[i], &st->vms[i]);
			if (st->vms[i].gone) {
				fprintf(stderr, "rtvmm: %s: did not come up: %s\n", st->vms[i].name,
					views[i].state);
				log_tail(st->vms[i].log, UP_LOG_TAIL);
				ok = false;
			} else if (!strcmp(views[i].state, "Running") && views[i].placement) {
				if (!placement_proven(views[i].placement, pvm, why, sizeof(why))) {
					fprintf(stderr, "rtvmm: %s: placement not proven: %s\n",
						st->vms[i].name, why);
					ok = false;
				}
				done[i] = true;
				left--;
			} else if (now_s() > deadline) {
				fprintf(stderr, "rtvmm: %s: not Running after the timeout (state %s%s%s)\n",
					st->vms[i].name, views[i].state, views[i].why[0] ? ": " : "",
					views[i].why);
				log_tail(st->vms[i].log, UP_LOG_TAIL);
				ok = false;
			}
		}
		if (left && ok) {
			int sig = nap(200);

			if (sig) {
				fprintf(stderr, "rtvmm: interrupted by signal %d\n", sig);
				ok = false;
			}
		}
	}
	/* The table says how they are now: one that came up first may have died since. */
	for (i = 0; i < st->nr_vms && ok; i++) {
		view_free(&views[i]);
		view_query(&views[i], &st->vms[i]);
		if (!views[i].info) {
			fprintf(stderr, "rtvmm: %s: came up, then %s\n", st->vms[i].name, views[i].state);
			log_tail(st->vms[i].log, UP_LOG_TAIL);
			ok = false;
		}
	}
	free(done);
	return ok;
}

static int usage_error(const char *cmd, const char *msg, const char *arg)
{
	fprintf(stderr, "rtvmm %s: ", cmd);
	fprintf(stderr, msg, arg);
	fprintf(stderr, "\nTry 'rtvmm --help'.\n");
	return 1;
}

/* A --timeout value: whole seconds, 1..86400. */
static int parse_seconds(const char *cmd, const char *s, unsigned *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 86400)
		return usage_error(cmd, "--timeout '%s': expected whole seconds, 1..86400", s);
	*out = (unsigned)v;
	return 0;
}

int up__cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *given_run = NULL, *clash;
	unsigned timeout_s = UP_DEFAULT_TIMEOUT_S, i;
	struct up_state st = { 0 };
	struct vm_view *views = NULL;
	struct plan plan = { 0 };
	struct err e = { 0 };
	char self[PATH_MAX], real_run[PATH_MAX];
	sigset_t stop, old;
	double deadline;
	int c, status = 1;
	ssize_t n;

	optind = 1;
	argv[0] = "rtvmm up";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			given_run = optarg;
			break;
		case 't':
			if (parse_seconds("up", optarg, &timeout_s))
				return 1;
			break;
		case 'h':
			printf("usage: rtvmm up HOSTPLAN.yaml [--run-dir DIR] [--timeout S]\n");
			return 0;
		default:
			fprintf(stderr, "Try 'rtvmm --help'.\n");
			return 1;
		}
	}
	if (optind != argc - 1)
		return usage_error("up", "%s", "exactly one HOSTPLAN.yaml is required");
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		fprintf(stderr, "rtvmm up: cannot find my own program (/proc/self/exe): %s\n",
			strerror(errno));
		return 1;
	}
	self[n] = '\0';
	if (plan__load(&plan, argv[optind], &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		return 1;
	}
	if (!realpath(plan.file, st.plan)) {
		fprintf(stderr, "rtvmm: %s: %s\n", plan.file, strerror(errno));
		goto out_plan;
	}
	if (!plan.nr_vms && !plan.host.dataplane.present) {
		fprintf(stderr, "rtvmm: %s: no VM and no dataplane: nothing to bring up\n", plan.file);
		goto out_plan;
	}
	if (!plan_checks(&plan)) {
		fprintf(stderr, "rtvmm: %s: the plan does not fit this host; nothing was started\n",
			plan.file);
		goto out_plan;
	}
	if (run_dir_of(&plan, given_run, st.run_dir, sizeof(st.run_dir), &e) ||
	    run_dir_make(&plan, st.run_dir, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		goto out_plan;
	}
	/* The state file names absolute paths: ctl list and down may run from anywhere. */
	if (!realpath(st.run_dir, real_run)) {
		fprintf(stderr, "rtvmm: %s: %s\n", st.run_dir, strerror(errno));
		goto out_plan;
	}
	snprintf(st.run_dir, sizeof(st.run_dir), "%s", real_run);
	clash = socket_clash(&plan, st.run_dir);
	if (clash) {
		fprintf(stderr, "rtvmm: %s: the %s socket %s is also a NIC's or disk's socket in the "
			"plan: give another --run-dir\n", plan.file,
			strstr(clash, ".console") == clash + strlen(clash) - 8 ? "console" : "API", clash);
		goto out_plan;
	}
	st.vms = calloc(plan.nr_vms + 1, sizeof(*st.vms));
	views = calloc(plan.nr_vms + 1, sizeof(*views));
	if (!st.vms || !views) {
		fprintf(stderr, "rtvmm: out of memory\n");
		goto out_plan;
	}
	/* The claim on RUN: a second `up` finds the state file and refuses. */
	if (state_write(&st, true, &e)) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		goto out_plan;
	}
	/* Ctrl-C or SIGTERM while starting: stop what was started, then exit. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, &old);
	deadline = now_s() + timeout_s;
	if (plan.host.dataplane.present && (start_dataplane(&st, &plan, self, deadline, &e) ||
					    dataplane_proven(&st.dataplane, &plan.host.dataplane, &e))) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		if (st.dataplane.pid && e.code != -EINTR)
			log_tail(st.dataplane.log, UP_LOG_TAIL);
		goto err_stop;
	}
	for (i = 0; i < plan.nr_vms; i++) {
		st.nr_vms = i + 1;
		if (start_vm(&st, &st.vms[i], &plan.vms[i], self, &e)) {
			st.nr_vms = i + (st.vms[i].pid != 0);
			fprintf(stderr, "rtvmm: %s\n", e.msg);
			goto err_stop;
		}
	}
	if (!wait_running(&st, &plan, views, deadline))
		goto err_stop;
	table_print(stdout, &st, views);
	status = 0;
	goto out_views;

err_stop:
	fprintf(stderr, "rtvmm: %s: stopping what was started\n", plan.file);
	stop_vms(&st, false);
	if (stop_dataplane(&st))
		remove_eal_runtime(&st);
	state_remove(&st);
	fprintf(stderr, "rtvmm: %s: not up; the logs stay in %s\n", plan.file, st.run_dir);
out_views:
	sigprocmask(SIG_SETMASK, &old, NULL);
	for (i = 0; i < st.nr_vms; i++)
		view_free(&views[i]);
out_plan:
	free(views);
	state_free(&st);
	plan__free(&plan);
	return status;
}

/* ---- ctl list ---- */

/*
 * Prints one run directory's table (or its JSON object into `all`); 0 when every process runs
 * and every VM answers, 1 when one is dead or does not answer, -errno when nothing is up there.
 */
static int list_one(const char *run_dir, json_t *all, struct err *e)
{
	struct vm_view *views;
	struct up_state st;
	unsigned i;
	int err, status = 0;

	err = state_read(&st, run_dir, e);
	if (err)
		return err;
	views = calloc(st.nr_vms + 1, sizeof(*views));
	if (!views) {
		state_free(&st);
		return err__set(e, -ENOMEM, "out of memory");
	}
	for (i = 0; i < st.nr_vms; i++) {
		view_query(&views[i], &st.vms[i]);
		if (!views[i].info)
			status = 1;
	}
	if (st.has_dataplane && !proc_alive(&st.dataplane))
		status = 1;
	if (all)
		json_array_append_new(all, table_json(&st, views));
	else {
		printf("%s (%s):\n", st.run_dir, st.plan);
		table_print(stdout, &st, views);
	}
	for (i = 0; i < st.nr_vms; i++)
		view_free(&views[i]);
	free(views);
	state_free(&st);
	return status;
}

int up__cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *run_dir = NULL;
	json_t *all = NULL;
	struct err e = { 0 };
	bool json = false;
	int c, r, status = 0;

	optind = 1;
	argv[0] = "rtvmm ctl list";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			run_dir = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: rtvmm ctl list [--run-dir DIR] [--json]\n");
			return 0;
		default:
			fprintf(stderr, "Try 'rtvmm --help'.\n");
			return 1;
		}
	}
	if (optind != argc)
		return usage_error("ctl list", "unexpected argument '%s'", argv[optind]);
	if (json)
		all = json_array();
	if (run_dir) {
		r = list_one(run_dir, all, &e);
		if (r < 0) {
			fprintf(stderr, "rtvmm: %s\n", e.msg);
			json_decref(all);
			return 1;
		}
		status = r;
	} else {
		/* Every plan brought up under the default run directory. */
		DIR *d = opendir(TRUST_DEFAULT_RUN_DIR);
		struct dirent *de;
		char path[PATH_MAX];
		unsigned found = 0;

		while (d && (de = readdir(d))) {
			char state[PATH_MAX + 16];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), TRUST_DEFAULT_RUN_DIR "/%s", de->d_name);
			snprintf(state, sizeof(state), "%s/" UP_STATE_FILE, path);
			if (access(state, F_OK))
				continue;
			if (found++ && !json)
				printf("\n");
			r = list_one(path, all, &e);
			if (r < 0)
				fprintf(stderr, "rtvmm: %s\n", e.msg);
			if (r)
				status = 1;
		}
		if (d)
			closedir(d);
		if (!found)
			fprintf(stderr, "rtvmm: nothing is up under %s (rtvmm up HOSTPLAN.yaml; another "
				"run directory: --run-dir DIR)\n", TRUST_DEFAULT_RUN_DIR);
	}
	if (json) {
		json_dumpf(all, stdout, JSON_INDENT(1));
		printf("\n");
		json_decref(all);
	}
	return status;
}

/* ---- down ---- */

/* Each VM's grace after the power button: `timeout_s` (>= 0), else its plan's shutdown_grace_s. */
static void set_grace(struct up_state *st, int timeout_s)
{
	struct plan plan = { 0 };
	struct err e = { 0 };
	bool have_plan = timeout_s < 0 && plan__load(&plan, st->plan, &e) == 0;
	unsigned i;

	if (timeout_s < 0 && !have_plan)
		fprintf(stderr, "rtvmm: %s; each VM gets %d s after the power button\n", e.msg,
			UP_DEFAULT_GRACE_S);
	for (i = 0; i < st->nr_vms; i++) {
		const struct plan_vm *pvm = have_plan ? plan__find_vm(&plan, st->vms[i].name) : NULL;

		st->vms[i].grace_s = timeout_s >= 0 ? (double)timeout_s :
				     pvm ? (double)pvm->shutdown_grace_s : UP_DEFAULT_GRACE_S;
	}
	plan__free(&plan);
}

int up__cmd_down(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run-dir", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *given_run = NULL;
	unsigned grace_s = 0, left;
	bool timeout_set = false;
	char run_dir[PATH_MAX];
	struct up_state st;
	struct err e = { 0 };
	bool dp_ok;
	int c, err;

	optind = 1;
	argv[0] = "rtvmm down";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			given_run = optarg;
			break;
		case 't':
			if (parse_seconds("down", optarg, &grace_s))
				return 1;
			timeout_set = true;
			break;
		case 'h':
			printf("usage: rtvmm down [HOSTPLAN.yaml | --run-dir DIR] [--timeout S]\n");
			return 0;
		default:
			fprintf(stderr, "Try 'rtvmm --help'.\n");
			return 1;
		}
	}
	if (optind < argc - 1 || (optind == argc && !given_run))
		return usage_error("down", "%s", "expected one HOSTPLAN.yaml or --run-dir DIR");
	if (optind == argc - 1) {
		struct plan plan = { 0 };

		if (plan__load(&plan, argv[optind], &e) ||
		    run_dir_of(&plan, given_run, run_dir, sizeof(run_dir), &e)) {
			fprintf(stderr, "rtvmm: %s\n", e.msg);
			plan__free(&plan);
			return 1;
		}
		plan__free(&plan);
	} else {
		snprintf(run_dir, sizeof(run_dir), "%s", given_run);
	}
	err = state_read(&st, run_dir, &e);
	if (err) {
		fprintf(stderr, "rtvmm: %s\n", e.msg);
		return err == -ENOENT ? 0 : 1;
	}
	set_grace(&st, timeout_set ? (int)grace_s : -1);
	left = stop_vms(&st, true);
	dp_ok = stop_dataplane(&st);
	if (dp_ok)
		remove_eal_runtime(&st);
	if (left || !dp_ok) {
		fprintf(stderr, "rtvmm: %s: %u VM%s%s still running: the state file stays\n", run_dir,
			left, left == 1 ? "" : "s", dp_ok ? "" : " and the dataplane");
		state_free(&st);
		return 1;
	}
	state_remove(&st);
	fprintf(stderr, "rtvmm: %s: down (the logs stay)\n", run_dir);
	state_free(&st);
	return 0;
}
