/* The benchmark modes of the guest: test=exitcost (test_exitcost.c), test=timerlat (test_timerlat.c). */
#ifndef RTVMM_GUEST_TEST_BENCH_H
#define RTVMM_GUEST_TEST_BENCH_H

#define ST_EXITCOST 109   /* exit status of a failed test=exitcost */
#define ST_TIMERLAT 113   /* exit status of a failed test=timerlat */

/* Times PIO and MMIO round trips to the test device at CPL0 and CPL3; one line per (kind, cpl). */
void check_exitcost(void);
/* TSC-deadline wake-up latency from `sti; hlt` at CPL0, cyclictest-style; summary and histogram lines. */
void check_timerlat(void);

#endif
