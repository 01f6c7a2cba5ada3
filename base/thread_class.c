/* The thread-class hook: set once by the application, run by each machine thread as it starts. */
#include "base/thread_class.h"

#include <stddef.h>

static thread_class_hook class_hook;

void thread_class__set_hook(thread_class_hook hook)
{
	__atomic_store_n(&class_hook, hook, __ATOMIC_RELEASE);
}

void thread_class__enter(enum thread_class cls, const char *name)
{
	thread_class_hook hook = __atomic_load_n(&class_hook, __ATOMIC_ACQUIRE);

	if (hook)
		hook(cls, name);
}

const char *thread_class__name(enum thread_class cls)
{
	static const char *const names[THREAD_CLASS_COUNT] = {
		[THREAD_CLASS_MAIN] = "main",
		[THREAD_CLASS_VCPU] = "vcpu",
		[THREAD_CLASS_SESSION] = "session",
		[THREAD_CLASS_CONSOLE] = "console",
		[THREAD_CLASS_IO] = "io",
		[THREAD_CLASS_API] = "api",
		[THREAD_CLASS_MIGRATION] = "migration",
	};

	return (unsigned)cls < THREAD_CLASS_COUNT ? names[cls] : "unknown";
}
