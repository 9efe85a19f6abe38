// orchestrator: runs, resumes and reports the experiments of "Joint Dense-Point Representation for
// Contour-Aware Graph Segmentation" (Bransby et al., MICCAI 2023).
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <map>

#include "cli/commands.h"
#include "core/allocator.h"
#include "core/errors.h"

namespace {

struct Command {
  const char* summary;
  std::function<int(const orch::cli::Args&)> run;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> c = {
      {"run", {"the main job: prepare data, train every run (local pool), report Tables 1-2 and figures", orch::cli::cmd_run}},
      {"synth", {"write a synthetic chest X-ray data set in the public layout", orch::cli::cmd_synth}},
      {"prepare", {"landmarks and images into one HDF5 data set with masks and distance maps", orch::cli::cmd_prepare}},
      {"models", {"list the networks with parameter counts and output shapes", orch::cli::cmd_models}},
      {"train", {"train and evaluate one run of an experiment in the foreground", orch::cli::cmd_train}},
      {"worker", {"run one run the store describes (what a scheduled job executes)", orch::cli::cmd_worker}},
      {"plan", {"list an experiment's runs, their state and what submit would do", orch::cli::cmd_plan}},
      {"submit", {"submit the runs that are not done (local pool, or Slurm job arrays)", orch::cli::cmd_submit}},
      {"status", {"runs per state, per network and data set, with progress and errors", orch::cli::cmd_status}},
      {"resume", {"resubmit failed, cancelled, timed-out or lost runs (they continue from checkpoints)", orch::cli::cmd_resume}},
      {"cancel", {"cancel queued and running runs (they checkpoint first)", orch::cli::cmd_cancel}},
      {"calibrate", {"time a few steps of each network here, for plan --estimate and time \"auto\"", orch::cli::cmd_calibrate}},
      {"report", {"Tables 1-2, median models, paired tests and figures from the store", orch::cli::cmd_report}},
      {"preview", {"draw a preview PNG of a prepared data set", orch::cli::cmd_preview}},
      {"doctor", {"what this build has and finds here: LibTorch, CUDA, GPUs, NCCL, MPI, BLAS, libraries", orch::cli::cmd_doctor}},
  };
  return c;
}

void usage(FILE* out) {
  std::fprintf(out, "usage: orchestrator COMMAND [options]   (orchestrator COMMAND --help for its options)\n\ncommands:\n");
  for (const auto& [name, c] : commands()) std::fprintf(out, "  %-10s %s\n", name.c_str(), c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  orch::tune_allocator();  // see core/allocator.h
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage(stdout);
    return argc < 2 ? orch::kExitInputError : orch::kExitOk;
  }
  auto it = commands().find(argv[1]);
  if (it == commands().end()) {
    std::fprintf(stderr, "orchestrator: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return orch::kExitInputError;
  }
  orch::cli::Args args(argv + 2, argv + argc);
  try {
    return it->second.run(args);
  } catch (const orch::InputError& e) {
    std::fprintf(stderr, "orchestrator %s: error: %s\n", argv[1], e.what());  // our own words, whole
    return orch::kExitInputError;
  } catch (const orch::BusyError& e) {
    std::fprintf(stderr, "orchestrator %s: busy: %s\n", argv[1], e.what());
    return orch::kExitBusy;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orchestrator %s: failed: %s\n", argv[1], orch::brief_reason(e.what(), 4000).c_str());
    return orch::kExitFailure;
  } catch (...) {
    std::fprintf(stderr, "orchestrator %s: failed: an unknown error\n", argv[1]);
    return orch::kExitFailure;
  }
}
