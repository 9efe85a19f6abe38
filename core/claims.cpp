#include "core/claims.h"

#include <set>

#include "core/errors.h"
#include "core/names.h"

namespace orch {

using nlohmann::json;

namespace {


[[noreturn]] void fail(const std::string& file, const std::string& field, const json& v, const std::string& problem) {
  std::string text = v.is_null() ? "" : v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  throw InputError(file, field, text, problem);
}

std::string text_field(const json& c, const std::string& key, const std::string& file, const std::string& w, bool required) {
  if (!c.contains(key)) {
    if (required) fail(file, w + "." + key, json(), "missing required field");
    return "";
  }
  if (!c[key].is_string() || c[key].get<std::string>().empty()) fail(file, w + "." + key, c[key], "expected a non-empty string");
  return c[key];
}

std::vector<std::string> names(const json& c, const std::string& key, const std::string& file, const std::string& w,
                               bool required) {
  std::vector<std::string> out;
  if (!c.contains(key)) {
    if (required) fail(file, w + "." + key, json(), "missing required field");
    return out;
  }
  const json& v = c[key];
  if (!v.is_array() || (required && v.empty())) fail(file, w + "." + key, v, "expected a non-empty list of names");
  for (const auto& e : v) {
    if (!e.is_string()) fail(file, w + "." + key, e, "expected a name");
    if (std::string bad = name_problem(e.get<std::string>()); !bad.empty()) fail(file, w + "." + key, e, bad);
    out.push_back(e);
  }
  return out;
}

ClaimSpec claim_from_json(const json& c, const std::string& file, const std::string& w) {
  if (!c.is_object()) fail(file, w, c, "expected an object");
  for (auto it = c.begin(); it != c.end(); ++it)
    if (!std::set<std::string>{"id", "text", "source", "kind", "better", "than", "metrics", "datasets", "margin"}.count(it.key()))
      fail(file, w + "." + it.key(), it.value(), "unknown field (expected id, text, source, kind, better, than, metrics, datasets, margin)");
  ClaimSpec s;
  s.id = text_field(c, "id", file, w, true);
  if (std::string bad = name_problem(s.id); !bad.empty()) fail(file, w + ".id", c["id"], bad);
  s.text = text_field(c, "text", file, w, true);
  s.source = text_field(c, "source", file, w, false);
  if (c.contains("kind")) {
    auto k = c["kind"].is_string() ? choice_from<ClaimKind>(c["kind"].get<std::string>()) : std::nullopt;
    if (!k) fail(file, w + ".kind", c["kind"], choice_expectation<ClaimKind>());
    s.kind = *k;
  }
  s.better = names(c, "better", file, w, true);
  s.than = names(c, "than", file, w, true);
  for (const auto& m : names(c, "metrics", file, w, true)) {
    auto metric = choice_from<Metric>(m);
    if (!metric) fail(file, w + ".metrics", m, choice_expectation<Metric>());
    s.metrics.push_back(*metric);
  }
  s.datasets = names(c, "datasets", file, w, false);
  if (c.contains("margin")) {
    if (!c["margin"].is_object()) fail(file, w + ".margin", c["margin"], "expected an object metric -> margin");
    for (auto it = c["margin"].begin(); it != c["margin"].end(); ++it) {
      auto metric = choice_from<Metric>(it.key());
      if (!metric) fail(file, w + ".margin." + it.key(), it.value(), "not a metric");
      if (!it.value().is_number() || !(it.value().get<double>() >= 0)) fail(file, w + ".margin." + it.key(), it.value(), "expected a number >= 0");
      s.margin[*metric] = it.value();
    }
  }
  if (s.kind == ClaimKind::kSimilar)
    for (const auto& m : s.metrics)
      if (!s.margin.count(m))
        fail(file, w + ".margin", c.value("margin", json()), std::string("a \"similar\" claim needs a margin for ") + choice_name(m));
  return s;
}

}  // namespace

std::vector<ClaimSpec> claims_from_json(const json& list, const std::string& file, const std::string& where) {
  if (!list.is_array()) fail(file, where, list, "expected a list of claims");
  std::vector<ClaimSpec> out;
  std::set<std::string> ids;
  for (size_t i = 0; i < list.size(); ++i) {
    out.push_back(claim_from_json(list[i], file, where + "[" + std::to_string(i) + "]"));
    if (!ids.insert(out.back().id).second) fail(file, where + "[" + std::to_string(i) + "].id", out.back().id, "listed twice");
  }
  return out;
}

}  // namespace orch
