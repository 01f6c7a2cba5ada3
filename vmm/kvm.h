/* The /dev/kvm system handle: API version, capabilities, limits. */
#ifndef RTVMM_KVM_H
#define RTVMM_KVM_H

#include "vmm/err.h"

struct kvm {
	int fd;
	int vcpu_mmap_size;   /* size of each vCPU's struct kvm_run mapping */
	unsigned max_vcpus;   /* KVM_CAP_MAX_VCPUS (or NR_VCPUS) */
};

/* Opens `path` (normally /dev/kvm), checks the API version and every capability rtvmm relies on. */
int kvm__open(struct kvm *kvm, const char *path, struct err *e);
void kvm__close(struct kvm *kvm);

/* KVM_CHECK_EXTENSION on the system fd: >0 supported (value), 0 not. */
int kvm__cap(const struct kvm *kvm, long cap);

#endif
