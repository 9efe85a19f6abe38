#include "core/json_input.h"

#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "core/errors.h"

namespace orch {

using nlohmann::json;

namespace {

// Where the parser is: one frame per open object or array, for the path of the value being read.
class Position {
 public:
  explicit Position(const std::string& file) : file_(file) {}

  bool on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (frames_.size() >= static_cast<size_t>(kMaxJsonDepth))
          throw InputError(file_, path(), "", "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        frames_.push_back({event == json::parse_event_t::object_start, {}, "", 0});
        break;
      case json::parse_event_t::key: {
        Frame& f = frames_.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second)
          throw InputError(file_, path(), "", "the key is given twice in one object (each key once)");
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames_.pop_back();
        value_done();
        break;
      case json::parse_event_t::value:
        value_done();
        break;
    }
    return true;
  }

  // The path of the value being read: a.b[2].c
  std::string path() const {
    std::string p;
    for (const auto& f : frames_) {
      if (f.object) {
        if (!f.key.empty()) p += (p.empty() ? "" : ".") + f.key;
      } else {
        p += "[" + std::to_string(f.index) + "]";
      }
    }
    if (p.size() > 160) p = p.substr(0, 157) + "...";
    return p.empty() ? "(top level)" : p;
  }

 private:
  struct Frame {
    bool object;
    std::set<std::string> keys;
    std::string key;
    size_t index;
  };
  void value_done() {
    if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
  }
  const std::string& file_;
  std::vector<Frame> frames_;
};

}  // namespace

json parse_json_input(const std::string& text, const std::string& file) {
  Position pos(file);
  try {
    return json::parse(text, [&pos](int, json::parse_event_t e, json& parsed) { return pos.on_event(e, parsed); });
  } catch (const json::out_of_range&) {
    throw InputError(file, pos.path(), "", "a number out of range (beyond a double or a 64-bit integer)");
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (auto k = what.find("] "); k != std::string::npos) what = what.substr(k + 2);  // drop "[json.exception...]"
    throw InputError(file, "", "", "invalid JSON: " + what);
  }
}

json read_json_input(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "", "cannot open " + what);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(path, "", "", "cannot read " + what);
  return parse_json_input(text.str(), path);
}

}  // namespace orch
