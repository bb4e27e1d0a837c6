// Addon entry: exports open(uri), the wrapper classes and the header version.
#include "common.h"

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

using namespace virt;

// Test hook for the thread model: a call that blocks like a long migration.
// Exported only when FERRY_ADDON_TEST_HOOKS=1 at load time, never in ferryd.
Napi::Value BlockForTesting(const Napi::CallbackInfo& info) {
  unsigned long long ms = ToUInt(info[0], "ms", 60000);
  Mode mode = info[1].ToBoolean() ? Mode::Thread : Mode::Pool;
  return Queue(info.Env(), mode, "blockForTesting", [ms](VirErr&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return Undefined();
  });
}

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  Napi::Function conn = connection::Init(env), dom = domain::Init(env);
  data->connectionCtor = Napi::Persistent(conn);
  data->domainCtor = Napi::Persistent(dom);
  storage::Init(env, data);
  env.SetInstanceData(data);  // deleted with the environment
  exports.Set("open", Napi::Function::New(env, connection::Open, "open"));
  const char* hooks = std::getenv("FERRY_ADDON_TEST_HOOKS");
  if (hooks && std::string(hooks) == "1") exports.Set("blockForTesting", Napi::Function::New(env, BlockForTesting, "blockForTesting"));
  exports.Set("Connection", conn);
  exports.Set("Domain", dom);
  // The libvirt headers this addon was compiled against: a constant or param
  // newer than these is not compiled in, whatever the daemon supports.
  exports.Set("headerVersion", Napi::Number::New(env, LIBVIR_VERSION_NUMBER));
  return exports;
}

}  // namespace

NODE_API_MODULE(virt, InitAddon)
