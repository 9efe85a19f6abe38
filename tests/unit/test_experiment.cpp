#include <gtest/gtest.h>

#include <fstream>

#include "core/errors.h"
#include "core/experiment.h"
#include "test_util.h"

using namespace orch;
using nlohmann::json;

namespace {
json demo() {
  return json::parse(R"({"name": "t", "workspace": "ws", "datasets": {
    "synth_lh": {"kind": "lh", "size": 64, "synthetic": {"count": 10, "seed": 3}},
    "real": {"kind": "l", "size": 128, "landmarks": "/x", "blank_images": true, "splits": ["/a", "/b"]}}})");
}
std::string error_of(const json& doc) {
  try {
    parse_experiment(doc, "exp.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Experiment, ParsesDatasets) {
  Experiment e = parse_experiment(demo(), "exp.json");
  EXPECT_EQ(e.name, "t");
  ASSERT_EQ(e.datasets.size(), 2u);
  const auto& s = e.dataset("synth_lh");
  ASSERT_TRUE(s.synthetic);
  EXPECT_EQ(s.synthetic->count, 10);
  EXPECT_EQ(s.synthetic->size, 64);
  EXPECT_EQ(e.dataset("real").splits.size(), 2u);
  EXPECT_THROW(e.dataset("nope"), InputError);
}

TEST(Experiment, ErrorsNameFileFieldAndValue) {
  json d = demo();
  d["datasets"]["synth_lh"]["synthetic"]["count"] = 1;
  std::string e = error_of(d);
  EXPECT_NE(e.find("exp.json"), std::string::npos) << e;
  EXPECT_NE(e.find("datasets.synth_lh.synthetic.count"), std::string::npos) << e;
  EXPECT_NE(e.find("= 1"), std::string::npos) << e;
  d = demo();
  d["datasets"]["synth_lh"]["kind"] = "lungs";
  e = error_of(d);
  EXPECT_NE(e.find("datasets.synth_lh.kind = \"lungs\""), std::string::npos) << e;
  d = demo();
  d["datasets"]["real"]["colour"] = 1;
  e = error_of(d);
  EXPECT_NE(e.find("datasets.real.colour"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown field"), std::string::npos) << e;
  d = demo();
  d["datasets"]["real"].erase("splits");
  EXPECT_NE(error_of(d).find("split"), std::string::npos);
  d = demo();
  d.erase("name");
  EXPECT_NE(error_of(d).find("name"), std::string::npos);
}

TEST(Experiment, OverridesApplyBeforeValidation) {
  json d = demo();
  apply_override(d, "datasets.synth_lh.synthetic.count=25");
  apply_override(d, "workspace=/tmp/elsewhere");
  Experiment e = parse_experiment(d, "exp.json");
  EXPECT_EQ(e.dataset("synth_lh").synthetic->count, 25);
  EXPECT_EQ(e.workspace, "/tmp/elsewhere");
  EXPECT_THROW(apply_override(d, "novalue"), InputError);
  apply_override(d, "datasets.synth_lh.size=\"big\"");
  EXPECT_NE(error_of(d).find("datasets.synth_lh.size"), std::string::npos);
}

TEST(Experiment, ShippedExperimentFilesParse) {
  for (const char* f : {"demo.json"}) {
    Experiment e = load_experiment(std::string(ORCH_FIXTURES_DIR) + "/../../experiments/" + f);
    EXPECT_FALSE(e.datasets.empty()) << f;
  }
}

TEST(Experiment, BadJsonNamesTheFile) {
  test::TempDir d;
  std::ofstream(d / "bad.json") << "{ \"name\": ";
  try {
    load_experiment(d / "bad.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
  }
}
