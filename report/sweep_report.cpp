#include "report/sweep_report.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "report/writers.h"

namespace orch::report {

namespace {

std::string value_text(const SweepCell& c, int digits) { return fmt(c.value, digits); }

int digits_of(const SweepTable& t) { return t.metric == Metric::kHausdorff ? 2 : 4; }

std::string tex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '_' || c == '&' || c == '%' || c == '#' || c == '$' || c == '{' || c == '}') out += '\\';
    out += c;
  }
  return out;
}

SweepTable& table_for(SweepSummary& s, const std::string& dataset, Metric metric, bool higher) {
  for (auto& t : s.tables)
    if (t.dataset == dataset) return t;
  s.tables.push_back({dataset, metric, higher, {}});
  return s.tables.back();
}

SweepRow& row_for(SweepTable& t, const models::NetworkInfo& n, size_t points) {
  for (auto& r : t.rows)
    if (r.network == n.id) return r;
  t.rows.push_back({n.id, n.paper_name, std::vector<SweepCell>(points, SweepCell{NAN, 0, false})});
  return t.rows.back();
}

}  // namespace

std::string sweep_point_dir(size_t index, const SweepPoint& point) {
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "%02zu-", index + 1);
  std::string name = point.label();
  for (char& c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '=' || c == '-')) c = '_';
  return prefix + name.substr(0, 120);
}

void add_sweep_point(SweepSummary& s, const ReportModel& m, size_t point) {
  const Metric metric = m.settings.median_metric;
  for (const auto& t : m.tables) {
    bool higher = true;
    for (const auto& c : t.columns)
      if (c.metric == metric) higher = c.higher_better;
    SweepTable& st = table_for(s, t.dataset->name, metric, higher);
    for (const auto& r : t.rows) {
      double sum = 0;
      int organs = 0, seeds = 0;
      for (size_t c = 0; c < t.columns.size(); ++c)
        if (t.columns[c].metric == metric) {
          sum += r.cells[c].mean;
          ++organs;
          seeds = std::max(seeds, r.cells[c].n);
        }
      SweepRow& row = row_for(st, *r.network, s.points.size());
      row.cells.at(point) = {organs ? sum / organs : NAN, seeds, false};
    }
  }
}

void mark_sweep_best(SweepSummary& s) {
  for (auto& t : s.tables)
    for (auto& r : t.rows) {
      SweepCell* best = nullptr;
      for (auto& c : r.cells)
        if (!std::isnan(c.value) && (!best || (t.higher_better ? c.value > best->value : c.value < best->value))) best = &c;
      if (best) best->best = true;
    }
}

std::string sweep_markdown(const SweepSummary& s) {
  std::ostringstream md;
  md << "# " << s.experiment << ": sweep summary\n\nSwept: ";
  for (size_t i = 0; i < s.axes.size(); ++i) md << (i ? ", " : "") << "`" << s.axes[i] << "`";
  md << " (" << s.points.size() << " points). Each point's full report (Tables 1-2, claims, convergence, runs):\n\n";
  for (size_t p = 0; p < s.points.size(); ++p)
    md << "- point " << p + 1 << ": `" << s.points[p].label() << "`: `" << s.point_dirs[p] << "/tables.md`\n";
  for (const auto& t : s.tables) {
    md << "\n## " << md_escape(t.dataset) << ": " << choice_name(t.metric) << " (mean over organs and seeds; " << (t.higher_better ? "higher" : "lower")
       << " is better; bold: each network's best point)\n\n| Network |";
    for (size_t p = 0; p < s.points.size(); ++p) md << " " << md_escape(s.points[p].label()) << " |";
    md << "\n|---|" << [&] { std::string d; for (size_t p = 0; p < s.points.size(); ++p) d += "---|"; return d; }() << "\n";
    for (const auto& r : t.rows) {
      md << "| " << md_escape(r.label) << " |";
      for (const auto& c : r.cells) {
        const std::string v = value_text(c, digits_of(t));
        md << " " << (c.best ? "**" + v + "**" : v) << (c.seeds ? " (n=" + std::to_string(c.seeds) + ")" : "") << " |";
      }
      md << "\n";
    }
  }
  return md.str();
}

std::string sweep_csv(const SweepSummary& s) {
  std::ostringstream csv;
  csv << "dataset,model,point";
  for (const auto& a : s.axes) csv << "," << a;
  csv << ",metric,value,n_seeds,best\n";
  for (const auto& t : s.tables)
    for (const auto& r : t.rows)
      for (size_t p = 0; p < r.cells.size(); ++p) {
        csv << t.dataset << "," << r.network << "," << p + 1;
        for (const auto& a : s.axes) csv << "," << csv_field(s.points[p].value_text(a));
        const SweepCell& c = r.cells[p];
        csv << "," << choice_name(t.metric) << "," << csv_num(c.value) << "," << c.seeds << "," << (c.best ? 1 : 0) << "\n";
      }
  return csv.str();
}

std::string sweep_latex(const SweepSummary& s) {
  std::ostringstream tex;
  for (const auto& t : s.tables) {
    tex << "% " << s.experiment << ", sweep summary, " << t.dataset << ": " << choice_name(t.metric)
        << " (mean over organs and seeds); bold: each network's best point\n\\begin{tabular}{l"
        << std::string(s.points.size(), 'r') << "}\n\\hline\nNetwork";
    for (const auto& p : s.points) tex << " & " << tex_escape(p.label());
    tex << " \\\\\n\\hline\n";
    for (const auto& r : t.rows) {
      tex << tex_escape(r.label);
      for (const auto& c : r.cells) {
        const std::string v = value_text(c, digits_of(t));
        tex << " & " << (c.best ? "\\textbf{" + v + "}" : v);
      }
      tex << " \\\\\n";
    }
    tex << "\\hline\n\\end{tabular}\n\n";
  }
  return tex.str();
}

std::string sweep_html(const SweepSummary& s) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" << html_escape(s.experiment)
    << ": sweep</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}</style></head><body>\n"
    << "<h1>" << html_escape(s.experiment) << ": sweep summary</h1>\n<p>Swept:";
  for (const auto& a : s.axes) h << " <code>" << html_escape(a) << "</code>";
  h << " (" << s.points.size() << " points).</p>\n<ul>\n";
  for (size_t p = 0; p < s.points.size(); ++p)
    h << "<li>point " << p + 1 << ": <a href=\"" << html_escape(path_href(s.point_dirs[p] + "/report.html")) << "\">"
      << html_escape(s.points[p].label()) << "</a></li>\n";
  h << "</ul>\n";
  for (const auto& t : s.tables) {
    h << "<h2>" << html_escape(t.dataset) << ": " << choice_name(t.metric) << "</h2>\n<table class=\"sweep\"><tr><th>Network</th>";
    for (const auto& p : s.points) h << "<th>" << html_escape(p.label()) << "</th>";
    h << "</tr>\n";
    for (const auto& r : t.rows) {
      h << "<tr><td>" << html_escape(r.label) << "</td>";
      for (const auto& c : r.cells) {
        const std::string v = value_text(c, digits_of(t));
        h << "<td>" << (c.best ? "<b>" + v + "</b>" : v) << "</td>";
      }
      h << "</tr>\n";
    }
    h << "</table>\n<p>Mean over the data set's organs and the point's done seeds; " << (t.higher_better ? "higher" : "lower")
      << " is better; bold: each network's best point.</p>\n";
  }
  h << "</body></html>\n";
  return h.str();
}

}  // namespace orch::report
