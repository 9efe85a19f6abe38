// Train/val/test split lists.
//
// A split folder holds one list per split, named train/val/test with the suffix .txt, _list.txt or
// _files.txt (the layouts of synth, of the reference's per-source lists and of its JSRT_Padchest union).
// One id per line; a file extension (.IMG, .png, .npy, ...) is dropped, blank lines are skipped. Several
// folders merge (Montgomery + Shenzhen). An id listed twice is an InputError naming both files. Stateless.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "storage/dataset_file.h"

namespace orch {

std::map<std::string, Split> read_split_dirs(const std::vector<std::string>& dirs);

// A seeded 70/15/15 split of `ids` (at least one each when there are 3 or more).
std::map<std::string, Split> seeded_split(const std::vector<std::string>& ids, uint64_t seed);

// The file name without folder and without its last extension.
std::string id_from_filename(const std::string& name);

}  // namespace orch
