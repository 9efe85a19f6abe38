#include "storage/provenance_table.h"

#include "storage/sqlite.h"
#include "storage/store.h"

namespace orch {

namespace {

// Rows of (a, b) pairs into a map: provenance keys and values, or run ids and one key's values.
std::map<std::string, std::string> pairs(sqlite::Statement& s) {
  std::map<std::string, std::string> out;
  while (s.row()) out[s.text(0)] = s.text(1);
  return out;
}

}  // namespace

void ProvenanceTable::set(const std::string& run_id, const std::map<std::string, std::string>& values) {
  store_.write([&] {
    sqlite::Statement s(store_.database(), "INSERT OR REPLACE INTO provenance(run_id, key, value) VALUES (?, ?, ?)");
    for (const auto& [k, v] : values) {
      s.reset();
      s.bind(1, run_id).bind(2, k).bind(3, v);
      s.run();
    }
  });
}

std::map<std::string, std::string> ProvenanceTable::of(const std::string& run_id) {
  sqlite::Statement s(store_.database(), "SELECT key, value FROM provenance WHERE run_id = ?");
  s.bind(1, run_id);
  return pairs(s);
}

std::map<std::string, std::map<std::string, std::string>> ProvenanceTable::all() {
  sqlite::Statement s(store_.database(), "SELECT run_id, key, value FROM provenance ORDER BY run_id");
  std::map<std::string, std::map<std::string, std::string>> out;
  auto at = out.end();
  while (s.row()) {
    const std::string_view run = s.text_view(0);
    if (at == out.end() || at->first != run) at = out.emplace_hint(out.end(), std::string(run), std::map<std::string, std::string>{});
    at->second[s.text(1)] = s.text(2);
  }
  return out;
}

std::map<std::string, std::string> ProvenanceTable::key_of_all(const std::string& key) {
  sqlite::Statement s(store_.database(), "SELECT run_id, value FROM provenance WHERE key = ?");
  s.bind(1, key);
  return pairs(s);
}

void ProvenanceTable::set_median_models(const std::string& experiment, const std::vector<MedianModel>& rows) {
  store_.write([&] {
    sqlite::Statement s(store_.database(),
                        "INSERT OR REPLACE INTO median_models(experiment, dataset, model, run_id, metric, score, n_seeds) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)");
    for (const auto& r : rows) {
      s.reset();
      s.bind(1, experiment).bind(2, r.dataset).bind(3, r.model).bind(4, r.run_id).bind(5, r.metric).bind(6, r.score);
      s.bind(7, static_cast<int64_t>(r.n_seeds));
      s.run();
    }
  });
}

}  // namespace orch
