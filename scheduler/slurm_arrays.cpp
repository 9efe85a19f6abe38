#include "scheduler/slurm_arrays.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include "core/errors.h"
#include "scheduler/retry.h"

namespace orch::scheduler {

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
}

// Each run's depth: 0 without a dependency inside the dispatch, else one more than its deepest such dependency.
std::map<std::string, int> depths(const std::vector<DispatchItem>& items) {
  std::map<std::string, const DispatchItem*> in_set;
  for (const auto& it : items) in_set[it.run.id] = &it;
  std::map<std::string, int> depth;
  std::function<int(const std::string&)> depth_of = [&](const std::string& id) -> int {
    if (auto d = depth.find(id); d != depth.end()) return d->second;
    int d = 0;
    for (const auto& dep : in_set.at(id)->run.depends_on)
      if (in_set.count(dep)) d = std::max(d, depth_of(dep) + 1);
    return depth[id] = d;
  };
  for (const auto& it : items) depth_of(it.run.id);
  return depth;
}

ArrayGroup group_of(const DispatchItem& it, const std::set<std::string>& in_set, const GroupingInput& input) {
  ArrayGroup g;
  g.res = *it.run.resources;
  if (auto o = input.oom_ends.find(it.run.id); o != input.oom_ends.end())
    g.res.mem = raised_mem(g.res.mem, input.oom_mem_factor, o->second);
  for (const auto& dep : it.run.depends_on) {
    if (in_set.count(dep)) g.deps_inside.push_back(dep);
    else if (auto t = input.outside_tasks.find(dep); t != input.outside_tasks.end()) g.deps_outside.push_back(t->second);
  }
  std::sort(g.deps_inside.begin(), g.deps_inside.end());
  std::sort(g.deps_outside.begin(), g.deps_outside.end());
  return g;
}

std::string key_of(int depth, const ArrayGroup& g) {
  std::string key = std::to_string(depth) + "#" + g.res.key() + "#";
  for (const auto& d : g.deps_inside) key += d + ",";
  key += "#";
  for (const auto& d : g.deps_outside) key += d + ",";
  return key;
}

}  // namespace

std::vector<ArrayGroup> group_into_arrays(const std::vector<DispatchItem>& items, const GroupingInput& input) {
  std::set<std::string> in_set;
  for (const auto& it : items) in_set.insert(it.run.id);
  const auto depth = depths(items);
  std::map<std::string, ArrayGroup> groups;
  std::vector<std::pair<int, std::string>> order;  // (depth, key), in first-seen order
  for (const auto& it : items) {
    ArrayGroup g = group_of(it, in_set, input);
    const int d = depth.at(it.run.id);
    const std::string key = key_of(d, g);
    auto [gi, fresh] = groups.emplace(key, std::move(g));
    if (fresh) order.emplace_back(d, key);
    gi->second.items.push_back(&it);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<ArrayGroup> out;
  const size_t max_tasks = static_cast<size_t>(std::max(1, input.max_array_size));
  for (const auto& [d, key] : order) {
    const ArrayGroup& g = groups.at(key);
    const size_t per_array = max_tasks * static_cast<size_t>(std::max(1, g.res.runs_per_gpu));
    for (size_t start = 0; start < g.items.size(); start += per_array) {
      ArrayGroup part = g;
      part.items.assign(g.items.begin() + static_cast<std::ptrdiff_t>(start),
                        g.items.begin() + static_cast<std::ptrdiff_t>(std::min(g.items.size(), start + per_array)));
      out.push_back(std::move(part));
    }
  }
  return out;
}

std::string array_time_limit(const ArrayGroup& g, const std::function<std::string(const PlannedRun&)>& estimate,
                             const std::string& exp_path) {
  if (!g.res.time_from_estimate()) return g.res.time;
  std::string time;
  for (const auto* it : g.items) {  // the longest estimate of the group ("D-HH:MM:SS" compares by length, then text)
    const std::string t = estimate ? estimate(it->run) : "";
    if (t.empty())
      throw InputError(exp_path, "resources.time", "auto",
                       it->run.id + " has no estimate yet: finish a run of its network or run orchestrator calibrate EXP");
    if (time.empty() || t.size() > time.size() || (t.size() == time.size() && t > time)) time = t;
  }
  return time;
}

std::string render_job_script(const std::string& tmpl, const JobScriptSpec& s) {
  const RunResources& res = s.res;
  std::string opt;
  if (!res.partition.empty()) opt += "#SBATCH --partition=" + res.partition + "\n";
  if (!res.mem.empty()) opt += "#SBATCH --mem=" + res.mem + "\n";
  if (!s.time.empty()) opt += "#SBATCH --time=" + s.time + "\n";
  if (res.gpus > 0) opt += "#SBATCH --gres=gpu:" + std::to_string(res.gpus) + "\n";
  if (!res.constraint.empty()) opt += "#SBATCH --constraint=" + res.constraint + "\n";
  std::string script = tmpl;
  replace_all(script, "@JOB_NAME@", s.job_name);
  replace_all(script, "@COMMENT@", s.comment);
  replace_all(script, "@ARRAY@", "0-" + std::to_string(s.tasks - 1) + "%" + std::to_string(s.array_throttle));
  replace_all(script, "@SIGNAL@", std::string(res.ranks == 1 ? "B:USR1@" : "USR1@") + std::to_string(s.signal_seconds));
  replace_all(script, "@RANKS@", std::to_string(res.ranks));
  replace_all(script, "@CPUS@", std::to_string(res.cpus * s.runs_per_task));
  replace_all(script, "@OPTIONAL_LINES@\n", opt);
  replace_all(script, "@LAUNCH@", res.ranks == 1 ? "exec" : "exec srun");  // user templates of earlier versions
  replace_all(script, "@MAX_ATTEMPTS@", std::to_string(s.max_attempts));
  replace_all(script, "@WORKER_ARGS@", " --threads " + std::to_string(res.cpus));
  return script;
}

std::vector<std::vector<std::string>> pipe_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string part; std::getline(ls, part, '|');) f.push_back(part);
    if (!line.empty() && line.back() == '|') f.emplace_back();
    if (!f.empty()) rows.push_back(f);
  }
  return rows;
}

namespace {

// The smaller of `limit` and the number `field` holds, when it holds one above 0 (sacctmgr leaves unset limits empty).
int tighter(int limit, const std::string& field) {
  const long v = std::atol(field.c_str());
  if (v <= 0 || v > 100000000) return limit;
  return limit == 0 ? static_cast<int>(v) : std::min(limit, static_cast<int>(v));
}

}  // namespace

std::vector<std::string> submit_qos_names(const std::string& assoc_rows) {
  std::set<std::string> names;
  for (const auto& f : pipe_rows(assoc_rows)) {
    if (f.size() < 4) continue;
    std::stringstream allowed(f[3].empty() ? f[2] : f[3]);  // the default QOS, else every QOS allowed
    for (std::string q; std::getline(allowed, q, ',');)
      if (!q.empty()) names.insert(q);
  }
  return {names.begin(), names.end()};
}

int submit_limit_from_sacctmgr(const std::string& assoc_rows, const std::string& qos_rows) {
  int limit = 0;
  for (const auto& f : pipe_rows(assoc_rows))
    if (f.size() >= 2) limit = tighter(tighter(limit, f[0]), f[1]);
  const auto wanted = submit_qos_names(assoc_rows);
  for (const auto& f : pipe_rows(qos_rows))
    if (f.size() >= 3 && std::find(wanted.begin(), wanted.end(), f[0]) != wanted.end())
      limit = tighter(tighter(limit, f[1]), f[2]);
  return limit;
}

}  // namespace orch::scheduler
