/*
 * glibc's malloc_trim(0) for the controller, as a Node-API addon (optional:
 * src/operator/native/malloc-trim.ts loads it; without it nothing is trimmed).
 *
 * Why: a burst of issuances leaves glibc's main arena at its high-water mark (Buffers of requests,
 * responses and watch events waiting for a GC, V8's compiler zones); once they are freed, glibc
 * keeps the free chunks inside the heap and gives back only what lies at its very top. Only
 * malloc_trim() returns the free pages in the middle to the kernel (madvise). It frees nothing
 * that is in use and reads no input.
 *
 * API: trim() -> boolean   true when memory was returned to the kernel.
 */
#include <node_api.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#if defined(__GLIBC__)
  released = malloc_trim(0);
#endif
  napi_value out;
  if (napi_get_boolean(env, released != 0, &out) != napi_ok) return NULL;
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
