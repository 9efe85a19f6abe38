#include "cli/dispatch.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>

#include "core/allocator.h"
#include "core/errors.h"

namespace orch::cli {

namespace fs = std::filesystem;

const std::vector<CommandInfo>& command_list() {
  static const std::vector<CommandInfo> c = {
      {"run", "the main job: prepare data, train every run (local pool), report Tables 1-2 and figures", nullptr},
      {"synth", "write a synthetic chest X-ray data set in the public layout", cmd_synth},
      {"prepare", "landmarks and images into one HDF5 data set with masks and distance maps", cmd_prepare},
      {"preview", "draw a preview PNG of a prepared data set", cmd_preview},
      {"models", "list the networks with parameter counts and output shapes", nullptr},
      {"train", "train and evaluate one run of an experiment in the foreground", nullptr},
      {"worker", "run one run the store describes (what a scheduled job executes)", nullptr},
      {"plan", "list an experiment's runs, their state and what submit would do", cmd_plan},
      {"submit", "submit the runs that are not done (local pool, or Slurm job arrays)", cmd_submit},
      {"status", "runs per state, per network and data set, with progress and errors", cmd_status},
      {"resume", "resubmit failed, cancelled, timed-out or lost runs (they continue from checkpoints)", cmd_resume},
      {"cancel", "cancel queued and running runs (they checkpoint first)", cmd_cancel},
      {"calibrate", "time a few steps of each network here, for plan --estimate and time \"auto\"", nullptr},
      {"report", "Tables 1-2, median models, paired tests and figures from the store", cmd_report},
      {"doctor", "what this build has and finds here: LibTorch, CUDA, GPUs, NCCL, MPI, BLAS, libraries", nullptr},
  };
  return c;
}

const char* torch_executable_name() { return ORCH_TORCH_EXECUTABLE; }

namespace {

void usage(FILE* out) {
  std::fprintf(out, "usage: orchestrator COMMAND [options]   (orchestrator COMMAND --help for its options)\n\ncommands:\n");
  for (const auto& c : command_list()) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
}

// Replaces this process with orchestrator-torch beside it, same arguments; returns only when that fails.
int exec_torch(char** argv) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  const fs::path torch = (ec ? fs::path(argv[0]).parent_path() : self.parent_path()) / torch_executable_name();
  const std::string path = torch.string();
  argv[0] = const_cast<char*>(path.c_str());
  ::execv(path.c_str(), argv);
  std::fprintf(stderr,
               "orchestrator %s: failed: this command needs LibTorch, in %s beside this orchestrator, which could not be "
               "run: %s (a build with LibTorch makes both in its cli/ folder: scripts/setup)\n",
               argv[1], path.c_str(), std::strerror(errno));
  return kExitFailure;
}

int run_command(const char* name, CommandFn fn, const Args& args) {
  try {
    return fn(args);
  } catch (const InputError& e) {
    std::fprintf(stderr, "orchestrator %s: error: %s\n", name, e.what());  // our own words, whole
    return kExitInputError;
  } catch (const BusyError& e) {
    std::fprintf(stderr, "orchestrator %s: busy: %s\n", name, e.what());
    return kExitBusy;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orchestrator %s: failed: %s\n", name, brief_reason(e.what(), 4000).c_str());
    return kExitFailure;
  } catch (...) {
    std::fprintf(stderr, "orchestrator %s: failed: an unknown error\n", name);
    return kExitFailure;
  }
}

}  // namespace

int run_main(int argc, char** argv, const std::map<std::string, CommandFn>& torch_commands) {
  tune_allocator();  // see core/allocator.h
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage(stdout);
    return argc < 2 ? kExitInputError : kExitOk;
  }
  const CommandInfo* info = nullptr;
  for (const auto& c : command_list())
    if (!std::strcmp(c.name, argv[1])) info = &c;
  if (!info) {
    std::fprintf(stderr, "orchestrator: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return kExitInputError;
  }
  CommandFn fn = info->run;
  if (!fn) {
    auto it = torch_commands.find(info->name);
    if (it == torch_commands.end()) return exec_torch(argv);
    fn = it->second;
  }
  return run_command(argv[1], fn, Args(argv + 2, argv + argc));
}

}  // namespace orch::cli
