/*
 * rtvmm bare-metal guest runtime: the contract between the small freestanding
 * runtime (console, ports, MMIO, IDT, LAPIC, SMP bring-up, zero page and
 * firmware-table parsing) and the programs built on it (the test program,
 * later the benchmark guests).
 *
 * Entered by the monitor in 64-bit long mode on the BSP, RSI = zero page,
 * interrupts off, identity map of 0..4 GiB. Runs at CPL0. On the nested KVM
 * used for development CPL0 is emulated instruction by instruction: keep
 * kernel-mode code short; hot loops belong at CPL3 (a later addition: the
 * GDT already has user segments, see cpu.c).
 */
#ifndef RTVMM_GUEST_RT_H
#define RTVMM_GUEST_RT_H

/* Shared with assembly. */
#define GDT_KERNEL_CODE32  0x08
#define GDT_KERNEL_CODE    0x10   /* same selectors as the monitor's boot GDT */
#define GDT_KERNEL_DATA    0x18
#define GDT_USER_CODE32    0x20   /* STAR layout: user CS = base + 16, SS = base + 8 */
#define GDT_USER_DATA      0x28
#define GDT_USER_CODE      0x30

#define TRAMPOLINE_BASE    0x10000  /* AP real-mode entry; SIPI vector 0x10. Free per layout.h */
#define MAX_CPUS           64
#define STACK_SIZE         16384

#define VEC_TIMER          0x20
#define VEC_IPI            0x21
#define VEC_SPURIOUS       0xFF

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/x86/layout.h"

/* Test device register map: keep in sync with vmm/hw/testdev.h (not includable freestanding). */
#define TESTDEV_PIO_EXIT     0x0
#define TESTDEV_PIO_ECHO     0x4
#define TESTDEV_PIO_PUTC     0x8
#define TESTDEV_PIO_MAGIC    0xC
#define TESTDEV_MAGIC        0x52545654u
#define TESTDEV_MMIO_MAGIC   0x00
#define TESTDEV_MMIO_SCRATCH 0x08
#define TESTDEV_MMIO_COUNT   0x10

#define __noreturn  __attribute__((noreturn))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#define barrier()   __asm__ volatile("" ::: "memory")
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- port and MMIO accessors (each one is an exit unless the device is in-kernel) ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline uint32_t mmio_read32(uint64_t a)
{ uint32_t v; __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline uint64_t mmio_read64(uint64_t a)
{ uint64_t v; __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline void mmio_write32(uint64_t a, uint32_t v)
{ __asm__ volatile("movl %0, (%1)" :: "r"(v), "r"(a) : "memory"); }
static inline void mmio_write64(uint64_t a, uint64_t v)
{ __asm__ volatile("movq %0, (%1)" :: "r"(v), "r"(a) : "memory"); }

/* ---- CPU ---- */
struct cpuid_regs { uint32_t eax, ebx, ecx, edx; };
static inline struct cpuid_regs cpuid(uint32_t leaf, uint32_t sub)
{
	struct cpuid_regs r;
	__asm__ volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(sub));
	return r;
}
static inline uint64_t rdtsc(void)
{ uint32_t lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((uint64_t)hi << 32) | lo; }
static inline uint64_t rdmsr(uint32_t msr)
{ uint32_t lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr)); return ((uint64_t)hi << 32) | lo; }
static inline void wrmsr(uint32_t msr, uint64_t v)
{ __asm__ volatile("wrmsr" :: "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory"); }
static inline uint64_t read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
/* sti; hlt: the STI shadow makes the pair atomic, so a pending interrupt wakes the hlt. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

#define MSR_APIC_BASE      0x1B
#define MSR_EFER           0xC0000080
#define MSR_TSC_DEADLINE   0x6E0

/* ---- console (test device putc; one exit per byte) and exit ---- */
void console__putc(char c);
void console__write(const char *s, size_t n);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
/* Prints one line, prefixed "rtvmm-guest: " and newline-terminated, atomically w.r.t. other CPUs. */
void console__log(const char *fmt, ...) __printf(1, 2);
/* Stops the VM through TESTDEV_PIO_EXIT; the monitor exits with `status`. */
void __noreturn rt__exit(uint32_t status);
/* Prints "rtvmm-guest: FAIL <what>" and exits with `status`. */
void __noreturn rt__fail(uint32_t status, const char *fmt, ...) __printf(2, 3);

/* ---- string helpers (the compiler may also emit calls to mem*) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
uint64_t strtou64(const char *s, const char **end);

/* ---- spinlock and atomics (lock xchg / lock xadd: emulatable at CPL0) ---- */
struct spinlock { volatile uint32_t v; };
static inline void spin_lock(struct spinlock *l) { while (__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE)) while (l->v) barrier(); }
static inline void spin_unlock(struct spinlock *l) { __atomic_store_n(&l->v, 0, __ATOMIC_RELEASE); }
static inline uint32_t atomic_inc(volatile uint32_t *p) { return __atomic_fetch_add(p, 1, __ATOMIC_SEQ_CST); }

/* ---- time: TSC, frequency from the cmdline ("tsc_khz="), CPUID, or a guess ---- */
extern uint64_t tsc_khz;
extern const char *tsc_khz_source;
void time__init(void);
uint64_t time__us_to_tsc(uint64_t us);
uint64_t time__tsc_to_us(uint64_t cycles);
void time__delay_us(uint64_t us);

/* ---- boot information: zero page (struct boot_params) ---- */
struct e820_entry { uint64_t addr, size; uint32_t type; } __attribute__((packed));
#define E820_RAM 1
#define E820_MAX 128
struct boot_info {
	uint32_t e820_count;
	struct e820_entry e820[E820_MAX];
	uint64_t ram_bytes;          /* sum of E820_RAM entries */
	char cmdline[1024];
};
extern struct boot_info boot_info;
/* Copies what it needs from the zero page; 0 or a negative value if it is unusable. */
int boot_info__parse(const void *zero_page);
/* True if [addr, addr+len) lies in one E820_RAM entry. */
bool boot_info__e820_is_ram(uint64_t addr, uint64_t len);
/* Value of "key=value" on the cmdline (copied to buf), or NULL. "key" alone gives "". */
const char *boot_info__cmdline_get(const char *key, char *buf, size_t len);
/* True if `item` is in the comma-separated list `list`. */
bool boot_info__list_has(const char *list, const char *item);

/* ---- firmware tables: the CPUs the machine describes ---- */
struct cpu_topology {
	uint32_t count;
	uint32_t apic_id[MAX_CPUS];
	uint64_t lapic_addr;
	const char *source;          /* "acpi-madt" or "mptable" */
};
/* ACPI: RSDP (EBDA, E0000-FFFFF), XSDT or RSDT, MADT; enabled LAPIC/x2APIC entries. 0 or -1. */
int acpi__find_cpus(struct cpu_topology *t);
/* MP table: "_MP_" floating pointer (EBDA, F0000-FFFFF), "PCMP" table; enabled processors. 0 or -1. */
int mptable__find_cpus(struct cpu_topology *t);
/* ACPI, else the MP table. Every checksum is validated. 0 or -1. */
int firmware__find_cpus(struct cpu_topology *t);

/* ---- interrupts: GDT, IDT, traps ---- */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;   /* pushed by the CPU */
};
typedef void (*trap_handler_t)(struct trap_frame *f);
void cpu__tables_init(void);   /* BSP: builds GDT and IDT, loads them */
void cpu__tables_load(void);   /* AP: loads the same GDT and IDT */
void cpu__set_trap_handler(unsigned vector, trap_handler_t h);
/* Loads an IDT with limit 0: the next exception becomes a triple fault. */
void cpu__load_empty_idt(void);

/* ---- local APIC (xAPIC MMIO) ---- */
#define LAPIC_ID        0x020
#define LAPIC_VERSION   0x030
#define LAPIC_TPR       0x080
#define LAPIC_EOI       0x0B0
#define LAPIC_SVR       0x0F0
#define LAPIC_ESR       0x280
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3E0
#define LVT_MASKED      (1u << 16)
#define LVT_TIMER_ONESHOT   (0u << 17)
#define LVT_TIMER_PERIODIC  (1u << 17)
#define LVT_TIMER_TSC_DEADLINE (2u << 17)
#define LVT_TIMER_MODE_MASK (3u << 17)

uint32_t lapic__read(uint32_t reg);
void lapic__write(uint32_t reg, uint32_t v);
/* Software-enables this CPU's LAPIC (SVR, spurious vector), masks LINT0/1 and the timer. */
void lapic__enable(void);
uint32_t lapic__id(void);
static inline void lapic__eoi(void) { lapic__write(LAPIC_EOI, 0); }
/* Timer in periodic or one-shot mode: count in bus cycles / 16 (divide 16). */
void lapic__timer_start(uint8_t vector, uint32_t count, bool periodic);
void lapic__timer_stop(void);
/* Switches the timer LVT to TSC-deadline mode; false if the LAPIC does not keep that mode. */
bool lapic__timer_tsc_deadline(uint8_t vector);
/* Sends an IPI (ICR low word: delivery mode, vector, level) to `apic_id`; waits until it is sent. */
void lapic__send_ipi(uint32_t apic_id, uint32_t icr_lo);
#define ICR_FIXED   0x00000u
#define ICR_INIT    0x00500u
#define ICR_STARTUP 0x00600u
#define ICR_ASSERT  0x04000u
#define ICR_LEVEL   0x08000u
#define ICR_BUSY    0x01000u

/* ---- SMP ---- */
struct cpu {
	uint32_t apic_id;
	uint32_t index;              /* 0 = BSP */
	volatile uint32_t started;   /* set by the AP once it runs C code */
	uint8_t *stack_top;
};
extern struct cpu cpus[MAX_CPUS];
extern uint32_t cpu_count;        /* CPUs started by smp__boot (BSP included) */
extern volatile uint32_t cpus_up; /* CPUs running (BSP included), incremented with lock xadd */
typedef void (*ap_fn_t)(struct cpu *c);
/*
 * Starts every AP of `t` with INIT-SIPI-SIPI through the trampoline at
 * TRAMPOLINE_BASE, one at a time; each runs `fn` then halts. Returns the
 * number of CPUs up (BSP included); waits at most timeout_us per AP.
 */
uint32_t smp__boot(const struct cpu_topology *t, ap_fn_t fn, uint64_t timeout_us);

/* ---- entry points ---- */
/* The program: called on the BSP once the runtime is up. Returns the exit status. */
int guest_main(void);
/* BSP entry from start.S. */
void __noreturn rt__start(const void *zero_page);
/* AP entry from the trampoline (start.S: ap_entry64). */
void __noreturn rt__ap_start(uint32_t cpu_index);

#endif /* __ASSEMBLER__ */
#endif
