// The paper's published Tables 1-2 (report/paper_tables.json, embedded at build time).
#pragma once

#include <nlohmann/json.hpp>

namespace orch::report {
const nlohmann::json& paper_tables();
}
