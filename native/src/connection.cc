// JS Connection: open/close, connection-level calls and domain events.
#include "common.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>

namespace virt::connection {

namespace {

// An event copied on the libvirt loop thread; handles are not valid afterwards.
struct Event {
  const char* kind;  // "lifecycle" | "jobCompleted" | "close"
  std::string name, uuid;
  int a = 0, b = 0;
  std::vector<Param> params;
};

struct EventSink;
void Deliver(Napi::Env env, Napi::Function, EventSink* sink, Event* ev);
using EventTsfn = Napi::TypedThreadSafeFunction<EventSink, Event, Deliver>;

// Shared by the Connection wrapper and every libvirt registration (as opaque).
// Deleted when both the references are gone and the TSFN is finalized; the
// TSFN can be finalized first when the Node environment is torn down while
// libvirt still holds registrations, so Post checks it under the lock.
struct EventSink {
  EventTsfn tsfn;
  Napi::FunctionReference handler;  // JS thread only
  std::atomic<bool> closed{false};
  std::mutex mu;
  int refs = 1;
  bool tsfnAlive = true;

  void Ref() {
    std::lock_guard<std::mutex> l(mu);
    refs++;
  }
  void Unref() {
    bool del = false;
    {
      std::lock_guard<std::mutex> l(mu);
      if (--refs > 0) return;
      if (tsfnAlive) tsfn.Release();  // its finalizer deletes us
      else del = true;
    }
    if (del) delete this;
  }
  void Post(Event* ev) {
    std::lock_guard<std::mutex> l(mu);
    if (!tsfnAlive || tsfn.NonBlockingCall(ev) != napi_ok) delete ev;
  }
  static void Free(void* opaque) { static_cast<EventSink*>(opaque)->Unref(); }
  static void Finalize(Napi::Env, void*, EventSink* s) {
    bool del;
    s->handler.Reset();
    {
      std::lock_guard<std::mutex> l(s->mu);
      s->tsfnAlive = false;
      del = s->refs == 0;
    }
    if (del) delete s;
  }
};

void Deliver(Napi::Env env, Napi::Function, EventSink* sink, Event* raw) {
  std::unique_ptr<Event> ev(raw);
  if (!env || sink->handler.IsEmpty()) return;
  Napi::HandleScope scope(env);
  Napi::Object o = Napi::Object::New(env);
  std::string kind = ev->kind;
  if (kind == "close") {
    o.Set("reason", ev->a);
  } else {
    o.Set("uuid", ev->uuid);
    o.Set("name", ev->name);
    if (kind == "lifecycle") {
      o.Set("event", ev->a);
      o.Set("detail", ev->b);
    } else {
      // The event only fires for finished jobs; params may still say otherwise.
      Napi::Object stats = Napi::Object::New(env);
      stats.Set("type", (int)VIR_DOMAIN_JOB_COMPLETED);
      for (const Param& p : ev->params)
        if (p.name == VIR_DOMAIN_JOB_SUCCESS && p.type == VIR_TYPED_PARAM_BOOLEAN && !p.b)
          stats.Set("type", (int)VIR_DOMAIN_JOB_FAILED);
      SetParams(stats, ev->params);
      o.Set("stats", stats);
    }
  }
  try {
    sink->handler.Call({Napi::String::New(env, kind), o});
  } catch (const Napi::Error&) {
    // The JS dispatcher reports listener errors itself.
  }
}

Event* DomainEvent(const char* kind, virDomainPtr dom) {
  auto* ev = new Event{kind};
  char uuid[VIR_UUID_STRING_BUFLEN] = "";
  const char* name = virDomainGetName(dom);
  if (name) ev->name = name;
  if (virDomainGetUUIDString(dom, uuid) == 0) ev->uuid = uuid;
  return ev;
}

// Callbacks run on the event loop thread.
int OnLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  Event* ev = DomainEvent("lifecycle", dom);
  ev->a = event;
  ev->b = detail;
  static_cast<EventSink*>(opaque)->Post(ev);
  return 0;
}

void OnJobCompleted(virConnectPtr, virDomainPtr dom, virTypedParameterPtr params, int n, void* opaque) {
  Event* ev = DomainEvent("jobCompleted", dom);
  ev->params = CopyParams(params, n);
  static_cast<EventSink*>(opaque)->Post(ev);
}

void OnClose(virConnectPtr, int reason, void* opaque) {
  auto* sink = static_cast<EventSink*>(opaque);
  sink->closed = true;
  auto* ev = new Event{"close"};
  ev->a = reason;
  sink->Post(ev);
}

constexpr int kEventIds[] = {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED};
constexpr int kNumEvents = 2;

virConnectDomainEventGenericCallback Callback(int id) {
  return id == VIR_DOMAIN_EVENT_ID_LIFECYCLE ? VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle)
                                             : VIR_DOMAIN_EVENT_CALLBACK(OnJobCompleted);
}

// Worker thread: undo registrations and drop our connection reference.
// Returns the references others still hold (live Domain handles, calls).
int Teardown(virConnectPtr c, const int* ids, EventSink* closeCbSink) {
  for (int i = 0; i < kNumEvents; i++)
    if (ids[i] >= 0) virConnectDomainEventDeregisterAny(c, ids[i]);
  if (closeCbSink) {
    // Once this returns the callback cannot be running or called again.
    virConnectUnregisterCloseCallback(c, OnClose);
    closeCbSink->Unref();
  }
  return virConnectClose(c);
}

struct Opened {
  virConnectPtr conn = nullptr;
  EventSink* sink = nullptr;
  int ids[kNumEvents] = {-1, -1};
  std::string uri;
};

class ConnectionWrap : public Napi::ObjectWrap<ConnectionWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Connection",
                       {
                           InstanceMethod<&ConnectionWrap::GetCapabilities>("getCapabilities"),
                           InstanceMethod<&ConnectionWrap::GetDomainCapabilities>("getDomainCapabilities"),
                           InstanceMethod<&ConnectionWrap::GetHostname>("getHostname"),
                           InstanceMethod<&ConnectionWrap::GetLibVersion>("getLibVersion"),
                           InstanceMethod<&ConnectionWrap::GetVersion>("getVersion"),
                           InstanceMethod<&ConnectionWrap::ListAllDomains>("listAllDomains"),
                           InstanceMethod<&ConnectionWrap::LookupByUUID>("lookupByUUID"),
                           InstanceMethod<&ConnectionWrap::LookupByName>("lookupByName"),
                           InstanceMethod<&ConnectionWrap::DefineXML>("defineXML"),
                           InstanceMethod<&ConnectionWrap::CreateXML>("createXML"),
                           InstanceMethod<&ConnectionWrap::StoragePoolCreateXML>("storagePoolCreateXML"),
                           InstanceMethod<&ConnectionWrap::StoragePoolLookupByName>("storagePoolLookupByName"),
                           InstanceMethod<&ConnectionWrap::StorageVolLookupByPath>("storageVolLookupByPath"),
                           InstanceMethod<&ConnectionWrap::NewStream>("newStream"),
                           InstanceMethod<&ConnectionWrap::IsAlive>("isAlive"),
                           InstanceMethod<&ConnectionWrap::SetEventHandler>("setEventHandler"),
                           InstanceMethod<&ConnectionWrap::Close>("close"),
                       });
  }

  ConnectionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ConnectionWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use open(uri) to create a Connection");
    Opened* o = info[0].As<Napi::External<Opened>>().Data();
    conn_ = o->conn;
    sink_ = o->sink;
    std::copy(o->ids, o->ids + kNumEvents, ids_);
    o->conn = nullptr;
    o->sink = nullptr;
    info.This().As<Napi::Object>().DefineProperty(
        Napi::PropertyDescriptor::Value("uri", Napi::String::New(info.Env(), o->uri), napi_enumerable));
  }

  // Garbage-collected without close(): tear down off the JS thread, since
  // deregistering and closing are RPCs on remote connections. (A connection
  // always has a sink; Teardown's reference is the close-callback one.)
  ~ConnectionWrap() override {
    if (!conn_) return;
    int ids[kNumEvents];
    std::copy(ids_, ids_ + kNumEvents, ids);
    ReleaseOffThread([c = conn_, ids, s = sink_]() { Teardown(c, ids, s); });
    DropSink();
  }

 private:
  virConnectPtr conn_ = nullptr;
  EventSink* sink_ = nullptr;
  int ids_[kNumEvents] = {-1, -1};

  void DropSink() {
    if (!sink_) return;
    sink_->handler.Reset();  // breaks the JS handler -> connection cycle
    sink_->Unref();
    sink_ = nullptr;
  }

  ConnHold Hold(Napi::Env env) {
    if (!conn_) throw Napi::Error::New(env, "connection is closed");
    return HoldConn(conn_);
  }

  std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
    if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + ": expected a string");
    return info[i].As<Napi::String>();
  }

  Napi::Value StringCall(const Napi::CallbackInfo& info, const char* name, char* (*fn)(virConnectPtr)) {
    return Queue(info.Env(), Mode::Pool, name, [c = Hold(info.Env()), fn](VirErr&) -> Finish {
      char* r = fn(c.get());
      if (!r) return nullptr;
      std::string s(r);
      free(r);
      return [s](Napi::Env env) { return Napi::String::New(env, s); };
    });
  }

  Napi::Value DomainCall(const Napi::CallbackInfo& info, Mode mode, const char* name,
                         std::function<virDomainPtr(virConnectPtr)> fn) {
    return Queue(info.Env(), mode, name, [c = Hold(info.Env()), fn](VirErr& err) -> Finish {
      virDomainPtr d = fn(c.get());
      if (!d) return nullptr;
      auto f = std::make_shared<domain::Found>();
      f->dom = AdoptDomain(d);
      if (!domain::Describe(d, *f)) {
        err.Capture();
        return nullptr;
      }
      return [f](Napi::Env env) { return domain::New(env, *f); };
    });
  }

  Napi::Value GetCapabilities(const Napi::CallbackInfo& info) {
    return StringCall(info, "virConnectGetCapabilities", virConnectGetCapabilities);
  }
  Napi::Value GetHostname(const Napi::CallbackInfo& info) {
    return StringCall(info, "virConnectGetHostname", virConnectGetHostname);
  }

  // virConnectGetLibVersion: the libvirt version of the daemon behind the
  // connection (major * 1,000,000 + minor * 1,000 + micro).
  Napi::Value GetLibVersion(const Napi::CallbackInfo& info) {
    return Queue(info.Env(), Mode::Pool, "virConnectGetLibVersion", [c = Hold(info.Env())](VirErr&) -> Finish {
      unsigned long v = 0;
      if (virConnectGetLibVersion(c.get(), &v) < 0) return nullptr;
      return [v](Napi::Env env) { return Napi::Number::New(env, (double)v); };
    });
  }

  // virConnectGetVersion: the hypervisor's version (for QEMU, QEMU's), in the
  // same major * 1,000,000 + minor * 1,000 + micro form.
  Napi::Value GetVersion(const Napi::CallbackInfo& info) {
    return Queue(info.Env(), Mode::Pool, "virConnectGetVersion", [c = Hold(info.Env())](VirErr&) -> Finish {
      unsigned long v = 0;
      if (virConnectGetVersion(c.get(), &v) < 0) return nullptr;
      return [v](Napi::Env env) { return Napi::Number::New(env, (double)v); };
    });
  }

  // getDomainCapabilities(opts?, flags?): opts keys emulatorBin/arch/machine/virtType,
  // each a string or null/undefined (NULL: libvirt picks the default). Validated
  // here; an unknown key is a TypeError so a misspelling is not silently ignored.
  // Own thread: the first call for an emulator may probe it (spawns QEMU).
  Napi::Value GetDomainCapabilities(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    static const char* const kKeys[] = {"emulatorBin", "arch", "machine", "virtType"};
    struct Opt {
      bool set = false;
      std::string s;
      const char* get() const { return set ? s.c_str() : nullptr; }
    };
    auto opts = std::make_shared<std::array<Opt, 4>>();
    Napi::Value v = info[0];
    if (!v.IsUndefined() && !v.IsNull()) {
      if (!v.IsObject() || v.IsArray() || v.IsFunction())
        throw Napi::TypeError::New(env, "opts: expected an object");
      Napi::Object o = v.As<Napi::Object>();
      Napi::Array names = o.GetPropertyNames();
      for (uint32_t i = 0; i < names.Length(); i++) {
        std::string k = names.Get(i).ToString();
        if (std::find_if(std::begin(kKeys), std::end(kKeys), [&](const char* x) { return k == x; }) == std::end(kKeys))
          throw Napi::TypeError::New(env, "opts: unknown key " + k);
      }
      for (size_t i = 0; i < 4; i++) {
        Napi::Value x = o.Get(kKeys[i]);
        if (x.IsUndefined() || x.IsNull()) continue;
        if (!x.IsString()) throw Napi::TypeError::New(env, std::string(kKeys[i]) + ": expected a string or null");
        (*opts)[i].set = true;
        (*opts)[i].s = x.As<Napi::String>();
      }
    }
    unsigned int flags = FlagsArg(info, 1);
    return Queue(env, Mode::Thread, "virConnectGetDomainCapabilities",
                 [c = Hold(env), opts, flags](VirErr&) -> Finish {
                   const auto& o = *opts;
                   char* r = virConnectGetDomainCapabilities(c.get(), o[0].get(), o[1].get(), o[2].get(),
                                                             o[3].get(), flags);
                   if (!r) return nullptr;
                   std::string s(r);
                   free(r);
                   return [s](Napi::Env env) { return Napi::String::New(env, s); };
                 });
  }

  // A call returning a new storage handle (pool, volume, stream), wrapped for JS with its own reference.
  template <typename T>
  Napi::Value StorageCall(const Napi::CallbackInfo& info, const char* name, std::function<T*(virConnectPtr)> fn,
                          Napi::Value (*wrap)(Napi::Env, std::shared_ptr<T>)) {
    return Queue(info.Env(), Mode::Pool, name, [c = Hold(info.Env()), fn, wrap](VirErr&) -> Finish {
      T* p = fn(c.get());
      if (!p) return nullptr;
      std::shared_ptr<T> h = storage::Adopt(p);
      return [h, wrap](Napi::Env env) { return wrap(env, h); };
    });
  }

  // A transient pool: it exists until destroy(), which leaves its files alone.
  Napi::Value StoragePoolCreateXML(const Napi::CallbackInfo& info) {
    std::string xml = StringArg(info, 0, "xml");
    unsigned int flags = FlagsArg(info, 1);
    return StorageCall<virStoragePool>(info, "virStoragePoolCreateXML",
                                       [xml, flags](virConnectPtr c) { return virStoragePoolCreateXML(c, xml.c_str(), flags); },
                                       storage::NewPool);
  }
  Napi::Value StoragePoolLookupByName(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "name");
    return StorageCall<virStoragePool>(info, "virStoragePoolLookupByName",
                                       [name](virConnectPtr c) { return virStoragePoolLookupByName(c, name.c_str()); },
                                       storage::NewPool);
  }
  Napi::Value StorageVolLookupByPath(const Napi::CallbackInfo& info) {
    std::string path = StringArg(info, 0, "path");
    return StorageCall<virStorageVol>(info, "virStorageVolLookupByPath",
                                      [path](virConnectPtr c) { return virStorageVolLookupByPath(c, path.c_str()); },
                                      storage::NewVol);
  }
  Napi::Value NewStream(const Napi::CallbackInfo& info) {
    unsigned int flags = FlagsArg(info, 0);
    return StorageCall<virStream>(info, "virStreamNew", [flags](virConnectPtr c) { return virStreamNew(c, flags); },
                                  storage::NewStream);
  }

  Napi::Value LookupByUUID(const Napi::CallbackInfo& info) {
    std::string uuid = StringArg(info, 0, "uuid");
    return DomainCall(info, Mode::Pool, "virDomainLookupByUUIDString",
                      [uuid](virConnectPtr c) { return virDomainLookupByUUIDString(c, uuid.c_str()); });
  }
  Napi::Value LookupByName(const Napi::CallbackInfo& info) {
    std::string name = StringArg(info, 0, "name");
    return DomainCall(info, Mode::Pool, "virDomainLookupByName",
                      [name](virConnectPtr c) { return virDomainLookupByName(c, name.c_str()); });
  }
  Napi::Value DefineXML(const Napi::CallbackInfo& info) {
    std::string xml = StringArg(info, 0, "xml");
    return DomainCall(info, Mode::Pool, "virDomainDefineXML",
                      [xml](virConnectPtr c) { return virDomainDefineXML(c, xml.c_str()); });
  }
  // Starting a guest can take seconds: own thread.
  Napi::Value CreateXML(const Napi::CallbackInfo& info) {
    std::string xml = StringArg(info, 0, "xml");
    unsigned int flags = FlagsArg(info, 1);
    return DomainCall(info, Mode::Thread, "virDomainCreateXML",
                      [xml, flags](virConnectPtr c) { return virDomainCreateXML(c, xml.c_str(), flags); });
  }

  Napi::Value ListAllDomains(const Napi::CallbackInfo& info) {
    unsigned int flags = FlagsArg(info, 0);
    return Queue(info.Env(), Mode::Pool, "virConnectListAllDomains", [c = Hold(info.Env()), flags](VirErr&) -> Finish {
      virDomainPtr* doms = nullptr;
      int n = virConnectListAllDomains(c.get(), &doms, flags);
      if (n < 0) return nullptr;
      auto found = std::make_shared<std::vector<domain::Found>>();
      for (int i = 0; i < n; i++) {
        domain::Found f;
        f.dom = AdoptDomain(doms[i]);
        if (domain::Describe(doms[i], f)) found->push_back(std::move(f));
      }
      free(doms);
      return [found](Napi::Env env) {
        Napi::Array arr = Napi::Array::New(env, found->size());
        for (size_t i = 0; i < found->size(); i++) arr.Set((uint32_t)i, domain::New(env, (*found)[i]));
        return arr;
      };
    });
  }

  // Local check (no RPC): false after close() or once libvirt reported the close.
  Napi::Value IsAlive(const Napi::CallbackInfo& info) {
    bool alive = conn_ && !(sink_ && sink_->closed) && virConnectIsAlive(conn_) == 1;
    return Napi::Boolean::New(info.Env(), alive);
  }

  // handler(kind, data): the single dispatcher the TS layer installs.
  Napi::Value SetEventHandler(const Napi::CallbackInfo& info) {
    if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "handler: expected a function");
    if (sink_) sink_->handler = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!conn_) {  // already closed: a no-op
      auto p = Napi::Promise::Deferred::New(env);
      p.Resolve(Napi::Number::New(env, 0));
      return p.Promise();
    }
    virConnectPtr c = conn_;
    EventSink* s = sink_;
    int ids[kNumEvents];
    std::copy(ids_, ids_ + kNumEvents, ids);
    conn_ = nullptr;
    DropSink();
    return Queue(env, Mode::Thread, "virConnectClose", [c, ids, s](VirErr&) -> Finish {
      int left = Teardown(c, ids, s);
      if (left < 0) return nullptr;
      return [left](Napi::Env env) { return Napi::Number::New(env, left); };
    });
  }
};

}  // namespace

Napi::Function Init(Napi::Env env) { return ConnectionWrap::Define(env); }

// open(uri, {keepaliveInterval, keepaliveCount}): read-write virConnectOpen,
// keepalive, close callback and the domain event registrations, all on a
// dedicated thread (remote opens can stall).
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "uri: expected a string");
  std::string uri = info[0].As<Napi::String>();
  // libvirt closes the connection after interval*(count+1) s without an answer.
  int kaInterval = 5, kaCount = 5;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "options: expected an object");
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("keepaliveInterval")) kaInterval = (int)ToUInt(o.Get("keepaliveInterval"), "keepaliveInterval", 3600);
    if (o.Has("keepaliveCount")) kaCount = (int)ToUInt(o.Get("keepaliveCount"), "keepaliveCount", 100);
  }
  try {
    EnsureEventLoop();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  auto* sink = new EventSink();
  sink->tsfn = EventTsfn::New(env, "libvirt-events", 0, 1, sink, EventSink::Finalize);
  sink->tsfn.Unref(env);  // events must not keep the process alive
  return Queue(env, Mode::Thread, "virConnectOpen", [uri, sink, kaInterval, kaCount](VirErr& err) -> Finish {
    auto o = std::make_shared<Opened>();
    o->uri = uri;
    o->conn = virConnectOpen(uri.c_str());
    if (!o->conn) {
      err.Capture();
      sink->Unref();
      return nullptr;
    }
    bool ok = true, closeCb = false;
    // The test driver has no keepalive (VIR_ERR_NO_SUPPORT); anything else is fatal.
    if (virConnectSetKeepAlive(o->conn, kaInterval, (unsigned int)kaCount) < 0) {
      virErrorPtr e = virGetLastError();
      ok = e && e->code == VIR_ERR_NO_SUPPORT;
      if (!ok) err.Capture();
    }
    if (ok) {
      // No freecb: drivers without close-callback support (test://) never call
      // it, so Teardown drops this reference after unregistering instead.
      sink->Ref();
      closeCb = virConnectRegisterCloseCallback(o->conn, OnClose, sink, nullptr) == 0;
      if (!closeCb) {
        sink->Unref();
        ok = false;
        err.Capture();
      }
    }
    for (int i = 0; ok && i < kNumEvents; i++) {
      sink->Ref();
      o->ids[i] = virConnectDomainEventRegisterAny(o->conn, nullptr, kEventIds[i], Callback(kEventIds[i]), sink,
                                                   EventSink::Free);
      if (o->ids[i] < 0) {
        sink->Unref();
        ok = false;
        err.Capture();
      }
    }
    if (!ok) {
      Teardown(o->conn, o->ids, closeCb ? sink : nullptr);
      o->conn = nullptr;
      sink->Unref();
      return nullptr;
    }
    o->sink = sink;
    return [o](Napi::Env env) {
      return env.GetInstanceData<AddonData>()->connectionCtor.New({Napi::External<Opened>::New(env, o.get())});
    };
  });
}

}  // namespace virt::connection
