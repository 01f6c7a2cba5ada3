/*
 * A whole host plan as processes: `rtvmm up` starts the plan's dataplane and one `rtvmm run`
 * per VM under a run directory (their logs, API sockets and a state file), waits until each VM
 * says Running with its placement proven and prints one table; `rtvmm ctl list` prints it again
 * from the state file and the VMs' APIs; `rtvmm down` stops them (power button first).
 */
#ifndef RTVMM_APP_UP_H
#define RTVMM_APP_UP_H

/* rtvmm up HOSTPLAN.yaml [--run-dir DIR] [--timeout S]; returns the exit status. */
int up__cmd_up(int argc, char **argv);

/* rtvmm down [HOSTPLAN.yaml | --run-dir DIR] [--timeout S]; returns the exit status. */
int up__cmd_down(int argc, char **argv);

/* rtvmm ctl list [--run-dir DIR] [--json]; returns the exit status. */
int up__cmd_list(int argc, char **argv);

#endif
