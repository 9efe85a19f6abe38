// The orchestrator's commands, listed once, and the main both of its executables run.
//
// The build makes two executables from this list. `orchestrator`, the control plane (data sets, plan, submit,
// status, resume, cancel, report), links no LibTorch: loading LibTorch's ~300 shared libraries and running their
// static initialisers costs every process 0.4-0.7 s, which a grid command at 100,000 runs cannot spare and a
// login node may not even have. `orchestrator-torch` has every command; `orchestrator` execs it, beside itself,
// for the commands that train or inspect networks (run, train, worker, calibrate, models, doctor). The exec keeps
// the process id, the arguments, the environment and the open files, so a Slurm task, the local pool and a shell
// see one process either way. Single-threaded: main's.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace orch::cli {

using CommandFn = int (*)(const Args&);

struct CommandInfo {
  const char* name;
  const char* summary;
  CommandFn run;  // nullptr: the command needs LibTorch and lives in orchestrator-torch
};

// Every command, in the order `orchestrator --help` lists them.
const std::vector<CommandInfo>& command_list();

// The file name of the LibTorch executable that `orchestrator` execs (beside itself).
const char* torch_executable_name();

// main() of either executable. `torch_commands` gives the functions of the commands listed without one
// (empty in `orchestrator`, which execs orchestrator-torch for them). Prints usage, an unknown command, and every
// error as one line on stderr; returns the exit status (core/exit_codes.h).
int run_main(int argc, char** argv, const std::map<std::string, CommandFn>& torch_commands);

}  // namespace orch::cli
