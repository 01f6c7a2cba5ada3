#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Capabilities without which rtvmm cannot build its PC. */
static const struct {
	long cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
};

int kvm__cap(const struct kvm *kvm, long cap)
{
	int r = ioctl(kvm->fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

/* The vendor modules that can bind /dev/kvm, in the order a host is named by. */
static const char *const vendor_modules[] = { "kvm_intel", "kvm_amd", "kvm_pvm" };

static bool sys_exists(const char *sys_root, const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", sys_root, rel);
	return stat(path, &st) == 0;
}

const char *kvm__host_kind(const char *sys_root)
{
	char rel[64];
	size_t i;

	for (i = 0; i < sizeof(vendor_modules) / sizeof(vendor_modules[0]); i++) {
		snprintf(rel, sizeof(rel), "module/%s", vendor_modules[i]);
		if (sys_exists(sys_root, rel))
			return vendor_modules[i];
	}
	return "kvm";
}

#define WITHOUT_KVM "; without KVM, 'rtvmm check' and rtvmm-dataplane work, and scripts/kvmbox " \
	"gives tests a standard KVM host in QEMU"

void kvm__missing_cause(const char *sys_root, const char *path, char *buf, size_t n)
{
	const char *kind = kvm__host_kind(sys_root);

	if (sys_exists(sys_root, "class/misc/kvm"))
		snprintf(buf, n, "%s: no such device node: the kernel has the kvm device (misc 10:232, "
			 "%s) but not at this path (udev, or mknod %s c 10 232)", path, kind, path);
	else if (!sys_exists(sys_root, "module/kvm"))
		snprintf(buf, n, "%s: no such device: the kvm module is not loaded (modprobe kvm_intel "
			 "or kvm_amd; the CPU needs VT-x or AMD-V, enabled in the firmware)" WITHOUT_KVM,
			 path);
	else if (!strcmp(kind, "kvm"))
		snprintf(buf, n, "%s: no such device: the kvm module is loaded but no vendor module "
			 "(kvm_intel, kvm_amd) is, so nothing provides the device (modprobe one; "
			 "dmesg says why it refused)" WITHOUT_KVM, path);
	else
		snprintf(buf, n, "%s: no such device: modules kvm and %s are loaded but %s did not "
			 "bind the device (dmesg says why; a nested host must expose VT-x/AMD-V, or "
			 "nested PVM)" WITHOUT_KVM, path, kind, kind);
}

int kvm__open(struct kvm *kvm, const char *path, struct err *e)
{
	char cause[sizeof(e->msg)];
	size_t i;
	int r, err;

	kvm->fd = open(path, O_RDWR | O_CLOEXEC);
	if (kvm->fd < 0) {
		err = -errno;
		if (err == -ENOENT) {
			kvm__missing_cause("/sys", path, cause, sizeof(cause));
			return err__set(e, err, "%s", cause);
		}
		if (err == -EACCES || err == -EPERM)
			return err__set(e, err, "%s: permission denied (run as root or join the kvm group)",
					path);
		return err__set(e, err, "%s: %s", path, strerror(-err));
	}
	r = ioctl(kvm->fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_API_VERSION) {
		err = err__set(e, -ENOTSUP, "%s: KVM API version %d, rtvmm needs %d (is this a KVM device?)",
			       path, r, KVM_API_VERSION);
		goto err_close_fd;
	}
	for (i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (!kvm__cap(kvm, required_caps[i].cap)) {
			err = err__set(e, -ENOTSUP, "%s: KVM lacks %s", path, required_caps[i].name);
			goto err_close_fd;
		}
	}
	kvm->vcpu_mmap_size = ioctl(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
		err = err__set(e, -ENOTSUP, "%s: bad KVM_GET_VCPU_MMAP_SIZE %d", path, kvm->vcpu_mmap_size);
		goto err_close_fd;
	}
	r = kvm__cap(kvm, KVM_CAP_MAX_VCPUS);
	if (!r)
		r = kvm__cap(kvm, KVM_CAP_NR_VCPUS);
	kvm->max_vcpus = r > 0 ? (unsigned)r : 4;
	kvm->emulated_cpl0 = !strcmp(kvm__host_kind("/sys"), "kvm_pvm");
	return 0;

err_close_fd:
	close(kvm->fd);
	kvm->fd = -1;
	return err;
}

void kvm__close(struct kvm *kvm)
{
	if (kvm->fd >= 0)
		close(kvm->fd);
	kvm->fd = -1;
}

int kvm__probe_vm(const struct kvm *kvm, struct err *e)
{
	int vm, vcpu, err;

	vm = ioctl(kvm->fd, KVM_CREATE_VM, 0);
	if (vm < 0)
		return err__set(e, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	err = vcpu < 0 ? -errno : 0;
	if (vcpu >= 0)
		close(vcpu);
	close(vm);
	if (err)
		return err__set(e, err, "KVM_CREATE_VCPU: %s", strerror(-err));
	return 0;
}
