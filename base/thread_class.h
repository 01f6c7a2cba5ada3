/*
 * Thread classes: each thread of the machine announces what kind of thread it
 * is as it starts its work, so that the application can confine it (app/sandbox.c
 * installs one seccomp filter per class) while the machine knows nothing of how.
 * A new kind of thread is one more enum value and its entry in the application's table.
 */
#ifndef RTVMM_BASE_THREAD_CLASS_H
#define RTVMM_BASE_THREAD_CLASS_H

enum thread_class {
	THREAD_CLASS_MAIN,         /* the main (emulator) thread: signals, stop, teardown */
	THREAD_CLASS_VCPU,         /* a vCPU thread: KVM_RUN and the exits it handles */
	THREAD_CLASS_SESSION,      /* a vhost-user session thread ("vu-*") */
	THREAD_CLASS_CONSOLE,      /* the console input thread */
	THREAD_CLASS_IO,           /* a disk's I/O thread ("io-*"): io_uring and eventfds */
	THREAD_CLASS_API,          /* the API server thread ("api"): its unix socket, reads of state */
	THREAD_CLASS_MIGRATION,    /* an outgoing live migration ("migrate"): TCP, dirty log, state */
	THREAD_CLASS_COUNT,
};

/*
 * Runs on the calling thread as it starts its work; `name` names the thread
 * ("vcpu0", "vu-net0"). It returns only once the thread may go on: an
 * application that cannot confine a thread ends the process.
 */
typedef void (*thread_class_hook)(enum thread_class cls, const char *name);

/* Sets the hook (NULL: none); before the first machine thread starts. */
void thread_class__set_hook(thread_class_hook hook);

/* Announces the calling thread's class: runs the hook, if one is set. */
void thread_class__enter(enum thread_class cls, const char *name);

/* "vcpu", "session", ...: the class's name in reports. */
const char *thread_class__name(enum thread_class cls);

#endif
