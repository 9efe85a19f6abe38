// The checkpoint reader under fuzzed files (tests/python/test_fuzz.py makes them from a checkpoint of HybridGNet
// at 64 px, lungs and heart): verify_checkpoint(), then load_checkpoint() into a fresh network and optimizer.
// Prints one line per file, "ok" or "error: <message>"; exits 1 when an error message does not name the file, or
// when a refused load changed the network (nothing may be modified then).
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "core/errors.h"
#include "models/registry.h"
#include "runner/checkpoint.h"
#include "storage/h5.h"

int main(int argc, char** argv) {
  orch::h5::quiet_errors();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a crash must not take the lines before it along
  using namespace orch;
  models::ModelConfig c;
  c.kind = DatasetKind::kLungsHeart;
  c.size = 64;
  auto net = models::create_model("hybridgnet", c);
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(1e-4));
  int bad = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string path = argv[i];
    std::vector<torch::Tensor> before;
    for (const auto& p : net->parameters()) before.push_back(p.detach().clone());
    try {
      std::string why;
      if (!runner::verify_checkpoint(path, &why)) throw Error(path + ": " + why);
      runner::load_checkpoint(path, *net, adam);
      std::printf("%s: ok\n", path.c_str());
    } catch (const std::exception& e) {
      const std::string m = e.what();
      std::printf("%s: error: %s\n", path.c_str(), brief_reason(m).c_str());
      if (m.find(path) == std::string::npos) ++bad;
      auto after = net->parameters();
      for (size_t k = 0; k < before.size(); ++k)
        if (!torch::equal(before[k], after[k])) {
          std::printf("%s: a refused checkpoint changed parameter %zu\n", path.c_str(), k);
          ++bad;
          break;
        }
    }
  }
  std::fflush(stdout);
  return bad ? 1 : 0;
}
