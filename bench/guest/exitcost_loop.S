/*
 * uint64_t exitcost_run(const struct exitcost_args *a) (exitcost.h): the
 * exit-cost timing loop. One source, assembled into the bare-metal guest
 * (.user.text: callable at CPL0 and, through a user__call, at CPL3) and into
 * rtvmm-kvm-floor (as bytes it copies into its own VM), so rtvmm and the
 * raw-KVM floor time the same instructions. Position independent, no stack
 * use (only the return address), System V calling convention, caller-saved
 * registers only.
 *
 * Timed window of a PIO round trip, rdtsc to rdtsc:
 *     movl %eax,%r10d; movl %esi,%edx; inl %dx,%eax; movl %eax,%r9d; rdtsc
 * the MMIO one the same with `movl (%rsi),%eax`, and EXITCOST_NONE the same
 * without the access (what the timing itself costs). No fences: the access
 * exits to the hypervisor, which serializes.
 */
#include "exitcost.h"

#ifdef EXITCOST_FLOOR
	.section .rodata.exitcost, "a"
#else
	.section .user.text, "ax"
#endif
	.code64

/* One timed round trip of ACCESS (clobbers eax, edx), its delta stored; r11 counts bad reads. */
.macro ROUND_TRIP access, done
1:	rdtsc
	movl	%eax, %r10d
	movl	%esi, %edx
	\access
	movl	%eax, %r9d
	rdtsc
	subl	%r10d, %eax
	movl	%eax, (%r8)
	addq	$4, %r8
	cmpl	%edi, %r9d
	je	2f
	incq	%r11
2:	decq	%rcx
	jnz	1b
	jmp	\done
.endm

	.globl exitcost_run, exitcost_run_end
exitcost_run:
	movq	EC_SAMPLES(%rdi), %r8
	movq	EC_COUNT(%rdi), %rcx
	movq	EC_ADDR(%rdi), %rsi
	movl	EC_KIND(%rdi), %eax
	movl	EC_EXPECT(%rdi), %edi
	xorl	%r11d, %r11d
	testq	%rcx, %rcx
	jz	exitcost_done
	cmpl	$EXITCOST_PIO, %eax
	je	exitcost_pio
	cmpl	$EXITCOST_MMIO, %eax
	je	exitcost_mmio
	ROUND_TRIP "", exitcost_none_done
exitcost_pio:
	ROUND_TRIP "inl %dx, %eax", exitcost_done
exitcost_mmio:
	ROUND_TRIP "movl (%rsi), %eax", exitcost_done
exitcost_none_done:
	xorl	%r11d, %r11d		/* nothing was read */
exitcost_done:
	movq	%r11, %rax
	ret
exitcost_run_end:

#ifdef EXITCOST_FLOOR
/*
 * rtvmm-kvm-floor only: the return address of its vCPU's call into
 * exitcost_run. Reports the bad-read count on the done port (EDX), forever.
 */
	.globl exitcost_floor_done, exitcost_floor_end
exitcost_floor_done:
	movl	%r12d, %edx
	outl	%eax, %dx
	jmp	exitcost_floor_done
exitcost_floor_end:
#endif

	.section .note.GNU-stack, "", @progbits
