// virTypedParameter <-> JS conversion, and the migration parameter schema.
#include "common.h"

#include <climits>
#include <cmath>
#include <cstring>

namespace virt {

std::vector<Param> CopyParams(virTypedParameterPtr params, int n) {
  std::vector<Param> out;
  out.reserve(n > 0 ? n : 0);
  for (int i = 0; i < n; i++) {
    const virTypedParameter& p = params[i];
    Param c{p.field, p.type};
    switch (p.type) {
      case VIR_TYPED_PARAM_INT: c.num = p.value.i; break;
      case VIR_TYPED_PARAM_UINT: c.num = p.value.ui; break;
      case VIR_TYPED_PARAM_LLONG: c.num = (double)p.value.l; break;
      case VIR_TYPED_PARAM_ULLONG: c.num = (double)p.value.ul; break;
      case VIR_TYPED_PARAM_DOUBLE: c.num = p.value.d; break;
      case VIR_TYPED_PARAM_BOOLEAN: c.b = p.value.b != 0; break;
      case VIR_TYPED_PARAM_STRING: c.s = p.value.s ? p.value.s : ""; break;
      default: continue;  // a type newer than this addon: skip rather than guess
    }
    out.push_back(std::move(c));
  }
  return out;
}

void SetParams(Napi::Object obj, const std::vector<Param>& params) {
  Napi::Env env = obj.Env();
  for (const Param& p : params) {
    if (p.type == VIR_TYPED_PARAM_BOOLEAN) obj.Set(p.name, Napi::Boolean::New(env, p.b));
    else if (p.type == VIR_TYPED_PARAM_STRING) obj.Set(p.name, Napi::String::New(env, p.s));
    else obj.Set(p.name, Napi::Number::New(env, p.num));
  }
}

namespace {

constexpr int kStringList = -1;  // repeated VIR_TYPED_PARAM_STRING entries

struct Key {
  const char* name;
  int type;
};

// VIR_MIGRATE_PARAM_* keys with the types libvirt expects: all of libvirt 9.0
// (the oldest supported), and newer ones only when these headers have them.
// Whether the connected daemon has them is checked in src/libvirt/features.ts.
const Key kMigrateKeys[] = {
    {VIR_MIGRATE_PARAM_URI, VIR_TYPED_PARAM_STRING},
    {VIR_MIGRATE_PARAM_DEST_NAME, VIR_TYPED_PARAM_STRING},
    {VIR_MIGRATE_PARAM_DEST_XML, VIR_TYPED_PARAM_STRING},
    {VIR_MIGRATE_PARAM_PERSIST_XML, VIR_TYPED_PARAM_STRING},
    {VIR_MIGRATE_PARAM_GRAPHICS_URI, VIR_TYPED_PARAM_STRING},
    {VIR_MIGRATE_PARAM_LISTEN_ADDRESS, VIR_TYPED_PARAM_STRING},
    {VIR_MIGRATE_PARAM_DISKS_URI, VIR_TYPED_PARAM_STRING},
    {VIR_MIGRATE_PARAM_TLS_DESTINATION, VIR_TYPED_PARAM_STRING},
    {VIR_MIGRATE_PARAM_MIGRATE_DISKS, kStringList},
    {VIR_MIGRATE_PARAM_COMPRESSION, kStringList},
    {VIR_MIGRATE_PARAM_BANDWIDTH, VIR_TYPED_PARAM_ULLONG},
    {VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY, VIR_TYPED_PARAM_ULLONG},
    {VIR_MIGRATE_PARAM_DISKS_PORT, VIR_TYPED_PARAM_INT},
    {VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS, VIR_TYPED_PARAM_INT},
    {VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL, VIR_TYPED_PARAM_INT},
    {VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT, VIR_TYPED_PARAM_INT},
#if LIBVIR_CHECK_VERSION(10, 9, 0)
    {VIR_MIGRATE_PARAM_MIGRATE_DISKS_DETECT_ZEROES, kStringList},
#endif
#if LIBVIR_CHECK_VERSION(11, 1, 0)
    {VIR_MIGRATE_PARAM_BANDWIDTH_AVAIL_SWITCHOVER, VIR_TYPED_PARAM_ULLONG},
#endif
};

Napi::TypeError KeyError(Napi::Env env, const std::string& key, const char* expected) {
  return Napi::TypeError::New(env, "migrate param '" + key + "': expected " + expected);
}

}  // namespace

std::vector<MigrateArg> ParseMigrateParams(Napi::Env env, Napi::Value v) {
  std::vector<MigrateArg> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsObject() || v.IsArray()) throw Napi::TypeError::New(env, "migrate params: expected an object");
  Napi::Object obj = v.As<Napi::Object>();
  Napi::Array names = obj.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string key = names.Get(i).ToString();
    Napi::Value val = obj.Get(key);
    if (val.IsUndefined()) continue;  // `{bandwidth: undefined}` means "not set"
    const Key* k = nullptr;
    for (const Key& c : kMigrateKeys)
      if (key == c.name) k = &c;
    if (!k) throw Napi::TypeError::New(env, "migrate param '" + key + "': unknown key");
    MigrateArg a{key, k->type};
    if (k->type == VIR_TYPED_PARAM_STRING) {
      if (!val.IsString()) throw KeyError(env, key, "a string");
      a.strings.push_back(val.As<Napi::String>());
    } else if (k->type == kStringList) {
      if (!val.IsArray()) throw KeyError(env, key, "an array of strings");
      Napi::Array arr = val.As<Napi::Array>();
      for (uint32_t j = 0; j < arr.Length(); j++) {
        Napi::Value s = arr.Get(j);
        if (!s.IsString()) throw KeyError(env, key, "an array of strings");
        a.strings.push_back(s.As<Napi::String>());
      }
    } else if (k->type == VIR_TYPED_PARAM_ULLONG) {
      if (!val.IsNumber() && !val.IsBigInt()) throw KeyError(env, key, "a non-negative integer");
      a.ull = ToUInt(val, ("migrate param '" + key + "'").c_str(), ULLONG_MAX);
    } else {
      if (!val.IsNumber()) throw KeyError(env, key, "an integer");
      double d = val.As<Napi::Number>().DoubleValue();
      // Range first: casting NaN or an out-of-range double to int is undefined.
      if (!(d >= INT_MIN && d <= INT_MAX) || d != std::trunc(d)) throw KeyError(env, key, "a 32-bit integer");
      a.i = (int)d;
    }
    out.push_back(std::move(a));
  }
  return out;
}

// Worker thread. Returns -1 with libvirt's error set; *out must be freed with
// virTypedParamsFree either way.
int BuildMigrateParams(const std::vector<MigrateArg>& args, virTypedParameterPtr* out, int* n) {
  int max = 0;
  *out = nullptr;
  *n = 0;
  for (const MigrateArg& a : args) {
    int rc = 0;
    const char* key = a.key.c_str();
    if (a.type == VIR_TYPED_PARAM_STRING) {
      rc = virTypedParamsAddString(out, n, &max, key, a.strings[0].c_str());
    } else if (a.type == kStringList) {
      std::vector<const char*> list;
      for (const std::string& s : a.strings) list.push_back(s.c_str());
      list.push_back(nullptr);
      if (list.size() > 1) rc = virTypedParamsAddStringList(out, n, &max, key, list.data());
    } else if (a.type == VIR_TYPED_PARAM_ULLONG) {
      rc = virTypedParamsAddULLong(out, n, &max, key, a.ull);
    } else {
      rc = virTypedParamsAddInt(out, n, &max, key, a.i);
    }
    if (rc < 0) return -1;
  }
  return 0;
}

}  // namespace virt
