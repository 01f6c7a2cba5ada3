/*
 * How a running VM (vm__run, one vCPU on the fake KVM) ends on signals: SIGTERM
 * presses the ACPI power button and waits shutdown_grace_s for the guest to
 * power off, a second SIGTERM or SIGINT stops at once; and vm__power_button.
 * The "guest" is a helper thread that drives the PM1 registers as Linux does.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_kvm.h"
#include "fake_vm.h"
#include "hw_fakes.h"
#include "vmm/hw/acpi_pm.h"
#include "vmm/vm.h"
#include "vmm/x86/layout.h"

#define EVT PORT_ACPI_PM1A_EVT
#define CNT PORT_ACPI_PM1A_CNT

/* What the helper thread does to the VM, in order. */
enum step { SIGNAL, AWAIT_PRESS, ENABLE_BUTTON, POWEROFF, END };

struct rig {
	struct fake_vm f;          /* first: fake_vm__teardown takes the rig */
	const enum step *script;
	const int *signals;        /* for each SIGNAL step, in order */
};

static int setup(void **state)
{
	struct rig *r = calloc(1, sizeof(*r));
	struct irq_sink sci;
	struct acpi_pm *pm;
	struct err e = { 0 };

	if (!r)
		return -1;
	if (fake_vm__create(&r->f.vm, 1, &e) || vcpu__set_boot_state(&r->f.vm.vcpus[0], 0x1000, 0x7000)) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	sci = vm__irq_sink(&r->f.vm, ACPI_SCI_IRQ);
	if (acpi_pm__add(&r->f.vm.pio, &r->f.vm.ctl, &sci, &pm))
		return -1;
	if (device_list__add(&r->f.vm.devices, "acpi-pm", &acpi_pm__device_ops, pm)) {
		acpi_pm__destroy(pm);
		return -1;
	}
	r->f.vm.acpi_pm = pm;
	r->f.vm.shutdown_grace_s = 30;
	if (stderr_capture__start(&r->f.err))
		return -1;
	*state = r;
	return 0;
}

static const char *output(struct rig *r)
{
	return stderr_capture__text(&r->f.err);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *guest(void *arg)
{
	struct rig *r = arg;
	const enum step *s;
	unsigned sig = 0, ms;

	for (s = r->script; *s != END; s++) {
		switch (*s) {
		case SIGNAL:
			fake_vm__sleep_ms(50);
			kill(getpid(), r->signals[sig++]);
			break;
		case AWAIT_PRESS:  /* as the guest's SCI handler would see it */
			for (ms = 0; ms < 5000 && !(io_inw(&r->f.vm.pio, EVT) & ACPI_PM1_PWRBTN); ms++)
				fake_vm__sleep_ms(1);
			break;
		case ENABLE_BUTTON:
			io_outw(&r->f.vm.pio, EVT + 2, ACPI_PM1_PWRBTN);
			break;
		case POWEROFF:     /* acknowledge the press, then S5 */
			io_outw(&r->f.vm.pio, EVT, ACPI_PM1_PWRBTN);
			io_outw(&r->f.vm.pio, CNT, ACPI_PM_S5_SLP_TYP << ACPI_PM1_CNT_SLP_TYP_SHIFT |
				ACPI_PM1_CNT_SLP_EN);
			break;
		case END:
			break;
		}
	}
	return NULL;
}

/* Runs the VM with the guest thread doing `script`; returns vm__run's status, *took its time. */
static int run(struct rig *r, const enum step *script, const int *signals, double *took)
{
	sigset_t stop, old, pending;
	pthread_t t;
	double t0;
	int status;

	/* Every thread blocks the stop signals (as rtvmm's main does): only vm__run's signalfd takes them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	r->script = script;
	r->signals = signals;
	assert_int_equal(pthread_create(&t, NULL, guest, r), 0);
	t0 = now_s();
	status = vm__run(&r->f.vm);
	*took = now_s() - t0;
	pthread_join(t, NULL);
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGTERM));
	assert_false(sigismember(&pending, SIGINT));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}

static void test_sigterm_presses_the_power_button_and_a_guest_poweroff_exits_0(void **state)
{
	static const enum step script[] = { ENABLE_BUTTON, SIGNAL, AWAIT_PRESS, POWEROFF, END };
	static const int signals[] = { SIGTERM };
	struct rig *r = *state;
	unsigned lines;
	double took;

	lines = fake_kvm.irq_lines;
	assert_int_equal(run(r, script, signals, &took), 0);
	assert_int_equal(r->f.vm.stop_reason, VM_STOP_POWEROFF);
	assert_true(took < 10.0);
	assert_non_null(strstr(output(r), "Terminated: pressed the ACPI power button; the VM stops "
				       "in 30 s unless the guest powers off first"));
	assert_null(strstr(output(r), "stopping the VM"));
	/* The SCI went up with the press and down when the guest cleared PWRBTN_STS. */
	assert_int_equal(fake_kvm.irq_lines, lines + 2);
}

static void test_sigterm_stops_with_143_when_the_guest_ignores_the_button_for_the_grace(void **state)
{
	static const enum step script[] = { SIGNAL, AWAIT_PRESS, END };
	static const int signals[] = { SIGTERM };
	struct rig *r = *state;
	double took;

	r->f.vm.shutdown_grace_s = 1;
	assert_int_equal(run(r, script, signals, &took), 128 + SIGTERM);
	assert_int_equal(r->f.vm.stop_reason, VM_STOP_SIGNAL);
	assert_true(took >= 1.0 && took < 5.0);
	assert_int_equal(io_inw(&r->f.vm.pio, EVT), ACPI_PM1_PWRBTN);   /* pressed, never handled */
	assert_non_null(strstr(output(r), "in 1 s unless the guest powers off first"));
	assert_non_null(strstr(output(r), "the guest did not power off within 1 s of the power "
				       "button: stopping the VM"));
}

static void test_second_sigterm_during_the_grace_stops_at_once(void **state)
{
	static const enum step script[] = { SIGNAL, AWAIT_PRESS, SIGNAL, END };
	static const int signals[] = { SIGTERM, SIGTERM };
	struct rig *r = *state;
	double took;

	assert_int_equal(run(r, script, signals, &took), 128 + SIGTERM);
	assert_true(took < 10.0);
	assert_non_null(strstr(output(r), "Terminated again during the shutdown grace: stopping the "
				       "VM now"));
}

static void test_sigint_during_the_grace_stops_at_once(void **state)
{
	static const enum step script[] = { SIGNAL, AWAIT_PRESS, SIGNAL, END };
	static const int signals[] = { SIGTERM, SIGINT };
	struct rig *r = *state;
	double took;

	assert_int_equal(run(r, script, signals, &took), 128 + SIGINT);
	assert_true(took < 10.0);
	assert_non_null(strstr(output(r), "Interrupt: stopping the VM"));
}

static void test_sigint_stops_at_once_without_pressing(void **state)
{
	static const enum step script[] = { SIGNAL, END };
	static const int signals[] = { SIGINT };
	struct rig *r = *state;
	double took;

	assert_int_equal(run(r, script, signals, &took), 128 + SIGINT);
	assert_int_equal(io_inw(&r->f.vm.pio, EVT), 0);
	assert_null(strstr(output(r), "power button"));
}

static void test_sigterm_with_grace_0_stops_at_once_without_pressing(void **state)
{
	static const enum step script[] = { SIGNAL, END };
	static const int signals[] = { SIGTERM };
	struct rig *r = *state;
	double took;

	r->f.vm.shutdown_grace_s = 0;
	assert_int_equal(run(r, script, signals, &took), 128 + SIGTERM);
	assert_true(took < 10.0);
	assert_int_equal(io_inw(&r->f.vm.pio, EVT), 0);
	assert_non_null(strstr(output(r), "Terminated: stopping the VM"));
	assert_null(strstr(output(r), "power button"));
}

/* A machine without the PM1 block has no button to press: SIGTERM stops it at once. */
static void test_sigterm_without_a_power_button_stops_at_once(void **state)
{
	static const enum step script[] = { SIGNAL, END };
	static const int signals[] = { SIGTERM };
	struct rig *r = *state;
	double took;

	r->f.vm.acpi_pm = NULL;
	assert_int_equal(vm__power_button(&r->f.vm), -ENODEV);
	assert_int_equal(run(r, script, signals, &took), 128 + SIGTERM);
	assert_true(took < 10.0);
	assert_non_null(strstr(output(r), "Terminated: stopping the VM"));
}

/* Any thread may press it (the API's vm.power-button): the status is set, the SCI raised if enabled. */
static void test_power_button_sets_pwrbtn_status(void **state)
{
	struct rig *r = *state;
	unsigned lines = fake_kvm.irq_lines;

	assert_int_equal(vm__power_button(&r->f.vm), 0);
	assert_int_equal(io_inw(&r->f.vm.pio, EVT), ACPI_PM1_PWRBTN);
	assert_int_equal(fake_kvm.irq_lines, lines);
	io_outw(&r->f.vm.pio, EVT + 2, ACPI_PM1_PWRBTN);
	assert_int_equal(fake_kvm.irq_lines, lines + 1);
	assert_false(r->f.vm.stopping);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, fake_vm__teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_sigterm_presses_the_power_button_and_a_guest_poweroff_exits_0),
		T(test_sigterm_stops_with_143_when_the_guest_ignores_the_button_for_the_grace),
		T(test_second_sigterm_during_the_grace_stops_at_once),
		T(test_sigint_during_the_grace_stops_at_once),
		T(test_sigint_stops_at_once_without_pressing),
		T(test_sigterm_with_grace_0_stops_at_once_without_pressing),
		T(test_sigterm_without_a_power_button_stops_at_once),
		T(test_power_button_sets_pwrbtn_status),
	};

	if (vcpu__init_signals())
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
