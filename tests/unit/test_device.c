/* The device registry (vmm/device.c): reverse-order teardown, stop-report lines, DSDT entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/device.h"

static char order[32];
static unsigned nr_destroyed;

/* A device is a letter; destroying it appends the letter to `order`. */
static void fake_destroy(void *dev)
{
	order[nr_destroyed++] = *(char *)dev;
}

static void fake_report(void *dev, FILE *out)
{
	fprintf(out, "counter %c", *(char *)dev);
}

static bool fake_acpi(void *dev, struct device_acpi *out)
{
	*out = (struct device_acpi){ .hid = "PNP0501", .nr_io = 1, .irq = 4 };
	snprintf(out->name, sizeof(out->name), "DEV%c", *(char *)dev);
	return true;
}

static const struct device_ops plain_ops = { .destroy = fake_destroy };
static const struct device_ops full_ops = { .destroy = fake_destroy, .report = fake_report,
					    .acpi = fake_acpi };

static void test_devices_are_destroyed_last_added_first(void **state)
{
	static char devs[] = "abcdefghijklmnopq";   /* more than the first allocation holds */
	struct device_list l = { 0 };
	unsigned i;

	(void)state;
	nr_destroyed = 0;
	for (i = 0; i < 17; i++)
		assert_int_equal(device_list__add(&l, "dev", i % 2 ? &full_ops : &plain_ops, &devs[i]), 0);
	assert_int_equal(l.nr, 17);
	device_list__destroy(&l);
	assert_int_equal(nr_destroyed, 17);
	assert_memory_equal(order, "qponmlkjihgfedcba", 17);
	assert_int_equal(l.nr, 0);
	assert_null(l.v);
	device_list__destroy(&l);   /* an empty list: nothing happens */
	assert_int_equal(nr_destroyed, 17);
}

static void test_report_and_acpi_come_from_the_devices_that_have_them(void **state)
{
	static char a = 'a', b = 'b', c = 'c';
	struct device_list l = { 0 };
	struct device_acpi acpi[1];
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	(void)state;
	assert_int_equal(device_list__add(&l, "net0", &full_ops, &a), 0);
	assert_int_equal(device_list__add(&l, "testdev", &plain_ops, &b), 0);
	assert_int_equal(device_list__add(&l, "COM1", &full_ops, &c), 0);
	device_list__report(&l, "rtvmm:   ", out);
	fclose(out);
	assert_string_equal(text, "rtvmm:   net0: counter a\nrtvmm:   COM1: counter c\n");
	free(text);
	/* Two devices have an entry; room for one: it says two, fills one. */
	assert_int_equal(device_list__acpi(&l, acpi, 1), 2);
	assert_string_equal(acpi[0].name, "DEVa");
	nr_destroyed = 0;
	device_list__destroy(&l);
	assert_memory_equal(order, "cba", 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_devices_are_destroyed_last_added_first),
		cmocka_unit_test(test_report_and_acpi_come_from_the_devices_that_have_them),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
