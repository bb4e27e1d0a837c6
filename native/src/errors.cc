// libvirt error capture and JS argument helpers.
#include "common.h"

#include <cmath>

namespace virt {

void VirErr::Capture(const char* fallback) {
  set = true;
  virErrorPtr e = virGetLastError();
  if (!e) {  // a failing call that did not report; still reject with something
    message = fallback;
    return;
  }
  code = e->code;
  domain = e->domain;
  level = e->level;
  message = e->message ? e->message : fallback;
}

Napi::Error VirErr::ToJs(Napi::Env env) const {
  Napi::Error err = Napi::Error::New(env, message);
  Napi::Object o = err.Value();
  o.Set("name", "VirError");
  o.Set("code", code);
  o.Set("domain", domain);
  o.Set("level", level);
  return err;
}

DomHold HoldDomain(virDomainPtr d) {
  virDomainRef(d);
  return AdoptDomain(d);
}

DomHold AdoptDomain(virDomainPtr d) {
  return DomHold(d, [](virDomainPtr p) { ReleaseOffThread([p] { virDomainFree(p); }); });
}

ConnHold HoldConn(virConnectPtr c) {
  virConnectRef(c);
  return ConnHold(c, [](virConnectPtr p) { ReleaseOffThread([p] { virConnectClose(p); }); });
}

unsigned long long ToUInt(Napi::Value v, const char* what, unsigned long long max) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless || x > max) throw Napi::TypeError::New(v.Env(), std::string(what) + ": bigint out of range");
    return x;
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || std::floor(d) != d || d > 9007199254740991.0 || d > (double)max)
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a non-negative integer in range");
  return (unsigned long long)d;
}

unsigned int FlagsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return 0;
  return (unsigned int)ToUInt(info[i], "flags", 0xffffffffULL);
}

}  // namespace virt
