/* Guest CPUID: KVM's supported set, patched per vCPU. */
#ifndef RTVMM_X86_CPUID_H
#define RTVMM_X86_CPUID_H

#include <linux/kvm.h>

/*
 * Patches `cpuid` (from KVM_GET_SUPPORTED_CPUID) in place for vCPU `index`
 * of `nr_vcpus`: APIC ids (leaf 1, 0xB, 0x1F, 0x8000001E), topology and
 * logical-processor counts, hypervisor bit and KVM signature leaves, and
 * masks features KVM cannot back for the guest (e.g. arch-capabilities).
 */
void cpuid__patch(struct kvm_cpuid2 *cpuid, unsigned index, unsigned nr_vcpus);

#endif
