/*
 * The AEAD of the TLS record path as a Node-API addon (optional: src/tls/native/aead.ts loads it,
 * and the record layer falls back to node:crypto when it is absent).
 *
 * Why: node:crypto's cipher API costs one cipher object, one key schedule and three fresh buffers
 * per record (createCipheriv, update, getAuthTag). Here each direction keeps ONE EVP_CIPHER_CTX
 * with its key expanded once; a record only sets the nonce and runs the cipher into a buffer the
 * caller provides. The OpenSSL it calls is the one inside the node binary (its symbols are
 * exported for addons), so nothing is linked at build time.
 *
 * Every length and offset comes from JavaScript and, behind it, from the network: each is
 * checked against the real size of its buffer before anything is read or written, in 64-bit
 * arithmetic. The tag is checked by OpenSSL (EVP_DecryptFinal_ex), in constant time.
 *
 * API (all buffers are Uint8Array; offsets and lengths are integers):
 *   create(alg, encrypt, key, iv) -> context   alg: 1 AES-128-GCM, 2 AES-256-GCM, 3 ChaCha20-Poly1305
 *   seal(ctx, seq, aad, src, srcOff, srcLen, trailer, dst, dstOff)
 *       nonce = iv XOR seq in its low 8 bytes; seq is an integer below 2^53 or 8 big-endian bytes
 *       (TLS 1.2 AES-GCM's explicit nonce, with iv = salt || zeros), or 12 bytes: the whole nonce,
 *       the context's iv unused (session tickets: one context per ticket key, a random nonce per
 *       ticket); encrypts src[srcOff, +srcLen) followed by
 *       the byte `trailer` when 0 <= trailer <= 255 (TLS 1.3's inner content type), writes the
 *       ciphertext and then the 16-byte tag at dst[dstOff..]. Returns the bytes written.
 *   open(ctx, seq, aad, src, srcOff, srcLen, dst, dstOff) -> boolean
 *       src[srcOff, +srcLen) is ciphertext || tag; the plaintext (srcLen - 16 bytes) goes to
 *       dst[dstOff..]. False when the tag does not verify (dst then holds garbage the caller
 *       must drop).
 */
#include <stdint.h>
#include <string.h>
#include <node_api.h>
#include <openssl/evp.h>

#define TAG_LENGTH 16
#define NONCE_LENGTH 12
/* Larger than any TLS record (2^14 + 256 + tag); refuses anything else before touching OpenSSL. */
#define MAX_INPUT (1 << 15)
#define MAX_AAD 64
/* Sequence numbers and offsets: JavaScript numbers, so integers up to 2^53 - 1. */
#define MAX_SEQ 9007199254740991.0

typedef struct {
  EVP_CIPHER_CTX *ctx;
  int encrypt;
  unsigned char iv[NONCE_LENGTH];
} aead_t;

/*
 * The three ciphers, fetched from the provider once per environment (Node-API instance data,
 * freed with it). EVP_aes_128_gcm() and the like are legacy descriptions: EVP_CipherInit_ex
 * fetches the provider's implementation from them anew on every context, a lookup in the
 * method store plus its locking, and a TLS 1.3 handshake creates four contexts (a reader and a
 * writer for its handshake keys, then for its application keys).
 */
#define ALGORITHM_COUNT 3
static const char *const CIPHER_NAMES[ALGORITHM_COUNT + 1] = {NULL, "AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305"};
static const size_t KEY_LENGTHS[ALGORITHM_COUNT + 1] = {0, 16, 32, 32};

typedef struct {
  EVP_CIPHER *cipher[ALGORITHM_COUNT + 1];
} instance_t;

static void instance_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance_t *in = data;
  for (int i = 1; i <= ALGORITHM_COUNT; i++) EVP_CIPHER_free(in->cipher[i]);
  OPENSSL_free(in);
}

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) return fail((env), "native AEAD: " #call " failed"); \
  } while (0)

/* Exactly n arguments into argv[], else a usage error. */
#define ARGUMENTS(env, info, argv, n, usage)                                  \
  size_t argc = (n);                                                        \
  napi_value argv[(n)];                                                     \
  CHECK(env, napi_get_cb_info((env), (info), &argc, argv, NULL, NULL));     \
  if (argc != (n)) return fail((env), "native AEAD: " usage)

static napi_value fail(napi_env env, const char *msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_TLS_NATIVE_AEAD", msg);
  return NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_t *a = data;
  if (a == NULL) return;
  EVP_CIPHER_CTX_free(a->ctx);
  OPENSSL_cleanse(a->iv, sizeof a->iv);
  OPENSSL_free(a);
}

/* A Uint8Array's bytes and length; false (with an exception) for anything else. */
static int bytes(napi_env env, napi_value v, unsigned char **data, size_t *length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) {
    napi_throw_type_error(env, "ERR_TLS_NATIVE_AEAD", "native AEAD: expected a Uint8Array");
    return 0;
  }
  napi_typedarray_type type;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &type, length, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_TLS_NATIVE_AEAD", "native AEAD: expected a Uint8Array");
    return 0;
  }
  /* A zero-length view may have no backing store; nothing is read or written through it then. */
  *data = p;
  return 1;
}

/* A non-negative integer no larger than max; false (with an exception) otherwise. */
static int integer(napi_env env, napi_value v, double max, double *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= max) || d != (double)(int64_t)d) {
    napi_throw_range_error(env, "ERR_TLS_NATIVE_AEAD", "native AEAD: offset, length or sequence out of range");
    return 0;
  }
  *out = d;
  return 1;
}

/* Marks the externals this addon made, so that no other external (another addon's) is ever
 * taken for a cipher context. */
static const napi_type_tag AEAD_TAG = { 0x6463a3ad5e0c4b1eULL, 0x9f2b7c1d4e8a6f35ULL };

static aead_t *context(napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype t;
  bool ours = false;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_check_object_type_tag(env, v, &AEAD_TAG, &ours) != napi_ok || !ours ||
      napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_TLS_NATIVE_AEAD", "native AEAD: not a context");
    return NULL;
  }
  return data;
}

/* The nonce of one seal or open: iv XOR seq, or a whole nonce given by the caller. */
typedef struct {
  uint64_t seq;
  int whole;
  unsigned char nonce[NONCE_LENGTH];
} nonce_arg;

/* A number below 2^53 or 8 big-endian bytes (XORed into the IV), or 12 bytes (the whole nonce). */
static int sequence(napi_env env, napi_value v, nonce_arg *out) {
  out->whole = 0;
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) == napi_ok && is_typed) {
    unsigned char *p;
    size_t n;
    if (!bytes(env, v, &p, &n)) return 0;
    if (n == NONCE_LENGTH) {
      memcpy(out->nonce, p, NONCE_LENGTH);
      out->whole = 1;
      return 1;
    }
    if (n != 8) {
      napi_throw_range_error(env, "ERR_TLS_NATIVE_AEAD", "native AEAD: an explicit nonce has 8 bytes (or 12: a whole nonce)");
      return 0;
    }
    uint64_t s = 0;
    for (int i = 0; i < 8; i++) s = (s << 8) | p[i];
    out->seq = s;
    return 1;
  }
  double d;
  if (!integer(env, v, MAX_SEQ, &d)) return 0;
  out->seq = (uint64_t)d;
  return 1;
}

/* Sets the nonce of one seal or open; keeps the expanded key. */
static int set_nonce(aead_t *a, const nonce_arg *s) {
  unsigned char nonce[NONCE_LENGTH];
  if (s->whole) {
    memcpy(nonce, s->nonce, NONCE_LENGTH);
  } else {
    memcpy(nonce, a->iv, NONCE_LENGTH);
    for (int i = 0; i < 8; i++) nonce[NONCE_LENGTH - 1 - i] ^= (unsigned char)(s->seq >> (8 * i));
  }
  return EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, nonce, a->encrypt) == 1;
}

/* [buf, buf+len) and [buf2, buf2+len2) share a byte. */
static int overlaps(const unsigned char *p, size_t n, const unsigned char *q, size_t m) {
  uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
  return n > 0 && m > 0 && a < b + m && b < a + n;
}

static napi_value create(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 4, "create(alg, encrypt, key, iv)");
  double alg;
  bool encrypt;
  unsigned char *key, *iv;
  size_t key_length, iv_length;
  if (!integer(env, argv[0], 3, &alg)) return NULL;
  CHECK(env, napi_get_value_bool(env, argv[1], &encrypt));
  if (!bytes(env, argv[2], &key, &key_length) || !bytes(env, argv[3], &iv, &iv_length)) return NULL;
  int id = (int)alg;
  if (id < 1 || id > ALGORITHM_COUNT) return fail(env, "native AEAD: unknown algorithm");
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok || data == NULL) return fail(env, "native AEAD: not initialised");
  instance_t *in = data;
  if (in->cipher[id] == NULL && (in->cipher[id] = EVP_CIPHER_fetch(NULL, CIPHER_NAMES[id], NULL)) == NULL) {
    return fail(env, "native AEAD: OpenSSL lacks the algorithm");
  }
  const EVP_CIPHER *cipher = in->cipher[id];
  if (key_length != KEY_LENGTHS[id] || iv_length != NONCE_LENGTH) return fail(env, "native AEAD: wrong key or IV length");
  aead_t *a = OPENSSL_zalloc(sizeof *a);
  if (a == NULL) return fail(env, "native AEAD: out of memory");
  a->encrypt = encrypt ? 1 : 0;
  memcpy(a->iv, iv, NONCE_LENGTH);
  a->ctx = EVP_CIPHER_CTX_new();
  if (a->ctx == NULL || EVP_CipherInit_ex(a->ctx, cipher, NULL, NULL, NULL, a->encrypt) != 1 ||
      EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_LENGTH, NULL) != 1 ||
      EVP_CipherInit_ex(a->ctx, NULL, NULL, key, NULL, a->encrypt) != 1) {
    finalize(env, a, NULL);
    return fail(env, "native AEAD: cipher initialisation failed");
  }
  napi_value out;
  if (napi_create_external(env, a, finalize, NULL, &out) != napi_ok) {
    finalize(env, a, NULL);
    return fail(env, "native AEAD: napi_create_external failed");
  }
  /* Tagging can only fail on an engine without type tags; the finalizer then frees `a`. */
  if (napi_type_tag_object(env, out, &AEAD_TAG) != napi_ok) return fail(env, "native AEAD: napi_type_tag_object failed");
  return out;
}

/* The arguments seal and open share, checked: ctx, seq, aad, src, srcOff, srcLen, then (at
 * out_index) dst, dstOff. `in` is src + srcOff with srcLen bytes inside src; `out` is dst + dstOff
 * with room left `out_room` (each direction checks that its own output fits). */
typedef struct {
  aead_t *a;
  nonce_arg seq;
  unsigned char *aad, *in, *out;
  size_t aad_length, in_length, out_room;
} record_io;

static int record_args(napi_env env, napi_value *argv, int encrypt, size_t out_index, record_io *io) {
  io->a = context(env, argv[0]);
  if (io->a == NULL) return 0;
  if (io->a->encrypt != encrypt) {
    fail(env, encrypt ? "native AEAD: seal with an opening context" : "native AEAD: open with a sealing context");
    return 0;
  }
  double src_off, src_len, dst_off;
  unsigned char *src, *dst;
  size_t src_size, dst_size;
  if (!sequence(env, argv[1], &io->seq) || !bytes(env, argv[2], &io->aad, &io->aad_length) || !bytes(env, argv[3], &src, &src_size) ||
      !integer(env, argv[4], MAX_SEQ, &src_off) || !integer(env, argv[5], MAX_INPUT, &src_len) ||
      !bytes(env, argv[out_index], &dst, &dst_size) || !integer(env, argv[out_index + 1], MAX_SEQ, &dst_off))
    return 0;
  if (io->aad_length > MAX_AAD) return fail(env, "native AEAD: additional data too long"), 0;
  uint64_t so = (uint64_t)src_off, sl = (uint64_t)src_len, dof = (uint64_t)dst_off;
  if (so > src_size || sl > src_size - so) return fail(env, "native AEAD: source range outside its buffer"), 0;
  if (dof > dst_size) return fail(env, "native AEAD: output does not fit its buffer"), 0;
  io->in = src + so;
  io->in_length = (size_t)sl;
  io->out = dst + dof;
  io->out_room = dst_size - (size_t)dof;
  return 1;
}

/* The output range [out, out+n) fits and overlaps neither the additional data nor the input,
 * except exactly in place (same start), which OpenSSL supports. */
static int output_ok(napi_env env, const record_io *io, uint64_t n) {
  if (n > io->out_room) return fail(env, "native AEAD: output does not fit its buffer"), 0;
  if ((io->in != io->out && overlaps(io->in, io->in_length, io->out, (size_t)n)) || overlaps(io->aad, io->aad_length, io->out, (size_t)n))
    return fail(env, "native AEAD: overlapping buffers"), 0;
  return 1;
}

static napi_value seal(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 9, "seal(ctx, seq, aad, src, srcOff, srcLen, trailer, dst, dstOff)");
  record_io io;
  int32_t trailer;
  if (!record_args(env, argv, 1, 7, &io)) return NULL;
  CHECK(env, napi_get_value_int32(env, argv[6], &trailer));
  uint64_t sl = io.in_length;
  uint64_t with_trailer = sl + (trailer >= 0 && trailer <= 255 ? 1 : 0);
  if (!output_ok(env, &io, with_trailer + TAG_LENGTH)) return NULL;
  EVP_CIPHER_CTX *ctx = io.a->ctx;
  unsigned char *out = io.out;
  int n = 0, total = 0;
  if (!set_nonce(io.a, &io.seq) || (io.aad_length > 0 && EVP_EncryptUpdate(ctx, NULL, &n, io.aad, (int)io.aad_length) != 1))
    return fail(env, "native AEAD: seal failed");
  if (sl > 0) {
    if (EVP_EncryptUpdate(ctx, out, &n, io.in, (int)sl) != 1) return fail(env, "native AEAD: seal failed");
    total += n;
  }
  if (with_trailer > sl) {
    unsigned char t = (unsigned char)trailer;
    if (EVP_EncryptUpdate(ctx, out + total, &n, &t, 1) != 1) return fail(env, "native AEAD: seal failed");
    total += n;
  }
  /* GCM and ChaCha20-Poly1305 are stream modes: Final writes nothing, but is given room anyway. */
  if (EVP_EncryptFinal_ex(ctx, out + total, &n) != 1 || n != 0) return fail(env, "native AEAD: seal failed");
  if ((uint64_t)total != with_trailer) return fail(env, "native AEAD: unexpected ciphertext length");
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LENGTH, out + total) != 1) return fail(env, "native AEAD: no tag");
  napi_value result;
  CHECK(env, napi_create_uint32(env, (uint32_t)(total + TAG_LENGTH), &result));
  return result;
}

static napi_value open_(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 8, "open(ctx, seq, aad, src, srcOff, srcLen, dst, dstOff)");
  record_io io;
  if (!record_args(env, argv, 0, 6, &io)) return NULL;
  if (io.in_length < TAG_LENGTH) return fail(env, "native AEAD: record shorter than its tag");
  size_t plain = io.in_length - TAG_LENGTH;
  if (!output_ok(env, &io, plain)) return NULL;
  EVP_CIPHER_CTX *ctx = io.a->ctx;
  /* The tag is copied out first: an in-place open overwrites nothing past the plaintext, but
   * OpenSSL wants it set before Final and its buffer must not alias the output. */
  unsigned char tag[TAG_LENGTH];
  memcpy(tag, io.in + plain, TAG_LENGTH);
  int n = 0;
  if (!set_nonce(io.a, &io.seq) || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LENGTH, tag) != 1 ||
      (io.aad_length > 0 && EVP_DecryptUpdate(ctx, NULL, &n, io.aad, (int)io.aad_length) != 1))
    return fail(env, "native AEAD: open failed");
  int total = 0;
  if (plain > 0) {
    if (EVP_DecryptUpdate(ctx, io.out, &n, io.in, (int)plain) != 1) return fail(env, "native AEAD: open failed");
    total = n;
  }
  if ((size_t)total != plain) return fail(env, "native AEAD: unexpected plaintext length");
  /* Stream modes: Final writes no bytes; it only compares the tag (constant time in OpenSSL). */
  unsigned char spare[TAG_LENGTH];
  int ok = EVP_DecryptFinal_ex(ctx, spare, &n) == 1 && n == 0;
  napi_value result;
  CHECK(env, napi_get_boolean(env, ok, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  instance_t *in = OPENSSL_zalloc(sizeof *in);
  if (in == NULL || napi_set_instance_data(env, in, instance_free, NULL) != napi_ok) {
    OPENSSL_free(in);
    return fail(env, "native AEAD: napi_set_instance_data failed");
  }
  napi_property_descriptor props[] = {
      {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
      {"seal", NULL, seal, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, open_, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
