#include "core/blas.h"

#include <link.h>
#include <limits.h>
#include <stdlib.h>

#include <string>

namespace orch {

namespace {

int visit(struct dl_phdr_info* info, size_t, void* data) {
  auto* found = static_cast<std::string*>(data);
  const std::string name = info->dlpi_name ? info->dlpi_name : "";
  const std::string base = name.substr(name.rfind('/') + 1);
  const bool blas = base.rfind("libblas.so", 0) == 0 || base.rfind("libopenblas", 0) == 0 ||
                    base.rfind("libmkl_rt", 0) == 0 || base.rfind("libmkl_core", 0) == 0;
  if (!blas) return 0;
  char real[PATH_MAX];
  *found = realpath(name.c_str(), real) ? std::string(real) : name;
  return 1;  // the first one is the one symbols resolve to
}

}  // namespace

std::string loaded_blas() {
  std::string found;
  dl_iterate_phdr(visit, &found);
  return found;
}

bool is_reference_blas(const std::string& path) {
  return path.find("/blas/libblas.so") != std::string::npos;
}

}  // namespace orch
