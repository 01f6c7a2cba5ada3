/* The guest's side of split virtqueues for KVM-less device tests, and the backend they run. */
#include "vring_rig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int rig_failures;

int rig_queue__init(struct rig_queue *q, struct guest_mem *mem, unsigned index, unsigned size,
		    uint64_t ring_gpa, uint64_t buf_gpa, uint32_t buf_size, struct virtio_queue *vq)
{
	unsigned k;

	if (!size || size > RIG_QSIZE_MAX || (size & (size - 1)))
		return -EINVAL;
	memset(q, 0, sizeof(*q));
	q->index = index;
	q->size = size;
	q->desc_gpa = ring_gpa;
	q->avail_gpa = ring_gpa + 0x1000;
	q->used_gpa = ring_gpa + 0x2000;
	q->buf_gpa = buf_gpa;
	q->buf_size = buf_size;
	q->desc = guest_mem__ptr(mem, q->desc_gpa, 16ull * size);
	q->avail = guest_mem__ptr(mem, q->avail_gpa, 6 + 2ull * size);
	q->used = guest_mem__ptr(mem, q->used_gpa, 6 + 8ull * size);
	q->buf = guest_mem__ptr(mem, q->buf_gpa, (uint64_t)size * buf_size);
	if (!q->desc || !q->avail || !q->used || !q->buf)
		return -ERANGE;
	memset(q->desc, 0, 0x3000);
	for (k = 0; k < size; k++)
		q->free_ids[q->nr_free++] = (uint16_t)(size - 1 - k);
	*vq = (struct virtio_queue){
		.size = (uint16_t)size, .enabled = true, .desc = q->desc_gpa, .driver = q->avail_gpa,
		.device = q->used_gpa, .msix_vector = (uint16_t)index,
		.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
		.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
	};
	return vq->kick_fd < 0 || vq->call_fd < 0 ? -errno : 0;
}

void rig_queue__close(struct virtio_queue *vq)
{
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	vq->kick_fd = vq->call_fd = -1;
}

uint16_t rig_queue__used_idx(const struct rig_queue *q)
{
	return __atomic_load_n((const uint16_t *)(q->used + 2), __ATOMIC_ACQUIRE);
}

void rig_queue__used_elem(const struct rig_queue *q, uint16_t at, uint32_t *id, uint32_t *len)
{
	uint32_t e[2];

	memcpy(e, q->used + 4 + 8 * (at % q->size), sizeof(e));
	*id = e[0];
	*len = e[1];
}

void rig_queue__publish(struct rig_queue *q, uint16_t head)
{
	q->avail[2 + q->avail_idx % q->size] = head;
	q->avail_idx++;
	__atomic_store_n(&q->avail[1], q->avail_idx, __ATOMIC_RELEASE);
}

void rig_queue__kick(struct rig_queue *q, int kick_fd)
{
	uint64_t one = 1;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n((const uint16_t *)q->used, __ATOMIC_RELAXED) & RIG_USED_F_NO_NOTIFY)
		return;
	q->kicks++;
	if (write(kick_fd, &one, 8) < 0) {
		/* saturated: the device will see it */
	}
}

int rig_wait_eventfd(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, timeout_ms) != 1)
		return 0;
	if (read(fd, &v, sizeof(v)) < 0) {
		/* drained by someone else: it fired all the same */
	}
	return 1;
}

static void rig_config_irqs__count(struct virtio_dev *dev)
{
	__atomic_add_fetch((unsigned *)dev->transport, 1, __ATOMIC_RELEASE);
}

void rig_config_irqs__watch(struct virtio_dev *dev, unsigned *count)
{
	dev->transport = count;
	dev->config_changed = rig_config_irqs__count;
}

unsigned rig_config_irqs__read(const unsigned *count)
{
	return __atomic_load_n(count, __ATOMIC_ACQUIRE);
}

double rig_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int rig_wait_socket(const char *path, double timeout)
{
	double end = rig_now_s() + timeout;
	struct stat st;

	while (rig_now_s() < end) {
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		usleep(20000);
	}
	return -ETIMEDOUT;
}

void rig_dump_file(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	fprintf(stderr, "---- %s ----\n", path);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fclose(f);
}

int rig_spawn(struct rig_proc *p, char *const argv[], const char *dir, unsigned flags,
	      const char *log_fmt, ...)
{
	int in[2] = { -1, -1 }, logfd, n, err;
	va_list ap;

	p->pid = 0;
	p->stdin_wr = -1;
	va_start(ap, log_fmt);
	n = vsnprintf(p->log, sizeof(p->log), log_fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(p->log))
		return -ENAMETOOLONG;
	if ((flags & RIG_SPAWN_STDIN) && pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0) {
		err = -errno;
		goto err_close_pipe;
	}
	p->pid = fork();
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (flags & RIG_SPAWN_NICE)
			setpriority(PRIO_PROCESS, 0, 19);
		if (dir && chdir(dir) < 0)
			_exit(126);
		if (in[0] >= 0)
			dup2(in[0], 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	err = p->pid < 0 ? -errno : 0;
	close(logfd);
	if (err) {
		p->pid = 0;
		goto err_close_pipe;
	}
	if (in[0] >= 0) {
		close(in[0]);
		p->stdin_wr = in[1]; /* the peer's stdin ends when this closes */
	}
	return 0;
err_close_pipe:
	if (in[0] >= 0) {
		close(in[0]);
		close(in[1]);
	}
	return err;
}

/* The peer was reaped: forget it and close its stdin. */
static void rig_proc__gone(struct rig_proc *p)
{
	p->pid = 0;
	if (p->stdin_wr >= 0)
		close(p->stdin_wr);
	p->stdin_wr = -1;
}

void rig_kill(struct rig_proc *p)
{
	if (p->pid <= 0)
		return;
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	rig_proc__gone(p);
}

int rig_wait_exit(struct rig_proc *p, double timeout)
{
	double end = rig_now_s() + timeout;
	int status = -1;

	if (p->pid <= 0)
		return -1;
	while (waitpid(p->pid, &status, WNOHANG) == 0) {
		if (rig_now_s() > end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &status, 0);
			break;
		}
		usleep(20000);
	}
	rig_proc__gone(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
