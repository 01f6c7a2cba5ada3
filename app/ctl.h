/* `rtvmm ctl SOCKET VERB [--json]`: the control API for people (virsh-like text) and scripts. */
#ifndef RTVMM_APP_CTL_H
#define RTVMM_APP_CTL_H

/* Runs `ctl ARGS...` (argv[0] is "ctl"); returns the process exit status. */
int ctl__main(int argc, char **argv);

#endif
