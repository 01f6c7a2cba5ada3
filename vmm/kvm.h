/* The /dev/kvm system handle: API version, capabilities, limits. */
#ifndef RTVMM_KVM_H
#define RTVMM_KVM_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

struct kvm {
	int fd;
	int vcpu_mmap_size;   /* size of each vCPU's struct kvm_run mapping */
	unsigned max_vcpus;   /* KVM_CAP_MAX_VCPUS (or NR_VCPUS) */
	/* A nested PVM KVM (kvm_pvm): guest kernel mode is emulated there, and KVM's emulator
	 * rejects a few instructions the monitor then emulates (vmm/x86/emulate.h). On a standard
	 * host the CPU runs them, and an emulation failure is reported, never papered over. */
	bool emulated_cpl0;
};

/* Opens `path` (normally /dev/kvm), checks the API version and every capability rtvmm relies on. */
int kvm__open(struct kvm *kvm, const char *path, struct err *e);
void kvm__close(struct kvm *kvm);

/* Creates and drops a VM with one vCPU: the device does not only open, it works. */
int kvm__probe_vm(const struct kvm *kvm, struct err *e);

/* Which vendor module provides KVM ("kvm_intel", "kvm_amd", "kvm_pvm", or "kvm" when none
 * is loaded), read from `sys_root` (normally /sys). */
const char *kvm__host_kind(const char *sys_root);

/* Why `path` does not exist, from `sys_root`: kvm not loaded, no vendor module, a vendor module
 * loaded that did not bind the device, or no device node; and what works without KVM. */
void kvm__missing_cause(const char *sys_root, const char *path, char *buf, size_t n);

/* KVM_CHECK_EXTENSION on the system fd: >0 supported (value), 0 not. */
int kvm__cap(const struct kvm *kvm, long cap);

#endif
