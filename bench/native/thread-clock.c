// The calling thread's CPU time in ns, from clock_gettime(CLOCK_THREAD_CPUTIME_ID), for benches
// (bench/thread-clock.ts). process.threadCpuUsage() reads getrusage(RUSAGE_THREAD), which on
// this kernel moves in steps of 70 us to over 1 ms: too coarse to bracket calls of 10-100 us.
#define _POSIX_C_SOURCE 199309L
#include <node_api.h>
#include <time.h>

static napi_value threadCpuNs(napi_env env, napi_callback_info info) {
  (void)info;
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  napi_value out;
  napi_create_double(env, (double)t.tv_sec * 1e9 + (double)t.tv_nsec, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "threadCpuNs", NAPI_AUTO_LENGTH, threadCpuNs, NULL, &fn);
  napi_set_named_property(env, exports, "threadCpuNs", fn);
  return exports;
}
