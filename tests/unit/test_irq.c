#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_kvm.h"
#include "vmm/irq.h"

static int vm_fd;   /* a fake KVM VM */

static int create_vm(void **state)
{
	(void)state;
	fake_kvm__reset();
	vm_fd = fake_kvm__create_vm(true);
	return vm_fd < 0;
}

static int close_vm(void **state)
{
	(void)state;
	return close(vm_fd);
}

static unsigned count_routes(const struct irq_routing *r, uint32_t gsi)
{
	unsigned i, n = 0;

	for (i = 0; i < r->nr; i++)
		n += r->entries[i].gsi == gsi;
	return n;
}

static void test_irq_pc_routes_irq0_to_ioapic_pin2(void **state)
{
	struct irq_routing *r = calloc(1, sizeof(*r));
	unsigned i;

	(void)state;
	assert_int_equal(irq_routing__init_pc(r, vm_fd, 2), 0);
	/* GSI 0: PIC master pin 0 and IOAPIC pin 2 (the MADT's interrupt source override). */
	assert_int_equal(count_routes(r, 0), 2);
	for (i = 0; i < r->nr; i++) {
		const struct kvm_irq_routing_entry *e = &r->entries[i];

		if (e->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC && e->u.irqchip.pin == 2)
			assert_int_equal(e->gsi, 0);
		if (e->gsi == 2) /* the cascade: neither PIC nor IOAPIC route */
			fail();
	}
	/* COM1's GSI 4 reaches PIC pin 4 and IOAPIC pin 4; GSI 23 only the IOAPIC. */
	assert_int_equal(count_routes(r, 4), 2);
	assert_int_equal(count_routes(r, 23), 1);
	assert_int_equal(r->nr, 15 + 23);
	/* and KVM got the table */
	assert_int_equal(fake_kvm.nr_routes, r->nr);
	assert_int_equal(fake_kvm.violations, 0);
	irq_routing__exit(r);
	free(r);
}

static void test_irq_msi_routes_get_fresh_gsis_and_can_be_repointed(void **state)
{
	struct irq_routing *r = calloc(1, sizeof(*r));
	const struct kvm_irq_routing_entry *e;
	uint32_t a, b;

	(void)state;
	assert_int_equal(irq_routing__init_pc(r, vm_fd, 2), 0);
	assert_int_equal(irq_routing__add_msi(r, 0xfee00000, 0x4021, &a), 0);
	assert_int_equal(irq_routing__add_msi(r, 0xfee01000, 0x4022, &b), 0);
	assert_int_equal(a, IRQ_FIRST_MSI_GSI);
	assert_int_equal(b, IRQ_FIRST_MSI_GSI + 1);
	assert_int_equal(irq_routing__set_msi(r, b, 0x1fee02000ULL, 0x4031), 0);
	e = irq_routing__find(r, b, KVM_IRQ_ROUTING_MSI);
	assert_non_null(e);
	assert_int_equal(e->u.msi.address_lo, 0xfee02000);
	assert_int_equal(e->u.msi.address_hi, 1);
	assert_int_equal(e->u.msi.data, 0x4031);
	assert_int_equal(irq_routing__set_msi(r, 4, 0xfee00000, 1), -ENOENT);
	irq_routing__exit(r);
	free(r);
}

static void test_irq_routing_table_full_is_enospc(void **state)
{
	struct irq_routing *r = calloc(1, sizeof(*r));
	uint32_t gsi;

	(void)state;
	assert_int_equal(irq_routing__init_pc(r, vm_fd, 2), 0);
	while (r->nr < IRQ_MAX_ROUTES)
		assert_int_equal(irq_routing__add_msi(r, 0xfee00000, 0, &gsi), 0);
	assert_int_equal(irq_routing__add_msi(r, 0xfee00000, 0, &gsi), -ENOSPC);
	irq_routing__exit(r);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_irq_pc_routes_irq0_to_ioapic_pin2),
		cmocka_unit_test(test_irq_msi_routes_get_fresh_gsis_and_can_be_repointed),
		cmocka_unit_test(test_irq_routing_table_full_is_enospc),
	};

	return cmocka_run_group_tests(tests, create_vm, close_vm);
}
