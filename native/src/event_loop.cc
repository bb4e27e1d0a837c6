// The one libvirt event loop thread of the process.
#include "common.h"

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace virt {

// libvirt needs an event implementation registered before the first
// virConnectOpen (events, keepalive and close callbacks all ride on it). It
// runs on its own thread so neither the JS thread nor the libuv pool serve it.
// Shared by every Node environment (worker threads) that loads the addon.
void EnsureEventLoop() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) return;
    // Errors reach JS as rejections; stop libvirt also printing them to stderr.
    virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
    ok = true;
    std::thread([] {
      for (;;)
        if (virEventRunDefaultImpl() < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }).detach();
  });
  if (!ok) throw std::runtime_error("libvirt initialisation failed");
}

}  // namespace virt
