// orchestrator: runs, resumes and reports the experiments of "Joint Dense-Point Representation for
// Contour-Aware Graph Segmentation" (Bransby et al., MICCAI 2023). The control plane, without LibTorch: the
// commands that need it run in orchestrator-torch (cli/dispatch.h).
#include "cli/dispatch.h"

int main(int argc, char** argv) { return orch::cli::run_main(argc, argv, {}); }
