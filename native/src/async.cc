// Runs libvirt calls off the JS thread and settles Promises on it.
#include "common.h"

#include <thread>

namespace virt {

namespace {

struct Job {
  Napi::Promise::Deferred deferred;
  Work work;
  Finish finish;
  VirErr err;
  explicit Job(Napi::Env env, Work w) : deferred(Napi::Promise::Deferred::New(env)), work(std::move(w)) {}

  // Worker side: error is copied before `work` (and the handles it holds) is released.
  void Run() {
    try {
      finish = work(err);
      if (!finish && !err.set) err.Capture();
    } catch (const std::exception& e) {  // e.g. bad_alloc; never let it escape a thread
      finish = nullptr;
      err = VirErr{};
      err.set = true;
      err.message = e.what();
    }
    work = nullptr;
  }

  // JS side.
  void Settle(Napi::Env env) {
    Napi::HandleScope scope(env);
    if (!finish) return deferred.Reject(err.ToJs(env).Value());
    try {
      deferred.Resolve(finish(env));
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
    }
    finish = nullptr;
  }
};

class PoolWorker : public Napi::AsyncWorker {
 public:
  PoolWorker(Napi::Env env, const char* name, std::unique_ptr<Job> job)
      : Napi::AsyncWorker(env, name), job_(std::move(job)) {}
  void Execute() override { job_->Run(); }
  void OnOK() override { job_->Settle(Env()); }

 private:
  std::unique_ptr<Job> job_;
};

void SettleOnJs(Napi::Env env, Napi::Function, std::nullptr_t*, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env) owned->Settle(env);  // env is null during teardown: just free
}
using SettleTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Job, SettleOnJs>;

}  // namespace

Finish Undefined() {
  return [](Napi::Env env) { return env.Undefined(); };
}

Napi::Promise Queue(Napi::Env env, Mode mode, const char* name, Work work) {
  auto job = std::make_unique<Job>(env, std::move(work));
  Napi::Promise promise = job->deferred.Promise();
  if (mode == Mode::Pool) {
    (new PoolWorker(env, name, std::move(job)))->Queue();
    return promise;
  }
  // A dedicated thread: a call that blocks for minutes must not occupy one of
  // libuv's 4 pool threads (fs, dns, the short libvirt calls).
  SettleTsfn tsfn = SettleTsfn::New(env, name, 0, 1);
  std::thread([tsfn, j = job.release()]() mutable {
    j->Run();
    if (tsfn.BlockingCall(j) != napi_ok) delete j;
    tsfn.Release();
  }).detach();
  return promise;
}

}  // namespace virt
