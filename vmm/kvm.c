#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
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

int kvm__open(struct kvm *kvm, const char *path, struct err *e)
{
	size_t i;
	int r, err;

	kvm->fd = open(path, O_RDWR | O_CLOEXEC);
	if (kvm->fd < 0) {
		err = -errno;
		if (err == -ENOENT)
			return err__set(e, err, "%s: no such device (is the kvm module loaded? "
					"KVM needs hardware virtualization)", path);
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
