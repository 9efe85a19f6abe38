#include "report/writers.h"

#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "core/errors.h"

namespace orch::report {

std::string fmt(double v, int digits) {
  if (std::isnan(v)) return "–";
  char b[48];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string csv_num(double v) {
  if (std::isnan(v)) return "";
  char b[48];
  std::snprintf(b, sizeof b, "%.10g", v);
  return b;
}

// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

namespace {

std::string cell_text(const Cell& c, int digits, const std::string& pm) {
  std::string v = fmt(c.mean, digits);
  if (!std::isnan(c.std)) v += pm + fmt(c.std, digits);
  return v;
}

std::string difference(const Cell& c, int digits) {
  if (std::isnan(c.paper) || std::isnan(c.mean)) return "";
  const double d = c.mean - c.paper;
  return std::string(d >= 0 ? "+" : "") + fmt(d, digits);
}

std::string baseline_name(const ReportModel&) { return models::paired_test_baseline().paper_name; }

std::string caption(const ReportModel& m, const Table& t) {
  std::string c = "Best value per column in bold (over the rows with a value). Paper: " + t.paper_dataset +
                  " (Bransby et al., 2023). Hausdorff: " + hausdorff_unit(m.settings) + ".";
  if (!t.lungs_and_heart) c += " Inference: " + inference_description(m.settings) + " on this experiment's devices (the paper's: an A100, not synchronised).";
  if (t.empty_mask_images)
    c += " " + std::to_string(t.empty_mask_images) + " image(s) without a Hausdorff distance (an empty mask): " +
         empty_mask_description(m.settings) + ".";
  return c;
}

std::string title(const Table& t) {
  return "Table " + t.number + ". " + t.dataset->name + " (" + (t.lungs_and_heart ? "lungs and heart" : "lungs") + ")";
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

// Markdown text from names and messages: characters that would open a link, HTML, code, emphasis or a new table
// cell are escaped ('_' is left: GitHub and CommonMark do not emphasise inside words, and names use it).
std::string md_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (std::strchr("\\`*[]<>|", c) && c != '\0') o += '\\';
    o += c;
  }
  return o;
}

// An href for a file path: percent-encoded, and always a relative path ("./", "../") or an absolute one, never a
// scheme ("javascript:..." as a folder name stays a folder).
std::string path_href(const std::string& path) {
  static const char* hex = "0123456789ABCDEF";
  std::string o = path.empty() || path[0] == '/' || path[0] == '.' ? "" : "./";
  for (unsigned char c : path) {
    if (std::isalnum(c) || std::strchr("/._-~", c)) {
      o += static_cast<char>(c);
    } else {
      o += '%';
      o += hex[c >> 4];
      o += hex[c & 15];
    }
  }
  return o;
}

namespace {

std::string base64(const std::string& bytes) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8) | static_cast<uint8_t>(bytes[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? t[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}


std::string tally(const CheckedClaim& c) {
  return std::to_string(c.count(Verdict::kSupported)) + " supported, " + std::to_string(c.count(Verdict::kContradicted)) +
         " contradicted, " + std::to_string(c.count(Verdict::kInconclusive)) + " inconclusive, " +
         std::to_string(c.count(Verdict::kNotEvaluated)) + " not evaluated";
}

const char* kClaimsMethod =
    "Effect: the first network's advantage (positive favours the claim: higher Dice or Jaccard, lower Hausdorff or "
    "inference time), the mean over all done seeds and test images, with a 95 % percentile bootstrap interval that "
    "resamples seeds and test images (2000 resamples, seeded); median: the median models' mean per-image advantage "
    "and the paired Wilcoxon p over test images. A \"better\" comparison is supported when its interval lies above "
    "zero, contradicted when below; a \"similar\" one when its interval lies within the margin, contradicted when "
    "wholly outside; else inconclusive (too few seeds or images).";

void claims_markdown(std::ostringstream& md, const ReportModel& m) {
  if (m.claims.empty()) return;
  md << "\n### The paper's claims on this grid\n\n" << kClaimsMethod << "\n\n| Claim | Verdict | Comparisons | Source |\n|---|---|---|---|\n";
  for (const auto& c : m.claims)
    md << "| " << md_escape(c.spec.text) << (c.from_paper ? "" : " (this experiment's)") << " | **" << choice_name(c.verdict)
       << "** | " << tally(c) << " | " << md_escape(c.spec.source) << " |\n";
  md << "\n| Claim | Data set | Metric | Network | vs | Effect [95 % CI] | Median effect | p | seeds | images | Verdict |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& c : m.claims)
    for (const auto& x : c.comparisons)
      md << "| " << md_escape(c.spec.id) << " | " << md_escape(x.dataset) << " | " << choice_name(x.metric) << " | " << md_escape(x.better)
         << " | " << md_escape(x.than) << " | " << fmt(x.effect, 4) << " [" << fmt(x.lo, 4) << ", " << fmt(x.hi, 4) << "] | "
         << fmt(x.median_effect, 4) << " | " << fmt(x.p_value, 4) << " | " << x.seeds_better << "/" << x.seeds_than << " | "
         << x.images << " | " << choice_name(x.verdict) << " |\n";
}

void claims_html(std::ostream& h, const ReportModel& m) {
  if (m.claims.empty()) return;
  h << "<h2>The paper's claims on this grid</h2>\n<p class=\"caption\">" << html_escape(kClaimsMethod)
    << "</p>\n<table class=\"claims\"><tr><th>Claim</th><th>Verdict</th><th>Comparisons</th><th>Source</th></tr>\n";
  for (const auto& c : m.claims)
    h << "<tr><td>" << html_escape(c.spec.text) << (c.from_paper ? "" : " (this experiment's)") << "</td><td class=\"verdict\"><b>"
      << choice_name(c.verdict) << "</b></td><td>" << tally(c) << "</td><td>" << html_escape(c.spec.source) << "</td></tr>\n";
  h << "</table>\n<details><summary>Every comparison</summary><table class=\"claim-comparisons\"><tr><th>Claim</th>"
       "<th>Data set</th><th>Metric</th><th>Network</th><th>vs</th><th>Effect [95 % CI]</th><th>Median effect</th><th>p</th>"
       "<th>seeds</th><th>images</th><th>Verdict</th></tr>\n";
  for (const auto& c : m.claims)
    for (const auto& x : c.comparisons)
      h << "<tr><td>" << html_escape(c.spec.id) << "</td><td>" << html_escape(x.dataset) << "</td><td>" << choice_name(x.metric) << "</td><td>"
        << html_escape(x.better) << "</td><td>" << html_escape(x.than) << "</td><td>" << fmt(x.effect, 4) << " [" << fmt(x.lo, 4)
        << ", " << fmt(x.hi, 4) << "]</td><td>" << fmt(x.median_effect, 4) << "</td><td>" << fmt(x.p_value, 4) << "</td><td>"
        << x.seeds_better << "/" << x.seeds_than << "</td><td>" << x.images << "</td><td>" << choice_name(x.verdict) << "</td></tr>\n";
  h << "</table></details>\n";
}

std::string hours(double h) {
  char b[32];
  std::snprintf(b, sizeof b, h < 10 ? "%.2f" : "%.1f", h);
  return b;
}

}  // namespace

// How many trained runs reached a plateau, and which did not (at most 40 named; runs.csv has every run).
void convergence_markdown(std::ostringstream& md, const ReportModel& m) {
  int measured = 0;
  const int yes = runs_with_plateau(m, &measured);
  if (measured == 0) return;
  md << "\n### Convergence\n\n" << yes << " of " << measured
     << " trained runs reached a plateau (validation criterion improving by less than 1 % over the last fifth of their "
        "epochs)";
  if (yes == measured) {
    md << ".\n";
    return;
  }
  md << "; still improving at their last epoch:\n\n";
  int listed = 0;
  for (const auto& r : m.runs) {
    if (!r.plateau.measured || r.plateau.reached) continue;
    if (++listed > 40) {
      md << "- and " << (measured - yes - 40) << " more (runs.csv)\n";
      break;
    }
    md << "- `" << r.run_id << "` (" << md_escape(r.network) << ", " << md_escape(r.dataset) << "): " << plateau_text(r) << "\n";
  }
}

std::string to_markdown(const ReportModel& m, const std::vector<std::string>& warnings) {
  std::ostringstream md;
  const std::string base = baseline_name(m);
  for (const auto& t : m.tables) {
    md << "### " << md_escape(title(t)) << ": mean ± std over seeds (n seeds); paper value and difference below\n\n";
    md << "| Network | Predict | Supervision |";
    for (const auto& c : t.columns) md << " " << c.label << " |";
    md << " seeds | median run | Wilcoxon p vs " << base << " |\n|---|---|---|";
    for (size_t i = 0; i < t.columns.size(); ++i) md << "---|";
    md << "---|---|---|\n";
    for (const auto& r : t.rows) {
      md << "| " << md_escape(r.network->paper_name) << " | " << md_escape(r.network->predicts) << " | "
         << md_escape(r.network->supervision) << " |";
      for (size_t c = 0; c < t.columns.size(); ++c) {
        const Cell& cell = r.cells[c];
        const int dg = t.columns[c].digits;
        std::string shown = cell.best ? "**" + cell_text(cell, dg, " ± ") + "**" : cell_text(cell, dg, " ± ");
        if (!std::isnan(cell.paper)) {
          shown += "<br>paper " + fmt(cell.paper, dg);
          if (!std::isnan(cell.mean)) shown += " (" + difference(cell, dg) + ")";
        }
        md << " " << shown << " |";
      }
      md << " " << r.done_ids.size() << " | " << (r.median.empty() ? "–" : "`" + r.median + "`") << " | "
         << (std::isnan(r.p_vs_baseline) ? "–" : fmt(r.p_vs_baseline, 4) + " (n=" + std::to_string(r.n_pairs) + ")") << " |\n";
    }
    md << "\n" << caption(m, t) << "\n\n";
  }
  if (!m.missing.empty()) {
    md << "**Not in the tables (not done):** " << m.missing.size() << " run(s):\n";
    for (const auto& x : m.missing) md << "- " << md_escape(x) << "\n";
    md << "\n";
  }
  for (const auto& n : m.notes) md << "- note: " << md_escape(n) << "\n";
  for (const auto& w : warnings) md << "- warning: " << md_escape(w) << "\n";
  claims_markdown(md, m);
  convergence_markdown(md, m);
  if (!m.cost.empty()) {
    md << "\n### Cost per network\n\n| Network | runs | attempts | wall h | GPU h | lost h (failed, requeued, killed) | Slurm GPU h (sacct) |\n"
       << "|---|---|---|---|---|---|---|\n";
    for (const auto& c : m.cost)
      md << "| " << md_escape(c.network) << " | " << c.runs << " | " << c.attempts << " | " << hours(c.wall_hours) << " | "
         << hours(c.gpu_hours) << " | " << hours(c.lost_hours) << " | " << hours(c.slurm_gpu_hours) << " |\n";
    md << "\n";
  }
  return md.str();
}

std::string to_claims_csv(const ReportModel& m) {
  std::ostringstream csv;
  csv << "claim,source,kind,claim_verdict,dataset,metric,better,than,effect,lo,hi,median_effect,p_value,seeds_better,"
         "seeds_than,images,verdict\n";
  auto v = [](double x) { return std::isnan(x) ? std::string() : fmt(x, 6); };
  for (const auto& c : m.claims)
    for (const auto& x : c.comparisons)
      csv << c.spec.id << "," << (c.from_paper ? "paper" : "experiment") << "," << choice_name(c.spec.kind) << ","
          << choice_name(c.verdict) << "," << x.dataset << "," << choice_name(x.metric) << "," << x.better << "," << x.than << ","
          << v(x.effect) << "," << v(x.lo) << "," << v(x.hi) << "," << v(x.median_effect) << "," << v(x.p_value) << ","
          << x.seeds_better << "," << x.seeds_than << "," << x.images << "," << choice_name(x.verdict) << "\n";
  return csv.str();
}

std::string to_runs_csv(const ReportModel& m) {
  std::ostringstream csv;
  csv << "run_id,network,dataset,seed,stage,state,attempts,wall_hours,epochs,planned_epochs,plateau,"
         "last_fifth_improvement,flat_from_epoch\n";
  for (const auto& r : m.runs) {
    const Plateau& p = r.plateau;
    csv << r.run_id << "," << csv_field(r.network) << "," << csv_field(r.dataset) << "," << r.seed << "," << choice_name(r.stage)
        << "," << r.state << "," << r.attempts << "," << fmt(r.wall_hours, 6) << "," << r.epochs << "," << r.planned_epochs
        << "," << (p.measured ? (p.reached ? "yes" : "no") : "") << "," << (p.measured ? fmt(p.improvement, 6) : "") << ","
        << (p.measured && p.reached ? std::to_string(p.flat_from) : "") << "\n";
  }
  return csv.str();
}

std::string claims_summary(const ReportModel& m) {
  std::string out;
  std::map<Verdict, int> count;
  for (const auto& c : m.claims) {
    char b[32];
    std::snprintf(b, sizeof b, "%-14s", choice_name(c.verdict));
    out += std::string("  ") + b + c.spec.id + (c.from_paper ? "" : " (yours)") + ": " + tally(c) + "\n";
    ++count[c.verdict];
  }
  if (m.claims.empty()) return out;
  out += "  In all, of " + std::to_string(m.claims.size()) + " claims: " + std::to_string(count[Verdict::kSupported]) +
         " supported, " + std::to_string(count[Verdict::kContradicted]) + " contradicted, " +
         std::to_string(count[Verdict::kInconclusive]) + " inconclusive, " + std::to_string(count[Verdict::kNotEvaluated]) +
         " not evaluated.\n";
  return out;
}

std::string convergence_summary(const ReportModel& m) {
  int measured = 0;
  const int yes = runs_with_plateau(m, &measured);
  if (measured == 0) return "";
  return std::to_string(yes) + " of " + std::to_string(measured) +
         " trained runs reached a plateau (validation criterion improving by less than 1 % over the last fifth of "
         "their epochs; runs.csv, and the report's \"Convergence\")";
}

std::string to_csv(const ReportModel& m) {
  std::ostringstream csv;
  csv << "table,dataset,model,organ,metric,mean,std,n_seeds\n";
  for (const auto& t : m.tables)
    for (const auto& r : t.rows)
      for (size_t c = 0; c < t.columns.size(); ++c)
        csv << t.number << "," << t.dataset->name << "," << r.network->id << "," << t.columns[c].organ << ","
            << choice_name(t.columns[c].metric) << "," << csv_num(r.cells[c].mean) << "," << csv_num(r.cells[c].std) << ","
            << r.cells[c].n << "\n";
  return csv.str();
}

std::string to_paper_comparison_csv(const ReportModel& m) {
  std::ostringstream csv;
  csv << "table,dataset,model,organ,metric,mean,paper,difference\n";
  for (const auto& t : m.tables)
    for (const auto& r : t.rows)
      for (size_t c = 0; c < t.columns.size(); ++c) {
        const Cell& cell = r.cells[c];
        csv << t.number << "," << t.dataset->name << "," << r.network->id << "," << t.columns[c].organ << ","
            << choice_name(t.columns[c].metric) << "," << csv_num(cell.mean) << "," << csv_num(cell.paper) << ","
            << csv_num(cell.mean - cell.paper) << "\n";
      }
  return csv.str();
}

std::string to_latex(const ReportModel& m) {
  std::ostringstream tex;
  for (const auto& t : m.tables) {
    tex << "% " << title(t) << "; " << caption(m, t) << "\n\\begin{tabular}{lll" << std::string(t.columns.size(), 'r') << "r}\n\\hline\n"
        << "Network & Predict & Supervision";
    for (const auto& c : t.columns) {
      std::string l = c.label;
      for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{{"↑", "$\\uparrow$"}, {"↓", "$\\downarrow$"}}) {
        size_t p;
        while ((p = l.find(from)) != std::string::npos) l.replace(p, from.size(), to);
      }
      tex << " & " << l;
    }
    tex << " & seeds \\\\\n\\hline\n";
    for (const auto& r : t.rows) {
      tex << r.network->paper_name << " & " << r.network->predicts << " & " << r.network->supervision;
      for (size_t c = 0; c < t.columns.size(); ++c) {
        const std::string v = cell_text(r.cells[c], t.columns[c].digits, " $\\pm$ ");
        tex << " & " << (r.cells[c].best ? "\\textbf{" + v + "}" : v);
      }
      tex << " & " << r.done_ids.size() << " \\\\\n";
    }
    tex << "\\hline\n\\end{tabular}\n\n";
  }
  return tex.str();
}

namespace {

void html_head(std::ostream& h, const ReportModel& m) {
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << html_escape(m.experiment)
    << ": Tables 1-2</title>\n<style>\nbody{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
       "margin:1em 0}th,td{border:1px solid #bbb;padding:4px 8px;text-align:right;vertical-align:top}th:first-child,"
       "td:first-child{text-align:left}.paper{color:#666;font-size:85%}.best{font-weight:bold}img{max-width:100%;"
       "border:1px solid #ddd}details{margin:2px 0}.caption{color:#333;font-size:90%;max-width:1100px}\n</style></head>\n<body>\n";
  h << "<h1>" << html_escape(m.experiment) << ": Tables 1-2</h1>\n<p class=\"caption\">This grid: mean ± std over "
    << m.seeds << " seed" << (m.seeds == 1 ? "" : "s") << " per network and data set. Paper values beside them: "
    << html_escape(m.paper_source) << "</p>\n";
}

void html_results_table(std::ostream& h, const ReportModel& m, const Table& t, const std::string& base) {
  h << "<h2>" << html_escape(title(t)) << "</h2>\n<table class=\"results\"><tr><th>Network</th><th>Predict</th><th>Supervision</th>";
  for (const auto& c : t.columns) h << "<th>" << html_escape(c.label) << "</th>";
  h << "<th>seeds</th><th>median run</th><th>Wilcoxon p vs " << html_escape(base) << "</th></tr>\n";
  for (const auto& r : t.rows) {
    h << "<tr><td>" << html_escape(r.network->paper_name) << "</td><td>" << r.network->predicts << "</td><td>"
      << r.network->supervision << "</td>";
    for (size_t c = 0; c < t.columns.size(); ++c) {
      const Cell& cell = r.cells[c];
      const int dg = t.columns[c].digits;
      h << "<td" << (cell.best ? " class=\"best\"" : "") << ">" << html_escape(cell_text(cell, dg, " ± "));
      if (!std::isnan(cell.paper))
        h << "<br><span class=\"paper\">paper " << fmt(cell.paper, dg) << (std::isnan(cell.mean) ? "" : " (" + difference(cell, dg) + ")") << "</span>";
      h << "</td>";
    }
    h << "<td>" << r.done_ids.size() << "</td><td>" << (r.median.empty() ? "–" : "<a href=\"#" + html_escape(r.median) + "\">" + html_escape(r.median) + "</a>")
      << "</td><td>" << (std::isnan(r.p_vs_baseline) ? "–" : fmt(r.p_vs_baseline, 4) + " (n=" + std::to_string(r.n_pairs) + ")")
      << "</td></tr>\n";
  }
  h << "</table>\n<p class=\"caption\">" << html_escape(caption(m, t)) << "</p>\n";
}

void html_notes(std::ostream& h, const ReportModel& m, const std::vector<std::string>& warnings) {
  if (!m.missing.empty() || !m.notes.empty() || !warnings.empty()) {
    h << "<h2>Notes</h2>\n<ul>\n";
    for (const auto& x : m.missing) h << "<li>not done: " << html_escape(x) << "</li>\n";
    for (const auto& n : m.notes) h << "<li>" << html_escape(n) << "</li>\n";
    for (const auto& w : warnings) h << "<li>warning: " << html_escape(w) << "</li>\n";
    h << "</ul>\n";
  }
}

// Each figure inlined as a data: URL, so report.html is one file that can be mailed or moved.
void html_figures(std::ostream& h, const std::vector<FigureFile>& figures) {
  for (const auto& f : figures) {
    std::ifstream in(f.path, std::ios::binary);
    if (!in) continue;
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    h << "<h2>" << html_escape(f.title) << "</h2>\n<img alt=\"" << html_escape(f.title) << "\" src=\"data:image/png;base64,"
      << base64(bytes) << "\">\n";
  }
}

void html_cost(std::ostream& h, const ReportModel& m) {
  if (!m.cost.empty()) {
    h << "<h2>Cost per network</h2>\n<table class=\"cost\"><tr><th>Network</th><th>runs</th><th>attempts</th><th>wall h</th>"
         "<th>GPU h</th><th>lost h</th><th>Slurm GPU h (sacct)</th></tr>\n";
    for (const auto& c : m.cost)
      h << "<tr><td>" << html_escape(c.network) << "</td><td>" << c.runs << "</td><td>" << c.attempts << "</td><td>"
        << hours(c.wall_hours) << "</td><td>" << hours(c.gpu_hours) << "</td><td>" << hours(c.lost_hours) << "</td><td>"
        << hours(c.slurm_gpu_hours) << "</td></tr>\n";
    h << "</table>\n<p class=\"caption\">lost: attempts that did not finish their run (failed, requeued, killed, lost).</p>\n";
  }
}

void html_runs(std::ostream& h, const ReportModel& m) {
  h << "<h2>Runs</h2>\n<table class=\"runs\"><tr><th>Run</th><th>Network</th><th>Data set</th><th>Seed</th><th>State</th>"
       "<th>Attempts</th><th>Wall h</th><th>Epochs</th><th>Plateau</th><th>Log</th></tr>\n";
  for (const auto& r : m.runs) {
    h << "<tr id=\"" << html_escape(r.run_id) << "\"><td><details><summary>" << html_escape(r.run_id) << (r.stage == Stage::kTrain ? "" : std::string(" (") + choice_name(r.stage) + ")")
      << "</summary>";
    for (const auto& [k, v] : r.provenance) h << "<div><b>" << html_escape(k) << "</b>: " << html_escape(v.substr(0, 400)) << "</div>";
    h << "</details></td><td>" << html_escape(r.network) << "</td><td>" << html_escape(r.dataset) << "</td><td>" << r.seed
      << "</td><td>" << r.state << "</td><td>" << r.attempts << "</td><td>" << hours(r.wall_hours) << "</td><td>" << r.epochs
      << " / " << r.planned_epochs << "</td><td>" << html_escape(plateau_text(r)) << "</td><td><a href=\""
      << html_escape(path_href(r.log)) << "\">log</a></td></tr>\n";
  }
  h << "</table>\n";
}

// For a reader that checks the page rendered (the browser test): how many tables and whether every image decoded.
void html_render_check(std::ostream& h) {
  h << "<script>\nwindow.addEventListener('load', function () {\n  var imgs = Array.prototype.slice.call(document.images);\n"
       "  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });\n"
       "  document.body.setAttribute('data-images', String(imgs.length));\n"
       "  document.body.setAttribute('data-images-ok', ok ? 'yes' : 'no');\n"
       "  document.body.setAttribute('data-tables', String(document.querySelectorAll('table.results').length));\n});\n</script>\n";
}

}  // namespace

std::string to_html(const ReportModel& m, const std::vector<FigureFile>& figures, const std::vector<std::string>& warnings) {
  std::ostringstream h;
  html_head(h, m);
  const std::string base = baseline_name(m);
  for (const auto& t : m.tables) html_results_table(h, m, t, base);
  html_notes(h, m, warnings);
  html_figures(h, figures);
  claims_html(h, m);
  html_cost(h, m);
  html_runs(h, m);
  html_render_check(h);
  h << "</body></html>\n";
  return h.str();
}

}  // namespace orch::report
