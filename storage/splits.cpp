#include "storage/splits.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/errors.h"
#include "core/rng.h"

namespace orch {

namespace fs = std::filesystem;

std::string id_from_filename(const std::string& name) {
  std::string base = fs::path(name).filename().string();
  auto dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

std::map<std::string, Split> read_split_dirs(const std::vector<std::string>& dirs) {
  std::map<std::string, Split> out;
  std::map<std::string, std::string> origin;
  for (const auto& dir : dirs) {
    if (!fs::is_directory(dir)) throw InputError(dir, "--splits", dir, "not a folder");
    int found = 0;
    for (Split s : {Split::kTrain, Split::kVal, Split::kTest}) {
      std::string file;
      for (const char* suffix : {".txt", "_list.txt", "_files.txt"}) {
        std::string cand = (fs::path(dir) / (std::string(split_name(s)) + suffix)).string();
        if (fs::exists(cand)) {
          if (!file.empty()) throw InputError(dir, "--splits", cand, "two lists for the same split (also " + file + ")");
          file = cand;
        }
      }
      if (file.empty()) continue;
      ++found;
      std::ifstream in(file);
      if (!in) throw InputError(file, "", "", "cannot read split list");
      std::string line;
      int lineno = 0;
      while (std::getline(in, line)) {
        ++lineno;
        line.erase(line.find_last_not_of(" \t\r\n") + 1);
        line.erase(0, line.find_first_not_of(" \t"));
        if (line.empty()) continue;
        std::string id = id_from_filename(line);
        auto it = origin.find(id);
        if (it != origin.end())
          throw InputError(file, "line " + std::to_string(lineno), id, "id already listed in " + it->second);
        origin[id] = file;
        out[id] = s;
      }
    }
    if (found == 0)
      throw InputError(dir, "--splits", dir, "no split lists (expected train/val/test with .txt, _list.txt or _files.txt)");
  }
  return out;
}

std::map<std::string, Split> seeded_split(const std::vector<std::string>& ids_in, uint64_t seed) {
  std::vector<std::string> ids = ids_in;
  std::sort(ids.begin(), ids.end());
  Rng rng = Rng::derive(seed, {0x73706c6974ULL});
  for (size_t i = ids.size(); i > 1; --i) std::swap(ids[i - 1], ids[static_cast<size_t>(rng.randint(0, i))]);
  size_t n = ids.size();
  size_t val = n >= 3 ? std::max<size_t>(1, static_cast<size_t>(std::lround(0.15 * n))) : 0;
  size_t test = n >= 3 ? std::max<size_t>(1, static_cast<size_t>(std::lround(0.15 * n))) : 0;
  std::map<std::string, Split> out;
  for (size_t i = 0; i < n; ++i)
    out[ids[i]] = i < n - val - test ? Split::kTrain : (i < n - test ? Split::kVal : Split::kTest);
  return out;
}

}  // namespace orch
