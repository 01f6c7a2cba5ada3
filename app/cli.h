/* The rtvmm command line: subcommands, options, the user-facing report. */
#ifndef RTVMM_APP_CLI_H
#define RTVMM_APP_CLI_H

/* Runs `rtvmm ARGS...`; returns the process exit status. */
int cli__main(int argc, char **argv);

#endif
