#include "core/synth/synth_dataset.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/errors.h"
#include "core/mask.h"
#include "core/png_io.h"
#include "core/progress.h"

namespace orch {

namespace fs = std::filesystem;

void SynthOptions::validate() const {
  if (count < 3) throw InputError("", "--count", std::to_string(count), "need at least 3 images (train, val, test)");
  if (count > 1000000) throw InputError("", "--count", std::to_string(count), "at most 1000000 images");
  if (size < 32 || size > 4096) throw InputError("", "--size", std::to_string(size), "expected 32 to 4096 pixels");
  auto frac = [](const char* name, double v) {
    if (!(v >= 0 && v <= 1)) throw InputError("", name, format_number(v), "expected a fraction in [0, 1]");
  };
  frac("occluder_fraction", render.occluder_fraction);
  frac("low_contrast_fraction", render.low_contrast_fraction);
  if (threads < 0 || threads > kMaxThreads) throw InputError("", "--threads", std::to_string(threads), "expected 0 to " + std::to_string(kMaxThreads));
}

std::string synth_id(DatasetKind kind, int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s_%04d", kind == DatasetKind::kLungsHeart ? "synlh" : "synl", index);
  return buf;
}

SynthSummary synthetic_split_sizes(int count) {
  SynthSummary s;
  s.val = std::max(1, static_cast<int>(std::lround(0.15 * count)));
  s.test = s.val;
  s.train = count - s.val - s.test;
  return s;
}

SynthSummary write_synthetic_dataset(const SynthOptions& opt, const std::string& out_dir, bool quiet) {
  opt.validate();
  if (fs::exists(out_dir)) throw InputError(out_dir, "--out", out_dir, "output folder already exists");
  const OrganLayout layout = OrganLayout::of(opt.kind);
  const ShapeModel model(opt.kind);
  fs::path tmp = fs::path(out_dir).string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  struct Cleanup {
    fs::path p;
    bool keep = false;
    ~Cleanup() { if (!keep) { std::error_code ec; fs::remove_all(p, ec); } }
  } cleanup{tmp};
  fs::create_directories(tmp / "images");
  fs::create_directories(tmp / "splits");
  for (const auto& o : layout.organs) fs::create_directories(tmp / "landmarks" / o.name);

  std::vector<char> occluded(opt.count, 0), low(opt.count, 0);
  {
    Progress progress("synth " + kind_name(opt.kind), static_cast<size_t>(opt.count), !quiet);
    parallel_for(static_cast<size_t>(opt.count), opt.threads > 0 ? opt.threads : default_threads(), [&](size_t i) {
      Rng rng = Rng::derive(opt.seed, {0x73796e7468ULL /* "synth" */, i});
      std::vector<Point2> lm = model.sample(rng, opt.size, opt.shape);
      RenderedXray x = render_xray(layout, lm, opt.size, rng, opt.render);
      std::string id = synth_id(opt.kind, static_cast<int>(i));
      write_png((tmp / "images" / (id + ".png")).string(), x.image);
      for (size_t o = 0; o < layout.organs.size(); ++o)
        write_npy_points((tmp / "landmarks" / layout.organs[o].name / (id + ".npy")).string(),
                         organ_points(layout, lm, static_cast<int>(o)));
      occluded[i] = x.occluder;
      low[i] = x.low_contrast;
      progress.advance();
    });
  }

  // Splits: a seeded shuffle, 70 / 15 / 15 (at least one image in each).
  std::vector<int> order(opt.count);
  std::iota(order.begin(), order.end(), 0);
  Rng rng = Rng::derive(opt.seed, {0x73706c6974ULL /* "split" */});
  for (int i = opt.count - 1; i > 0; --i) std::swap(order[i], order[rng.randint(0, i + 1)]);
  SynthSummary sum = synthetic_split_sizes(opt.count);
  auto write_split = [&](const char* name, int begin, int end) {
    std::vector<int> ids(order.begin() + begin, order.begin() + end);
    std::sort(ids.begin(), ids.end());
    std::ofstream f(tmp / "splits" / (std::string(name) + ".txt"));
    for (int i : ids) f << synth_id(opt.kind, i) << "\n";
    if (!f) throw Error((tmp / "splits").string() + ": cannot write split file");
  };
  write_split("train", 0, sum.train);
  write_split("val", sum.train, sum.train + sum.val);
  write_split("test", sum.train + sum.val, opt.count);
  for (int i = 0; i < opt.count; ++i) {
    sum.occluded += occluded[i];
    sum.low_contrast += low[i];
  }
  fs::rename(tmp, out_dir);
  cleanup.keep = true;
  return sum;
}

}  // namespace orch
