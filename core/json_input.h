// JSON that a user wrote (experiment files, --set values, calibration imports), parsed with bounds: nesting at
// most kMaxJsonDepth levels, no key twice in one object, every number representable. A violation is an
// InputError naming the file, the field's path (datasets.synth_lh.size, seeds[3]) and what is wrong, never the
// JSON library's own text or a stack overflow. The parser is the library's (iterative); this only watches its
// events. Stateless; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace orch {

constexpr int kMaxJsonDepth = 256;

// Parses `text` (from `file`, for messages).
nlohmann::json parse_json_input(const std::string& text, const std::string& file);
// Reads and parses a file; a file that cannot be read is an InputError naming it and `what` it is.
nlohmann::json read_json_input(const std::string& path, const std::string& what);

}  // namespace orch
