// The readers of the LibTorch-free side under fuzzed files (tests/python/test_fuzz.py makes them): for each file,
// by the prefix of its name, a data set (DatasetReader, every sample read) or a predictions file
// (read_predictions). Prints one line per file: "ok" or "error: <message>"; exits 1 when an error message does not
// name the file. A crash (a signal) is the failure this driver exists to catch; it runs under AddressSanitizer and
// UndefinedBehaviorSanitizer in the sanitizer build (scripts/sanitize).
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "core/errors.h"
#include "storage/dataset_file.h"
#include "storage/h5.h"
#include "storage/predictions.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  orch::h5::quiet_errors();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a crash must not take the lines before it along
  int unnamed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string path = argv[i];
    const std::string name = fs::path(path).filename().string();
    try {
      if (name.rfind("dataset", 0) == 0) {
        orch::DatasetReader r(path);
        for (int k = 0; k < r.info().count; ++k) r.read(k);
      } else if (name.rfind("predictions", 0) == 0) {
        orch::read_predictions(path);
      } else {
        std::fprintf(stderr, "%s: not a dataset* or predictions* file\n", path.c_str());
        return 2;
      }
      std::printf("%s: ok\n", path.c_str());
    } catch (const std::exception& e) {
      const std::string m = e.what();
      std::printf("%s: error: %s\n", path.c_str(), orch::brief_reason(m).c_str());
      if (m.find(path) == std::string::npos) ++unnamed;
    }
  }
  std::fflush(stdout);
  return unnamed ? 1 : 0;
}
