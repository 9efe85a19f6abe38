// synth, prepare and preview: the data-set commands.
#include <cstdio>
#include <filesystem>

#include "cli/options.h"
#include "core/synth/synth_dataset.h"
#include "storage/prepare.h"
#include "storage/preview.h"
#include "storage/dataset_file.h"
#include "storage/workspace.h"
#include "core/choices.h"
#include "core/errors.h"
#include "core/experiment.h"

namespace orch::cli {

int cmd_synth(const Args& args) {
  po::options_description desc("orchestrator synth");
  std::string kind, out;
  SynthOptions o;
  uint64_t seed = 1;
  desc.add_options()
      ("kind", po::value(&kind)->required(), "lh (lungs and heart) or l (lungs only)")
      ("count", po::value(&o.count)->default_value(100), "number of images")
      ("size", po::value(&o.size)->default_value(256), "image size in pixels (square)")
      ("seed", po::value(&seed)->default_value(1), "random seed: the same seed gives the same bytes")
      ("out", po::value(&out)->required(), "output folder (must not exist)")
      ("occluder-fraction", po::value(&o.render.occluder_fraction)->default_value(0.10),
       "share of images with a pacemaker-like occluder")
      ("low-contrast-fraction", po::value(&o.render.low_contrast_fraction)->default_value(0.10),
       "share of images with a low-contrast region across a lung border")
      ("threads", po::value(&o.threads)->default_value(0), "worker threads (0: all cores)");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator synth --kind lh|l --count N --size PX --seed S --out DIR")) return 0;
  o.kind = parse_kind(kind, "--kind");
  o.seed = seed;
  SynthSummary s = write_synthetic_dataset(o, out);
  std::printf("synth: %d %s images of %dx%d in %s (train %d, val %d, test %d; %d with an occluder, %d low-contrast)\n",
              o.count, kind.c_str(), o.size, o.size, out.c_str(), s.train, s.val, s.test, s.occluded, s.low_contrast);
  return 0;
}

void print_prepare_summary(const PrepareSummary& s) {
  std::printf("prepare: %s: %d samples (%s, %dx%d; train %d, val %d, test %d) in %.1f s, digest %s\n", s.path.c_str(),
              s.count, kind_name(s.kind).c_str(), s.size, s.size, s.train, s.val, s.test, s.seconds,
              s.content_digest.c_str());
  if (s.unused_landmark_ids) std::printf("prepare: %d landmark ids are not in this data set (ignored)\n", s.unused_landmark_ids);
  if (s.unused_images) std::printf("prepare: %d images are in no split list (ignored)\n", s.unused_images);
}

// prepare EXP: every data set of an experiment into its workspace (what run/submit do first), after checking that
// every folder the experiment names exists (all missing ones named at once).
int prepare_experiment(const std::string& exp_path, const std::vector<std::string>& sets, const std::string& workspace) {
  Experiment exp = load_experiment(exp_path, sets);
  if (auto missing = missing_dataset_sources(exp); !missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += "\n  " + m;
    throw InputError(exp_path, "", "", "the data sets name folders that do not exist (data/README.md says what goes where):" + list);
  }
  const std::string ws = workspace.empty() ? exp.workspace : workspace;
  for (const auto& spec : exp.datasets) {
    EnsuredDataset e = ensure_dataset(exp, spec, ws);
    DatasetReader reader(e.path);
    auto c = reader.info().split_counts();
    std::printf("data set %s: %s, %d px, %d images: %d train / %d val / %d test  %s%s\n", spec.name.c_str(),
                kind_name(reader.info().kind).c_str(), reader.info().size, reader.info().count, c[0], c[1], c[2],
                e.path.c_str(), e.rebuilt ? "" : " (up to date)");
  }
  return 0;
}

int cmd_prepare(const Args& args) {
  po::options_description desc("orchestrator prepare");
  PrepareOptions o;
  uint64_t split_seed = 0;
  std::string edges = "canny", exp_path, workspace;
  std::vector<std::string> sets;
  desc.add_options()
      ("experiment", po::value(&exp_path), "an experiment file: prepare its data sets into its workspace (then no other option but --set, --workspace)")
      ("set", po::value(&sets)->composing(), "with an experiment: override a setting, key.path=value (repeatable)")
      ("workspace", po::value(&workspace), "with an experiment: the workspace (default: the experiment's)")
      ("out", po::value(&o.out), "output HDF5 file (must not exist unless --force)")
      ("size", po::value(&o.size)->default_value(1024), "working size in pixels")
      ("landmarks", po::value(&o.landmarks), "folder with RL/, LL/ and (for lh) H/ .npy files")
      ("images", po::value(&o.images)->composing(), "folder of PNGs already in the landmark frame (repeatable)")
      ("raw-jsrt", po::value(&o.raw_jsrt)->composing(), "folder of JSRT 2048x2048 .IMG files (repeatable)")
      ("raw-png", po::value(&o.raw_png)->composing(),
       "folder of raw Padchest/Montgomery/Shenzhen PNGs: crop, pad, resize (repeatable)")
      ("blank-images", po::bool_switch(&o.blank_images), "no X-rays: blank 1024x1024 stand-in images")
      ("splits", po::value(&o.splits)->composing(), "folder of train/val/test lists (repeatable; merged)")
      ("split-seed", po::value(&split_seed), "no split lists: a seeded 70/15/15 split")
      ("kind", po::value(&o.kind)->default_value("auto"), "lh, l, or auto (from the heart landmarks present)")
      ("edges", po::value(&edges)->default_value("canny"),
       "distance-map contour: canny (the reference: skimage Canny sigma 2) or boundary (1-px inner boundary)")
      ("compress-maps", po::value(&o.map_deflate)->default_value(0), "deflate level 0-9 for the distance maps")
      ("threads", po::value(&o.threads)->default_value(0), "worker threads (0: all cores)")
      ("force", po::bool_switch(&o.overwrite), "replace an existing output file");
  po::variables_map vm;
  po::positional_options_description pos;
  pos.add("experiment", 1);
  if (!parse_options(args, desc, vm,
                     "orchestrator prepare EXP [--set key=value]... | prepare --out FILE.h5 --size PX --landmarks DIR "
                     "[--splits DIR | --split-seed N] (--images DIR | --raw-jsrt DIR | --raw-png DIR | --blank-images)",
                     &pos))
    return 0;
  if (!exp_path.empty()) {
    if (vm.count("out") || !o.landmarks.empty()) throw InputError("", "--out", "", "give an experiment file or --out and the sources, not both");
    return prepare_experiment(exp_path, sets, workspace);
  }
  if (o.out.empty()) throw InputError("", "--out", "", "missing output file (or give an experiment file)");
  if (vm.count("split-seed")) o.split_seed = split_seed;
  auto edge_set = choice_from<EdgeSet>(edges);
  if (!edge_set) throw InputError("", "--edges", edges, choice_expectation<EdgeSet>() + " (canny is the reference's)");
  o.edges = *edge_set;
  print_prepare_summary(prepare_dataset(o));
  return 0;
}

int cmd_preview(const Args& args) {
  po::options_description desc("orchestrator preview");
  std::string data, out;
  int count = 4, tile = 256;
  desc.add_options()
      ("data", po::value(&data)->required(), "prepared HDF5 data set")
      ("out", po::value(&out)->required(), "output PNG")
      ("count", po::value(&count)->default_value(4), "number of samples")
      ("tile", po::value(&tile)->default_value(256), "tile size in pixels");
  po::variables_map vm;
  if (!parse_options(args, desc, vm, "orchestrator preview --data FILE.h5 --out FILE.png")) return 0;
  if (count < 1 || count > 64) throw InputError("", "--count", std::to_string(count), "expected 1 to 64");
  if (tile < 32 || tile > 2048) throw InputError("", "--tile", std::to_string(tile), "expected 32 to 2048");
  DatasetReader reader(data);
  write_dataset_preview(reader, out, count, tile);
  std::printf("preview: %s\n", out.c_str());
  return 0;
}

}  // namespace orch::cli
