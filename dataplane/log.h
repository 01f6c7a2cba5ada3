/* The dataplane's event lines on stdout, prefixed with the program's name; never per packet. */
#ifndef RTVMM_DATAPLANE_LOG_H
#define RTVMM_DATAPLANE_LOG_H

#define DP_PROG "rtvmm-dataplane"

/* One event line: "rtvmm-dataplane: port 0 (vm.net0): link up", flushed at once. */
__attribute__((format(printf, 1, 2)))
void dp_log(const char *fmt, ...);

#endif
