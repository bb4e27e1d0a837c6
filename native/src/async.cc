// Runs libvirt calls off the JS thread and settles Promises on it.
#include "common.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

namespace virt {

namespace {

// ferry's own threads for the short libvirt calls and for dropping handles.
// libuv's 4-thread pool also serves fs, dns and crypto: a stalled libvirtd
// holding it would starve them. Threads start on first use and live as long
// as the process (detached, idle on the condition variable).
class CallPool {
 public:
  static constexpr int kThreads = 4;

  // Never destroyed: at exit() its threads still wait on the condition
  // variable, and destroying one with waiters blocks (glibc) the exiting process.
  static CallPool& Get() {
    static CallPool* pool = new CallPool();
    return *pool;
  }

  // Throws std::system_error only when the pool has no thread at all.
  void Post(std::function<void()> task) {
    std::lock_guard<std::mutex> l(mu_);
    if (started_ < kThreads) {
      try {
        std::thread([this] { Serve(); }).detach();
        started_++;
      } catch (const std::system_error&) {
        if (started_ == 0) throw;  // the threads there are serve the task
      }
    }
    tasks_.push_back(std::move(task));
    cv_.notify_one();
  }

 private:
  void Serve() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  int started_ = 0;
};

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
  // The thread-safe function keeps the process alive until the job settled.
  SettleTsfn tsfn = SettleTsfn::New(env, name, 0, 1);
  Job* j = job.release();
  auto run = [tsfn, j]() mutable {
    j->Run();
    if (tsfn.BlockingCall(j) != napi_ok) delete j;
    tsfn.Release();
  };
  try {
    // Thread: a call that blocks for minutes (a migration) gets a thread of its own,
    // or, when none can be started, waits its turn on the pool rather than not run.
    if (mode == Mode::Thread) {
      try {
        std::thread(run).detach();
      } catch (const std::system_error&) {
        CallPool::Get().Post(run);
      }
    } else {
      CallPool::Get().Post(run);
    }
  } catch (const std::system_error& e) {
    // Nothing will run the job: settle it here, and let the process exit.
    std::unique_ptr<Job> owned(j);
    tsfn.Release();
    owned->deferred.Reject(Napi::Error::New(env, std::string("cannot start a thread for ") + name + ": " + e.what()).Value());
  }
  return promise;
}

void ReleaseOffThread(std::function<void()> release) {
  try {
    CallPool::Get().Post(std::move(release));
  } catch (const std::system_error&) {
    release();  // better a call on this thread than a leaked handle
  }
}

}  // namespace virt
