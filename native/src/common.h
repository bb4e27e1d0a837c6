// Shared declarations for the ferry libvirt addon.
#pragma once
#include <napi.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace virt {

// A copy of libvirt's thread-local error; taken on the failing thread.
struct VirErr {
  bool set = false;
  int code = VIR_ERR_INTERNAL_ERROR, domain = 0, level = VIR_ERR_ERROR;
  std::string message;
  // Copies virGetLastError(); must run right after the failing call, before
  // any other libvirt call (even virDomainFree) resets it.
  void Capture(const char* fallback = "libvirt call failed");
  Napi::Error ToJs(Napi::Env env) const;
};

// Owned references that keep handles alive during a background call.
using DomHold = std::shared_ptr<virDomain>;
using ConnHold = std::shared_ptr<virConnect>;
DomHold HoldDomain(virDomainPtr d);   // takes a new virDomainRef
ConnHold HoldConn(virConnectPtr c);   // takes a new virConnectRef
DomHold AdoptDomain(virDomainPtr d);  // owns the reference it is given

// Background call plumbing. Work runs off the JS thread and returns a Finish
// that builds the JS result on the JS thread from data copied by Work; an empty
// Finish means failure (the error is captured into VirErr if Work did not).
using Finish = std::function<Napi::Value(Napi::Env)>;
using Work = std::function<Finish(VirErr&)>;
enum class Mode { Pool, Thread };  // Pool: ferry's call pool (short); Thread: own std::thread (long)
Napi::Promise Queue(Napi::Env env, Mode mode, const char* name, Work work);
Finish Undefined();
// Runs a handle release (virDomainFree, virConnectClose) on the call pool:
// dropping the last reference may talk to the daemon, never on the JS thread.
void ReleaseOffThread(std::function<void()> release);

// Typed parameters.
struct Param {
  std::string name;
  int type;  // virTypedParameterType
  double num = 0;
  bool b = false;
  std::string s;
};
std::vector<Param> CopyParams(virTypedParameterPtr params, int n);
void SetParams(Napi::Object obj, const std::vector<Param>& params);

// Migration parameters validated on the JS thread, turned into
// virTypedParameters on the worker thread.
struct MigrateArg {
  std::string key;
  int type;  // VIR_TYPED_PARAM_STRING / ULLONG / INT; string lists are repeated STRING
  std::vector<std::string> strings;
  unsigned long long ull = 0;
  int i = 0;
};
std::vector<MigrateArg> ParseMigrateParams(Napi::Env env, Napi::Value v);  // throws TypeError
int BuildMigrateParams(const std::vector<MigrateArg>& args, virTypedParameterPtr* out, int* n);

// Event loop thread.
void EnsureEventLoop();

// JS number/bigint -> integer with range check; throws TypeError naming `what`.
unsigned long long ToUInt(Napi::Value v, const char* what, unsigned long long max);
unsigned int FlagsArg(const Napi::CallbackInfo& info, size_t i);

struct AddonData {
  Napi::FunctionReference connectionCtor, domainCtor, poolCtor, volCtor, streamCtor;
};

using PoolHold = std::shared_ptr<virStoragePool>;
using VolHold = std::shared_ptr<virStorageVol>;
using StreamHold = std::shared_ptr<virStream>;
namespace storage {
// Owns the reference it is given; the last holder frees it off the JS thread.
template <typename T>
std::shared_ptr<T> Adopt(T* p);
void Init(Napi::Env env, AddonData* data);
// JS wrappers holding their own reference to h.
Napi::Value NewPool(Napi::Env env, PoolHold h);
Napi::Value NewVol(Napi::Env env, VolHold h);
Napi::Value NewStream(Napi::Env env, StreamHold h);
}  // namespace storage

namespace connection { Napi::Function Init(Napi::Env env); Napi::Value Open(const Napi::CallbackInfo& info); }
namespace domain {
Napi::Function Init(Napi::Env env);
// A domain found on the worker thread, ready to be wrapped on the JS thread.
struct Found {
  DomHold dom;
  std::string name, uuid;
};
// Creates a JS Domain holding its own reference to f.dom.
Napi::Value New(Napi::Env env, const Found& f);
bool Describe(virDomainPtr d, Found& out);  // fills name/uuid (local calls, no RPC)
}  // namespace domain

}  // namespace virt
