// orchestrator-torch: every orchestrator command, with LibTorch: what `orchestrator` execs for the commands that
// train or inspect networks (cli/dispatch.h). Run directly, it behaves as `orchestrator`.
#include "cli/dispatch.h"

int main(int argc, char** argv) {
  using namespace orch::cli;
  return run_main(argc, argv, {{"run", cmd_run}, {"models", cmd_models}, {"train", cmd_train}, {"worker", cmd_worker},
                               {"calibrate", cmd_calibrate}, {"doctor", cmd_doctor}});
}
