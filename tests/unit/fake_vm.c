/* A VM on the fake KVM for tests that run it on real vCPU threads. */
#include "fake_vm.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_kvm.h"

void fake_vm__sleep_ms(unsigned ms)
{
	const struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

int fake_vm__create(struct vm *vm, unsigned nr_vcpus, struct err *e)
{
	int err;

	fake_kvm__reset();
	err = vm__create(vm, fake_kvm__path(), NULL, e);
	if (!err)
		err = vm__setup_irqchip(vm, e);
	if (!err)
		err = vm__create_vcpus(vm, nr_vcpus, e);
	return err;
}

void fake_vm__queue_out(unsigned vcpu, uint16_t port)
{
	struct kvm_run out = { .exit_reason = KVM_EXIT_IO };

	out.io.direction = KVM_EXIT_IO_OUT;
	out.io.size = 1;
	out.io.port = port;
	out.io.count = 1;
	out.io.data_offset = 2048;
	fake_kvm__queue_exit(vcpu, &out);
}

static void *vm_call__thread(void *arg)
{
	struct vm_call *c = arg;

	c->ret = c->fn(c->vm);
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	return NULL;
}

void vm_call__start(struct vm_call *c, int (*fn)(struct vm *vm), struct vm *vm)
{
	*c = (struct vm_call){ .vm = vm, .fn = fn };
	assert_int_equal(pthread_create(&c->thread, NULL, vm_call__thread, c), 0);
	c->started = true;
}

bool vm_call__done(struct vm_call *c)
{
	return __atomic_load_n(&c->done, __ATOMIC_ACQUIRE);
}

static void vm_call__join(struct vm_call *c)
{
	if (!c->started)
		return;
	pthread_join(c->thread, NULL);
	c->started = false;
}

int vm_call__finish(struct vm_call *c, const char *why)
{
	unsigned ms;

	for (ms = 0; ms < FAKE_VM_WAIT_MS && !vm_call__done(c); ms++)
		fake_vm__sleep_ms(1);
	if (!vm_call__done(c))
		fail_msg("%s", why);
	vm_call__join(c);
	return c->ret;
}

static void slow_port__write(void *dev, uint64_t off, const void *data, uint32_t len)
{
	struct slow_port *s = dev;

	(void)off, (void)data, (void)len;
	__atomic_store_n(&s->busy, true, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&s->released, __ATOMIC_ACQUIRE))
		fake_vm__sleep_ms(1);
	__atomic_store_n(&s->busy, false, __ATOMIC_RELEASE);
}

static void slow_port__read(void *dev, uint64_t off, void *data, uint32_t len)
{
	(void)dev, (void)off;
	memset(data, 0xff, len);
}

static const struct io_ops slow_port__ops = { .read = slow_port__read, .write = slow_port__write };

int slow_port__register(struct slow_port *s, struct bus *pio, uint64_t port)
{
	return bus__register(pio, port, 1, &slow_port__ops, s, "slow");
}

bool slow_port__busy(struct slow_port *s)
{
	return __atomic_load_n(&s->busy, __ATOMIC_ACQUIRE);
}

void slow_port__release(struct slow_port *s)
{
	__atomic_store_n(&s->released, true, __ATOMIC_RELEASE);
}

int stderr_capture__start(struct stderr_capture *c)
{
	c->out = memfd_create("stderr", MFD_CLOEXEC);
	c->saved = dup(2);
	if (c->out < 0 || c->saved < 0 || dup2(c->out, 2) < 0)
		return -errno;
	c->on = true;
	return 0;
}

const char *stderr_capture__text(const struct stderr_capture *c)
{
	static char buf[8192];
	ssize_t n = pread(c->out, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void stderr_capture__stop(struct stderr_capture *c)
{
	if (!c->on)
		return;
	c->on = false;
	dup2(c->saved, 2);
	close(c->saved);
	fputs(stderr_capture__text(c), stderr);
	close(c->out);
}

int fake_vm__teardown(void **state)
{
	struct fake_vm *f = *state;

	slow_port__release(&f->slow);
	if (f->run.started || f->pause.started)
		vm__request_stop(&f->vm, VM_STOP_ERROR, 1);
	vm_call__join(&f->pause);
	vm_call__join(&f->run);
	stderr_capture__stop(&f->err);
	vm__destroy(&f->vm);
	if (fake_kvm.violations)
		fprintf(stderr, "fake KVM: %s\n", fake_kvm.why);
	assert_int_equal(fake_kvm.violations, 0);
	free(f);
	return 0;
}
