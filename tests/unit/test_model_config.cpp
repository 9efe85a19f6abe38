#include <gtest/gtest.h>

#include "core/errors.h"
#include "models/model_config.h"

using namespace orch;
using namespace orch::models;
using nlohmann::json;

TEST(ModelConfig, ExperimentOptionsApplyAndValidate) {
  ModelConfig c = model_config_from_json(json{{"latents", 64}, {"lookup_position_gradients", true}}, ModelConfig(),
                                         "e.json", "networks.ours");
  EXPECT_EQ(c.latents, 64);
  EXPECT_TRUE(c.lookup_position_gradients);
  EXPECT_TRUE(c.rasterize_probabilities_as_logits);  // reference behaviour by default
  EXPECT_TRUE(c.multitask_reference_dense_head);
  try {
    model_config_from_json(json{{"latent", 64}}, ModelConfig(), "e.json", "networks.ours");
    FAIL();
  } catch (const InputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("e.json"), std::string::npos) << m;
    EXPECT_NE(m.find("networks.ours.latent"), std::string::npos) << m;
  }
  EXPECT_THROW(model_config_from_json(json{{"raster_tau", -1}}, ModelConfig(), "e.json", "n"), InputError);
  EXPECT_THROW(model_config_from_json(json{{"cheb_k", "six"}}, ModelConfig(), "e.json", "n"), InputError);
  ModelConfig bad;
  bad.size = 100;
  EXPECT_THROW(bad.validate(), InputError);
}
