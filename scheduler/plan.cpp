#include "scheduler/plan.h"

#include <signal.h>
#include <unistd.h>

#include <map>
#include <set>

namespace orch::scheduler {

namespace {

std::string this_host() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string key_of(const RunSettings& s) {
  return s.dataset + "/" + s.model + "/" + std::to_string(s.seed) + "/" + s.stage;
}

}  // namespace

bool local_job_gone(const std::string& job) {
  if (job.rfind("local:", 0) != 0) return false;
  auto at = job.find('@');
  if (at == std::string::npos) return false;
  if (job.substr(at + 1) != this_host()) return false;  // another machine's process: cannot tell
  long pid = std::strtol(job.c_str() + 6, nullptr, 10);
  if (pid <= 0) return true;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

void record_runs(Store& store, const std::vector<PlannedRun>& runs) {
  std::vector<RunRecord> recs;
  for (const auto& r : runs) {
    RunRecord rec;
    rec.run_id = r.id;
    rec.experiment = r.settings.experiment;
    rec.dataset = r.settings.dataset;
    rec.model = r.settings.model;
    rec.seed = r.settings.seed;
    rec.stage = r.settings.stage;
    rec.settings_json = r.settings.to_json().dump();
    for (const auto& d : r.depends_on) rec.depends_on += (rec.depends_on.empty() ? "" : " ") + d;
    recs.push_back(rec);
  }
  store.upsert_runs(recs);
}

std::string run_state_from_slurm(const std::string& slurm_state);  // slurm_backend.cpp

std::vector<RunStatus> plan(const std::vector<PlannedRun>& grid, Store& store, const Filter& only, PlanMode mode,
                            const std::map<std::string, std::string>* slurm_states) {
  std::map<std::string, RunRecord> recorded;
  std::map<std::string, std::vector<std::string>> by_key;  // recorded ids of the same dataset/model/seed/stage
  for (auto& r : store.runs()) {
    recorded[r.run_id] = r;
  }
  auto progress = store.progress();
  std::map<std::string, const PlannedRun*> by_id;
  for (const auto& r : grid) by_id[r.id] = &r;
  for (const auto& [id, rec] : recorded) {
    if (by_id.count(id)) continue;
    nlohmann::json j = nlohmann::json::parse(rec.settings_json, nullptr, false);
    if (!j.is_object()) continue;
    try {
      RunSettings s = RunSettings::from_json(j, id);
      by_key[key_of(s)].push_back(id);
    } catch (const std::exception&) {
    }
  }

  // Listed runs: those the filter keeps, plus their unfinished dependencies.
  std::set<std::string> listed;
  std::function<void(const std::string&)> add = [&](const std::string& id) {
    if (!listed.insert(id).second) return;
    for (const auto& d : by_id.at(id)->depends_on) {
      auto it = recorded.find(d);
      if (it == recorded.end() || it->second.state != "done") add(d);
    }
  };
  for (const auto& r : grid)
    if (only.matches(r)) add(r.id);

  std::vector<RunStatus> out;
  std::map<std::string, bool> will_be_done;  // id -> done now or submitted by this plan
  for (const auto& r : grid) {
    if (!listed.count(r.id)) continue;
    RunStatus st;
    st.run = r;
    auto it = recorded.find(r.id);
    st.state = it == recorded.end() ? "new" : it->second.state;
    if (auto p = progress.find(r.id); p != progress.end()) st.progress = p->second;
    if ((st.state == "queued" || st.state == "running") && local_job_gone(st.progress.job)) st.state = "lost";
    if ((st.state == "queued" || st.state == "running") && slurm_states && st.progress.backend == "slurm") {
      auto js = slurm_states->find(st.progress.job);
      if (js != slurm_states->end()) {
        std::string mapped = run_state_from_slurm(js->second);
        if (!mapped.empty()) st.state = mapped;
        st.progress.last_reason = "Slurm: " + js->second + (st.progress.last_reason.empty() ? "" : "; " + st.progress.last_reason);
      }
    }
    bool active = st.state == "queued" || st.state == "running";
    if (st.state == "done") {
      st.why = "already done";
    } else if (active) {
      st.why = "already " + st.state + (st.progress.job.empty() ? "" : " (job " + st.progress.job + ")");
    } else if (st.state == "new") {
      if (mode == PlanMode::kResume) {
        st.why = "never submitted (use submit)";
      } else {
        st.submit = true;
        auto old = by_key.find(key_of(r.settings));
        st.why = old == by_key.end() ? "new" : "settings changed (replaces " + old->second.back() + ")";
      }
    } else {  // failed, cancelled, timeout, lost
      st.submit = true;
      st.why = st.state + (st.progress.last_reason.empty() ? "" : ": " + st.progress.last_reason);
    }
    for (const auto& d : r.depends_on) {
      auto w = will_be_done.find(d);
      bool dep_ok = (w != will_be_done.end() && w->second) || (recorded.count(d) && recorded[d].state == "done");
      bool dep_active = recorded.count(d) && (recorded[d].state == "queued" || recorded[d].state == "running");
      if (st.submit && !dep_ok && !dep_active) {
        st.submit = false;
        st.why = "waits for " + d + ", which will not run";
      }
    }
    will_be_done[r.id] = st.state == "done" || st.submit || active;
    out.push_back(st);
  }
  return out;
}

}  // namespace orch::scheduler
