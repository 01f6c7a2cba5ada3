/* `rtvmm-dataplane run`: the switch (xconnect or l2switch) between vhost-user and other ports. */
#ifndef RTVMM_DATAPLANE_SWITCH_H
#define RTVMM_DATAPLANE_SWITCH_H

struct dp_config;

/* Builds the dataplane of c, polls until SIGINT/SIGTERM, prints a summary; the exit status. */
int dp_switch__run(const struct dp_config *c);

#endif
