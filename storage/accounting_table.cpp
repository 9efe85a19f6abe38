#include "storage/accounting_table.h"

#include "storage/sqlite.h"
#include "storage/store.h"

namespace orch {

namespace {

constexpr const char* kColumns = "job_id, run_id, backend, state, elapsed_s, gpus, started, ended";

JobAccount from_row(sqlite::Statement& s) {
  return {s.text(0), s.text(1), s.text(2), s.text(3), s.real_or(4, 0), s.real_or(5, 0), s.text(6), s.text(7)};
}

}  // namespace

void AccountingTable::upsert(const std::vector<JobAccount>& rows) {
  store_.write([&] {
    sqlite::Statement s(store_.database(),
                        std::string("INSERT OR REPLACE INTO job_accounts(") + kColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    for (const auto& r : rows) {
      s.reset();
      s.bind(1, r.job_id).bind(2, r.run_id).bind(3, r.backend).bind(4, r.state).bind(5, r.elapsed_s).bind(6, r.gpus);
      s.bind(7, r.started).bind(8, r.ended);
      s.run();
    }
  });
}

std::vector<JobAccount> AccountingTable::of(const std::string& run_id) {
  sqlite::Statement s(store_.database(), std::string("SELECT ") + kColumns +
                                             " FROM job_accounts WHERE ? = '' OR run_id = ? ORDER BY started, job_id");
  s.bind(1, run_id).bind(2, run_id);
  std::vector<JobAccount> out;
  while (s.row()) out.push_back(from_row(s));
  return out;
}

}  // namespace orch
