/*
 * What an rtvmm VM can be, defined once: the plan's schema (and through it the
 * command line) refuses anything outside these before anything starts, naming
 * the file and key or the flag; the machine relies on them.
 */
#ifndef RTVMM_BASE_VM_LIMITS_H
#define RTVMM_BASE_VM_LIMITS_H

/*
 * vCPU i has xAPIC id i and the IOAPIC has id nr_vcpus (MP and ACPI tables);
 * all of them must stay below 0xFF, the broadcast id.
 */
#define VM_MAX_VCPUS 254

/* Boot structures below 1 MiB plus room for a kernel. */
#define VM_MIN_MEMORY (4ULL << 20)

/* Queue pairs of one virtio-net NIC (2N data queues and the control queue). */
#define VM_MAX_NIC_QUEUE_PAIRS 16

/*
 * Ring entries of each virtio-net queue (`queue_size`): a power of two in this range (the
 * virtio spec's largest split ring at the top), the device's default when not given.
 */
#define VM_NIC_QUEUE_SIZE_MIN     64
#define VM_NIC_QUEUE_SIZE_MAX     32768
#define VM_NIC_QUEUE_SIZE_DEFAULT 1024

/* Disks of one VM, and request queues of one disk. */
#define VM_MAX_DISKS 16
#define VM_MAX_DISK_QUEUES 16

#endif
