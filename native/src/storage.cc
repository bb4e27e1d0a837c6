// JS StoragePool, StorageVol and Stream: the handles of libvirt's volume
// upload path (virStoragePoolCreateXML/LookupByName, virStorageVolLookupByPath,
// virStreamNew, virStorageVolUpload, virStreamSend, virStreamFinish,
// virStreamAbort), each method one libvirt call. One reference per wrapper,
// released off the JS thread like a domain's.
#include "common.h"

#include <climits>

namespace virt::storage {

namespace {

template <typename T>
struct Api;
template <>
struct Api<virStoragePool> {
  static constexpr const char* kName = "StoragePool";
  static int Ref(virStoragePoolPtr p) { return virStoragePoolRef(p); }
  static int Free(virStoragePoolPtr p) { return virStoragePoolFree(p); }
};
template <>
struct Api<virStorageVol> {
  static constexpr const char* kName = "StorageVol";
  static int Ref(virStorageVolPtr p) { return virStorageVolRef(p); }
  static int Free(virStorageVolPtr p) { return virStorageVolFree(p); }
};
template <>
struct Api<virStream> {
  static constexpr const char* kName = "Stream";
  static int Ref(virStreamPtr p) { return virStreamRef(p); }
  static int Free(virStreamPtr p) { return virStreamFree(p); }
};

template <typename T>
std::shared_ptr<T> Held(T* p) {
  Api<T>::Ref(p);
  return Adopt(p);
}

// One reference for the wrapper's life; free() drops it before GC does.
template <typename Self, typename T>
class HandleWrap : public Napi::ObjectWrap<Self> {
 public:
  HandleWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Self>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), std::string(Api<T>::kName) + " objects come from a Connection");
    ptr_ = info[0].As<Napi::External<std::shared_ptr<T>>>().Data()->get();
    Api<T>::Ref(ptr_);
  }
  ~HandleWrap() override { Drop(); }

  // A reference for a background call, so free()/GC cannot pull the handle away.
  std::shared_ptr<T> Hold(Napi::Env env) {
    if (!ptr_) throw Napi::Error::New(env, std::string(Api<T>::kName) + " handle has been freed");
    return Held(ptr_);
  }

  Napi::Value FreeHandle(const Napi::CallbackInfo& info) {
    Drop();
    return info.Env().Undefined();
  }

  Napi::Value Void(const Napi::CallbackInfo& info, const char* name, std::function<int(T*)> fn) {
    return Queue(info.Env(), Mode::Pool, name, [h = Hold(info.Env()), fn](VirErr&) -> Finish {
      return fn(h.get()) < 0 ? nullptr : Undefined();
    });
  }

 private:
  T* ptr_ = nullptr;

  void Drop() {
    if (!ptr_) return;
    T* p = ptr_;
    ptr_ = nullptr;
    ReleaseOffThread([p] { Api<T>::Free(p); });
  }
};

class PoolWrap : public HandleWrap<PoolWrap, virStoragePool> {
 public:
  using HandleWrap::HandleWrap;
  Napi::Value FreeHandle(const Napi::CallbackInfo& info) { return HandleWrap::FreeHandle(info); }
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "StoragePool",
                       {
                           InstanceMethod<&PoolWrap::Destroy>("destroy"),
                           InstanceMethod<&PoolWrap::FreeHandle>("free"),
                       });
  }
  Napi::Value Destroy(const Napi::CallbackInfo& info) { return Void(info, "virStoragePoolDestroy", virStoragePoolDestroy); }
};

class StreamWrap : public HandleWrap<StreamWrap, virStream> {
 public:
  using HandleWrap::HandleWrap;
  Napi::Value FreeHandle(const Napi::CallbackInfo& info) { return HandleWrap::FreeHandle(info); }
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Stream",
                       {
                           InstanceMethod<&StreamWrap::Send>("send"),
                           InstanceMethod<&StreamWrap::FinishStream>("finish"),
                           InstanceMethod<&StreamWrap::AbortStream>("abort"),
                           InstanceMethod<&StreamWrap::FreeHandle>("free"),
                       });
  }

  // send(data: Uint8Array): the bytes libvirt took, which may be fewer than given.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(info.Env(), "data: expected a Uint8Array");
    Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
    // Copied: the JS buffer may change or go away while the call runs.
    auto bytes = std::make_shared<std::vector<char>>(a.Data(), a.Data() + a.ByteLength());
    return Queue(info.Env(), Mode::Pool, "virStreamSend", [s = Hold(info.Env()), bytes](VirErr&) -> Finish {
      int n = virStreamSend(s.get(), bytes->data(), bytes->size());
      if (n < 0) return nullptr;
      return [n](Napi::Env env) { return Napi::Number::New(env, n); };
    });
  }
  Napi::Value FinishStream(const Napi::CallbackInfo& info) { return Void(info, "virStreamFinish", virStreamFinish); }
  Napi::Value AbortStream(const Napi::CallbackInfo& info) { return Void(info, "virStreamAbort", virStreamAbort); }
};

class VolWrap : public HandleWrap<VolWrap, virStorageVol> {
 public:
  using HandleWrap::HandleWrap;
  Napi::Value FreeHandle(const Napi::CallbackInfo& info) { return HandleWrap::FreeHandle(info); }
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "StorageVol",
                       {
                           InstanceMethod<&VolWrap::Upload>("upload"),
                           InstanceMethod<&VolWrap::FreeHandle>("free"),
                       });
  }

  // upload(stream, offset, length, flags?): the stream then carries the bytes (send ... finish).
  Napi::Value Upload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    AddonData* data = env.GetInstanceData<AddonData>();
    if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(data->streamCtor.Value()))
      throw Napi::TypeError::New(env, "stream: expected a Stream");
    auto stream = StreamWrap::Unwrap(info[0].As<Napi::Object>())->Hold(env);
    unsigned long long offset = ToUInt(info[1], "offset", ULLONG_MAX);
    unsigned long long length = ToUInt(info[2], "length", ULLONG_MAX);
    unsigned int flags = FlagsArg(info, 3);
    return Queue(env, Mode::Pool, "virStorageVolUpload", [v = Hold(env), stream, offset, length, flags](VirErr&) -> Finish {
      return virStorageVolUpload(v.get(), stream.get(), offset, length, flags) < 0 ? nullptr : Undefined();
    });
  }
};

template <typename T>
Napi::Value Wrap(Napi::Env env, Napi::FunctionReference& ctor, std::shared_ptr<T> h) {
  return ctor.New({Napi::External<std::shared_ptr<T>>::New(env, &h)});
}

}  // namespace

template <typename T>
std::shared_ptr<T> Adopt(T* p) {
  return std::shared_ptr<T>(p, [](T* x) { ReleaseOffThread([x] { Api<T>::Free(x); }); });
}
template PoolHold Adopt(virStoragePoolPtr);
template VolHold Adopt(virStorageVolPtr);
template StreamHold Adopt(virStreamPtr);

void Init(Napi::Env env, AddonData* data) {
  data->poolCtor = Napi::Persistent(PoolWrap::Define(env));
  data->volCtor = Napi::Persistent(VolWrap::Define(env));
  data->streamCtor = Napi::Persistent(StreamWrap::Define(env));
}

Napi::Value NewPool(Napi::Env env, PoolHold h) { return Wrap(env, env.GetInstanceData<AddonData>()->poolCtor, h); }
Napi::Value NewVol(Napi::Env env, VolHold h) { return Wrap(env, env.GetInstanceData<AddonData>()->volCtor, h); }
Napi::Value NewStream(Napi::Env env, StreamHold h) { return Wrap(env, env.GetInstanceData<AddonData>()->streamCtor, h); }

}  // namespace virt::storage
