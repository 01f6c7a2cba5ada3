/*
 * rtvmm bare-metal guest runtime: the contract between the small freestanding
 * runtime (console, ports, MMIO, IDT, LAPIC, SMP bring-up, zero page and
 * firmware-table parsing) and the programs built on it (the test program,
 * later the benchmark guests).
 *
 * Entered by the monitor in 64-bit long mode on the BSP, RSI = zero page,
 * interrupts off, identity map of 0..4 GiB (`_start`); or, under QEMU's
 * -kernel, through the PVH entry (pvh.S: 32-bit, paging off, EBX =
 * hvm_start_info), which builds the same identity map itself. Runs at CPL0. On the nested KVM
 * used for development CPL0 is emulated instruction by instruction: keep
 * kernel-mode code short; hot loops belong at CPL3 (user__init(),
 * user__call(): see "CPL3" below and user.c).
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
#define GDT_TSS            0x38   /* 16-byte TSS descriptors, one per CPU: GDT_TSS + 16 * cpu index */

/* How rt__start was entered (start.S, pvh.S): what its boot pointer is. */
#define BOOT_ZERO_PAGE     0      /* rtvmm (Linux 64-bit boot protocol): struct boot_params */
#define BOOT_PVH           1      /* PVH (QEMU -kernel, Xen HVM direct boot): struct hvm_start_info */

#define TRAMPOLINE_BASE    0x10000  /* AP real-mode entry; SIPI vector 0x10. Free per layout.h */
#define MAX_CPUS           64
#define STACK_SIZE         16384

#define VEC_TIMER          0x20
#define VEC_IPI            0x21
#define VEC_SPURIOUS       0xFF
#define VEC_INT80          0x80   /* DPL3 gate: software interrupt from CPL3 (test=cpl3) */
#define VEC_SYSCALL        0x100  /* trap_frame.vector of a SYSCALL (not an IDT vector) */

/* struct user_cpu, shared with user.S */
#define UCPU_SAVED_RSP     0      /* kernel RSP saved by user__enter */
#define UCPU_TSS           16
#define UCPU_TSS_RSP0      (UCPU_TSS + 4)
#define USER_STACK_SIZE    16384
/* struct user_entry (user.c), shared with user.S */
#define UENT_RIP           0
#define UENT_RSP           8
#define UENT_ARG0          16
#define UENT_ARG1          24
#define UENT_RFLAGS        32
#define UENT_SYSRET        40

/* Guest-physical layout (#defines only; the ULL constants are for C, PORT_* work in assembly too). */
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

#ifdef __ASSEMBLER__
/* General registers of struct trap_frame, in its order (rax pushed first, r15 last). */
.macro PUSH_GPRS
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
.endm

.macro POP_GPRS
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rbp
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rbx
	popq	%rax
.endm
#endif

#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


#define __noreturn  __attribute__((noreturn))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#define barrier()   __asm__ volatile("" ::: "memory")
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- port and MMIO accessors (each one is an exit unless the device is in-kernel) ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline uint8_t mmio_read8(uint64_t a)
{ uint8_t v; __asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory"); return v; }
static inline uint16_t mmio_read16(uint64_t a)
{ uint16_t v; __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline void mmio_write8(uint64_t a, uint8_t v)
{ __asm__ volatile("movb %0, (%1)" :: "q"(v), "r"(a) : "memory"); }
static inline void mmio_write16(uint64_t a, uint16_t v)
{ __asm__ volatile("movw %0, (%1)" :: "r"(v), "r"(a) : "memory"); }
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
static inline void write_cr3(uint64_t v) { __asm__ volatile("mov %0, %%cr3" :: "r"(v) : "memory"); }
static inline uint64_t read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint16_t read_cs(void) { uint16_t v; __asm__ volatile("mov %%cs, %0" : "=r"(v)); return v; }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
/* sti; hlt: the STI shadow makes the pair atomic, so a pending interrupt wakes the hlt. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt; cli" ::: "memory"); }

#define MSR_APIC_BASE      0x1B
#define MSR_SYSENTER_CS    0x174
#define MSR_SYSENTER_ESP   0x175
#define MSR_SYSENTER_EIP   0x176
#define MSR_EFER           0xC0000080
#define EFER_SCE           (1ull << 0)
#define MSR_STAR           0xC0000081
#define MSR_LSTAR          0xC0000082
#define MSR_CSTAR          0xC0000083
#define MSR_SFMASK         0xC0000084
#define MSR_GS_BASE        0xC0000101
#define MSR_KERNEL_GS_BASE 0xC0000102
#define MSR_TSC_DEADLINE   0x6E0

/* ---- console (test device putc; one exit per byte) and exit ----
 * Without the rtvmm test device (its magic port reads all-ones, e.g. under
 * QEMU) the console is COM1 and rt__exit prints "exit status N", writes N to
 * QEMU's isa-debug-exit port (PORT_DEBUG_EXIT: QEMU exits with 2N+1 when
 * `-device isa-debug-exit,iobase=0x501,iosize=1` is there) and halts.
 */
#define PORT_DEBUG_EXIT 0x501
/* Picks the console: the test device if its magic port answers, else COM1. First thing rt__start does. */
void console__init(void);
extern bool console_on_com1;
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
/* The same from a PVH struct hvm_start_info (version >= 1: memmap, cmdline); 0 or negative. */
int boot_info__parse_pvh(const void *start_info);
extern const char *boot_info_source;   /* "zero page" or "pvh start info" */
/* True if [addr, addr+len) lies in one E820_RAM entry. */
bool boot_info__e820_is_ram(uint64_t addr, uint64_t len);
/* Value of "key=value" on the cmdline (copied to buf), or NULL. "key" alone gives "". */
const char *boot_info__cmdline_get(const char *key, char *buf, size_t len);
/* Number "key=N" from the cmdline, DEF when absent; fails with STATUS when not a number. */
uint64_t boot_info__cmdline_u64(const char *key, uint64_t def, uint32_t status);
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
/* Points the IDT gate of `vector` at `entry` instead of its stub (no trap frame, no dispatcher). */
void cpu__set_gate_entry(unsigned vector, const void *entry);
/* Gate privilege: 3 lets CPL3 code reach `vector` with INT n (all gates start at DPL0). */
void cpu__set_gate_dpl(unsigned vector, unsigned dpl);
/* Handler of SYSCALL (trap_frame.vector = VEC_SYSCALL; RIP/RFLAGS/RSP in the frame are the caller's). */
void cpu__set_syscall_handler(trap_handler_t h);
/* What cpu__trap_dispatch does with a vector nobody handles: report registers, exit 110. */
void __noreturn cpu__trap_unexpected(struct trap_frame *f);
/* This CPU's TSS descriptor in the GDT: 16-byte system descriptor. */
void cpu__set_tss_desc(uint32_t cpu_index, uint64_t base, uint32_t limit);

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

/* ---- CPL3 (user mode): user.c, user.S ----
 *
 * The user region [__user_start, __user_end) (linker script: 2 MiB aligned,
 * after the image) holds user.S's user code (.user.text), user data
 * (.user.data) and one user stack per CPU; its 2 MiB pages have U=1, the rest
 * of memory is supervisor-only, so a transition that wrongly stays at CPL3
 * faults on the first kernel instruction. Write user code in assembly into
 * .user.text (C code would reach kernel .rodata and helpers).
 */
extern uint8_t __user_start[], __user_end[];
/*
 * C at CPL3: functions marked USER_TEXT are placed in .user.text, data marked
 * USER_BSS in .user.bss (user region, NOLOAD: zero when loaded, not zeroed by
 * _start). Such code must stay inside the user region: only USER_INLINE
 * helpers (always inlined), no calls to the runtime (memcpy, printf, even a
 * static inline of rt.h that gcc might not inline), no string literals or
 * tables (.rodata), no globals outside the region. The integration test
 * guest_user_code_stays_in_user_region checks the linked image for it.
 */
#define USER_TEXT   __attribute__((section(".user.text"), noinline))
#define USER_BSS    __attribute__((section(".user.bss")))
#define USER_INLINE static inline __attribute__((always_inline))
/* BSP, once, before smp__boot: page tables of the guest's own (identity 0..4 GiB, 2 MiB pages,
 * same caching as the monitor's) with U=1 on the user region; then user__init_cpu(0). */
void user__init(void);
/* This CPU: our CR3, TSS (TR), EFER.SCE, STAR/LSTAR/CSTAR/SFMASK, SYSENTER_CS/ESP/EIP. Once per CPU;
 * a no-op before user__init(). APs call it on start-up (rt__ap_start). */
void user__init_cpu(uint32_t cpu_index);
/* U=1 on the 2 MiB pages covering [addr, addr + len) (e.g. device MMIO a user loop polls). */
void user__map(uint64_t addr, uint64_t len);
/* Lets (or stops) CPL3 on this CPU use ports [port, port + count): TSS I/O bitmap, ports < USER_IO_PORTS. */
#define USER_IO_PORTS 0x1000
void user__allow_ports(uint16_t port, uint32_t count, bool allow);
#define USER_IOPL3   1u   /* RFLAGS.IOPL = 3 at CPL3: IN/OUT (and CLI/STI) allowed */
#define USER_SYSRET  2u   /* enter CPL3 with SYSRETQ instead of IRETQ */
#define USER_IF0     4u   /* RFLAGS.IF = 0 at CPL3 (default IF = 1) */
/*
 * Runs the user-region code at `entry` at CPL3 (RDI = arg0, RSI = arg1, RSP =
 * this CPU's user stack) until a CPL0 handler calls user__return(v) (the
 * VEC_USER_EXIT gate does with the user's RAX); returns v. Call with IF = 0.
 * Traps from CPL3 run on this call's kernel stack (TSS.RSP0).
 */
uint64_t user__call(const void *entry, uint64_t arg0, uint64_t arg1, unsigned flags);
/* From a CPL0 handler of a trap taken during user__call: abandons the trap, user__call returns v. */
void __noreturn user__return(uint64_t v);
/* user.S, .user.text: a ud2; `jmp user_exit` from CPL3 ends user__call with RAX. */
extern const uint8_t user_exit[];
/* cpu__trap_dispatch: #UD at user_exit. Records the last one, then user__return(f->rax). */
void __noreturn user__exit(struct trap_frame *f);
struct user_exit_info { uint32_t n; uint64_t frame_cs, handler_cs; };
extern volatile struct user_exit_info user_last_exit;
/* The CPU index user__init_cpu() gave this CPU (from TR); 0 before. */
uint32_t user__cpu_index(void);
/* Kernel entry points (MSR_LSTAR, MSR_SYSENTER_EIP) in user.S. */
extern const uint8_t syscall_entry[], sysenter_entry[];
/* SYSCALL returns with SYSRETQ when true, else with IRETQ (default: the frame is an IRET frame). */
extern volatile bool syscall_return_sysret;

/* ---- entry points ---- */
/* The program: called on the BSP once the runtime is up. Returns the exit status. */
int guest_main(void);
/* BSP entry from start.S: `boot` is a zero page (BOOT_ZERO_PAGE) or hvm_start_info (BOOT_PVH). */
void __noreturn rt__start(const void *boot, uint32_t kind);
/* AP entry from the trampoline (start.S: ap_entry64). */
void __noreturn rt__ap_start(uint32_t cpu_index);

#endif /* __ASSEMBLER__ */
#endif
