/*
 * repl.h - the interactive prompt of the lurk program.
 */
#ifndef LURK_CLI_REPL_H
#define LURK_CLI_REPL_H

#include "lurk.h"

/* Reads chunks from standard input and runs each as a task, with line
 * editing on a terminal. Returns the exit status: 1 if any chunk failed. */
int lurk_repl(struct lurk *l);

#endif

