#include "vmm/x86/emulate.h"

#include <stddef.h>

#define RFLAGS_CF (1ULL << 0)
#define RFLAGS_PF (1ULL << 2)
#define RFLAGS_AF (1ULL << 4)
#define RFLAGS_ZF (1ULL << 6)
#define RFLAGS_SF (1ULL << 7)
#define RFLAGS_OF (1ULL << 11)
#define RFLAGS_AC (1ULL << 18)

#define VECTOR_BP 3

/* General registers in ModRM/REX encoding order. */
static __u64 *gpr(struct kvm_regs *r, unsigned n)
{
	__u64 *const table[16] = {
		&r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp, &r->rsi, &r->rdi,
		&r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15,
	};

	return table[n & 15];
}

static unsigned emulate_int3(const uint8_t *insn, unsigned len, struct kvm_regs *regs, int *vector)
{
	(void)insn, (void)len, (void)regs;
	*vector = VECTOR_BP; /* a trap: the handler sees RIP after the int3 */
	return 1;
}

static unsigned emulate_clac(const uint8_t *insn, unsigned len, struct kvm_regs *regs, int *vector)
{
	(void)insn, (void)len, (void)vector;
	regs->rflags &= ~RFLAGS_AC;
	return 3;
}

static unsigned emulate_stac(const uint8_t *insn, unsigned len, struct kvm_regs *regs, int *vector)
{
	(void)insn, (void)len, (void)vector;
	regs->rflags |= RFLAGS_AC;
	return 3;
}

static unsigned emulate_fwait(const uint8_t *insn, unsigned len, struct kvm_regs *regs, int *vector)
{
	/* The guest's x87 state is untouched by the monitor: no unmasked exception can be pending. */
	(void)insn, (void)len, (void)regs, (void)vector;
	return 1;
}

/* popcnt r, r/m with a register operand: F3 [66] [REX] 0F B8 /r (mod == 3). */
static unsigned emulate_popcnt(const uint8_t *insn, unsigned len, struct kvm_regs *regs, int *vector)
{
	unsigned i = 1, size = 4, rex = 0, modrm, dst, src;
	uint64_t v;

	(void)vector;
	if (i < len && insn[i] == 0x66) {
		size = 2;
		i++;
	}
	if (i < len && (insn[i] & 0xf0) == 0x40)
		rex = insn[i++];
	if (rex & 0x8)
		size = 8;
	if (i + 3 > len || insn[i] != 0x0f || insn[i + 1] != 0xb8)
		return 0;
	modrm = insn[i + 2];
	if ((modrm >> 6) != 3)
		return 0;
	dst = ((modrm >> 3) & 7) | ((rex & 0x4) << 1);
	src = (modrm & 7) | ((rex & 0x1) << 3);
	v = *gpr(regs, src);
	if (size < 8)
		v &= (1ULL << (size * 8)) - 1;
	v = (uint64_t)__builtin_popcountll(v);
	if (size == 2)
		*gpr(regs, dst) = (*gpr(regs, dst) & ~0xffffULL) | v;
	else
		*gpr(regs, dst) = v; /* 32-bit results zero-extend */
	regs->rflags &= ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF);
	if (!v)
		regs->rflags |= RFLAGS_ZF;
	return i + 3;
}

typedef unsigned (*emulate_fn)(const uint8_t *insn, unsigned len, struct kvm_regs *regs,
			       int *vector);

/* Matched on the leading bytes; the handler returns the instruction length, 0 if it declines. */
static const struct {
	const char *name;
	uint8_t prefix[3];
	unsigned prefix_len;
	emulate_fn fn;
} insns[] = {
	{ "int3", { 0xcc }, 1, emulate_int3 },
	{ "clac", { 0x0f, 0x01, 0xca }, 3, emulate_clac },
	{ "stac", { 0x0f, 0x01, 0xcb }, 3, emulate_stac },
	{ "fwait", { 0x9b }, 1, emulate_fwait },
	{ "popcnt", { 0xf3 }, 1, emulate_popcnt },
};

const char *x86_emulate__insn(const uint8_t *insn, unsigned len, struct kvm_regs *regs, int *vector)
{
	struct kvm_regs tmp;
	unsigned i, j, n;

	for (i = 0; i < sizeof(insns) / sizeof(insns[0]); i++) {
		if (len < insns[i].prefix_len)
			continue;
		for (j = 0; j < insns[i].prefix_len && insn[j] == insns[i].prefix[j]; j++)
			;
		if (j < insns[i].prefix_len)
			continue;
		tmp = *regs;
		*vector = EMULATE_NO_EXCEPTION;
		n = insns[i].fn(insn, len, &tmp, vector);
		if (!n)
			continue;
		tmp.rip += n;
		*regs = tmp;
		return insns[i].name;
	}
	return NULL;
}
