// The named adapters of a served model: ids never given twice, a request's adapters resolved into
// a set it owns (an unload does not take them from it), scale 0 left out, and errors that name the
// model id, the adapter id or the file.
#include "router/adapter_catalog.h"

#include <gtest/gtest.h>

#include "support/stories.h"

namespace owl::router {
namespace {

const std::string kReference = std::string(OWL_SHARED_DIR) + "/reference/lora/stories260K.lora-r4-all.gguf";

class Catalog : public ::testing::Test {
 protected:
  std::shared_ptr<AdapterIds> ids = std::make_shared<AdapterIds>(0);
  AdapterCatalog catalog{*owl::testing::stories().model, ids};

  std::shared_ptr<const model::AdapterSet> resolve(std::string_view name, std::vector<LoraChoice> choices = {}) {
    auto r = catalog.resolve("base", name, choices);
    if (auto* e = std::get_if<ApiError>(&r)) {
      ADD_FAILURE() << e->message;
      return nullptr;
    }
    return std::get<std::shared_ptr<const model::AdapterSet>>(r);
  }
  ApiError error(std::string_view name, std::vector<LoraChoice> choices = {}) {
    auto r = catalog.resolve("base", name, choices);
    EXPECT_TRUE(std::holds_alternative<ApiError>(r));
    return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
  }
};

TEST_F(Catalog, IdsAreNeverGivenTwiceAcrossCatalogsAndReloads) {
  AdapterCatalog other(*owl::testing::stories().model, ids);
  auto a = catalog.load("a", kReference, 1.0f);
  auto b = other.load("b", kReference, 1.0f);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, 0);
  EXPECT_EQ(b->id, 1);
  EXPECT_TRUE(catalog.has_id(0));
  EXPECT_FALSE(catalog.has_id(1));
  auto again = catalog.load("a", kReference, 0.5f);  // replaces "a"
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, 2);
  EXPECT_FALSE(catalog.has_id(0));
  ASSERT_EQ(catalog.list().size(), 1u);
  EXPECT_EQ(catalog.find("a")->scale, 0.5f);
  EXPECT_NE(catalog.find("a")->adapter, a->adapter);
  // Prefix reuse keys KV by the adapters' names: two loads never share one.
  EXPECT_NE(a->adapter->name, again->adapter->name);
  auto gone = catalog.unload("a");
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->id, 2);
  EXPECT_FALSE(catalog.unload("a").has_value());
  EXPECT_TRUE(catalog.list().empty());
}

TEST_F(Catalog, ARequestsSetHoldsItsAdaptersAndLeavesOutScaleZero) {
  ASSERT_TRUE(catalog.load("a", kReference, 0.75f).ok());
  ASSERT_TRUE(catalog.load("b", kReference, 1.0f).ok());
  const NamedAdapter a = *catalog.find("a"), b = *catalog.find("b");
  EXPECT_EQ(resolve(""), nullptr);
  auto named = resolve("a");
  ASSERT_NE(named, nullptr);
  ASSERT_EQ(named->adapters.size(), 1u);
  EXPECT_EQ(named->adapters[0].first, a.adapter);
  EXPECT_EQ(named->adapters[0].second, 0.75f);
  auto both = resolve("a", {{.id = b.id, .scale = 2.0f}, {.id = a.id, .scale = 0.25f}});
  ASSERT_EQ(both->adapters.size(), 2u);
  EXPECT_EQ(both->adapters[0].second, 0.25f);  // the field sets the named adapter's scale
  EXPECT_EQ(both->adapters[1].first, b.adapter);
  EXPECT_EQ(both->adapters[1].second, 2.0f);
  EXPECT_EQ(resolve("a", {{.id = a.id, .scale = 0.0f}}), nullptr);  // the base model
  const std::weak_ptr<const model::Adapter> held = a.adapter;
  ASSERT_TRUE(catalog.unload("a").has_value());
  EXPECT_EQ(held.use_count(), 3);  // `a`, and the two sets of requests that resolved it
  named.reset();
  both.reset();
  EXPECT_EQ(held.use_count(), 1);
}

TEST_F(Catalog, MistakesNameTheModelIdTheAdapterIdOrTheFile) {
  ASSERT_TRUE(catalog.load("a", kReference, 1.0f).ok());
  const ApiError unknown = error("nope");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.code, "model_not_found");
  EXPECT_NE(unknown.message.find("the model 'base:nope' does not exist"), std::string::npos) << unknown.message;
  const ApiError id = error("", {{.id = 7, .scale = 1.0f}});
  EXPECT_EQ(id.status, 400);
  EXPECT_EQ(id.param, "lora");
  EXPECT_NE(id.message.find("adapter id 7"), std::string::npos) << id.message;
  const std::string model_file = std::string(OWL_SOURCE_DIR) + "/models/stories260K.gguf";
  auto not_adapter = catalog.load("c", model_file, 1.0f);
  ASSERT_FALSE(not_adapter.ok());
  EXPECT_NE(not_adapter.message().find(model_file + ": general.type"), std::string::npos) << not_adapter.message();
  auto missing = catalog.load("c", "/nonexistent/c.gguf", 1.0f);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("/nonexistent/c.gguf"), std::string::npos) << missing.message();
  for (const char* bad : {"", "a b", "a:b", "a/b", "latest"}) {
    EXPECT_FALSE(AdapterCatalog::check_name(bad).ok()) << bad;
    EXPECT_FALSE(catalog.load(bad, kReference, 1.0f).ok()) << bad;
  }
  EXPECT_FALSE(AdapterCatalog::check_name(std::string(65, 'x')).ok());
  EXPECT_TRUE(AdapterCatalog::check_name("support-v2.1_b").ok());
  EXPECT_EQ(catalog.list().size(), 1u);  // failed loads change nothing
  EXPECT_TRUE(catalog.set_scale(0, 0.5f));
  EXPECT_FALSE(catalog.set_scale(9, 0.5f));
  EXPECT_EQ(catalog.find("a")->scale, 0.5f);
}

}  // namespace
}  // namespace owl::router
