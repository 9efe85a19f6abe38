// The run store's job accounting (docs/control-plane.md, "Accounting"): each job as the scheduler accounted it,
// requeues included, which `status` reads to judge a run's job and the report's cost table sums. A part of the
// store (storage/store.h): its SQL and its one row mapper live here. Shares the Store's connection: use it from the
// thread that uses that Store.
#pragma once

#include <string>
#include <vector>

namespace orch {

class Store;

// A job as the scheduler accounted it (Slurm: sacct's rows, requeues included; local: the pool's workers).
struct JobAccount {
  std::string job_id, run_id, backend, state;
  double elapsed_s = 0;
  double gpus = 0;  // the job's GPUs (Slurm), or the worker's share of its GPU (local pool)
  std::string started, ended;
};

class AccountingTable {
 public:
  explicit AccountingTable(Store& store) : store_(store) {}
  void upsert(const std::vector<JobAccount>& rows);  // one transaction; a row of the same job, run and start replaced
  std::vector<JobAccount> of(const std::string& run_id = "");  // every run's when run_id is ""

 private:
  Store& store_;
};

}  // namespace orch
