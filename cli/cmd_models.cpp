// models: the registry's networks with parameter counts and output shapes.
#include <torch/torch.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/options.h"
#include "models/registry.h"

namespace orch::cli {

int cmd_models(const Args& args) {
  po::options_description desc("orchestrator models");
  std::string dataset = "lh";
  int size = 1024;
  bool json = false;
  desc.add_options()
      ("dataset", po::value(&dataset)->default_value("lh"), "lh (lungs and heart) or l (lungs only)")
      ("size", po::value(&size)->default_value(1024), "input size in pixels (a multiple of 32)")
      ("json", po::bool_switch(&json), "print a JSON list");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator models --dataset lh|l --size PX [--json]")) return 0;
  models::ModelConfig cfg;
  cfg.kind = parse_kind(dataset, "--dataset");
  cfg.size = size;
  cfg.validate();
  torch::NoGradGuard no_grad;
  nlohmann::json list = nlohmann::json::array();
  if (!json)
    std::printf("%-18s %-17s %-7s %-11s %-16s %12s %12s  %s\n", "id", "paper row", "predict", "supervision",
                "needs", "trainable", "frozen", "outputs (batch 1)");
  for (const auto& e : models::model_registry()) {
    models::ModelConfig c = models::resolve_config(e, cfg);
    auto net = models::instantiate(e, c);
    auto counts = models::count_parameters(*net);
    // The structure of the outputs from a forward pass at 64 px; spatial sizes scale with the input.
    models::ModelConfig small = c;
    small.size = 64;
    auto probe = models::instantiate(e, small);
    probe->eval();
    models::Prediction p = probe->predict(torch::zeros({1, 1, 64, 64}));
    nlohmann::json outputs = nlohmann::json::array();
    std::string text;
    for (size_t i = 0; i < p.points.size(); ++i) {
      std::vector<int64_t> s = p.points[i].sizes().vec();
      outputs.push_back({{"name", "points" + std::to_string(i) + (p.coarse[i] ? " (coarse)" : "")}, {"shape", s}});
      text += (text.empty() ? "" : " ") + std::string("P") + std::to_string(s[1]) + "x2";
    }
    for (size_t i = 0; i < p.dense.size(); ++i) {
      std::vector<int64_t> s = {1, p.dense[i].size(1), size, size};
      outputs.push_back({{"name", "dense" + std::to_string(i)}, {"shape", s}});
      text += (text.empty() ? "" : " ") + std::string("D") + std::to_string(s[1]) + "x" + std::to_string(size) + "x" +
              std::to_string(size);
    }
    list.push_back({{"id", e.id}, {"paper_name", e.info->paper_name}, {"predicts", e.info->predicts}, {"supervision", e.info->supervision},
                    {"dependency", e.info->dependency}, {"latents", e.default_latents(c.kind) ? c.latents : 0},
                    {"trainable", counts.trainable}, {"frozen", counts.frozen}, {"outputs", outputs}});
    if (!json)
      std::printf("%-18s %-17s %-7s %-11s %-16s %12lld %12lld  %s\n", e.id.c_str(), e.info->paper_name.c_str(),
                  e.info->predicts.c_str(), e.info->supervision.c_str(), e.info->dependency.empty() ? "-" : e.info->dependency.c_str(),
                  static_cast<long long>(counts.trainable), static_cast<long long>(counts.frozen), text.c_str());
  }
  if (json) std::printf("%s\n", list.dump(1).c_str());
  return 0;
}

}  // namespace orch::cli
