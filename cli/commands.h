// The `orchestrator` subcommands. Each takes its arguments after the subcommand name and returns an exit code;
// InputError propagates to main, which prints it and exits with kExitInputError.
#pragma once

#include <string>
#include <vector>

namespace orch::cli {

using Args = std::vector<std::string>;

int cmd_synth(const Args& args);
int cmd_prepare(const Args& args);
int cmd_preview(const Args& args);
int cmd_run(const Args& args);
int cmd_models(const Args& args);
int cmd_train(const Args& args);
int cmd_worker(const Args& args);
int cmd_plan(const Args& args);
int cmd_submit(const Args& args);
int cmd_status(const Args& args);
int cmd_resume(const Args& args);
int cmd_cancel(const Args& args);
int cmd_report(const Args& args);
int cmd_calibrate(const Args& args);
int cmd_doctor(const Args& args);

}  // namespace orch::cli
