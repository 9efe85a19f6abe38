#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "report/figures.h"
#include "report/paper_tables.h"
#include "report/stats.h"
#include "storage/layout.h"

namespace orch::report {

namespace fs = std::filesystem;

namespace {

// The rows of the tables, in the paper's order, with its Predict and Supervision columns.
struct RowInfo {
  const char* id;
  const char* paper_name;
  const char* predicts;
  const char* supervision;
};
const std::vector<RowInfo>& rows() {
  static const std::vector<RowInfo> r = {
      {"hybridgnet", "HybridGNet", "point", "point"},     {"hybridgnet_igsc", "HybridGNet+IGSC", "point", "point"},
      {"unet", "UNet", "dense", "dense"},                 {"unet_joint", "UNet Joint", "dense", "dense"},
      {"hourglass", "Hourglass", "point", "both"},        {"hourglass_concat", "Hourglass Concat", "point", "both"},
      {"multitask", "Multi-task", "point", "both"},       {"no_joint", "No Joint", "point", "point"},
      {"mse_only", "MSE Only", "point", "both"},          {"rasterize", "Rasterize", "point", "dense"},
      {"ours", "Ours", "point", "both"}};
  return r;
}

struct Cell {
  double mean = std::nan(""), std = std::nan("");
  int n = 0;
};

struct Column {
  std::string organ, metric, label;
  bool higher_better;
};

std::string fmt(double v, int digits) {
  if (std::isnan(v)) return "–";
  char b[48];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

int digits_of(const std::string& metric) { return metric == "hausdorff_mm" ? 2 : metric == "inference_s" ? 4 : 4; }

std::string csv_num(double v) {
  if (std::isnan(v)) return "";
  char b[48];
  std::snprintf(b, sizeof b, "%.10g", v);
  return b;
}


}  // namespace

Report make_report(const Experiment& exp, const std::vector<scheduler::PlannedRun>& grid, Store& store,
                   const std::string& workspace, const ReportOptions& opt_in) {
  ReportOptions opt = opt_in;
  if (opt.out_dir.empty()) opt.out_dir = WorkspaceLayout(workspace).report_dir();
  if (opt.median_metric != "dice" && opt.median_metric != "jaccard" && opt.median_metric != "hausdorff_mm")
    throw InputError("--median-metric", "", opt.median_metric, "expected dice, jaccard or hausdorff_mm");
  for (const auto& f : opt.formats)
    if (f != "md" && f != "csv" && f != "tex") throw InputError("--format", "", f, "expected md, csv or tex");
  fs::create_directories(opt.out_dir);
  Report rep;

  // The grid's table runs (stage train) and their states.
  std::map<std::string, RunRecord> recorded;
  for (auto& r : store.runs()) recorded[r.run_id] = r;
  std::vector<std::string> ids;
  std::map<std::pair<std::string, std::string>, std::vector<const scheduler::PlannedRun*>> runs_of;  // (dataset, model)
  for (const auto& r : grid) {
    if (r.settings.stage != "train") continue;
    runs_of[{r.settings.dataset, r.settings.model}].push_back(&r);
    ids.push_back(r.id);
    auto it = recorded.find(r.id);
    std::string state = it == recorded.end() ? "new" : it->second.state;
    if (state != "done") rep.missing.push_back(r.id + " (" + state + ")");
  }
  // Per run: organ -> metric -> value.
  std::map<std::string, std::map<std::string, MetricAggregate>> agg;
  for (auto& a : store.metric_aggregates(ids)) agg[a.run_id][a.organ] = a;
  auto done = [&](const std::string& id) {
    auto it = recorded.find(id);
    return it != recorded.end() && it->second.state == "done" && agg.count(id);
  };
  auto value_of = [&](const std::string& id, const std::string& organ, const std::string& metric) -> double {
    auto it = agg.find(id);
    if (it == agg.end()) return std::nan("");
    auto o = it->second.find(organ);
    if (o == it->second.end()) return std::nan("");
    if (metric == "dice") return o->second.dice;
    if (metric == "jaccard") return o->second.jaccard;
    if (metric == "hausdorff_mm") return o->second.hausdorff_mm;
    return o->second.inference_s;
  };

  const nlohmann::json paper = paper_tables();
  std::ostringstream md, tex, csv, cmp;
  csv << "table,dataset,model,organ,metric,mean,std,n_seeds\n";
  cmp << "table,dataset,model,organ,metric,mean,paper,difference\n";
  std::vector<MedianModel> medians;
  std::vector<std::string> notes;
  int table_no_lh = 0, table_no_l = 0;
  const bool several_lh = std::count_if(exp.datasets.begin(), exp.datasets.end(), [](auto& d) { return d.kind == DatasetKind::kLungsHeart; }) > 1;
  const bool several_l = std::count_if(exp.datasets.begin(), exp.datasets.end(), [](auto& d) { return d.kind == DatasetKind::kLungs; }) > 1;

  for (const auto& ds : exp.datasets) {
    const bool lh = ds.kind == DatasetKind::kLungsHeart;
    std::string table = lh ? "1" : "2";
    if (lh && several_lh) table += std::string(1, static_cast<char>('a' + table_no_lh++));
    if (!lh && several_l) table += std::string(1, static_cast<char>('a' + table_no_l++));
    const nlohmann::json& ptab = paper.at(lh ? "table1" : "table2");
    std::vector<Column> cols;
    for (const std::string& organ : lh ? std::vector<std::string>{"lungs", "heart"} : std::vector<std::string>{"lungs"})
      for (const auto& [metric, label, hb] : std::vector<std::tuple<std::string, std::string, bool>>{
               {"dice", "DC↑", true}, {"hausdorff_mm", "HD↓", false}, {"jaccard", "JC↑", true}})
        cols.push_back({organ, metric, (lh ? (organ == "lungs" ? "Lungs " : "Heart ") : std::string()) + label, hb});
    if (!lh) cols.push_back({"", "inference_s", "Inference (s)", false});

    struct Row {
      const RowInfo* info;
      std::vector<Cell> cells;
      std::vector<std::string> done_ids;
      std::string median;
      double p_vs_ours = std::nan("");
      int n_pairs = 0;
    };
    std::vector<Row> table_rows;
    for (const auto& ri : rows()) {
      auto it = runs_of.find({ds.name, ri.id});
      if (it == runs_of.end()) continue;
      Row row{&ri, {}, {}, "", std::nan(""), 0};
      for (const auto* r : it->second)
        if (done(r->id)) row.done_ids.push_back(r->id);
      for (const auto& c : cols) {
        std::vector<double> v;
        for (const auto& id : row.done_ids) {
          double x = value_of(id, c.organ, c.metric);
          if (!std::isnan(x)) v.push_back(x);
        }
        row.cells.push_back({mean(v), stddev(v), static_cast<int>(v.size())});
      }
      // Median model.
      if (!row.done_ids.empty()) {
        std::vector<double> scores;
        for (const auto& id : row.done_ids) {
          std::vector<double> per_organ;
          for (const std::string& organ : lh ? std::vector<std::string>{"lungs", "heart"} : std::vector<std::string>{"lungs"})
            per_organ.push_back(value_of(id, organ, opt.median_metric));
          scores.push_back(mean(per_organ));
        }
        size_t m = median_index(scores);
        row.median = row.done_ids[m];
        medians.push_back({ds.name, ri.id, row.median, opt.median_metric, scores[m], static_cast<int>(row.done_ids.size())});
      }
      for (const auto& id : row.done_ids) {
        for (const std::string organ : {"lungs", "heart"}) {
          auto a = agg[id].find(organ);
          if (a != agg[id].end() && a->second.hausdorff_defined < a->second.images)
            notes.push_back(id + ": Hausdorff undefined (empty mask) on " +
                            std::to_string(a->second.images - a->second.hausdorff_defined) + " of " +
                            std::to_string(a->second.images) + " test images (" + organ + "), left out of its mean");
        }
      }
      table_rows.push_back(std::move(row));
    }
    // Paired tests against Ours' median model: per-image score = mean over organs of Dice.
    const Row* ours = nullptr;
    for (const auto& r : table_rows)
      if (std::string(r.info->id) == "ours" && !r.median.empty()) ours = &r;
    if (ours) {
      auto per_image = [&](const std::string& id) {
        std::map<std::string, std::vector<double>> m;
        for (const auto& t : store.test_metrics(id)) m[t.image_id].push_back(t.dice);
        std::map<std::string, double> out;
        for (auto& [img, v] : m) out[img] = mean(v);
        return out;
      };
      auto base = per_image(ours->median);
      for (auto& r : table_rows) {
        if (&r == ours || r.median.empty()) continue;
        auto other = per_image(r.median);
        std::vector<double> x, y;
        for (auto& [img, v] : base)
          if (other.count(img)) x.push_back(v), y.push_back(other[img]);
        WilcoxonResult w = wilcoxon(x, y);
        r.p_vs_ours = w.p_value;
        r.n_pairs = static_cast<int>(x.size());
      }
    }
    // Best per column (over rows with a value).
    std::vector<int> best(cols.size(), -1);
    for (size_t c = 0; c < cols.size(); ++c)
      for (size_t r = 0; r < table_rows.size(); ++r) {
        double v = table_rows[r].cells[c].mean;
        if (std::isnan(v)) continue;
        if (best[c] < 0 || (cols[c].higher_better ? v > table_rows[best[c]].cells[c].mean : v < table_rows[best[c]].cells[c].mean))
          best[c] = static_cast<int>(r);
      }

    // Markdown.
    md << "### Table " << table << ". " << ds.name << " (" << (lh ? "lungs and heart" : "lungs")
       << "): mean ± std over seeds (n seeds); paper value and difference below\n\n";
    md << "| Network | Predict | Supervision |";
    for (const auto& c : cols) md << " " << c.label << " |";
    md << " seeds | median run | Wilcoxon p vs Ours |\n|---|---|---|";
    for (size_t i = 0; i < cols.size(); ++i) md << "---|";
    md << "---|---|---|\n";
    tex << "% Table " << table << ": " << ds.name << "\n\\begin{tabular}{lll" << std::string(cols.size(), 'r') << "r}\n\\hline\n"
        << "Network & Predict & Supervision";
    for (const auto& c : cols) {
      std::string l = c.label;
      for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{{"↑", "$\\uparrow$"}, {"↓", "$\\downarrow$"}}) {
        size_t p;
        while ((p = l.find(from)) != std::string::npos) l.replace(p, from.size(), to);
      }
      tex << " & " << l;
    }
    tex << " & seeds \\\\\n\\hline\n";
    for (size_t r = 0; r < table_rows.size(); ++r) {
      const Row& row = table_rows[r];
      int n_seeds = static_cast<int>(row.done_ids.size());
      md << "| " << row.info->paper_name << " | " << row.info->predicts << " | " << row.info->supervision << " |";
      tex << row.info->paper_name << " & " << row.info->predicts << " & " << row.info->supervision;
      for (size_t c = 0; c < cols.size(); ++c) {
        const Cell& cell = row.cells[c];
        const int dg = digits_of(cols[c].metric);
        std::string v = fmt(cell.mean, dg);
        if (!std::isnan(cell.std)) v += " ± " + fmt(cell.std, dg);
        double pv = std::nan("");
        if (ptab.contains(row.info->id)) {
          const auto& pe = ptab[row.info->id];
          if (cols[c].metric == "inference_s") pv = pe.value("inference_s", std::nan(""));
          else if (pe.contains(cols[c].organ)) pv = pe[cols[c].organ].value(cols[c].metric, std::nan(""));
        }
        std::string shown = static_cast<int>(r) == best[c] ? "**" + v + "**" : v;
        if (!std::isnan(pv)) shown += "<br>paper " + fmt(pv, dg) + (std::isnan(cell.mean) ? "" : " (" + std::string(cell.mean - pv >= 0 ? "+" : "") + fmt(cell.mean - pv, dg) + ")");
        md << " " << shown << " |";
        std::string tv = fmt(cell.mean, dg);
        if (!std::isnan(cell.std)) tv += " $\\pm$ " + fmt(cell.std, dg);
        tex << " & " << (static_cast<int>(r) == best[c] ? "\\textbf{" + tv + "}" : tv);
        csv << table << "," << ds.name << "," << row.info->id << "," << cols[c].organ << "," << cols[c].metric << ","
            << csv_num(cell.mean) << "," << csv_num(cell.std) << "," << cell.n << "\n";
        cmp << table << "," << ds.name << "," << row.info->id << "," << cols[c].organ << "," << cols[c].metric << ","
            << csv_num(cell.mean) << "," << csv_num(pv) << "," << csv_num(cell.mean - pv) << "\n";
      }
      md << " " << n_seeds << " | " << (row.median.empty() ? "–" : "`" + row.median + "`") << " | "
         << (std::isnan(row.p_vs_ours) ? "–" : fmt(row.p_vs_ours, 4) + " (n=" + std::to_string(row.n_pairs) + ")") << " |\n";
      tex << " & " << n_seeds << " \\\\\n";
    }
    tex << "\\hline\n\\end{tabular}\n\n";
    md << "\nBest value per column in bold (over the rows with a value). Paper: " << ptab.value("dataset", std::string())
       << " (Bransby et al., 2023).";
    if (!lh) md << " Inference: mean seconds per image after the first (cold) call, on "
                << "this experiment's devices; the paper's are on an A100 without CUDA synchronisation.";
    md << "\n\n";

    if (opt.figures) {
      std::vector<FigureRun> fr;
      for (const auto& row : table_rows)
        if (!row.median.empty()) fr.push_back({row.info->id, row.info->paper_name, row.median});
      std::vector<CurveRun> curves;
      for (const auto& row : table_rows)
        for (const auto& id : row.done_ids) {
          auto it = recorded.find(id);
          curves.push_back({row.info->id, row.info->paper_name, id, it->second.seed, store.epoch_metrics(id)});
        }
      if (!fr.empty()) {
        std::string q = (fs::path(opt.out_dir) / ("qualitative_" + ds.name + ".png")).string();
        if (draw_qualitative(workspace, ds, fr, opt.figure_images, q)) rep.files.push_back(q);
      }
      if (!curves.empty()) {
        std::string c = (fs::path(opt.out_dir) / ("curves_" + ds.name + ".png")).string();
        draw_curves(ds.name, curves, c);
        rep.files.push_back(c);
      }
    }
  }
  store.set_median_models(exp.name, medians);
  if (!rep.missing.empty()) {
    md << "**Not in the tables (not done):** " << rep.missing.size() << " run(s):\n";
    for (const auto& m : rep.missing) md << "- " << m << "\n";
    md << "\n";
  }
  for (const auto& n : notes) md << "- note: " << n << "\n";
  rep.markdown = md.str();
  auto out = [&](const std::string& name) { return (fs::path(opt.out_dir) / name).string(); };
  for (const auto& f : opt.formats) {
    if (f == "md") {
      write_file_atomically(out("tables.md"), "# " + exp.name + ": Tables 1-2\n\n" + rep.markdown);
      rep.files.push_back(out("tables.md"));
    } else if (f == "csv") {
      write_file_atomically(out("tables.csv"), csv.str());
      write_file_atomically(out("paper_comparison.csv"), cmp.str());
      rep.files.push_back(out("tables.csv"));
      rep.files.push_back(out("paper_comparison.csv"));
    } else if (f == "tex") {
      write_file_atomically(out("tables.tex"), tex.str());
      rep.files.push_back(out("tables.tex"));
    }
  }
  return rep;
}

}  // namespace orch::report
