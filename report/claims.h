// Users' documentation: docs/report.md ("Claims").
// The paper's claims (report/paper_claims.json) and an experiment's own (core/claims.h), checked on the grid.
//
// Each claim is split into comparisons: one network of `better` against one of `than`, on one data set and one
// metric. A comparison's effect is the first network's advantage (positive favours the claim: higher Dice or
// Jaccard, lower Hausdorff distance or inference time), the mean over all done seeds and the test images both
// sides have; its 95 % interval is a percentile bootstrap that resamples seeds of each side and test images
// (2000 resamples, seeded per comparison, so a report is reproducible). Beside it, the median models' mean
// per-image advantage and a paired Wilcoxon test over test images (report/stats.h). Inference time is a per-run
// value: only seeds are resampled.
// Verdicts: "better": supported when the interval lies above zero, contradicted when below, else inconclusive
// (too few seeds or images for it to exclude zero); "similar": supported when the interval lies within
// [-margin, margin], contradicted when it lies wholly outside, else inconclusive. A claim is contradicted when
// any comparison is, supported when every comparison is evaluated and supported, else inconclusive; "not
// evaluated" when the grid has none of its networks done. Stateless; not thread-safe (one Store).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/claims.h"
#include "report/report_model.h"
#include "storage/store.h"

namespace orch::report {

// The claims the report checks: the paper's, then the experiment's own. Network ids are checked against the
// catalogue: an unknown one is an InputError naming the claim.
const std::vector<ClaimSpec>& paper_claims();
std::vector<CheckedClaim> evaluate_claims(const std::vector<ClaimSpec>& paper, const std::vector<ClaimSpec>& own,
                                         const ReportModel& model, const std::vector<scheduler::PlannedRun>& grid,
                                         Store& store);

// One comparison's verdict from its interval (exposed for tests).
Verdict comparison_verdict(ClaimKind kind, double lo, double hi, double margin);

}  // namespace orch::report
