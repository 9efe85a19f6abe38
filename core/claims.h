// Users' documentation: docs/report.md ("Claims").
// A claim about the grid's networks, as a paper states it: one group of networks beats another on some metrics
// (kind "better"), or comes within a margin of it (kind "similar"), on every data set or the listed ones. The
// paper's claims ship with the report (report/paper_claims.json); an experiment may add its own under
// "report": {"claims": [...]}. Parsed and validated here (fields, metrics, margins); network ids are checked
// against the catalogue by the report (report/claims.h), which evaluates them. Values only; thread-safe.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/choices.h"

namespace orch {

struct ClaimSpec {
  std::string id;      // a name (core/names.h)
  std::string text;    // the claim in words
  std::string source;  // where it comes from (the paper's sentence or table), or the user's note
  ClaimKind kind = ClaimKind::kBetter;
  std::vector<std::string> better, than;  // network ids: each of `better` against each of `than`
  std::vector<Metric> metrics;            // per test image (dice, jaccard, hausdorff_mm) or per run (inference_s)
  std::vector<std::string> datasets;      // empty: every data set of the grid
  std::map<Metric, double> margin;        // kind "similar": per metric, the largest difference still "similar"
};

// A list of claims ([{...}, ...]); InputError naming `file` and the field under `where` (e.g. report.claims[2].than).
std::vector<ClaimSpec> claims_from_json(const nlohmann::json& list, const std::string& file, const std::string& where);

}  // namespace orch
