/* test=cpl3 (test_cpl3.c): CPL3 <-> CPL0 transitions on this host. */
#ifndef RTVMM_GUEST_TEST_CPL3_H
#define RTVMM_GUEST_TEST_CPL3_H

#include <stdbool.h>
#include <stdint.h>

#define ST_CPL3 107

/* Runs every check, prints one line each; returns 0 or fails with ST_CPL3. */
int check_cpl3(void);
/* On an AP started after check_cpl3: one CPL3 round trip on this CPU's TSS and user stack. */
bool cpl3_ap_check(uint32_t cpu_index);
extern bool cpl3_done;

#endif
