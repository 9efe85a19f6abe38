// Users' documentation: docs/networks.md.
// The catalogue of networks: the one list of the paper's eleven configurations, without LibTorch, holding what
// the scheduler, the trainer, the report and the registry each need to know about a network: its paper name and
// the tables' Predict and Supervision columns, the network whose trained weights it starts from and in what role,
// where those weights sit in that network's checkpoint, the reference's learning-rate schedule, how it is
// evaluated and validated, and which network the paired tests compare every other with.
//
// Adding a network: one row here and one entry in models/registry.cpp (its factory, loss and criterion);
// tests/models check that the two lists agree (and add a twelfth network through add_network and add_model, the
// same two places). Read-only after start-up; thread-safe to read.
#pragma once

#include <deque>
#include <string>
#include <vector>

namespace orch::models {

enum class DependencyRole {
  kNone,
  kFrozenPretrained,  // a pretrained network, frozen inside this one (the joint networks' UNet): one per data set
  kFineTuneFrom,      // this network continues training that network's weights, seed by seed (Rasterize)
};

struct NetworkInfo {
  std::string id;            // registry id, e.g. "ours"
  std::string paper_name;    // the row of Tables 1-2, e.g. "Ours"
  std::string predicts;      // "point" or "dense"
  std::string supervision;   // "point", "dense" or "both"
  std::string dependency;    // id of the network whose trained weights it starts from, or ""
  DependencyRole role = DependencyRole::kNone;
  std::string weight_prefix; // the dependency's weights are its checkpoint's /parameters/<prefix>*
  int lr_step_epochs = 50;   // the reference's StepLR (spec §5)
  double lr_gamma = 0.9;
  bool evaluate_dense = false;  // test metrics from the argmax of its dense output (else from its points)
  std::string criterion_name;   // the validation criterion (spec §5)
  bool criterion_higher_is_better = false;
  bool paired_test_baseline = false;  // Table rows are tested against this network's median model
};

// In the paper's row order (then networks added with add_network). A deque: references to rows stay valid.
const std::deque<NetworkInfo>& network_catalogue();
// Adds a network after the paper's (a network of your own, or a test's): call before anything reads the
// catalogue from another thread. Throws InputError if the id is taken or malformed.
void add_network(NetworkInfo info);
// nullptr when unknown.
const NetworkInfo* find_network(const std::string& id);
// Throws InputError naming the id and listing the known ones.
const NetworkInfo& network_info(const std::string& id);
// The network the report's paired tests compare with (Ours).
const NetworkInfo& paired_test_baseline();
std::string known_network_list();  // "hybridgnet, hybridgnet_igsc, ..." for messages

}  // namespace orch::models
