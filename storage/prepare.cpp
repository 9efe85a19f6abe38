#include "storage/prepare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/choices.h"
#include "core/distance_map.h"
#include "core/errors.h"
#include "core/mask.h"
#include "core/png_io.h"
#include "core/progress.h"
#include "core/raw_image.h"
#include "storage/dataset_file.h"
#include "storage/splits.h"

namespace orch {

namespace fs = std::filesystem;

namespace {

enum class Source { kFramed, kJsrt, kRawPng, kBlank };

struct ImageRef {
  Source source = Source::kBlank;
  std::string path;
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void scan(const std::vector<std::string>& dirs, Source source, const char* option, const std::string& ext,
          std::map<std::string, ImageRef>& out) {
  for (const auto& dir : dirs) {
    if (!fs::is_directory(dir)) throw InputError(dir, option, dir, "not a folder");
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file() || lower(e.path().extension().string()) != ext) continue;
      std::string id = id_from_filename(e.path().string());
      auto it = out.find(id);
      if (it != out.end())
        throw InputError(e.path().string(), "id", id, "image id also provided by " + it->second.path);
      out[id] = {source, e.path().string()};
    }
  }
}

// "a, b, c (and 12 more)"
std::string list_some(const std::vector<std::string>& items, size_t shown = 10) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < shown; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > shown) out += " (and " + std::to_string(items.size() - shown) + " more)";
  return out;
}

}  // namespace

std::vector<std::string> missing_sources(const PrepareOptions& o) {
  std::vector<std::string> out;
  auto need = [&](const std::string& d, const char* what) {
    if (!d.empty() && !fs::is_directory(d)) out.push_back(d + " (" + what + ")");
  };
  need(o.landmarks, "landmarks");
  if (!o.landmarks.empty() && fs::is_directory(o.landmarks))
    for (const char* organ : {"RL", "LL"}) need((fs::path(o.landmarks) / organ).string(), "landmarks");
  for (const auto& d : o.images) need(d, "images");
  for (const auto& d : o.raw_jsrt) need(d, "raw_jsrt");
  for (const auto& d : o.raw_png) need(d, "raw_png");
  for (const auto& d : o.splits) need(d, "splits");
  return out;
}

void PrepareOptions::validate() const {
  if (out.empty()) throw InputError("", "--out", "", "missing output file");
  if (size < 32 || size > 4096) throw InputError("", "--size", std::to_string(size), "expected 32 to 4096 pixels");
  if (landmarks.empty()) throw InputError("", "--landmarks", "", "missing landmark folder");
  if (auto missing = missing_sources(*this); !missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw InputError("", "", "", "missing folder(s): " + list);
  }
  int sources = !images.empty() + !raw_jsrt.empty() + !raw_png.empty();
  if (sources == 0 && !blank_images)
    throw InputError("", "--images", "", "no image source: give --images, --raw-jsrt, --raw-png or --blank-images");
  if (blank_images && sources > 0)
    throw InputError("", "--blank-images", "", "cannot be combined with an image source");
  if (blank_images && splits.empty())
    throw InputError("", "--blank-images", "", "needs --splits (the split lists name the samples)");
  if (splits.empty() && !split_seed) throw InputError("", "--splits", "", "give --splits DIR or --split-seed N");
  if (!splits.empty() && split_seed) throw InputError("", "--split-seed", std::to_string(*split_seed), "cannot be combined with --splits");
  if (kind != "auto" && kind != "lh" && kind != "l") throw InputError("", "--kind", kind, "expected auto, lh or l");
  if (threads < 0 || threads > kMaxThreads) throw InputError("", "--threads", std::to_string(threads), "expected 0 to " + std::to_string(kMaxThreads));
  if (map_deflate < 0 || map_deflate > 9) throw InputError("", "--compress-maps", std::to_string(map_deflate), "expected 0 to 9");
}

namespace {

// 2. Which samples, in which split: the split lists (every id needs an image) or a seeded split of the images.
std::map<std::string, Split> choose_split(const PrepareOptions& opt, const std::map<std::string, ImageRef>& images,
                                          PrepareSummary& sum) {
  std::map<std::string, Split> split;
  if (!opt.splits.empty()) {
    split = read_split_dirs(opt.splits);
    if (!opt.blank_images) {
      std::vector<std::string> missing;
      for (const auto& [id, s] : split)
        if (!images.count(id)) missing.push_back(id);
      if (!missing.empty()) {
        std::string where;
        for (const auto* dirs : {&opt.images, &opt.raw_jsrt, &opt.raw_png})
          for (const auto& d : *dirs) where += (where.empty() ? "" : ", ") + d;
        throw InputError(where, "images", "",
                         std::to_string(missing.size()) + " of the " + std::to_string(split.size()) +
                             " ids of the split lists have no image file there: " + list_some(missing));
      }
      for (const auto& [id, ref] : images)
        if (!split.count(id)) ++sum.unused_images;
    }
  } else {
    std::vector<std::string> ids;
    for (const auto& [id, ref] : images) ids.push_back(id);
    if (ids.empty()) throw InputError("", "--images", "", "no image files found in the image folders");
    split = seeded_split(ids, *opt.split_seed);
  }
  if (split.empty()) throw InputError("", "--splits", "", "the split lists are empty");
  return split;
}

// 3a. The data set's kind: as given, or lungs and heart when every sample has heart landmarks.
DatasetKind choose_kind(const PrepareOptions& opt, const std::vector<std::string>& ids) {
  const fs::path lmdir(opt.landmarks);
  for (const char* organ : {"RL", "LL"})
    if (!fs::is_directory(lmdir / organ))
      throw InputError((lmdir / organ).string(), "--landmarks", opt.landmarks, "missing organ folder " + std::string(organ));
  if (opt.kind != "auto") return parse_kind(opt.kind, "--kind");
  int with_heart = 0;
  for (const auto& id : ids) with_heart += fs::exists(lmdir / "H" / (id + ".npy"));
  if (with_heart != 0 && with_heart != static_cast<int>(ids.size()))
    for (const auto& id : ids)
      if (!fs::exists(lmdir / "H" / (id + ".npy")))
        throw InputError((lmdir / "H" / (id + ".npy")).string(), "landmarks", id,
                         "missing heart landmarks (" + std::to_string(with_heart) + " of " + std::to_string(ids.size()) +
                             " samples have them; pass --kind l to ignore the heart)");
  return with_heart ? DatasetKind::kLungsHeart : DatasetKind::kLungs;
}

// One organ's landmarks of one sample, checked: the count, finite, inside the frame (with a margin).
std::vector<Point2> read_organ_points(const fs::path& p, const Organ& organ) {
  auto pts = read_npy_points(p.string());
  if (static_cast<int>(pts.size()) != organ.points)
    throw InputError(p.string(), "points", std::to_string(pts.size()), organ.name + " needs " + std::to_string(organ.points) + " points");
  const double lo = -kLandmarkMargin * kLandmarkFrame, hi = (1 + kLandmarkMargin) * kLandmarkFrame;
  for (size_t k = 0; k < pts.size(); ++k) {
    const std::string at = "(" + format_number(pts[k].x) + ", " + format_number(pts[k].y) + ")";
    if (!std::isfinite(pts[k].x) || !std::isfinite(pts[k].y))
      throw InputError(p.string(), "point " + std::to_string(k), at, "not a finite coordinate");
    if (pts[k].x < lo || pts[k].x > hi || pts[k].y < lo || pts[k].y > hi)
      throw InputError(p.string(), "point " + std::to_string(k), at,
                       "outside the " + std::to_string(kLandmarkFrame) + "-px landmark frame by more than half its size");
  }
  return pts;
}

// 3b. Every sample's landmarks, all checked before anything is written; counts the landmark ids left unused.
std::vector<std::vector<Point2>> read_landmarks(const PrepareOptions& opt, const OrganLayout& layout,
                                                const std::vector<std::string>& ids, PrepareSummary& sum) {
  const fs::path lmdir(opt.landmarks);
  std::vector<std::string> missing;
  for (const auto& id : ids)
    for (const auto& organ : layout.organs)
      if (!fs::exists(lmdir / organ.name / (id + ".npy"))) missing.push_back(organ.name + "/" + id + ".npy");
  if (!missing.empty())
    throw InputError(opt.landmarks, "landmarks", "",
                     std::to_string(missing.size()) + " landmark file(s) of the listed ids are missing: " + list_some(missing));
  std::vector<std::vector<Point2>> landmarks(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    for (const auto& organ : layout.organs) {
      auto pts = read_organ_points(lmdir / organ.name / (ids[i] + ".npy"), organ);
      landmarks[i].insert(landmarks[i].end(), pts.begin(), pts.end());
    }
  std::set<std::string> wanted(ids.begin(), ids.end());
  for (const auto& e : fs::directory_iterator(lmdir / "RL"))
    if (e.path().extension() == ".npy" && !wanted.count(id_from_filename(e.path().string()))) ++sum.unused_landmark_ids;
  return landmarks;
}

// One sample: its image in the landmark frame, resized, with its landmarks, mask and distance maps.
void make_sample(const PrepareOptions& opt, const OrganLayout& layout, const std::string& id, const ImageRef* ref,
                 const std::vector<Point2>& landmarks, Sample& s) {
  cv::Mat frame;
  switch (ref ? ref->source : Source::kBlank) {
    case Source::kBlank: frame = cv::Mat::zeros(kLandmarkFrame, kLandmarkFrame, CV_8U); break;
    case Source::kJsrt: frame = jsrt_to_frame(ref->path); break;
    case Source::kRawPng: frame = png_to_frame(read_png_grey(ref->path)); break;
    case Source::kFramed:
      frame = read_png_grey(ref->path);
      if (frame.rows != frame.cols || frame.rows < 8)
        throw InputError(ref->path, "size", std::to_string(frame.cols) + "x" + std::to_string(frame.rows),
                         "images given with --images must be square and in the landmark frame");
      break;
  }
  const double scale = static_cast<double>(opt.size) / frame.rows;
  s = Sample{};
  s.id = id;
  s.image = resize_square(frame, opt.size);
  for (const auto& q : landmarks) s.landmarks.push_back({q.x * scale, q.y * scale});
  s.mask = label_mask(layout, s.landmarks, opt.size);
  s.dmaps = distance_maps(layout, s.mask, opt.edges);
}

// The sources recorded in the file (what `prepare` was given), for provenance and the spec digest.
std::string sources_json(const PrepareOptions& opt) {
  nlohmann::json sources = {{"landmarks", fs::absolute(opt.landmarks).string()},
                            {"images", opt.images},
                            {"raw_jsrt", opt.raw_jsrt},
                            {"raw_png", opt.raw_png},
                            {"splits", opt.splits},
                            {"blank_images", opt.blank_images},
                            {"size", opt.size},
                            {"distance_edges", choice_name(opt.edges)},
                            {"spec_digest", opt.spec_digest}};
  if (opt.split_seed) sources["split_seed"] = *opt.split_seed;
  return sources.dump();
}

}  // namespace

PrepareSummary prepare_dataset(const PrepareOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  opt.validate();
  if (!opt.overwrite && fs::exists(opt.out))
    throw InputError(opt.out, "--out", opt.out, "output already exists (remove it, or pass --force to replace it)");
  // 1. Images by id. 2. The split. 3. Kind and landmarks, all checked before anything is written.
  std::map<std::string, ImageRef> images;
  scan(opt.images, Source::kFramed, "--images", ".png", images);
  scan(opt.raw_jsrt, Source::kJsrt, "--raw-jsrt", ".img", images);
  scan(opt.raw_png, Source::kRawPng, "--raw-png", ".png", images);
  PrepareSummary sum;
  std::map<std::string, Split> split = choose_split(opt, images, sum);
  std::vector<std::string> ids;
  std::vector<Split> split_vec;
  for (const auto& [id, s] : split) ids.push_back(id), split_vec.push_back(s);  // std::map: sorted
  const DatasetKind kind = choose_kind(opt, ids);
  const OrganLayout layout = OrganLayout::of(kind);
  const auto landmarks = read_landmarks(opt, layout, ids, sum);

  // 4. Make and write the samples, blockwise: a block is computed in parallel, then written in order.
  DatasetWriter writer(opt.out, kind, opt.size, ids, split_vec, opt.overwrite, opt.map_deflate);
  const int threads = opt.threads > 0 ? opt.threads : default_threads();
  const size_t block = static_cast<size_t>(std::max(2, 2 * threads));
  Progress progress("prepare " + fs::path(opt.out).filename().string(), ids.size(), !opt.quiet);
  std::vector<Sample> buf(block);
  for (size_t start = 0; start < ids.size(); start += block) {
    size_t n = std::min(block, ids.size() - start);
    parallel_for(n, threads, [&](size_t j) {
      const ImageRef* ref = opt.blank_images ? nullptr : &images.at(ids[start + j]);
      make_sample(opt, layout, ids[start + j], ref, landmarks[start + j], buf[j]);
    });
    for (size_t j = 0; j < n; ++j) {
      writer.write(static_cast<int>(start + j), buf[j]);
      progress.advance();
    }
  }
  progress.finish();
  sum.content_digest = writer.commit(sources_json(opt));
  sum.path = opt.out;
  sum.kind = kind;
  sum.size = opt.size;
  sum.count = static_cast<int>(ids.size());
  for (auto s : split_vec) (s == Split::kTrain ? sum.train : s == Split::kVal ? sum.val : sum.test)++;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace orch
