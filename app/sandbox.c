/*
 * Privilege drop and per-thread-class seccomp filters (libseccomp), built once
 * before the first machine thread starts; each thread loads its class's
 * program itself (seccomp is per thread) as it starts its work.
 *
 * Order. The console, vhost-user session and disk I/O threads start during
 * vm__build, while rtvmm is still root, and are confined at once: their filters
 * allow the drop's own calls (setgroups(0), setresgid and setresuid with exactly the
 * target ids, and rt_sigreturn), which glibc makes on every thread through its
 * SIGSETXID broadcast when the main thread drops. vCPU threads place
 * themselves as root (SCHED_FIFO), then wait at the VM's gate until the main
 * thread has proved placement, dropped and confined itself; only then do they
 * load the vCPU filter, which has no set*id at all, and enter the guest.
 *
 * Capabilities after the drop: none. Everything that needs privilege happens
 * before it: /dev/kvm and the VM, hugepage guest RAM, mlockall, the
 * /dev/cpu_dma_latency fd (held open), SCHED_FIFO and pinning (vCPU threads
 * place themselves before the proof; nothing changes policy afterwards), the
 * listening sockets. The kernel clears the permitted, effective and ambient
 * sets of a thread whose uids all become non-zero; rtvmm checks every thread
 * with libcap-ng after the drop and refuses to run a guest if any kept one.
 * A plan that locks memory (MCL_FUTURE) raises RLIMIT_MEMLOCK first, so that
 * later mappings (thread arenas, buffers) stay possible without CAP_IPC_LOCK.
 */
#include "app/sandbox.h"

#include <cap-ng.h>
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <malloc.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/thread_class.h"
#include "base/trust.h"

/* System call numbers the SIGSYS report can name (x86-64 has fewer than this). */
#define SANDBOX_NR_NAMES 512

/* One allowed call, with up to three argument comparisons (all must hold). */
struct sb_rule {
	int nr;
	unsigned nr_args;
	struct scmp_arg_cmp args[3];
};

#define ALLOW(name) { .nr = SCMP_SYS(name) }
#define ARG(i, cmp, a, b) { .arg = (i), .op = (cmp), .datum_a = (a), .datum_b = (b) }
#define ALLOW_IF(name, i, v) { .nr = SCMP_SYS(name), .nr_args = 1, .args = { ARG(i, SCMP_CMP_EQ, v, 0) } }
/* Mappings and protections never executable: no new code after set-up. */
#define ALLOW_NO_EXEC(name) \
	{ .nr = SCMP_SYS(name), .nr_args = 1, .args = { ARG(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) } }
#define END { .nr = -1 }

/* Every class: memory, locks, time, signals' return, thread exit, the report line. */
static const struct sb_rule common_rules[] = {
	ALLOW(read), ALLOW(write), ALLOW(readv), ALLOW(writev), ALLOW(close),
	ALLOW(futex), ALLOW(exit), ALLOW(exit_group), ALLOW(restart_syscall),
	/* Signal handlers return; glibc's pthread_kill and thread exit block signals around a
	 * lock. Blocking SIGSYS disarms nothing: the kernel forces a trap's SIGSYS through and
	 * kills with it. rt_sigaction (a handler that would return from a trap) is not here. */
	ALLOW(rt_sigreturn), ALLOW(rt_sigprocmask),
	ALLOW(getpid), ALLOW(gettid),
	/* malloc, free and thread exit (glibc madvises the dead thread's stack). */
	ALLOW_NO_EXEC(mmap), ALLOW_NO_EXEC(mprotect), ALLOW(munmap), ALLOW(mremap), ALLOW(brk),
	ALLOW(madvise),
	ALLOW(clock_gettime), ALLOW(clock_nanosleep), ALLOW(nanosleep), ALLOW(gettimeofday),
	ALLOW(sched_yield),
	/* stdio's first use of a stream: fstat(fd) is fstatat(fd, "", AT_EMPTY_PATH). */
	ALLOW(fstat), ALLOW_IF(newfstatat, 3, AT_EMPTY_PATH),
	END,
};

/*
 * vCPU threads: the run loop and the exits it handles (devices, virtio-pci activation:
 * the queues' fds are duplicated here, the backend is talked to by the session thread,
 * so no socket I/O).
 */
static const struct sb_rule vcpu_rules[] = {
	ALLOW(eventfd2), ALLOW(epoll_ctl), ALLOW(poll), ALLOW(ppoll),
	ALLOW_IF(fcntl, 1, F_DUPFD_CLOEXEC), ALLOW_IF(fcntl, 1, F_GETFL), ALLOW_IF(fcntl, 1, F_SETFL),
	ALLOW_IF(fcntl, 1, F_GETFD), ALLOW_IF(fcntl, 1, F_SETFD),
	END,
};

/* vhost-user session threads: connect or accept, talk to the backend, serve local queues. */
static const struct sb_rule session_rules[] = {
	ALLOW(epoll_wait), ALLOW(epoll_pwait), ALLOW(epoll_ctl), ALLOW(poll), ALLOW(ppoll),
	ALLOW_IF(socket, 0, AF_UNIX), ALLOW(connect), ALLOW(accept4),
	ALLOW(sendmsg), ALLOW(recvmsg), ALLOW(eventfd2),
	ALLOW_IF(setsockopt, 1, SOL_SOCKET), ALLOW_IF(getsockopt, 1, SOL_SOCKET),
	ALLOW_IF(fcntl, 1, F_DUPFD_CLOEXEC), ALLOW_IF(fcntl, 1, F_GETFL), ALLOW_IF(fcntl, 1, F_SETFL),
	ALLOW_IF(fcntl, 1, F_GETFD), ALLOW_IF(fcntl, 1, F_SETFD),
	/* A disk's stand-in for a dead backend reads and cleans the inflight region (never mapped). */
	ALLOW(pread64), ALLOW(pwrite64),
	END,
};

/*
 * The console thread: terminal input to the UART, Ctrl-A x stops the VM; with --serial
 * socket= it accepts its clients (non-blocking, close-on-exec) and talks to them with
 * read/write; a file sink is written with write.
 */
static const struct sb_rule console_rules[] = {
	ALLOW(poll), ALLOW(ppoll),
	ALLOW_IF(accept4, 3, SOCK_NONBLOCK | SOCK_CLOEXEC),
	END,
};

/*
 * A disk's I/O thread: it sleeps and submits in io_uring_enter only (the ring is set up by
 * the disk's creator and restricted to the opcodes the disk uses, IORING_REGISTER_RESTRICTIONS:
 * ring work bypasses seccomp); it reads its kick and control eventfds, writes its call eventfds
 * and closes a reset queue's fds with the common calls. At each activation it gives the ring's
 * workers its own CPUs (its affinity, then IORING_REGISTER_IOWQ_AFF, the one register op).
 */
static const struct sb_rule io_rules[] = {
	ALLOW(io_uring_enter),
	ALLOW(sched_getaffinity),
	ALLOW_IF(io_uring_register, 1, IORING_REGISTER_IOWQ_AFF),
	END,
};
static const unsigned long io_ioctls[] = { 0 };
static const unsigned long api_ioctls[] = {
	KVM_GET_CLOCK, KVM_SET_CLOCK, /* vm.pause / vm.resume: guest time stands still */
	KVM_IRQ_LINE,                 /* vm.power-button: the SCI */
	/* vm.snapshot reads a paused VM: each vCPU's state, the irqchip and PIT */
	KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE, KVM_GET_FPU, KVM_GET_XCRS, KVM_GET_DEBUGREGS,
	KVM_GET_MSRS, KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE, KVM_GET_TSC_KHZ,
	KVM_GET_IRQCHIP, KVM_GET_PIT2,
	0,
};

/*
 * The API thread: its listening socket and clients (libmicrohttpd over epoll), and the state
 * its answers read back live: /proc/self/task and sysfs read-only (thread names, last cpu,
 * nodes; libnuma asks get_mempolicy once), each thread's affinity and policy, the pages'
 * nodes (move_pages, nothing moved: no node list). It stops the VM through the stop eventfd
 * and kicks vCPUs for a pause (tgkill). vm.counters connects to a NIC backend's stats socket
 * (a non-blocking unix stream socket, nic_stats.c) and reads its reply. vm.snapshot makes
 * a new directory and new files in it (never opens an existing file for writing: O_EXCL),
 * writes and syncs them, renames its manifest into place, and removes what a failed one left.
 */
static const struct sb_rule api_rules[] = {
	ALLOW(poll), ALLOW(ppoll), ALLOW(epoll_wait), ALLOW(epoll_pwait), ALLOW(epoll_ctl),
	ALLOW(accept4), ALLOW(recvfrom), ALLOW(sendto), ALLOW(sendmsg), ALLOW(shutdown),
	{ .nr = SCMP_SYS(socket), .nr_args = 2,
	  .args = { ARG(0, SCMP_CMP_EQ, AF_UNIX, 0),
		    ARG(1, SCMP_CMP_EQ, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) } },
	ALLOW(connect),
	{ .nr = SCMP_SYS(openat), .nr_args = 1,
	  .args = { ARG(2, SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY) } },
	{ .nr = SCMP_SYS(openat), .nr_args = 1,
	  .args = { ARG(2, SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC,
			O_WRONLY | O_CREAT | O_EXCL) } },
	ALLOW(mkdir), ALLOW(mkdirat), ALLOW(rename), ALLOW(renameat), ALLOW(unlink), ALLOW(rmdir),
	ALLOW(pwrite64), ALLOW(fsync), ALLOW(ftruncate),
	ALLOW(getdents64), ALLOW(lseek),
	ALLOW(sched_getaffinity), ALLOW(sched_getscheduler), ALLOW(sched_getparam),
	ALLOW_IF(move_pages, 3, 0), ALLOW(get_mempolicy),
	END,
};

/*
 * An outgoing live migration's thread: one TCP connection to a numeric address (no name
 * lookup), the records sent and the answers read, the dirty log, the pause's vCPU kicks.
 * The devices' dirty log (guest_mem__log_start): a sealed memfd (memfd_create, ftruncate,
 * F_ADD_SEALS; mapped and unmapped with the common calls, never executable), a duplicate of
 * its fd for each vhost-user session (F_DUPFD_CLOEXEC), whose thread it wakes with an
 * eventfd write (common) and which sends the fd to its backend itself (sendmsg).
 */
static const struct sb_rule migration_rules[] = {
	{ .nr = SCMP_SYS(socket), .nr_args = 2,
	  .args = { ARG(0, SCMP_CMP_EQ, AF_INET, 0),
		    ARG(1, SCMP_CMP_EQ, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) } },
	{ .nr = SCMP_SYS(socket), .nr_args = 2,
	  .args = { ARG(0, SCMP_CMP_EQ, AF_INET6, 0),
		    ARG(1, SCMP_CMP_EQ, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) } },
	/* connect waits in poll (10 s at most), its result read with SO_ERROR */
	ALLOW_IF(setsockopt, 1, IPPROTO_TCP), ALLOW_IF(getsockopt, 1, SOL_SOCKET),
	ALLOW(connect), ALLOW(sendmsg), ALLOW(recvfrom),
	ALLOW(poll), ALLOW(ppoll),
	ALLOW_IF(memfd_create, 1, MFD_CLOEXEC | MFD_ALLOW_SEALING), ALLOW(ftruncate),
	ALLOW_IF(fcntl, 1, F_ADD_SEALS), ALLOW_IF(fcntl, 1, F_DUPFD_CLOEXEC),
	END,
};
static const unsigned long migration_ioctls[] = {
	KVM_SET_USER_MEMORY_REGION, KVM_GET_DIRTY_LOG,   /* the dirty log on, read, off */
	KVM_RESET_DIRTY_RINGS,     /* or KVM's dirty rings harvested */
	KVM_GET_CLOCK, KVM_SET_CLOCK,                    /* the pause, a resume after a failure */
	KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE, KVM_GET_FPU, KVM_GET_XCRS, KVM_GET_DEBUGREGS,
	KVM_GET_MSRS, KVM_GET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE, KVM_GET_TSC_KHZ,
	KVM_GET_IRQCHIP, KVM_GET_PIT2,
	0,
};

/* The main thread after the drop: signals, the stop, joins and teardown. */
static const struct sb_rule main_rules[] = {
	ALLOW(poll), ALLOW(ppoll), ALLOW(epoll_ctl), ALLOW(sendmsg), ALLOW(recvmsg),
	ALLOW(unlink),           /* a server-mode NIC's socket, at teardown */
	ALLOW(rt_sigpending),    /* vm__run: a stop signal queued before the guest runs (guest_ready) */
	/* an incoming migration's source told RUNNING, or ERROR when the VM stops first */
	ALLOW(shutdown), ALLOW(recvfrom),
	ALLOW_IF(fcntl, 1, F_GETFL), ALLOW_IF(fcntl, 1, F_SETFL),
	END,
};

#if defined(__SANITIZE_ADDRESS__)
/*
 * Sanitizer builds only (never the normal build): ASan keeps an alternate
 * signal stack per thread and takes it down at thread exit; LeakSanitizer, at
 * exit on the main thread, clones a tracer that ptrace-stops every thread,
 * reads /proc/self/{task,maps} and installs its own handlers.
 */
static const struct sb_rule sanitizer_rules[] = {
	ALLOW(sigaltstack), ALLOW(rt_sigaction), ALLOW(clone), ALLOW(ptrace), ALLOW(wait4),
	ALLOW(prctl), ALLOW(openat), ALLOW(open), ALLOW(getdents64), ALLOW(lseek), ALLOW(readlink),
	ALLOW(getppid), ALLOW(kill), ALLOW(tgkill), ALLOW(arch_prctl), ALLOW(sched_getaffinity),
	ALLOW(getrlimit), ALLOW(prlimit64), ALLOW(setrlimit), ALLOW(uname), ALLOW(dup2), ALLOW(pipe2),
	ALLOW(process_vm_readv), ALLOW(getdents),
	END,
};
#endif

/* ioctls: every class may ask whether a stream is a terminal (stdio does, TCGETS). */
static const unsigned long common_ioctls[] = { TCGETS, 0 };
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN,
	KVM_KVMCLOCK_CTRL,         /* back from a pause (vm__pause) */
	KVM_RESET_DIRTY_RINGS,     /* its dirty ring full (KVM_EXIT_DIRTY_RING_FULL) */
	/* a reboot in place: the vCPU's boot state put back (read before the filter) */
	KVM_SET_SREGS, KVM_SET_FPU, KVM_SET_XCRS, KVM_SET_MSRS, KVM_SET_LAPIC, KVM_SET_MP_STATE,
	/* register dumps (SIGUSR2, a failing guest) and instruction emulation */
	KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS,
	KVM_TRANSLATE,
	/* devices: UART/i8042 lines, MSI-X messages, virtio-pci activation (irqfd, ioeventfd, routes) */
	KVM_IRQ_LINE, KVM_SIGNAL_MSI, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING,
	0,
};
static const unsigned long session_ioctls[] = {
	/* config-change and local-queue interrupts; activation once it moves here */
	KVM_IRQ_LINE, KVM_SIGNAL_MSI, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING,
	0,
};
static const unsigned long console_ioctls[] = { KVM_IRQ_LINE, TCSETS, TCSETSW, 0 };
static const unsigned long main_ioctls[] = {
	/* devices torn down (irqfd/ioeventfd deassigned), the terminal's mode restored */
	KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING, KVM_IRQ_LINE, KVM_SIGNAL_MSI,
	TCSETS, TCSETSW, TCSETSF,
	/* a reboot in place: irqchip and PIT as built (read before the drop), kvmclock from 0 */
	KVM_SET_IRQCHIP, KVM_SET_PIT2, KVM_SET_CLOCK,
	0,
};

/* A class's filter: its rules and ioctls beside the common ones. */
struct sb_class {
	const struct sb_rule *rules;
	const unsigned long *ioctls;
	bool before_drop;          /* runs while rtvmm drops: allow exactly the drop's calls */
	bool tgkill;               /* may signal this process's own threads (vCPU kicks, stop) */
};

/* One entry per thread class; a new class (I/O, API) is one more line. */
static const struct sb_class classes[THREAD_CLASS_COUNT] = {
	[THREAD_CLASS_MAIN] = { main_rules, main_ioctls, false, true },
	[THREAD_CLASS_VCPU] = { vcpu_rules, vcpu_ioctls, false, true },
	[THREAD_CLASS_SESSION] = { session_rules, session_ioctls, true, true },
	[THREAD_CLASS_CONSOLE] = { console_rules, console_ioctls, true, true },
	[THREAD_CLASS_IO] = { io_rules, io_ioctls, true, false },
	[THREAD_CLASS_API] = { api_rules, api_ioctls, true, true },
	[THREAD_CLASS_MIGRATION] = { migration_rules, migration_ioctls, true, true },
};

static struct {
	bool on;
	bool drop;                 /* a user to drop to */
	uid_t uid;
	gid_t gid;
	char user[64];
	bool memory_locked;
	int selftest;              /* RTVMM_SANDBOX_SELFTEST: a class whose threads misbehave, or -1 */
	struct sock_fprog prog[THREAD_CLASS_COUNT];
	const char *names[SANDBOX_NR_NAMES];
	struct vm_hooks inner;     /* the hooks sandbox__hook chained onto */
} sb = { .selftest = -1 };

/* The calling thread, for the report (set before its filter loads). */
static __thread char tls_thread[24];
static __thread int tls_class = -1;

/* ---- the report: async-signal-safe, no allocation ---- */

static size_t put_str(char *buf, size_t off, size_t len, const char *s)
{
	while (*s && off + 1 < len)
		buf[off++] = *s++;
	return off;
}

static size_t put_uint(char *buf, size_t off, size_t len, unsigned long v)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && off + 1 < len)
		buf[off++] = digits[--n];
	return off;
}

#define SANDBOX_FRAMES 24

static void report_sigsys(int sig, siginfo_t *si, void *uc)
{
	void *frames[SANDBOX_FRAMES];
	char line[256];
	size_t n = 0;
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < SANDBOX_NR_NAMES && sb.names[nr] ? sb.names[nr] : "unknown";

	(void)sig;
	(void)uc;
	n = put_str(line, n, sizeof(line), "rtvmm: sandbox: thread ");
	n = put_str(line, n, sizeof(line), tls_thread[0] ? tls_thread : "?");
	n = put_str(line, n, sizeof(line), " (");
	n = put_str(line, n, sizeof(line), thread_class__name((enum thread_class)tls_class));
	n = put_str(line, n, sizeof(line), " filter) made a forbidden system call ");
	n = put_uint(line, n, sizeof(line), (unsigned long)nr);
	n = put_str(line, n, sizeof(line), " (");
	n = put_str(line, n, sizeof(line), name);
	n = put_str(line, n, sizeof(line), "); stopping\n");
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to say it */
	}
	/* Where it came from: the call chain, objects and offsets (addr2line -e OBJECT +OFFSET). */
	n = put_str(line, 0, sizeof(line), "rtvmm: sandbox: the call came from:\n");
	if (write(STDERR_FILENO, line, n) == (ssize_t)n)
		backtrace_symbols_fd(frames, backtrace(frames, SANDBOX_FRAMES), STDERR_FILENO);
	syscall(SYS_exit_group, SANDBOX_VIOLATION_STATUS);
}

/* ---- building the filters, once ---- */

static int add_rules(scmp_filter_ctx ctx, const struct sb_rule *r)
{
	int err;

	for (; r->nr != -1; r++) {
		err = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, r->nr, r->nr_args, r->args);
		if (err)
			return err;
	}
	return 0;
}

static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *req)
{
	int err;

	/* The kernel takes the request as 32 bits: compare those only. */
	for (; *req; req++) {
		err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				       SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, *req));
		if (err)
			return err;
	}
	return 0;
}

/* The drop's own calls, with exactly its ids: what glibc's SIGSETXID handler makes. */
static int add_drop_rules(scmp_filter_ctx ctx)
{
	int err;

	err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setgroups), 1, SCMP_A0(SCMP_CMP_EQ, 0));
	if (!err)
		err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setresgid), 3,
				       SCMP_A0(SCMP_CMP_EQ, sb.gid), SCMP_A1(SCMP_CMP_EQ, sb.gid),
				       SCMP_A2(SCMP_CMP_EQ, sb.gid));
	if (!err)
		err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setresuid), 3,
				       SCMP_A0(SCMP_CMP_EQ, sb.uid), SCMP_A1(SCMP_CMP_EQ, sb.uid),
				       SCMP_A2(SCMP_CMP_EQ, sb.uid));
	return err;
}

/* Exports `ctx` as a BPF program that a thread can load without allocating. */
static int export_prog(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
	struct stat st;
	void *buf;
	int fd, err;

	fd = memfd_create("rtvmm-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = seccomp_export_bpf(ctx, fd);
	if (!err && fstat(fd, &st))
		err = -errno;
	if (!err && (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
		     st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS))
		err = -E2BIG;
	buf = err ? NULL : malloc((size_t)st.st_size);
	if (!err && !buf)
		err = -ENOMEM;
	if (!err && pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		err = -EIO;
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	prog->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	prog->filter = buf;
	return 0;
}

static int build_class(enum thread_class cls, struct err *e)
{
	const struct sb_class *c = &classes[cls];
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int err;

	if (!ctx)
		return err__set(e, -ENOMEM, "sandbox: %s filter: out of memory",
				thread_class__name(cls));
	err = add_rules(ctx, common_rules);
	if (!err)
		err = add_rules(ctx, c->rules);
#if defined(__SANITIZE_ADDRESS__)
	if (!err)
		err = add_rules(ctx, sanitizer_rules);
#endif
	if (!err)
		err = add_ioctls(ctx, common_ioctls);
	if (!err)
		err = add_ioctls(ctx, c->ioctls);
	if (!err && c->tgkill)
		err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
	if (!err && c->before_drop && sb.drop)
		err = add_drop_rules(ctx);
	if (!err)
		err = export_prog(ctx, &sb.prog[cls]);
	seccomp_release(ctx);
	if (err)
		return err__set(e, err, "sandbox: cannot build the %s filter: %s",
				thread_class__name(cls), strerror(-err));
	return 0;
}

/* ---- confining a thread ---- */

/* Loads the class's program on the calling thread; no allocation. */
static int load_class(enum thread_class cls)
{
	sigset_t sys;

	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	/* A blocked SIGSYS would kill without the report: the creator may have blocked all. */
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sb.prog[cls]))
		return -errno;
	return 0;
}

/* RTVMM_SANDBOX_SELFTEST=CLASS: the first confined thread of that class breaks its filter. */
static void selftest(enum thread_class cls)
{
	if ((int)cls != sb.selftest)
		return;
	syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	fprintf(stderr, "rtvmm: sandbox: selftest: socket(AF_INET) was allowed on thread %s\n",
		tls_thread);
}

/* thread_class hook: the calling thread confines itself, or the process ends. */
static void confine(enum thread_class cls, const char *name)
{
	int err;

	snprintf(tls_thread, sizeof(tls_thread), "%s%s",
		 cls == THREAD_CLASS_SESSION ? "vu-" : cls == THREAD_CLASS_IO ? "io-" : "", name);
	tls_class = (int)cls;
	err = load_class(cls);
	if (err) {
		fprintf(stderr, "rtvmm: sandbox: thread %s: cannot load the %s filter: %s; stopping\n",
			tls_thread, thread_class__name(cls), strerror(-err));
		exit(1);
	}
	selftest(cls);
}

/* ---- the drop ---- */

/* Every thread of the process has no capability left (libcap-ng reads each one). */
static int check_no_caps(struct err *e)
{
	struct dirent *d;
	DIR *dir = opendir("/proc/self/task");
	int err = 0;

	if (!dir)
		return err__set(e, -errno, "sandbox: /proc/self/task: %s", strerror(errno));
	while (!err && (d = readdir(dir))) {
		int tid = atoi(d->d_name);

		if (tid <= 0)
			continue;
		capng_setpid(tid);
		if (capng_get_caps_process())
			err = err__set(e, -EIO, "sandbox: cannot read thread %d's capabilities", tid);
		else if (capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE)
			err = err__set(e, -EPERM, "sandbox: thread %d kept capabilities after dropping to "
				       "%s (securebits keep them?): refusing to run the guest", tid,
				       sb.user);
	}
	closedir(dir);
	capng_setpid(getpid());
	return err;
}

static int drop_privileges(struct err *e)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	uid_t r, ef, s;
	gid_t gr, ge, gs;

	if (sb.memory_locked && setrlimit(RLIMIT_MEMLOCK, &unlimited))
		return err__set(e, -errno, "sandbox: RLIMIT_MEMLOCK for locked memory after the drop: %s",
				strerror(errno));
	/* glibc applies each to every thread of the process (SIGSETXID). */
	if (setgroups(0, NULL) || setresgid(sb.gid, sb.gid, sb.gid) || setresuid(sb.uid, sb.uid, sb.uid))
		return err__set(e, -errno, "sandbox: cannot drop to user %s (uid %u, gid %u): %s",
				sb.user, (unsigned)sb.uid, (unsigned)sb.gid, strerror(errno));
	if (getresuid(&r, &ef, &s) || getresgid(&gr, &ge, &gs) || r != sb.uid || ef != sb.uid ||
	    s != sb.uid || gr != sb.gid || ge != sb.gid || gs != sb.gid)
		return err__set(e, -EPERM, "sandbox: the drop to %s did not hold", sb.user);
#if defined(__SANITIZE_ADDRESS__)
	/* Sanitizer builds: LeakSanitizer ptrace-stops this process's threads at exit. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	return check_no_caps(e);
}

/* vm_hooks.vcpus_started: the chained hook (placement proof), then drop and confine main. */
static int drop_and_confine(void *opaque, const struct vm *vm)
{
	struct err e = { 0 };
	int err = 0;

	if (sb.inner.vcpus_started) {
		err = sb.inner.vcpus_started(opaque, vm);
		if (err)
			return err;
	}
	if (sb.drop) {
		err = drop_privileges(&e);
		if (err) {
			fprintf(stderr, "rtvmm: %s\n", e.msg);
			return err;
		}
		fprintf(stderr, "rtvmm: sandbox: running as %s (uid %u, gid %u), no capabilities; "
			"seccomp filters on every thread\n", sb.user, (unsigned)sb.uid, (unsigned)sb.gid);
	} else if (geteuid() == 0) {
		fprintf(stderr, "rtvmm: keeping root for the VM's life: set host.user or --user\n");
	}
	confine(THREAD_CLASS_MAIN, "main");
	return 0;
}

void sandbox__hook(struct vm_hooks *hooks)
{
	if (!sb.on)
		return;
	sb.inner = *hooks;
	hooks->vcpus_started = drop_and_confine;
}

bool sandbox__enabled(void)
{
	return sb.on;
}

/* ---- set-up ---- */

static int resolve_target(const struct sandbox_config *cfg, struct err *e)
{
	gid_t primary;

	if (!cfg->user || !cfg->user[0])
		return 0; /* said when the guest is about to run (a refused input stays one line) */
	snprintf(sb.user, sizeof(sb.user), "%s", cfg->user);
	if (trust__user(cfg->user, &sb.uid, &primary))
		return err__set(e, -ENOENT, "user '%s' (host.user or --user): no such user on this host",
				cfg->user);
	sb.gid = primary;
	if (cfg->group && cfg->group[0] && trust__group(cfg->group, &sb.gid))
		return err__set(e, -ENOENT, "group '%s' (host.group or --user USER:GROUP): no such "
				"group on this host", cfg->group);
	if (sb.uid == 0)
		return err__set(e, -EINVAL, "user '%s' is root: name an unprivileged user to drop to",
				cfg->user);
	if (geteuid() != 0) {
		if (geteuid() == sb.uid && getegid() == sb.gid)
			return 0; /* already that user: nothing to drop */
		return err__set(e, -EPERM, "user '%s': rtvmm runs as uid %u, not root: it cannot switch "
				"to another user", cfg->user, (unsigned)geteuid());
	}
	sb.drop = true;
	return 0;
}

int sandbox__init(const struct sandbox_config *cfg, struct err *e)
{
	struct sigaction sa = { .sa_sigaction = report_sigsys, .sa_flags = SA_SIGINFO };
	const char *test = getenv("RTVMM_SANDBOX_SELFTEST");
	void *frames[1];
	unsigned i;
	int err;

	if (cfg->off) {
		fprintf(stderr, "rtvmm: WARNING: --no-sandbox: no seccomp filters and no privilege drop: "
			"every thread keeps what rtvmm started with for the VM's whole life\n");
		return 0;
	}
	err = resolve_target(cfg, e);
	if (err)
		return err;
	/*
	 * One malloc arena for every thread (before any starts). glibc gives a thread its own
	 * heap otherwise, and shrinking such a heap after a free first reads
	 * /proc/sys/vm/overcommit_memory: an openat the filters refuse. Seen at exit, where
	 * libnuma's destructor freed on the main thread what it had allocated on the api
	 * thread. rtvmm's threads do not allocate on their hot paths, so one arena costs nothing.
	 */
	mallopt(M_ARENA_MAX, 1);
	sb.memory_locked = cfg->memory_locked;
	for (i = 0; test && i < THREAD_CLASS_COUNT; i++)
		if (!strcmp(test, thread_class__name((enum thread_class)i)))
			sb.selftest = (int)i;
	for (i = 0; i < SANDBOX_NR_NAMES; i++)
		sb.names[i] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)i);
	for (i = 0; i < THREAD_CLASS_COUNT; i++) {
		err = build_class((enum thread_class)i, e);
		if (err)
			return err;
	}
	/* The report's backtrace loads the unwinder on first use: load it now, before any filter. */
	backtrace(frames, 1);
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL))
		return err__set(e, -errno, "sandbox: SIGSYS handler: %s", strerror(errno));
	thread_class__set_hook(confine);
	sb.on = true;
	return 0;
}

/* ---- sockets the service user must reach ---- */

/* Whether uid:gid (no supplementary groups) has all of `want` (R_OK/W_OK/X_OK bits) on `st`. */
static bool user_may(const struct stat *st, uid_t uid, gid_t gid, unsigned want)
{
	unsigned bits = st->st_uid == uid ? (st->st_mode >> 6) & 7 :
			st->st_gid == gid ? (st->st_mode >> 3) & 7 : st->st_mode & 7;

	return (bits & want) == want;
}

/* Checks `path` and every directory above it for the service user; `what` names the NIC. */
static int check_reach(const char *path, unsigned want, const char *what, struct err *e)
{
	char buf[PATH_MAX], *slash;
	struct stat st;
	unsigned need = want;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return err__set(e, -ENAMETOOLONG, "%s: %s: path too long", what, path);
	for (;;) {
		if (stat(buf, &st) == 0 && !user_may(&st, sb.uid, sb.gid, need))
			return err__set(e, -EACCES, "%s: the service user %s (uid %u, gid %u) cannot %s "
					"%s (mode %04o, owner %u:%u): after the drop rtvmm could not "
					"reconnect or clean up there; give it to that user (host.run_dir "
					"is created for it) or drop no privileges", what, sb.user,
					(unsigned)sb.uid, (unsigned)sb.gid,
					need & W_OK ? "write to" : "reach through",
					buf, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
					(unsigned)st.st_gid);
		slash = strrchr(buf, '/');
		if (!slash || slash == buf)
			return 0;
		*slash = '\0';
		need = X_OK;
	}
}

/*
 * One vhost-user socket (a NIC's or a disk's): the run directory made when it
 * lives there, and, when rtvmm drops, its directory (and the socket itself in
 * client mode) reachable by the dropped user.
 */
static int prepare_socket(const struct plan_host *host, const char *socket, bool server,
			  const char *what, struct err *e)
{
	size_t rl = strlen(host->run_dir);
	struct trust_uids tu = { .service = sb.drop ? sb.uid : TRUST_NO_UID, .only = TRUST_NO_UID };
	const char *slash = strrchr(socket, '/');
	char dir[PATH_MAX];
	struct stat st;
	int err;

	if (rl && !strncmp(socket, host->run_dir, rl) && socket[rl] == '/') {
		err = trust__make_run_dir(host->run_dir, sb.drop ? sb.uid : TRUST_NO_UID,
					  sb.drop ? sb.gid : (gid_t)-1, &tu, e);
		if (err)
			return err;
	}
	if (!sb.drop || !slash)
		return 0;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - socket), socket);
	/* Server mode unlinks its socket at teardown: the directory must be writable. */
	err = check_reach(dir[0] ? dir : "/", server ? W_OK | X_OK : X_OK, what, e);
	if (!err && !server && stat(socket, &st) == 0)
		err = check_reach(socket, W_OK, what, e);
	return err;
}

int sandbox__prepare_sockets(const struct plan_host *host, const struct plan_vm *vm, struct err *e)
{
	char what[320];
	unsigned i;
	int err;

	if (!sb.on)
		return 0;
	for (i = 0; i < vm->nr_nics; i++) {
		const struct plan_nic *nic = &vm->nics[i];

		snprintf(what, sizeof(what), "%s (%s) socket %s", nic->loc.key, nic->name, nic->socket);
		err = prepare_socket(host, nic->socket, nic->mode == PLAN_NIC_SERVER, what, e);
		if (err)
			return err;
	}
	for (i = 0; i < vm->nr_disks; i++) {
		const struct plan_disk *disk = &vm->disks[i];

		if (disk->kind != PLAN_DISK_VHOST_USER)
			continue;
		snprintf(what, sizeof(what), "%s (%s) socket %s", disk->loc.key, disk->name,
			 disk->socket);
		err = prepare_socket(host, disk->socket, disk->mode == PLAN_NIC_SERVER, what, e);
		if (err)
			return err;
	}
	/* The console socket: rtvmm listens there and unlinks it at teardown, like a server. */
	if (vm->serial.mode == PLAN_SERIAL_SOCKET) {
		snprintf(what, sizeof(what), "%s socket %.108s", vm->serial.loc.key, vm->serial.path);
		return prepare_socket(host, vm->serial.path, true, what, e);
	}
	return 0;
}
