/*
 * The composition root: the one place that builds an rtvmm PC, in order.
 * Read this function to learn the machine.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/builder.h"
#include "app/sandbox.h"
#include "base/vm_limits.h"
#include "vmm/hw/acpi_pm.h"
#include "vmm/hw/console.h"
#include "vmm/hw/i8042.h"
#include "vmm/hw/pvpanic.h"
#include "vmm/hw/serial.h"
#include "vmm/hw/testdev.h"
#include "vmm/pci/pci.h"
#include "vmm/virtio/blk.h"
#include "vmm/virtio/net.h"
#include "vmm/virtio/pci.h"
#include "vmm/virtio/vhost_blk.h"
#include "vmm/vm.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/regs.h"
#include "vmm/x86/tables.h"

/* How long the builder waits for a NIC's or disk's vhost-user backend before booting without it. */
#define NIC_BACKEND_WAIT_MS 2000
#define DISK_BACKEND_WAIT_MS 2000
/* How often a wait during the build looks for a stop signal. */
#define BUILD_SIGNAL_POLL_MS 50

/* Legacy (ISA) devices the DSDT can list. */
#define BUILDER_MAX_ISA 8

/* Hands `dev` to the VM's registry; on failure destroys it with its own ops. */
static int hold(struct vm *vm, const char *name, const struct device_ops *ops, void *dev,
		struct err *e)
{
	int err = device_list__add(&vm->devices, name, ops, dev);

	if (err) {
		ops->destroy(dev);
		return err__set(e, err, "%s: out of memory for the device list", name);
	}
	return 0;
}

int builder__stop_signal(struct vm *vm, const char *during, struct err *e)
{
	static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP };
	struct timespec now = { 0 };
	sigset_t pending, one;
	unsigned i;

	if (sigpending(&pending) < 0)
		return 0;
	for (i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++) {
		int sig = stop_signals[i];

		if (!sigismember(&pending, sig))
			continue;
		sigemptyset(&one);
		sigaddset(&one, sig);
		sigtimedwait(&one, NULL, &now);
		vm__request_stop(vm, VM_STOP_SIGNAL, 128 + sig);
		return err__set(e, -EINTR, "%s while %s: stopped before the guest ran",
				strsignal(sig), during);
	}
	return 0;
}

/* A vhost-user device's wait for its backend (virtio_net__wait_backend, vhost_blk__wait_backend). */
typedef int (*backend_wait_fn)(struct virtio_dev *vdev, int timeout_ms);

/* Waits up to `timeout_ms` for `dev`'s backend, looking for stop signals meanwhile. */
static int wait_backend(struct vm *vm, struct virtio_dev *dev, backend_wait_fn wait, int timeout_ms,
			struct err *e)
{
	int err;

	for (;;) {
		int slice = timeout_ms < BUILD_SIGNAL_POLL_MS ? timeout_ms : BUILD_SIGNAL_POLL_MS;

		err = builder__stop_signal(vm, "building the VM", e);
		if (err)
			return err;
		if (wait(dev, slice) == 0)
			return 0;
		timeout_ms -= slice;
		if (timeout_ms <= 0)
			return -ETIMEDOUT;
	}
}

/* `why` as the error, prefixed with where the knob was asked ("host.yaml:7: vm.halt_poll_ns: "). */
static int knob_error(struct err *e, int err, const char *at, const struct err *why)
{
	return err__set(e, err, "%s%s%s", at ? at : "", at ? ": " : "", why->msg);
}

/* cfg's KVM_CAP_X86_DISABLE_EXITS, KVM_CAP_HALT_POLL and dirty ring on the VM. */
static int add_kvm_knobs(struct vm *vm, const struct vm_config *cfg, struct err *e)
{
	struct err why = { 0 };
	int err;

	if (cfg->disable_exits) {
		err = vm__disable_exits(vm, cfg->disable_exits, &why);
		if (err)
			return knob_error(e, err, cfg->disable_exits_at, &why);
	}
	if (cfg->halt_poll_set) {
		err = vm__set_halt_poll(vm, cfg->halt_poll_ns, &why);
		if (err)
			return knob_error(e, err, cfg->halt_poll_at, &why);
	}
	if (cfg->dirty_ring_set && cfg->dirty_ring) {
		err = vm__dirty_ring(vm, cfg->dirty_ring, &why);
		if (err)
			return knob_error(e, err, cfg->dirty_ring_at, &why);
	}
	/* Not asked: KVM's ring where it has one, else its bitmap (the migration says which). */
	if (!cfg->dirty_ring_set) {
		err = vm__dirty_ring(vm, DIRTY_RING_DEFAULT_ENTRIES, &why);
		if (err == -ENOTSUP && cfg->verbose)
			fprintf(stderr, "rtvmm: %s\n", why.msg);
		else if (err && err != -ENOTSUP)
			return err__set(e, err, "%s", why.msg);
	}
	return 0;
}

static int add_legacy_devices(struct vm *vm, const struct vm_config *cfg, struct err *e)
{
	struct irq_sink com1_irq = vm__irq_sink(vm, PORT_COM1_IRQ);
	struct irq_sink kbd_irq = vm__irq_sink(vm, I8042_KBD_IRQ), aux_irq = vm__irq_sink(vm, 12);
	struct irq_sink sci = vm__irq_sink(vm, ACPI_SCI_IRQ);
	struct acpi_pm *pm;
	struct testdev *td;
	struct console *con;
	struct serial *com1;
	struct i8042 *kbc;
	int listen_fd = -1, err;

	/* COM1's output goes to the console's fd, or to the socket the console serves. */
	if (cfg->console_socket) {
		listen_fd = console__listen(cfg->console_socket, e);
		if (listen_fd < 0)
			return listen_fd;
	}
	err = serial__add(&vm->pio, PORT_COM1, &com1_irq,
			  cfg->console_socket ? listen_fd : cfg->console_out, &com1);
	if (err) {
		err__set(e, err, "COM1 (8250 UART at %#x): %s", PORT_COM1, strerror(-err));
		goto err_close_listen;
	}
	err = hold(vm, "COM1", &serial__device_ops, com1, e);
	if (err)
		goto err_close_listen;
	if (cfg->console_socket) {
		err = console__start_socket(&con, listen_fd, cfg->console_socket, com1);
		if (err) {
			err__set(e, err, "console socket %s: %s", cfg->console_socket, strerror(-err));
			goto err_close_listen;
		}
		err = hold(vm, "console", &console__socket_device_ops, con, e);
		if (err)
			return err;
	}
	err = i8042__add(&vm->pio, &vm->ctl, &kbc);
	if (err)
		return err__set(e, err, "i8042: %s", strerror(-err));
	i8042__set_irqs(kbc, &kbd_irq, &aux_irq);
	err = hold(vm, "i8042", &i8042__device_ops, kbc, e);
	if (err)
		return err;
	err = acpi_pm__add(&vm->pio, &vm->ctl, &sci, &pm);
	if (err)
		return err__set(e, err, "ACPI PM1 registers: %s", strerror(-err));
	err = hold(vm, "acpi-pm", &acpi_pm__device_ops, pm, e);
	if (err)
		return err;
	/* The power button (vm__power_button, SIGTERM) presses through it. */
	vm->acpi_pm = pm;
	if (cfg->test_device) {
		err = testdev__add(&vm->pio, &vm->mmio, &vm->ctl, com1, &td);
		if (err)
			return err__set(e, err, "test device: %s", strerror(-err));
		err = hold(vm, "testdev", &testdev__device_ops, td, e);
		if (err)
			return err;
	}
	if (!cfg->console_socket && (cfg->console_in >= 0 || cfg->console_out >= 0)) {
		err = console__start(&con, cfg->console_in, com1, &vm->ctl);
		if (err)
			return err__set(e, err, "console: %s", strerror(-err));
		err = hold(vm, "console", &console__device_ops, con, e);
	}
	return err;

err_close_listen:
	if (cfg->console_socket) {
		close(listen_fd);
		unlink(cfg->console_socket);
	}
	return err;
}

/*
 * Disk `i` of `cfg` and its virtio-pci function. An image the monitor serves
 * gets an I/O thread, placed per the plan before any vCPU runs (libvirt's
 * iothreadpin); a vhost-user disk waits for its backend like a NIC, and one
 * that is not there yet appears to the guest when it connects.
 */
static int add_disk(struct vm *vm, const struct vm_config *cfg, const struct virtio_pci_env *env,
		    unsigned i, struct err *e)
{
	const struct vm_disk *d = &cfg->disks[i];
	struct virtio_pci *fn;
	struct virtio_dev *blk;
	int err;

	if (d->kind == VM_DISK_LOCAL) {
		err = virtio_blk__create(&d->local, &vm->mem, &blk, e);
		if (err)
			return err;
		err = hold(vm, blk->name, &virtio_blk__device_ops, blk, e);
		if (!err && cfg->placement)
			err = placement__place_io(cfg->placement, i, d->local.name,
						  virtio_blk__io_tid(blk), e);
		if (err)
			return err;
	} else {
		err = vhost_blk__create(&d->vhost, &vm->mem, &blk, e);
		if (err)
			return err;
		err = hold(vm, blk->name, &vhost_blk__device_ops, blk, e);
		if (err)
			return err;
		err = wait_backend(vm, blk, vhost_blk__wait_backend, DISK_BACKEND_WAIT_MS, e);
		if (err == -EINTR)
			return err;
		if (err)
			fprintf(stderr, "rtvmm: %s: no vhost-user-blk backend on %s yet; the disk "
				"appears when one connects\n", d->vhost.name, d->vhost.socket);
	}
	err = virtio_pci__add(env, blk, &fn);
	if (err)
		return err__set(e, err, "%s: virtio-pci function: %s", blk->name, strerror(-err));
	return hold(vm, blk->name, &virtio_pci__device_ops, fn, e);
}

/*
 * The PCI bus (always: the DSDT describes it), one virtio-net function per
 * NIC, its data path a vhost-user backend, then one virtio-blk function per
 * disk, in the plan's order (the guest's vda, vdb, ...), then pvpanic (always:
 * a guest kernel panic stops the VM with its own status).
 */
static int add_pci_devices(struct vm *vm, const struct vm_config *cfg, struct err *e)
{
	struct virtio_pci_env env;
	struct virtio_pci *fn;
	struct virtio_dev *net;
	struct pvpanic *panic;
	struct pci_bus *bus;
	unsigned i;
	int err;

	err = pci_bus__create(&vm->pio, &vm->mmio, LAYOUT_PCI_MMIO_BASE, LAYOUT_PCI_MMIO_SIZE, &bus);
	if (err)
		return err__set(e, err, "PCI bus: %s", strerror(-err));
	err = hold(vm, "pci", &pci_bus__device_ops, bus, e);
	if (err)
		return err;
	env = (struct virtio_pci_env){ .pci = bus, .vm_fd = vm->fd, .irqs = &vm->irqs, .mem = &vm->mem };
	for (i = 0; i < cfg->nr_nics; i++) {
		const struct virtio_net_spec *nic = &cfg->nics[i];

		err = virtio_net__create(nic, &vm->mem, &net, e);
		if (err)
			return err;
		err = hold(vm, net->name, &virtio_net__device_ops, net, e);
		if (err)
			return err;
		/* Learn the backend's features before the guest negotiates; it may also come later. */
		err = wait_backend(vm, net, virtio_net__wait_backend, NIC_BACKEND_WAIT_MS, e);
		if (err == -EINTR)
			return err;
		if (err)
			fprintf(stderr, "rtvmm: %s: no vhost-user backend on %s yet; the link stays down "
				"until one connects\n", nic->name, nic->socket);
		err = virtio_pci__add(&env, net, &fn);
		if (err)
			return err__set(e, err, "%s: virtio-pci function: %s", nic->name, strerror(-err));
		err = hold(vm, net->name, &virtio_pci__device_ops, fn, e);
		if (err)
			return err;
	}
	for (i = 0; i < cfg->nr_disks; i++) {
		err = add_disk(vm, cfg, &env, i, e);
		if (err)
			return err;
	}
	err = pvpanic__add(bus, &vm->ctl, &panic);
	if (err)
		return err__set(e, err, "pvpanic PCI function: %s", strerror(-err));
	return hold(vm, "pvpanic", &pvpanic__device_ops, panic, e);
}

int vm__build(struct vm *vm, const struct vm_config *cfg, struct err *e)
{
	struct vm_hooks hooks = cfg->placement ? placement__hooks(cfg->placement) : (struct vm_hooks){ 0 };
	struct device_acpi isa[BUILDER_MAX_ISA];
	struct boot_config boot = cfg->boot;
	unsigned nr_isa;
	int64_t rsdp;
	int err;

	if (cfg->sandbox)
		sandbox__hook(&hooks);
	hooks.guest_ready = cfg->guest_ready;
	hooks.ready_opaque = cfg->ready_opaque;

	/*
	 * 1. The KVM VM object, with the TSS/identity-map pages KVM needs on x86; placement's hooks.
	 * A stop signal is looked for after every step that can take long (and during NIC waits).
	 */
	err = vm__create(vm, cfg->kvm_path, &hooks, e);
	if (err)
		return err;
	vm->verbose = cfg->verbose;
	vm->shutdown_grace_s = cfg->shutdown_grace_s;
	vm->restart_on_reboot = !cfg->exit_on_reboot;

	if (cfg->mem_size < VM_MIN_MEMORY)
		return err__set(e, -EINVAL, "--memory %llu KiB is too small: rtvmm needs at least %llu MiB",
				(unsigned long long)(cfg->mem_size >> 10),
				(unsigned long long)(VM_MIN_MEMORY >> 20));
	if (cfg->nr_vcpus == 0 || cfg->nr_vcpus > vm->kvm.max_vcpus ||
	    cfg->nr_vcpus > VM_MAX_VCPUS)
		return err__set(e, -EINVAL, "--vcpus %u: must be between 1 and %u (KVM's limit here is %u, "
				"xAPIC ids in the MP/ACPI tables allow %u)", cfg->nr_vcpus,
				vm->kvm.max_vcpus < VM_MAX_VCPUS ? vm->kvm.max_vcpus : VM_MAX_VCPUS,
				vm->kvm.max_vcpus, VM_MAX_VCPUS);

	/*
	 * 1b. KVM's real-time knobs, each checked against this KVM first, before any vCPU
	 * exists (KVM refuses to disable exits after): exits the guest runs without (HLT,
	 * PAUSE, MWAIT, C-states), and how long a halted vCPU polls before it sleeps.
	 */
	err = add_kvm_knobs(vm, cfg, e);
	if (err)
		return err;

	/*
	 * 2. The monitor's own threads go to the emulator cpus first: every thread
	 * created from here on (console, vCPUs) inherits that affinity, and vCPU
	 * threads then move themselves to their own cpus before entering the guest.
	 */
	if (cfg->placement) {
		err = placement__pin_emulator(cfg->placement, e);
		if (err)
			return err;
	}

	/*
	 * 3. Guest RAM: one MAP_SHARED memfd (hugetlb, bound to a node, prefaulted
	 * when the plan says so), split around the PCI hole, registered as memslots.
	 */
	err = vm__setup_memory(vm, cfg->mem_size, e);
	if (!err)
		err = builder__stop_signal(vm, "building the VM", e);
	if (err)
		return err;

	/* 4. Interrupt controllers (PIC, IOAPIC, LAPICs) and the PIT, in the kernel. Before vCPUs. */
	err = vm__setup_irqchip(vm, e);
	if (err)
		return err;

	/* 5. vCPUs, each with CPUID carrying its APIC id and the topology. */
	err = vm__create_vcpus(vm, cfg->nr_vcpus, e);
	if (err)
		return err;

	/*
	 * 6. Legacy devices on the port bus: COM1, i8042, ACPI PM1 (the power button, its SCI),
	 * the test device if asked; the console.
	 */
	err = add_legacy_devices(vm, cfg, e);
	if (err)
		return err;

	/*
	 * 7. PCI bus and virtio devices: virtio-net NICs over vhost-user, then virtio-blk disks
	 * (served here by a placed I/O thread, or by a vhost-user-blk backend), then pvpanic.
	 */
	err = add_pci_devices(vm, cfg, e);
	if (!err)
		err = builder__stop_signal(vm, "building the VM", e);
	if (err)
		return err;

	/* 8. Firmware tables: MP table and ACPI (RSDP/XSDT/FADT/DSDT with the devices' entries/MADT). */
	err = mptable__write(&vm->mem, vm->nr_vcpus);
	if (err)
		return err__set(e, err, "MP table for %u vCPUs: %s", vm->nr_vcpus, strerror(-err));
	nr_isa = device_list__acpi(&vm->devices, isa, BUILDER_MAX_ISA);
	if (nr_isa > BUILDER_MAX_ISA)
		return err__set(e, -E2BIG, "ACPI: %u legacy devices, the DSDT takes %u", nr_isa,
				BUILDER_MAX_ISA);
	rsdp = acpi__write(&vm->mem, vm->nr_vcpus, isa, nr_isa);
	if (rsdp < 0)
		return err__set(e, (int)rsdp, "ACPI tables for %u vCPUs: %s", vm->nr_vcpus,
				strerror((int)-rsdp));
	vm->rsdp = rsdp;

	/* 9. Boot: kernel, initrd and command line per the Linux boot protocol; BSP in long mode. */
	boot.acpi_rsdp = (uint64_t)rsdp;
	err = x86_boot__load(&vm->mem, &boot, &vm->boot, e);
	if (err)
		return err;
	err = x86_regs__write_tables(&vm->mem);
	if (err)
		return err__set(e, err, "boot page tables: %s", strerror(-err));
	err = vcpu__set_boot_state(&vm->vcpus[0], vm->boot.entry, vm->boot.zero_page);
	if (err)
		return err__set(e, err, "vcpu0 boot registers: %s", strerror(-err));

	/*
	 * 10. What a reboot in place puts back (unless the VM exits on reboot): the irqchip and
	 * PIT as now, and the guest RAM written above; each vCPU records its own state as it starts.
	 */
	err = vm__seal(vm, e);
	if (err)
		return err;
	return builder__stop_signal(vm, "building the VM", e);
}
