// JS Domain: one virDomainPtr reference per wrapper, freed on GC or free().
#include "common.h"

#include <climits>

namespace virt::domain {

namespace {

using Call = std::function<int(virDomainPtr)>;

class DomainWrap : public Napi::ObjectWrap<DomainWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Domain",
                       {
                           InstanceMethod<&DomainWrap::GetXMLDesc>("getXMLDesc"),
                           InstanceMethod<&DomainWrap::IsActive>("isActive"),
                           InstanceMethod<&DomainWrap::GetState>("getState"),
                           InstanceMethod<&DomainWrap::Create>("create"),
                           InstanceMethod<&DomainWrap::Destroy>("destroy"),
                           InstanceMethod<&DomainWrap::Undefine>("undefine"),
                           InstanceMethod<&DomainWrap::Shutdown>("shutdown"),
                           InstanceMethod<&DomainWrap::Suspend>("suspend"),
                           InstanceMethod<&DomainWrap::Resume>("resume"),
                           InstanceMethod<&DomainWrap::MigrateToURI3>("migrateToURI3"),
                           InstanceMethod<&DomainWrap::GetJobStats>("getJobStats"),
                           InstanceMethod<&DomainWrap::GetJobInfo>("getJobInfo"),
                           InstanceMethod<&DomainWrap::AbortJob>("abortJob"),
                           InstanceMethod<&DomainWrap::SetMaxDowntime>("migrateSetMaxDowntime"),
                           InstanceMethod<&DomainWrap::GetMaxDowntime>("migrateGetMaxDowntime"),
                           InstanceMethod<&DomainWrap::SetMaxSpeed>("migrateSetMaxSpeed"),
                           InstanceMethod<&DomainWrap::StartPostCopy>("migrateStartPostCopy"),
                           InstanceMethod<&DomainWrap::StartDirtyRateCalc>("startDirtyRateCalc"),
                           InstanceMethod<&DomainWrap::ListGetStats>("listGetStats"),
                           InstanceMethod<&DomainWrap::Free>("free"),
                       });
  }

  DomainWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DomainWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "Domain objects come from a Connection");
    Found* f = info[0].As<Napi::External<Found>>().Data();
    virDomainRef(f->dom.get());
    dom_ = f->dom.get();
    // Copied once at lookup so name/uuid never need a libvirt call.
    Napi::Object self = info.This().As<Napi::Object>();
    self.DefineProperties({
        Napi::PropertyDescriptor::Value("name", Napi::String::New(info.Env(), f->name), napi_enumerable),
        Napi::PropertyDescriptor::Value("uuid", Napi::String::New(info.Env(), f->uuid), napi_enumerable),
    });
  }

  // Runs in the GC finalizer, on the JS thread: the free itself goes to the call pool.
  ~DomainWrap() override { Drop(); }

 private:
  virDomainPtr dom_ = nullptr;

  // A reference for a background call, so free()/GC cannot pull the handle away.
  DomHold Hold(Napi::Env env) {
    if (!dom_) throw Napi::Error::New(env, "domain handle has been freed");
    return HoldDomain(dom_);
  }

  Napi::Value Void(const Napi::CallbackInfo& info, const char* name, Call fn, Mode mode = Mode::Pool) {
    return Queue(info.Env(), mode, name, [d = Hold(info.Env()), fn](VirErr&) -> Finish {
      return fn(d.get()) < 0 ? nullptr : Undefined();
    });
  }

  Napi::Value GetXMLDesc(const Napi::CallbackInfo& info) {
    unsigned int flags = FlagsArg(info, 0);
    return Queue(info.Env(), Mode::Pool, "virDomainGetXMLDesc", [d = Hold(info.Env()), flags](VirErr&) -> Finish {
      char* xml = virDomainGetXMLDesc(d.get(), flags);
      if (!xml) return nullptr;
      std::string s(xml);
      free(xml);
      return [s](Napi::Env env) { return Napi::String::New(env, s); };
    });
  }

  Napi::Value IsActive(const Napi::CallbackInfo& info) {
    return Queue(info.Env(), Mode::Pool, "virDomainIsActive", [d = Hold(info.Env())](VirErr&) -> Finish {
      int r = virDomainIsActive(d.get());
      if (r < 0) return nullptr;
      return [r](Napi::Env env) { return Napi::Boolean::New(env, r == 1); };
    });
  }

  Napi::Value GetState(const Napi::CallbackInfo& info) {
    return Queue(info.Env(), Mode::Pool, "virDomainGetState", [d = Hold(info.Env())](VirErr&) -> Finish {
      int state = 0, reason = 0;
      if (virDomainGetState(d.get(), &state, &reason, 0) < 0) return nullptr;
      return [state, reason](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("state", state);
        o.Set("reason", reason);
        return o;
      };
    });
  }

  Napi::Value Create(const Napi::CallbackInfo& info) { return Void(info, "virDomainCreate", virDomainCreate); }
  Napi::Value Destroy(const Napi::CallbackInfo& info) { return Void(info, "virDomainDestroy", virDomainDestroy); }
  Napi::Value Shutdown(const Napi::CallbackInfo& info) { return Void(info, "virDomainShutdown", virDomainShutdown); }
  Napi::Value Suspend(const Napi::CallbackInfo& info) { return Void(info, "virDomainSuspend", virDomainSuspend); }
  Napi::Value Resume(const Napi::CallbackInfo& info) { return Void(info, "virDomainResume", virDomainResume); }
  Napi::Value AbortJob(const Napi::CallbackInfo& info) { return Void(info, "virDomainAbortJob", virDomainAbortJob); }

  Napi::Value Undefine(const Napi::CallbackInfo& info) {
    unsigned int flags = FlagsArg(info, 0);
    return Void(info, "virDomainUndefineFlags", [flags](virDomainPtr d) { return virDomainUndefineFlags(d, flags); });
  }

  Napi::Value StartPostCopy(const Napi::CallbackInfo& info) {
    unsigned int flags = FlagsArg(info, 0);
    return Void(info, "virDomainMigrateStartPostCopy",
                [flags](virDomainPtr d) { return virDomainMigrateStartPostCopy(d, flags); });
  }

  Napi::Value StartDirtyRateCalc(const Napi::CallbackInfo& info) {
    int seconds = (int)ToUInt(info[0], "seconds", 60);
    unsigned int flags = FlagsArg(info, 1);
    return Void(info, "virDomainStartDirtyRateCalc",
                [seconds, flags](virDomainPtr d) { return virDomainStartDirtyRateCalc(d, seconds, flags); });
  }

  // virDomainListGetStats for this one domain: its typed params, keys as libvirt names them.
  Napi::Value ListGetStats(const Napi::CallbackInfo& info) {
    unsigned int stats = (unsigned int)ToUInt(info[0], "stats", 0xffffffffULL);
    unsigned int flags = FlagsArg(info, 1);
    return Queue(info.Env(), Mode::Pool, "virDomainListGetStats", [d = Hold(info.Env()), stats, flags](VirErr&) -> Finish {
      virDomainPtr doms[] = {d.get(), nullptr};
      virDomainStatsRecordPtr* records = nullptr;
      int n = virDomainListGetStats(doms, stats, &records, flags);
      if (n < 0) return nullptr;
      // Freed however this scope is left (CopyParams may throw).
      std::unique_ptr<virDomainStatsRecordPtr, void (*)(virDomainStatsRecordPtr*)> owned(records, virDomainStatsRecordListFree);
      std::vector<Param> copied;
      if (n > 0) copied = CopyParams(records[0]->params, records[0]->nparams);
      return [copied](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        SetParams(o, copied);
        return o;
      };
    });
  }

  Napi::Value SetMaxDowntime(const Napi::CallbackInfo& info) {
    unsigned long long ms = ToUInt(info[0], "downtime", ULLONG_MAX);
    return Void(info, "virDomainMigrateSetMaxDowntime",
                [ms](virDomainPtr d) { return virDomainMigrateSetMaxDowntime(d, ms, 0); });
  }

  Napi::Value SetMaxSpeed(const Napi::CallbackInfo& info) {
    unsigned long bw = ToUInt(info[0], "bandwidth", ULONG_MAX);
    unsigned int flags = FlagsArg(info, 1);
    return Void(info, "virDomainMigrateSetMaxSpeed",
                [bw, flags](virDomainPtr d) { return virDomainMigrateSetMaxSpeed(d, bw, flags); });
  }

  Napi::Value GetMaxDowntime(const Napi::CallbackInfo& info) {
    return Queue(info.Env(), Mode::Pool, "virDomainMigrateGetMaxDowntime", [d = Hold(info.Env())](VirErr&) -> Finish {
      unsigned long long ms = 0;
      if (virDomainMigrateGetMaxDowntime(d.get(), &ms, 0) < 0) return nullptr;
      return [ms](Napi::Env env) { return Napi::Number::New(env, (double)ms); };
    });
  }

  Napi::Value GetJobStats(const Napi::CallbackInfo& info) {
    unsigned int flags = FlagsArg(info, 0);
    return Queue(info.Env(), Mode::Pool, "virDomainGetJobStats", [d = Hold(info.Env()), flags](VirErr&) -> Finish {
      int type = 0, n = 0;
      virTypedParameterPtr params = nullptr;
      if (virDomainGetJobStats(d.get(), &type, &params, &n, flags) < 0) return nullptr;
      auto copied = CopyParams(params, n);
      virTypedParamsFree(params, n);
      return [type, copied](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("type", type);
        SetParams(o, copied);
        return o;
      };
    });
  }

  Napi::Value GetJobInfo(const Napi::CallbackInfo& info) {
    return Queue(info.Env(), Mode::Pool, "virDomainGetJobInfo", [d = Hold(info.Env())](VirErr&) -> Finish {
      virDomainJobInfo ji{};
      if (virDomainGetJobInfo(d.get(), &ji) < 0) return nullptr;
      return [ji](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("type", ji.type);
        o.Set("timeElapsed", (double)ji.timeElapsed);
        o.Set("timeRemaining", (double)ji.timeRemaining);
        o.Set("dataTotal", (double)ji.dataTotal);
        o.Set("dataProcessed", (double)ji.dataProcessed);
        o.Set("dataRemaining", (double)ji.dataRemaining);
        o.Set("memTotal", (double)ji.memTotal);
        o.Set("memProcessed", (double)ji.memProcessed);
        o.Set("memRemaining", (double)ji.memRemaining);
        o.Set("fileTotal", (double)ji.fileTotal);
        o.Set("fileProcessed", (double)ji.fileProcessed);
        o.Set("fileRemaining", (double)ji.fileRemaining);
        return o;
      };
    });
  }

  // migrateToURI3(dconnuri: string | null, params: object, flags: number).
  // Params are validated here, before anything reaches libvirt; the call then
  // blocks for the whole migration on its own thread.
  Napi::Value MigrateToURI3(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string uri;
    bool hasUri = false;
    if (info[0].IsString()) {
      uri = info[0].As<Napi::String>();
      hasUri = !uri.empty();
    } else if (!info[0].IsUndefined() && !info[0].IsNull()) {
      throw Napi::TypeError::New(env, "dconnuri: expected a string");
    }
    std::vector<MigrateArg> args = ParseMigrateParams(env, info[1]);
    unsigned int flags = FlagsArg(info, 2);
    return Queue(env, Mode::Thread, "virDomainMigrateToURI3",
                 [d = Hold(env), uri, hasUri, args = std::move(args), flags](VirErr& err) -> Finish {
                   virTypedParameterPtr params = nullptr;
                   int n = 0;
                   int rc = BuildMigrateParams(args, &params, &n);
                   if (rc == 0) rc = virDomainMigrateToURI3(d.get(), hasUri ? uri.c_str() : nullptr, params, n, flags);
                   if (rc < 0) err.Capture();  // before virTypedParamsFree resets it
                   virTypedParamsFree(params, n);
                   return rc < 0 ? nullptr : Undefined();
                 });
  }

  // Drops this wrapper's reference now instead of at GC; in-flight calls keep their own.
  Napi::Value Free(const Napi::CallbackInfo& info) {
    Drop();
    return info.Env().Undefined();
  }

  void Drop() {
    if (!dom_) return;
    virDomainPtr d = dom_;
    dom_ = nullptr;
    ReleaseOffThread([d] { virDomainFree(d); });
  }
};

}  // namespace

bool Describe(virDomainPtr d, Found& out) {
  char uuid[VIR_UUID_STRING_BUFLEN];
  const char* name = virDomainGetName(d);
  if (!name || virDomainGetUUIDString(d, uuid) < 0) return false;
  out.name = name;
  out.uuid = uuid;
  return true;
}

Napi::Function Init(Napi::Env env) { return DomainWrap::Define(env); }

Napi::Value New(Napi::Env env, const Found& f) {
  AddonData* data = env.GetInstanceData<AddonData>();
  return data->domainCtor.New({Napi::External<Found>::New(env, const_cast<Found*>(&f))});
}

}  // namespace virt::domain
