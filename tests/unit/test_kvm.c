/* Which KVM a host has and why /dev/kvm is missing, read from a fake sysfs tree. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/kvm.h"

struct sysfs {
	char root[PATH_MAX];
};

static int sysfs_setup(void **state)
{
	struct sysfs *s = malloc(sizeof(*s));

	snprintf(s->root, sizeof(s->root), "/tmp/rtvmm-test-kvm.XXXXXX");
	if (!mkdtemp(s->root))
		return -1;
	*state = s;
	return 0;
}

static int sysfs_teardown(void **state)
{
	struct sysfs *s = *state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->root);
	if (system(cmd))
		return -1;
	free(s);
	return 0;
}

/* mkdir -p ROOT/REL. */
static void add(const struct sysfs *s, const char *rel)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", s->root, rel);
	assert_int_equal(system(cmd), 0);
}

static const char *cause(const struct sysfs *s)
{
	static char buf[512];

	kvm__missing_cause(s->root, "/dev/kvm", buf, sizeof(buf));
	return buf;
}

static void test_kvm_without_module_says_not_loaded(void **state)
{
	struct sysfs *s = *state;

	assert_string_equal(kvm__host_kind(s->root), "kvm");
	assert_non_null(strstr(cause(s), "/dev/kvm: no such device: the kvm module is not loaded"));
	assert_non_null(strstr(cause(s), "scripts/kvmbox"));
}

static void test_kvm_module_without_vendor_module_names_the_missing_vendor(void **state)
{
	struct sysfs *s = *state;

	add(s, "module/kvm");
	assert_string_equal(kvm__host_kind(s->root), "kvm");
	assert_non_null(strstr(cause(s), "no vendor module (kvm_intel, kvm_amd) is"));
}

static void test_kvm_vendor_module_that_did_not_bind_is_named(void **state)
{
	struct sysfs *s = *state;

	add(s, "module/kvm");
	add(s, "module/kvm_pvm");
	assert_string_equal(kvm__host_kind(s->root), "kvm_pvm");
	assert_non_null(strstr(cause(s), "modules kvm and kvm_pvm are loaded but kvm_pvm did not bind"));
}

static void test_kvm_bound_device_without_node_is_a_missing_node(void **state)
{
	struct sysfs *s = *state;

	add(s, "module/kvm");
	add(s, "module/kvm_amd");
	add(s, "class/misc/kvm");
	assert_string_equal(kvm__host_kind(s->root), "kvm_amd");
	assert_non_null(strstr(cause(s), "no such device node: the kernel has the kvm device"));
	assert_null(strstr(cause(s), "did not bind"));
}

static void test_kvm_intel_is_named_before_pvm(void **state)
{
	struct sysfs *s = *state;

	add(s, "module/kvm_pvm");
	add(s, "module/kvm_intel");
	assert_string_equal(kvm__host_kind(s->root), "kvm_intel");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kvm_without_module_says_not_loaded, sysfs_setup,
						sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_kvm_module_without_vendor_module_names_the_missing_vendor,
						sysfs_setup, sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_kvm_vendor_module_that_did_not_bind_is_named,
						sysfs_setup, sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_kvm_bound_device_without_node_is_a_missing_node,
						sysfs_setup, sysfs_teardown),
		cmocka_unit_test_setup_teardown(test_kvm_intel_is_named_before_pvm, sysfs_setup,
						sysfs_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
