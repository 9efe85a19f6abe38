#include "runner/training_hooks.h"

#include <dlfcn.h>

namespace orch::runner {

TrainingHooks* preloaded_training_hooks() {
  using Provider = TrainingHooks* (*)();
  static const Provider provider = reinterpret_cast<Provider>(dlsym(RTLD_DEFAULT, "orch_test_training_hooks"));
  return provider ? provider() : nullptr;
}

}  // namespace orch::runner
