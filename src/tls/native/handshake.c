/*
 * The crypto of the TLS handshake as a Node-API addon (optional: src/tls/native/handshake.ts
 * loads it; key-exchange.ts and key-schedule.ts fall back to node:crypto when it is absent).
 *
 * Why: through node:crypto an x25519 share costs a key-generation job, a JWK encoding, a
 * KeyObject for the peer's key and a diffieHellman call (~85 us per handshake, most of it
 * per-call machinery around two scalar multiplications). Here one call generates our key,
 * imports the peer's share, derives the secret and frees the private key: the private key never
 * leaves C. The OpenSSL it calls is the one inside the node binary (its symbols are exported for
 * addons), so nothing is linked at build time.
 *
 * No arithmetic on secrets here: every operation on a key or a secret is an OpenSSL call.
 * Every length comes from JavaScript and, behind it, from the network: each is checked before
 * use. OpenSSL objects are freed on every path; secrets held in C are cleansed.
 *
 * API (buffers are Uint8Array; group: 1 X25519, 2 P-256, 3 P-384):
 *   ecdhGenerate(group, publicOut) -> key
 *       a fresh private key (opaque; freed, and its memory cleansed, by OpenSSL when collected);
 *       its public share is written to publicOut, which must have exactly the share's length
 *       (32, 65, 97; NIST points uncompressed).
 *   ecdhDerive(key, peerShare) -> secret (a new Buffer)
 *   ecdhRespond(group, peerShare, publicOut) -> secret
 *       generate + derive in one call; the private key exists only inside it.
 *   ecdhDeriveWithPrivateKey(group, privateKey, peerShare) -> secret
 *       X25519 only, for the known-answer self-check (RFC 7748 vectors); never used for traffic.
 *   mlkemEncapsulate(encapsulationKey, ciphertextOut) -> shared secret (ML-KEM-768, FIPS 203)
 *   hybridRespond(hybrid, clientShare, shareOut, secretOut): the server's answer to a hybrid share
 *       (hybrid: 1 X25519MLKEM768, 2 SecP256r1MLKEM768; draft-ietf-tls-ecdhe-mlkem), in one call.
 *   hmac(hash, key, data, length, out): the first `length` bytes of HMAC(key, data) into out
 *       hash: 1 SHA-256, 2 SHA-384; HKDF-Extract(salt, ikm) is hmac(hash, salt, ikm, hashLength).
 *   hkdfExpand(hash, prk, info, length, out): HKDF-Expand (RFC 5869 §2.3) into out
 *   hkdfExpandLabel(hash, secret, label, context, length, out): HKDF-Expand-Label (RFC 8446 §7.1)
 *       into out; `label` is the whole label, "tls13 " included (the caller caches it as bytes).
 *   hkdfExpandLabelPair(hash, secret, label1, label2, context, length1, length2, out1, out2): the
 *       same for two labels of one secret and one context (a side's key and IV; the client's and
 *       the server's traffic secrets), the HMAC keyed with the secret once.
 *   transcriptCreate(hash) -> transcript   a running hash (opaque; freed when collected)
 *   transcriptUpdate(transcript, data)
 *   transcriptDigest(transcript, extra, out) -> length: the hash of everything so far plus
 *       `extra` (may be empty) into out; the running hash continues without `extra`.
 *   signingKey(pkcs8) -> key; sign(key, scheme, data) -> signature: the server's handshake
 *       signature (CertificateVerify, ServerKeyExchange); see the signature block at the end.
 *   The key schedule's outputs go into a buffer the caller provides (out[0, length), which
 *   must fit): a new Buffer per call cost more than the HMAC (bench/results/handshake.md).
 * A bad peer share throws an Error whose code is ERR_TLS_NATIVE_BAD_SHARE (wrong length, not an
 * uncompressed point, not on the curve) or ERR_TLS_NATIVE_ZERO_SECRET (X25519: a low-order
 * point, all-zero result, RFC 7748 §6.1). Anything else is a programming error
 * (ERR_TLS_NATIVE_HANDSHAKE).
 */
#include <stdint.h>
#include <string.h>
#include <node_api.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

/* EVP_MAC_init reads the key pointer even for a zero-length key; this stands in for it. */
static const unsigned char EMPTY_KEY[1] = {0};

#define ERR_USAGE "ERR_TLS_NATIVE_HANDSHAKE"
#define ERR_BAD_SHARE "ERR_TLS_NATIVE_BAD_SHARE"
#define ERR_ZERO_SECRET "ERR_TLS_NATIVE_ZERO_SECRET"

/* The largest share and secret of the groups below (a P-384 point; a P-384 x coordinate). */
#define MAX_SHARE 97
#define MAX_SECRET 48

typedef struct {
  const char *keytype; /* OpenSSL's key type name */
  const char *curve;   /* group name for EC keys, NULL for X25519 */
  size_t share;        /* encoded public share */
  size_t secret;       /* shared secret */
} group_t;

static const group_t GROUPS[4] = {
    {NULL, NULL, 0, 0},
    {"X25519", NULL, 32, 32},
    {"EC", "P-256", 65, 32},
    {"EC", "P-384", 97, 48},
};
#define GROUP_COUNT 3

/* The hashes of the key schedule: 1 SHA-256, 2 SHA-384. */
static const struct {
  const char *name;
  size_t length;
} HASHES[3] = {{NULL, 0}, {"SHA256", 32}, {"SHA384", 48}};
#define HASH_COUNT 2

/* Per Node environment (main thread, each worker): contexts made once and reused. */
typedef struct {
  EVP_PKEY_CTX *keygen[GROUP_COUNT + 1];
  EVP_MAC_CTX *hmac[HASH_COUNT + 1]; /* the digest set; keyed per call, re-keyed to EMPTY_KEY after */
  EVP_MD *md[HASH_COUNT + 1];        /* fetched once */
  EVP_MD_CTX *scratch;               /* a transcript's copy, to finish an intermediate digest */
  EVP_PKEY_CTX *mlkem_import;        /* ML-KEM-768 public-key import (fromdata), fetched once */
} instance_t;

static napi_value fail_code(napi_env env, const char *code, const char *msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, code, msg);
  return NULL;
}

static napi_value fail(napi_env env, const char *msg) { return fail_code(env, ERR_USAGE, msg); }

#define CHECK(env, call)                                                          \
  do {                                                                            \
    if ((call) != napi_ok) return fail((env), "native handshake: " #call " failed"); \
  } while (0)

/* Exactly n arguments into argv[], else a usage error. */
#define ARGUMENTS(env, info, argv, n, usage)                              \
  size_t argc = (n);                                                    \
  napi_value argv[(n)];                                                 \
  CHECK(env, napi_get_cb_info((env), (info), &argc, argv, NULL, NULL)); \
  if (argc != (n)) return fail((env), "native handshake: " usage)

/* A Uint8Array's bytes and length; false (with an exception) for anything else. */
static int bytes(napi_env env, napi_value v, unsigned char **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *p = NULL;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, ERR_USAGE, "native handshake: expected a Uint8Array");
    return 0;
  }
  /* A zero-length view may have no backing store; nothing is read through it then. */
  static unsigned char none;
  *data = p != NULL ? p : &none;
  return 1;
}

/* An integer in [min, max]; false (with an exception) otherwise. */
static int integer(napi_env env, napi_value v, int32_t min, int32_t max, int32_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= min && d <= max) || d != (double)(int32_t)d) {
    napi_throw_range_error(env, ERR_USAGE, "native handshake: argument out of range");
    return 0;
  }
  *out = (int32_t)d;
  return 1;
}

static int group_arg(napi_env env, napi_value v, const group_t **g, int32_t *id) {
  if (!integer(env, v, 1, GROUP_COUNT, id)) return 0;
  *g = &GROUPS[*id];
  return 1;
}

/* A new Buffer holding secret[0, n), or NULL with an exception. */
static napi_value secret_buffer(napi_env env, const unsigned char *secret, size_t n) {
  napi_value out;
  void *unused;
  if (napi_create_buffer_copy(env, n, secret, &unused, &out) != napi_ok) return fail(env, "native handshake: napi_create_buffer_copy failed");
  return out;
}

/* `data` as a new external tagged `tag`; on failure `data` is freed by `finalize` (NULL with an exception). */
static napi_value wrap(napi_env env, void *data, napi_finalize finalize, const napi_type_tag *tag) {
  napi_value out;
  if (napi_create_external(env, data, finalize, NULL, &out) != napi_ok) {
    finalize(env, data, NULL);
    return fail(env, "native handshake: napi_create_external failed");
  }
  /* Tagging can only fail on an engine without type tags; the finalizer then frees `data`. */
  if (napi_type_tag_object(env, out, tag) != napi_ok) return fail(env, "native handshake: napi_type_tag_object failed");
  return out;
}

/* The data of an external this addon made with `tag`, else NULL with the TypeError `not_what`. */
static void *unwrap(napi_env env, napi_value v, const napi_type_tag *tag, const char *not_what) {
  void *data = NULL;
  napi_valuetype type;
  bool ours = false;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external || napi_check_object_type_tag(env, v, tag, &ours) != napi_ok || !ours ||
      napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, ERR_USAGE, not_what);
    return NULL;
  }
  return data;
}

// --- Instance data ----------------------------------------------------------------------------

static void instance_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance_t *in = data;
  if (in == NULL) return;
  for (int i = 0; i <= GROUP_COUNT; i++) EVP_PKEY_CTX_free(in->keygen[i]);
  for (int i = 0; i <= HASH_COUNT; i++) {
    EVP_MAC_CTX_free(in->hmac[i]);
    EVP_MD_free(in->md[i]);
  }
  EVP_MD_CTX_free(in->scratch);
  EVP_PKEY_CTX_free(in->mlkem_import);
  OPENSSL_free(in);
}

static instance_t *instance(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok || data == NULL) {
    fail(env, "native handshake: not initialised");
    return NULL;
  }
  return data;
}

// --- (EC)DHE ----------------------------------------------------------------------------------

/* The keygen context of group g, made on first use and kept. */
static EVP_PKEY_CTX *keygen_ctx(instance_t *in, int32_t id) {
  if (in->keygen[id] != NULL) return in->keygen[id];
  const group_t *g = &GROUPS[id];
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, g->keytype, NULL);
  if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || (g->curve != NULL && EVP_PKEY_CTX_set_group_name(ctx, g->curve) != 1)) {
    EVP_PKEY_CTX_free(ctx);
    return NULL;
  }
  in->keygen[id] = ctx;
  return ctx;
}

/* A fresh key of group id, its encoded public share written to pub (exactly g->share bytes). */
static EVP_PKEY *generate(napi_env env, int32_t id, unsigned char *pub, size_t pub_length) {
  const group_t *g = &GROUPS[id];
  if (pub_length != g->share) return fail(env, "native handshake: public share buffer of the wrong length"), NULL;
  instance_t *in = instance(env);
  if (in == NULL) return NULL;
  EVP_PKEY_CTX *ctx = keygen_ctx(in, id);
  EVP_PKEY *key = NULL;
  if (ctx == NULL || EVP_PKEY_keygen(ctx, &key) != 1) {
    EVP_PKEY_free(key);
    return fail(env, "native handshake: key generation failed"), NULL;
  }
  size_t n = pub_length;
  int ok = g->curve == NULL ? EVP_PKEY_get_raw_public_key(key, pub, &n) == 1
                            : EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, pub_length, &n) == 1;
  if (!ok || n != g->share || (g->curve != NULL && pub[0] != 0x04)) {
    EVP_PKEY_free(key);
    return fail(env, "native handshake: public key encoding failed"), NULL;
  }
  return key;
}

/*
 * The peer's share as a key of group g: exact length and, for NIST curves, the uncompressed
 * form (RFC 8446 §4.2.8.2) of a point on the curve (OpenSSL's import decodes the point and
 * refuses one off the curve). NULL with an ERR_BAD_SHARE exception otherwise.
 */
static EVP_PKEY *peer_key(napi_env env, const group_t *g, const unsigned char *share, size_t length) {
  if (length != g->share) return fail_code(env, ERR_BAD_SHARE, "native handshake: key share of the wrong length"), NULL;
  EVP_PKEY *peer = NULL;
  if (g->curve == NULL) {
    peer = EVP_PKEY_new_raw_public_key_ex(NULL, g->keytype, NULL, share, length);
  } else {
    if (share[0] != 0x04) return fail_code(env, ERR_BAD_SHARE, "native handshake: EC share is not an uncompressed point"), NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)g->curve, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)share, length),
        OSSL_PARAM_construct_end(),
    };
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1) {
      EVP_PKEY_free(peer);
      peer = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
  }
  if (peer == NULL) return fail_code(env, ERR_BAD_SHARE, g->curve ? "native handshake: EC share is not a point on the curve" : "native handshake: invalid X25519 share"), NULL;
  return peer;
}

/*
 * The shared secret of key and the peer's share into out (exactly g->secret bytes): 1, or 0 with
 * an exception (out is then cleansed).
 */
static int derive_into(napi_env env, const group_t *g, EVP_PKEY *key, const unsigned char *share, size_t share_length, unsigned char *out) {
  EVP_PKEY *peer = peer_key(env, g, share, share_length);
  if (peer == NULL) return 0;
  size_t n = g->secret;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
  /* The peer was validated by its import (length, point on the curve); no second check. */
  int ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) == 1;
  int derived = ok && EVP_PKEY_derive(ctx, out, &n) == 1 && n == g->secret;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  if (!derived) {
    OPENSSL_cleanse(out, g->secret);
    /* OpenSSL's X25519 refuses an all-zero result (a low-order point): the only way a valid
     * 32-byte share fails to derive once the context is set up. */
    if (ok && g->curve == NULL) return fail_code(env, ERR_ZERO_SECRET, "native handshake: x25519 shared secret is all zeros"), 0;
    return fail_code(env, ERR_BAD_SHARE, "native handshake: key agreement failed"), 0;
  }
  /* Also when OpenSSL does not refuse it (RFC 7748 §6.1; RFC 8446 §7.4.2). */
  static const unsigned char zeros[MAX_SECRET];
  if (g->curve == NULL && CRYPTO_memcmp(out, zeros, n) == 0) {
    OPENSSL_cleanse(out, g->secret);
    return fail_code(env, ERR_ZERO_SECRET, "native handshake: x25519 shared secret is all zeros"), 0;
  }
  return 1;
}

/* The shared secret of key and the peer's share, as a new Buffer (or NULL with an exception). */
static napi_value derive(napi_env env, const group_t *g, EVP_PKEY *key, const unsigned char *share, size_t share_length) {
  unsigned char secret[MAX_SECRET];
  napi_value out = derive_into(env, g, key, share, share_length, secret) ? secret_buffer(env, secret, g->secret) : NULL;
  OPENSSL_cleanse(secret, sizeof secret);
  return out;
}

/* Marks the externals this addon made, so no other external is ever taken for a key. */
static const napi_type_tag KEY_TAG = {0x1c5e3f0b8d7a4e21ULL, 0xa4d9e6b3c2f18057ULL};

typedef struct {
  EVP_PKEY *key;
  int32_t group;
} key_t_;

static void key_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  key_t_ *k = data;
  if (k == NULL) return;
  EVP_PKEY_free(k->key); /* OpenSSL cleanses the private key's memory */
  OPENSSL_free(k);
}

static napi_value ecdh_generate(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 2, "ecdhGenerate(group, publicOut)");
  const group_t *g;
  int32_t id;
  unsigned char *pub;
  size_t pub_length;
  if (!group_arg(env, argv[0], &g, &id) || !bytes(env, argv[1], &pub, &pub_length)) return NULL;
  key_t_ *k = OPENSSL_zalloc(sizeof *k);
  if (k == NULL) return fail(env, "native handshake: out of memory");
  k->group = id;
  k->key = generate(env, id, pub, pub_length);
  if (k->key == NULL) {
    key_finalize(env, k, NULL);
    return NULL;
  }
  return wrap(env, k, key_finalize, &KEY_TAG);
}

static napi_value ecdh_derive(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 2, "ecdhDerive(key, peerShare)");
  key_t_ *k = unwrap(env, argv[0], &KEY_TAG, "native handshake: not a key");
  if (k == NULL) return NULL;
  unsigned char *share;
  size_t share_length;
  if (!bytes(env, argv[1], &share, &share_length)) return NULL;
  return derive(env, &GROUPS[k->group], k->key, share, share_length);
}

static napi_value ecdh_respond(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 3, "ecdhRespond(group, peerShare, publicOut)");
  const group_t *g;
  int32_t id;
  unsigned char *share, *pub;
  size_t share_length, pub_length;
  if (!group_arg(env, argv[0], &g, &id) || !bytes(env, argv[1], &share, &share_length) || !bytes(env, argv[2], &pub, &pub_length)) return NULL;
  /* The share's length first: a malformed share costs no key generation. */
  if (share_length != g->share) return fail_code(env, ERR_BAD_SHARE, "native handshake: key share of the wrong length");
  EVP_PKEY *key = generate(env, id, pub, pub_length);
  if (key == NULL) return NULL;
  napi_value out = derive(env, g, key, share, share_length);
  EVP_PKEY_free(key);
  return out;
}

static napi_value ecdh_derive_with_private_key(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 3, "ecdhDeriveWithPrivateKey(group, privateKey, peerShare)");
  const group_t *g;
  int32_t id;
  unsigned char *priv, *share;
  size_t priv_length, share_length;
  if (!group_arg(env, argv[0], &g, &id) || !bytes(env, argv[1], &priv, &priv_length) || !bytes(env, argv[2], &share, &share_length)) return NULL;
  if (g->curve != NULL || priv_length != g->secret) return fail(env, "native handshake: known-answer derivation is X25519 with a 32-byte private key only");
  EVP_PKEY *key = EVP_PKEY_new_raw_private_key_ex(NULL, g->keytype, NULL, priv, priv_length);
  if (key == NULL) return fail(env, "native handshake: private key import failed");
  napi_value out = derive(env, g, key, share, share_length);
  EVP_PKEY_free(key);
  return out;
}

// --- ML-KEM-768 (FIPS 203) and the hybrid groups (draft-ietf-tls-ecdhe-mlkem) -----------------

#define MLKEM768_ENCAPSULATION_KEY 1184
#define MLKEM768_CIPHERTEXT 1088
#define MLKEM_SHARED_SECRET 32

/*
 * The server's half of ML-KEM-768: the ciphertext into ct (1088 bytes), the shared secret into
 * secret (32 bytes). OpenSSL's import of the key runs the FIPS 203 §7.2 checks (length, every
 * coefficient below q); a key that fails them is ERR_BAD_SHARE. 1, or 0 with an exception.
 */
static int mlkem_encapsulate_into(napi_env env, const unsigned char *ek, size_t ek_length, unsigned char *ct, unsigned char *secret) {
  if (ek_length != MLKEM768_ENCAPSULATION_KEY) return fail_code(env, ERR_BAD_SHARE, "native handshake: ML-KEM-768 encapsulation key of the wrong length"), 0;
  instance_t *in = instance(env);
  if (in == NULL) return 0;
  /* One import context per environment: EVP_PKEY_new_raw_public_key_ex fetched the key type by
   * name for every key. */
  if (in->mlkem_import == NULL) {
    EVP_PKEY_CTX *made = EVP_PKEY_CTX_new_from_name(NULL, "ML-KEM-768", NULL);
    if (made == NULL || EVP_PKEY_fromdata_init(made) != 1) {
      EVP_PKEY_CTX_free(made);
      return fail(env, "native handshake: ML-KEM-768 unavailable"), 0;
    }
    in->mlkem_import = made;
  }
  EVP_PKEY *key = NULL;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)ek, ek_length), OSSL_PARAM_construct_end()};
  if (EVP_PKEY_fromdata(in->mlkem_import, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) EVP_PKEY_free(key), key = NULL;
  if (key == NULL) return fail_code(env, ERR_BAD_SHARE, "native handshake: ML-KEM-768 encapsulation key fails the FIPS 203 modulus check"), 0;
  size_t ct_n = MLKEM768_CIPHERTEXT, secret_n = MLKEM_SHARED_SECRET;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
  int ok = ctx != NULL && EVP_PKEY_encapsulate_init(ctx, NULL) == 1 && EVP_PKEY_encapsulate(ctx, ct, &ct_n, secret, &secret_n) == 1 &&
           ct_n == MLKEM768_CIPHERTEXT && secret_n == MLKEM_SHARED_SECRET;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(key);
  if (!ok) {
    OPENSSL_cleanse(secret, MLKEM_SHARED_SECRET);
    return fail(env, "native handshake: ML-KEM-768 encapsulation failed"), 0;
  }
  return 1;
}

/* mlkemEncapsulate(encapsulationKey, ciphertextOut) -> shared secret (the self-check and tests). */
static napi_value mlkem_encapsulate(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 2, "mlkemEncapsulate(encapsulationKey, ciphertextOut)");
  unsigned char *ek, *ct;
  size_t ek_length, ct_length;
  if (!bytes(env, argv[0], &ek, &ek_length) || !bytes(env, argv[1], &ct, &ct_length)) return NULL;
  if (ct_length != MLKEM768_CIPHERTEXT) return fail(env, "native handshake: ciphertext buffer of the wrong length");
  unsigned char secret[MLKEM_SHARED_SECRET];
  napi_value out = mlkem_encapsulate_into(env, ek, ek_length, ct, secret) ? secret_buffer(env, secret, sizeof secret) : NULL;
  OPENSSL_cleanse(secret, sizeof secret);
  return out;
}

/* The hybrids: their ECDH group and which part comes first in shares and secret (draft §3). */
static const struct {
  int32_t ecdh;  /* GROUPS index */
  int kem_first; /* X25519MLKEM768: ML-KEM first; SecP256r1MLKEM768: ECDH first */
} HYBRIDS[3] = {{0, 0}, {1, 1}, {2, 0}};
#define HYBRID_COUNT 2

static int overlaps(const unsigned char *a, size_t an, const unsigned char *b, size_t bn); /* TLS 1.2 block */

/*
 * hybridRespond(hybrid, clientShare, shareOut, secretOut): the server's answer to a hybrid client
 * share in one call. ECDH half first (a bad point or an all-zero X25519 secret costs no
 * encapsulation), then ML-KEM; the ciphertext and our ECDH share are written in place into
 * shareOut, the two secrets into secretOut, each in the group's order.
 */
static napi_value hybrid_respond(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 4, "hybridRespond(hybrid, clientShare, shareOut, secretOut)");
  int32_t id;
  unsigned char *share, *out, *secret;
  size_t share_length, out_length, secret_length;
  if (!integer(env, argv[0], 1, HYBRID_COUNT, &id) || !bytes(env, argv[1], &share, &share_length) || !bytes(env, argv[2], &out, &out_length) ||
      !bytes(env, argv[3], &secret, &secret_length))
    return NULL;
  const int kem_first = HYBRIDS[id].kem_first;
  const group_t *g = &GROUPS[HYBRIDS[id].ecdh];
  if (out_length != MLKEM768_CIPHERTEXT + g->share || secret_length != MLKEM_SHARED_SECRET + g->secret)
    return fail(env, "native handshake: hybrid share or secret buffer of the wrong length");
  /* Outputs are written while the client's share is still read. */
  if (overlaps(out, out_length, share, share_length) || overlaps(secret, secret_length, share, share_length) || overlaps(out, out_length, secret, secret_length))
    return fail(env, "native handshake: hybrid output overlaps an input or the other output");
  if (share_length != MLKEM768_ENCAPSULATION_KEY + g->share) return fail_code(env, ERR_BAD_SHARE, "native handshake: hybrid key share of the wrong length");
  const unsigned char *ek = kem_first ? share : share + g->share;
  const unsigned char *peer = kem_first ? share + MLKEM768_ENCAPSULATION_KEY : share;
  unsigned char *ct = kem_first ? out : out + g->share;
  unsigned char *pub = kem_first ? out + MLKEM768_CIPHERTEXT : out;
  unsigned char *kem_secret = kem_first ? secret : secret + g->secret;
  unsigned char *ecdh_secret = kem_first ? secret + MLKEM_SHARED_SECRET : secret;
  EVP_PKEY *key = generate(env, HYBRIDS[id].ecdh, pub, g->share);
  if (key == NULL) return NULL;
  int ok = derive_into(env, g, key, peer, g->share, ecdh_secret);
  EVP_PKEY_free(key);
  ok = ok && mlkem_encapsulate_into(env, ek, MLKEM768_ENCAPSULATION_KEY, ct, kem_secret);
  if (!ok) OPENSSL_cleanse(secret, secret_length);
  return NULL;
}

// --- HMAC and HKDF (RFC 2104, RFC 5869, RFC 8446 §7.1) ---------------------------------------

/* Bounds of what the key schedules pass: keys are at most a few hundred bytes (a secret); data
 * is a transcript hash or an HkdfLabel, or TLS 1.2's PRF input, whose exporter context may be
 * 65,535 bytes (RFC 5705) plus A(i), label and randoms. HMAC streams the data, so the bound only
 * keeps a wrong length out. */
#define MAX_KEY 1024
#define MAX_DATA (1 << 17)
#define MAX_LABEL 255
#define MAX_CONTEXT 255

/* The HMAC context of hash id, made on first use. */
static EVP_MAC_CTX *hmac_ctx(instance_t *in, int32_t id) {
  if (in->hmac[id] != NULL) return in->hmac[id];
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
  EVP_MAC_free(mac); /* the context keeps its own reference */
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)HASHES[id].name, 0), OSSL_PARAM_construct_end()};
  if (ctx == NULL || EVP_MAC_CTX_set_params(ctx, params) != 1) {
    EVP_MAC_CTX_free(ctx);
    return NULL;
  }
  in->hmac[id] = ctx;
  return ctx;
}

/* One piece of an HMAC input. */
typedef struct {
  const unsigned char *data;
  size_t length;
} piece_t;

/*
 * out = HMAC(key, pieces...), the full digest (HASHES[id].length bytes). Afterwards the shared
 * context is re-keyed with EMPTY_KEY, so it holds no copy of `key` between calls.
 */
static int hmac_pieces(EVP_MAC_CTX *ctx, const unsigned char *key, size_t key_length, const piece_t *pieces, int count, unsigned char *out, size_t out_length) {
  size_t n = 0;
  int ok = EVP_MAC_init(ctx, key_length > 0 ? key : EMPTY_KEY, key_length, NULL) == 1;
  for (int i = 0; ok && i < count; i++) ok = pieces[i].length == 0 || EVP_MAC_update(ctx, pieces[i].data, pieces[i].length) == 1;
  ok = ok && EVP_MAC_final(ctx, out, &n, out_length) == 1 && n == out_length;
  if (EVP_MAC_init(ctx, EMPTY_KEY, 0, NULL) != 1) ok = 0;
  return ok;
}

/* HKDF-Expand(prk, info_pieces..., length) into out (length <= 255 * hash length). */
static int hkdf_expand(EVP_MAC_CTX *ctx, int32_t id, const unsigned char *prk, size_t prk_length, const piece_t *info, int info_count, unsigned char *out, size_t length) {
  const size_t h = HASHES[id].length;
  unsigned char t[EVP_MAX_MD_SIZE];
  size_t done = 0;
  int ok = 1;
  for (unsigned counter = 1; ok && done < length; counter++) {
    /* T(i) = HMAC(PRK, T(i-1) | info | i); T(0) is empty. */
    unsigned char c = (unsigned char)counter;
    piece_t pieces[8];
    int k = 0;
    pieces[k++] = (piece_t){t, counter == 1 ? 0 : h};
    for (int i = 0; i < info_count; i++) pieces[k++] = info[i];
    pieces[k++] = (piece_t){&c, 1};
    ok = hmac_pieces(ctx, prk, prk_length, pieces, k, t, h);
    size_t take = length - done < h ? length - done : h;
    if (ok) memcpy(out + done, t, take);
    done += take;
  }
  OPENSSL_cleanse(t, sizeof t);
  return ok;
}

/* The hash argument and its HMAC context; NULL with an exception otherwise. */
static EVP_MAC_CTX *hash_arg(napi_env env, napi_value v, int32_t *id) {
  if (!integer(env, v, 1, HASH_COUNT, id)) return NULL;
  instance_t *in = instance(env);
  if (in == NULL) return NULL;
  EVP_MAC_CTX *ctx = hmac_ctx(in, *id);
  if (ctx == NULL) fail(env, "native handshake: HMAC unavailable");
  return ctx;
}

/* The output argument: a Uint8Array with room for `length` bytes at its start. */
static int output_arg(napi_env env, napi_value v, size_t length, unsigned char **out) {
  size_t room;
  if (!bytes(env, v, out, &room)) return 0;
  if (room < length) return fail(env, "native handshake: output buffer too short"), 0;
  return 1;
}

static napi_value done(napi_env env, int ok) { return ok ? NULL : fail(env, "native handshake: HMAC failed"); }

static napi_value hmac(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 5, "hmac(hash, key, data, length, out)");
  int32_t id, length;
  unsigned char *key, *data, *out;
  size_t key_length, data_length;
  EVP_MAC_CTX *ctx = hash_arg(env, argv[0], &id);
  if (ctx == NULL || !bytes(env, argv[1], &key, &key_length) || !bytes(env, argv[2], &data, &data_length) ||
      !integer(env, argv[3], 1, (int32_t)HASHES[id].length, &length) || !output_arg(env, argv[4], (size_t)length, &out))
    return NULL;
  if (key_length > MAX_KEY || data_length > MAX_DATA) return fail(env, "native handshake: HMAC key or data too long");
  unsigned char mac[EVP_MAX_MD_SIZE];
  piece_t piece = {data, data_length};
  int ok = hmac_pieces(ctx, key, key_length, &piece, 1, mac, HASHES[id].length);
  if (ok) memcpy(out, mac, (size_t)length);
  OPENSSL_cleanse(mac, sizeof mac);
  return done(env, ok);
}

static napi_value hkdf_expand_(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 5, "hkdfExpand(hash, prk, info, length, out)");
  int32_t id, length;
  unsigned char *prk, *data, *out;
  size_t prk_length, data_length;
  EVP_MAC_CTX *ctx = hash_arg(env, argv[0], &id);
  if (ctx == NULL || !bytes(env, argv[1], &prk, &prk_length) || !bytes(env, argv[2], &data, &data_length) ||
      !integer(env, argv[3], 1, 255 * (int32_t)HASHES[id].length, &length) || !output_arg(env, argv[4], (size_t)length, &out))
    return NULL;
  if (prk_length > MAX_KEY || data_length > MAX_DATA) return fail(env, "native handshake: HKDF key or info too long");
  piece_t piece = {data, data_length};
  return done(env, hkdf_expand(ctx, id, prk, prk_length, &piece, 1, out, (size_t)length));
}

static napi_value hkdf_expand_label(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 6, "hkdfExpandLabel(hash, secret, label, context, length, out)");
  int32_t id, length;
  unsigned char *secret, *label, *context, *out;
  size_t secret_length, label_length, context_length;
  EVP_MAC_CTX *ctx = hash_arg(env, argv[0], &id);
  if (ctx == NULL || !bytes(env, argv[1], &secret, &secret_length) || !bytes(env, argv[2], &label, &label_length) ||
      !bytes(env, argv[3], &context, &context_length) || !integer(env, argv[4], 1, 255 * (int32_t)HASHES[id].length, &length) ||
      !output_arg(env, argv[5], (size_t)length, &out))
    return NULL;
  if (secret_length > MAX_KEY) return fail(env, "native handshake: HKDF secret too long");
  if (label_length > MAX_LABEL || context_length > MAX_CONTEXT) return fail(env, "native handshake: HKDF label or context longer than 255 bytes");
  /* HkdfLabel: uint16 length, opaque label<7..255> (with "tls13 "), opaque context<0..255>. */
  unsigned char head[3] = {(unsigned char)(length >> 8), (unsigned char)length, (unsigned char)label_length};
  unsigned char context_prefix = (unsigned char)context_length;
  piece_t pieces[] = {{head, 3}, {label, label_length}, {&context_prefix, 1}, {context, context_length}};
  return done(env, hkdf_expand(ctx, id, secret, secret_length, pieces, 4, out, (size_t)length));
}

/*
 * HKDF-Expand-Label with `ctx` already keyed with the secret: each HMAC block re-initialises it
 * with that key (EVP_MAC_init with no key keeps the keyed state), so the key is set up once for
 * every label of the secret.
 */
static int expand_label_keyed(EVP_MAC_CTX *ctx, int32_t id, const unsigned char *label, size_t label_length, const unsigned char *context,
                              size_t context_length, unsigned char *out, size_t length) {
  const size_t h = HASHES[id].length;
  unsigned char head[3] = {(unsigned char)(length >> 8), (unsigned char)length, (unsigned char)label_length};
  unsigned char context_prefix = (unsigned char)context_length;
  unsigned char t[EVP_MAX_MD_SIZE];
  size_t done = 0;
  int ok = 1;
  for (unsigned counter = 1; ok && done < length; counter++) {
    unsigned char c = (unsigned char)counter;
    size_t n = 0;
    ok = EVP_MAC_init(ctx, NULL, 0, NULL) == 1 && (counter == 1 || EVP_MAC_update(ctx, t, h) == 1) && EVP_MAC_update(ctx, head, 3) == 1 &&
         EVP_MAC_update(ctx, label, label_length) == 1 && EVP_MAC_update(ctx, &context_prefix, 1) == 1 &&
         (context_length == 0 || EVP_MAC_update(ctx, context, context_length) == 1) && EVP_MAC_update(ctx, &c, 1) == 1 &&
         EVP_MAC_final(ctx, t, &n, h) == 1 && n == h;
    size_t take = length - done < h ? length - done : h;
    if (ok) memcpy(out + done, t, take);
    done += take;
  }
  OPENSSL_cleanse(t, sizeof t);
  return ok;
}

static napi_value hkdf_expand_label_pair(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 9, "hkdfExpandLabelPair(hash, secret, label1, label2, context, length1, length2, out1, out2)");
  int32_t id, length1, length2;
  unsigned char *secret, *label1, *label2, *context, *out1, *out2;
  size_t secret_length, label1_length, label2_length, context_length;
  EVP_MAC_CTX *ctx = hash_arg(env, argv[0], &id);
  if (ctx == NULL || !bytes(env, argv[1], &secret, &secret_length) || !bytes(env, argv[2], &label1, &label1_length) ||
      !bytes(env, argv[3], &label2, &label2_length) || !bytes(env, argv[4], &context, &context_length) ||
      !integer(env, argv[5], 1, 255 * (int32_t)HASHES[id].length, &length1) || !integer(env, argv[6], 1, 255 * (int32_t)HASHES[id].length, &length2) ||
      !output_arg(env, argv[7], (size_t)length1, &out1) || !output_arg(env, argv[8], (size_t)length2, &out2))
    return NULL;
  if (secret_length > MAX_KEY) return fail(env, "native handshake: HKDF secret too long");
  if (label1_length > MAX_LABEL || label2_length > MAX_LABEL || context_length > MAX_CONTEXT)
    return fail(env, "native handshake: HKDF label or context longer than 255 bytes");
  int ok = EVP_MAC_init(ctx, secret_length > 0 ? secret : EMPTY_KEY, secret_length, NULL) == 1 &&
           expand_label_keyed(ctx, id, label1, label1_length, context, context_length, out1, (size_t)length1) &&
           expand_label_keyed(ctx, id, label2, label2_length, context, context_length, out2, (size_t)length2);
  /* As after every HMAC here: the shared context keeps no keyed state of the secret. */
  if (EVP_MAC_init(ctx, EMPTY_KEY, 0, NULL) != 1) ok = 0;
  if (!ok) {
    OPENSSL_cleanse(out1, (size_t)length1);
    OPENSSL_cleanse(out2, (size_t)length2);
  }
  return done(env, ok);
}

// --- Transcript hash (RFC 8446 §4.4.1) -------------------------------------------------------

static const napi_type_tag TRANSCRIPT_TAG = {0x5a17c2e94b0d3f68ULL, 0x0e6b9d2a7c4f1358ULL};

typedef struct {
  EVP_MD_CTX *ctx;
  size_t length;
} transcript_t;

static void transcript_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  transcript_t *t = data;
  if (t == NULL) return;
  EVP_MD_CTX_free(t->ctx);
  OPENSSL_free(t);
}

static transcript_t *transcript_arg(napi_env env, napi_value v) { return unwrap(env, v, &TRANSCRIPT_TAG, "native handshake: not a transcript"); }

static napi_value transcript_create(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 1, "transcriptCreate(hash)");
  int32_t id;
  if (!integer(env, argv[0], 1, HASH_COUNT, &id)) return NULL;
  instance_t *in = instance(env);
  if (in == NULL) return NULL;
  if (in->md[id] == NULL && (in->md[id] = EVP_MD_fetch(NULL, HASHES[id].name, NULL)) == NULL) return fail(env, "native handshake: digest unavailable");
  transcript_t *t = OPENSSL_zalloc(sizeof *t);
  if (t == NULL) return fail(env, "native handshake: out of memory");
  t->length = HASHES[id].length;
  t->ctx = EVP_MD_CTX_new();
  if (t->ctx == NULL || EVP_DigestInit_ex(t->ctx, in->md[id], NULL) != 1) {
    transcript_finalize(env, t, NULL);
    return fail(env, "native handshake: digest initialisation failed");
  }
  return wrap(env, t, transcript_finalize, &TRANSCRIPT_TAG);
}

static napi_value transcript_update(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 2, "transcriptUpdate(transcript, data)");
  transcript_t *t = transcript_arg(env, argv[0]);
  unsigned char *data;
  size_t length;
  if (t == NULL || !bytes(env, argv[1], &data, &length)) return NULL;
  if (length > 0 && EVP_DigestUpdate(t->ctx, data, length) != 1) return fail(env, "native handshake: digest update failed");
  return NULL;
}

static napi_value transcript_digest(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 3, "transcriptDigest(transcript, extra, out)");
  transcript_t *t = transcript_arg(env, argv[0]);
  unsigned char *extra, *out;
  size_t extra_length;
  if (t == NULL || !bytes(env, argv[1], &extra, &extra_length) || !output_arg(env, argv[2], t->length, &out)) return NULL;
  instance_t *in = instance(env);
  if (in == NULL) return NULL;
  if (in->scratch == NULL && (in->scratch = EVP_MD_CTX_new()) == NULL) return fail(env, "native handshake: out of memory");
  unsigned int n = 0;
  if (EVP_MD_CTX_copy_ex(in->scratch, t->ctx) != 1 || (extra_length > 0 && EVP_DigestUpdate(in->scratch, extra, extra_length) != 1) ||
      EVP_DigestFinal_ex(in->scratch, out, &n) != 1 || n != t->length)
    return fail(env, "native handshake: digest failed");
  napi_value result;
  CHECK(env, napi_create_uint32(env, n, &result));
  return result;
}

static napi_value tls12_prf(napi_env env, napi_callback_info info); /* TLS 1.2 block, at the end */
static napi_value signing_key(napi_env env, napi_callback_info info); /* signature block, at the end */
static napi_value sign_(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  instance_t *in = OPENSSL_zalloc(sizeof *in);
  if (in == NULL || napi_set_instance_data(env, in, instance_free, NULL) != napi_ok) {
    OPENSSL_free(in);
    return fail(env, "native handshake: napi_set_instance_data failed");
  }
  napi_property_descriptor props[] = {
      {"ecdhGenerate", NULL, ecdh_generate, NULL, NULL, NULL, napi_default, NULL},
      {"ecdhDerive", NULL, ecdh_derive, NULL, NULL, NULL, napi_default, NULL},
      {"ecdhRespond", NULL, ecdh_respond, NULL, NULL, NULL, napi_default, NULL},
      {"ecdhDeriveWithPrivateKey", NULL, ecdh_derive_with_private_key, NULL, NULL, NULL, napi_default, NULL},
      {"mlkemEncapsulate", NULL, mlkem_encapsulate, NULL, NULL, NULL, napi_default, NULL},
      {"hybridRespond", NULL, hybrid_respond, NULL, NULL, NULL, napi_default, NULL},
      {"hmac", NULL, hmac, NULL, NULL, NULL, napi_default, NULL},
      {"hkdfExpand", NULL, hkdf_expand_, NULL, NULL, NULL, napi_default, NULL},
      {"hkdfExpandLabel", NULL, hkdf_expand_label, NULL, NULL, NULL, napi_default, NULL},
      {"hkdfExpandLabelPair", NULL, hkdf_expand_label_pair, NULL, NULL, NULL, napi_default, NULL},
      {"transcriptCreate", NULL, transcript_create, NULL, NULL, NULL, napi_default, NULL},
      {"transcriptUpdate", NULL, transcript_update, NULL, NULL, NULL, napi_default, NULL},
      {"transcriptDigest", NULL, transcript_digest, NULL, NULL, NULL, napi_default, NULL},
      {"tls12Prf", NULL, tls12_prf, NULL, NULL, NULL, napi_default, NULL},
      {"signingKey", NULL, signing_key, NULL, NULL, NULL, napi_default, NULL},
      {"sign", NULL, sign_, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

// --- TLS 1.2 PRF (RFC 5246 §5) -----------------------------------------------------------------
/*
 * tls12Prf(hash, secret, label, seed, seed2, length, out): the first `length` bytes of
 * P_hash(secret, label || seed || seed2) into out[0, length). hash 1 SHA-256, 2 SHA-384.
 *
 * Why: the TLS 1.2 handshake derives its master secret, key block and both Finished through the
 * PRF, two HMACs per output block; from JavaScript that is ~12 calls per handshake with a Buffer
 * per HMAC and per concatenation. Here it is one call per PRF, the key is set once per call
 * (the HMAC context is re-initialised with it for each block), and `seed2` takes the key block's
 * second random without a concatenation. Known-answer and node:crypto checks at load in
 * src/tls/tls12/prf.ts, which falls back to its HMAC-built PRF without this function.
 *
 *   P_hash(secret, seed) = HMAC(secret, A(1) || seed) || HMAC(secret, A(2) || seed) || ...
 *   A(0) = seed, A(i) = HMAC(secret, A(i-1)), here seed = label || seed || seed2.
 */
#define MAX_PRF_OUTPUT (1 << 16)

/* out = HMAC(key set by the last keyed init, pieces...) (h bytes), re-using the key set before. */
static int prf_hmac(EVP_MAC_CTX *ctx, const piece_t *pieces, int count, unsigned char *out, size_t h) {
  size_t n = 0;
  int ok = EVP_MAC_init(ctx, NULL, 0, NULL) == 1;
  for (int i = 0; ok && i < count; i++) ok = pieces[i].length == 0 || EVP_MAC_update(ctx, pieces[i].data, pieces[i].length) == 1;
  return ok && EVP_MAC_final(ctx, out, &n, h) == 1 && n == h;
}

/* Whether [a, a+an) and [b, b+bn) share a byte (empty ranges share none). */
static int overlaps(const unsigned char *a, size_t an, const unsigned char *b, size_t bn) {
  return an > 0 && bn > 0 && (uintptr_t)a < (uintptr_t)b + bn && (uintptr_t)b < (uintptr_t)a + an;
}

static napi_value tls12_prf(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 7, "tls12Prf(hash, secret, label, seed, seed2, length, out)");
  int32_t id, length;
  unsigned char *secret, *label, *seed, *seed2, *out;
  size_t secret_length, label_length, seed_length, seed2_length;
  EVP_MAC_CTX *ctx = hash_arg(env, argv[0], &id);
  if (ctx == NULL || !bytes(env, argv[1], &secret, &secret_length) || !bytes(env, argv[2], &label, &label_length) ||
      !bytes(env, argv[3], &seed, &seed_length) || !bytes(env, argv[4], &seed2, &seed2_length) ||
      !integer(env, argv[5], 1, MAX_PRF_OUTPUT, &length) || !output_arg(env, argv[6], (size_t)length, &out))
    return NULL;
  if (secret_length > MAX_KEY) return fail(env, "native handshake: PRF secret too long");
  /* Output blocks are written while the inputs are still read for the next ones. */
  if (overlaps(out, (size_t)length, secret, secret_length) || overlaps(out, (size_t)length, label, label_length) ||
      overlaps(out, (size_t)length, seed, seed_length) || overlaps(out, (size_t)length, seed2, seed2_length))
    return fail(env, "native handshake: PRF output overlaps an input");
  if (label_length > MAX_DATA || seed_length > MAX_DATA || seed2_length > MAX_DATA || label_length + seed_length + seed2_length > MAX_DATA)
    return fail(env, "native handshake: PRF label and seed too long");
  const size_t h = HASHES[id].length;
  unsigned char a[EVP_MAX_MD_SIZE], block[EVP_MAX_MD_SIZE];
  /* The key once; every HMAC below re-initialises with it. */
  int ok = EVP_MAC_init(ctx, secret_length > 0 ? secret : EMPTY_KEY, secret_length, NULL) == 1;
  const piece_t label_seed[] = {{label, label_length}, {seed, seed_length}, {seed2, seed2_length}};
  ok = ok && prf_hmac(ctx, label_seed, 3, a, h); /* A(1) */
  for (size_t done = 0; ok && done < (size_t)length;) {
    const piece_t pieces[] = {{a, h}, {label, label_length}, {seed, seed_length}, {seed2, seed2_length}};
    ok = prf_hmac(ctx, pieces, 4, block, h);
    size_t take = (size_t)length - done < h ? (size_t)length - done : h;
    if (ok) memcpy(out + done, block, take);
    done += take;
    if (ok && done < (size_t)length) {
      const piece_t previous = {a, h};
      ok = prf_hmac(ctx, &previous, 1, a, h); /* A(i+1): update reads A(i) before final writes it */
    }
  }
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(block, sizeof block);
  /* As hmac_pieces: the shared context keeps no copy of the secret between calls. */
  if (EVP_MAC_init(ctx, EMPTY_KEY, 0, NULL) != 1) ok = 0;
  if (!ok) OPENSSL_cleanse(out, (size_t)length);
  return ok ? NULL : fail(env, "native handshake: TLS 1.2 PRF failed");
}

// --- Handshake signatures (RFC 8446 §4.4.3, RFC 5246 §7.4.3) ---------------------------------
/*
 * signingKey(pkcs8) -> key: a private key for sign(), imported from its PKCS#8 DER (a KeyObject's
 * export). The DER is wiped (OPENSSL_cleanse) on every path, import or not: the caller's copy of
 * the key does not outlive the call. EC (P-256, P-384, P-521), RSA (rsaEncryption) and Ed25519
 * keys; anything else (RSASSA-PSS keys, ML-DSA, other curves) is refused and stays on node:crypto.
 * The key is freed, and OpenSSL cleanses its private half, when the JS object is collected.
 *
 * sign(key, scheme, data) -> signature (a new Buffer): `scheme` is the TLS SignatureScheme code
 * point; it must fit the key (ECDSA: the curve the scheme names). ECDSA signatures are DER, as on
 * the wire; RSA-PSS uses MGF1 with the scheme's hash and a salt of the hash's length.
 *
 * Why: node:crypto's sign sets up a digest-sign context per call (a context, a provider fetch,
 * the key's parameters: a P-256 signature costs 0.84x as much here, bench/results/handshake.md). Here each (key, scheme) keeps
 * one EVP_PKEY_CTX, initialised for signing once with its padding and hashes, and each call is
 * one hash and one EVP_PKEY_sign on it, as `openssl speed` signs (the context holds no per-call
 * state: the nonce, or PSS salt, is drawn inside each EVP_PKEY_sign). Ed25519 hashes inside the
 * signature (PureEdDSA), so it goes through EVP_DigestSign, initialised per call on a kept
 * EVP_MD_CTX. The signature comes back as a new Buffer rather than into a caller's buffer: its
 * callers keep it (a delegated credential's signature), so they would copy it out anyway.
 * Checked at first use against node:crypto by src/tls/native/signing.ts, which falls back to
 * node:crypto without these functions.
 */
#define ERR_SIGN "ERR_TLS_NATIVE_SIGN"
/* The longest signature: RSA-8192 (an ECDSA P-521 DER signature is at most 139 bytes). */
#define MAX_SIGNATURE 1024
/* The largest thing signed: a handshake message's content is below 2^24 bytes; the signed
 * content of a delegated credential (RFC 9345 §4) holds a certificate, also a message's content. */
#define MAX_SIGNED (1 << 24)

enum { SIGN_ECDSA = 1, SIGN_RSA_PSS, SIGN_RSA_PKCS1, SIGN_ED25519 };
enum { KEY_EC = 1, KEY_RSA, KEY_ED25519 };

typedef struct {
  uint16_t code; /* TLS SignatureScheme */
  int kind;      /* SIGN_* */
  int digest;    /* index into SIGN_DIGESTS; 0 for Ed25519 (it hashes by itself) */
  int curve;     /* ECDSA: index into SIGN_CURVES */
} scheme_t;

static const struct {
  const char *name;
  size_t length;
} SIGN_DIGESTS[4] = {{NULL, 0}, {"SHA256", 32}, {"SHA384", 48}, {"SHA512", 64}};
#define SIGN_DIGEST_COUNT 3

/* OpenSSL's group names of the curves TLS 1.3 binds an ECDSA scheme to. */
static const char *const SIGN_CURVES[4] = {NULL, "prime256v1", "secp384r1", "secp521r1"};
#define SIGN_CURVE_COUNT 3

static const scheme_t SCHEMES[] = {
    {0x0403, SIGN_ECDSA, 1, 1},     /* ecdsa_secp256r1_sha256 */
    {0x0503, SIGN_ECDSA, 2, 2},     /* ecdsa_secp384r1_sha384 */
    {0x0603, SIGN_ECDSA, 3, 3},     /* ecdsa_secp521r1_sha512 */
    {0x0804, SIGN_RSA_PSS, 1, 0},   /* rsa_pss_rsae_sha256 */
    {0x0805, SIGN_RSA_PSS, 2, 0},   /* rsa_pss_rsae_sha384 */
    {0x0806, SIGN_RSA_PSS, 3, 0},   /* rsa_pss_rsae_sha512 */
    {0x0401, SIGN_RSA_PKCS1, 1, 0}, /* rsa_pkcs1_sha256 (TLS 1.2 only) */
    {0x0501, SIGN_RSA_PKCS1, 2, 0}, /* rsa_pkcs1_sha384 (TLS 1.2 only) */
    {0x0601, SIGN_RSA_PKCS1, 3, 0}, /* rsa_pkcs1_sha512 (TLS 1.2 only) */
    {0x0807, SIGN_ED25519, 0, 0},   /* ed25519 */
};
#define SCHEME_COUNT (sizeof SCHEMES / sizeof SCHEMES[0])

static const napi_type_tag SIGNING_KEY_TAG = {0x83d1f6a25c0e4b97ULL, 0x2f7a90c4e15b6d38ULL};

typedef struct {
  EVP_PKEY *pkey;
  int type;                          /* KEY_* */
  int curve;                         /* EC: index into SIGN_CURVES */
  EVP_PKEY_CTX *ctx[SCHEME_COUNT];   /* per scheme, initialised for signing on first use */
  EVP_MD *md[SIGN_DIGEST_COUNT + 1]; /* fetched on first use */
  EVP_MD_CTX *md_ctx;                /* the hash of the signed content; Ed25519's DigestSign */
} signing_key_t;

static void signing_key_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  signing_key_t *k = data;
  if (k == NULL) return;
  for (size_t i = 0; i < SCHEME_COUNT; i++) EVP_PKEY_CTX_free(k->ctx[i]);
  for (int i = 0; i <= SIGN_DIGEST_COUNT; i++) EVP_MD_free(k->md[i]);
  EVP_MD_CTX_free(k->md_ctx);
  EVP_PKEY_free(k->pkey); /* OpenSSL clears the private key's memory */
  OPENSSL_free(k);
}

/* The key's type (KEY_*) and, for EC, its curve; 0 when sign() does not serve it. */
static int signing_key_type(EVP_PKEY *pkey, int *curve) {
  *curve = 0;
  if (EVP_PKEY_is_a(pkey, "ED25519")) return KEY_ED25519;
  /* "RSA" is rsaEncryption only: an RSASSA-PSS key ("RSA-PSS") carries restrictions of its own. */
  if (EVP_PKEY_is_a(pkey, "RSA")) return EVP_PKEY_get_size(pkey) > 0 && EVP_PKEY_get_size(pkey) <= MAX_SIGNATURE ? KEY_RSA : 0;
  if (!EVP_PKEY_is_a(pkey, "EC")) return 0;
  char name[64];
  size_t n = 0;
  if (EVP_PKEY_get_group_name(pkey, name, sizeof name, &n) != 1 || n >= sizeof name) return 0;
  for (int i = 1; i <= SIGN_CURVE_COUNT; i++) {
    if (strcmp(name, SIGN_CURVES[i]) == 0) {
      *curve = i;
      return KEY_EC;
    }
  }
  return 0;
}

static napi_value signing_key(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 1, "signingKey(pkcs8)");
  unsigned char *der;
  size_t der_length;
  if (!bytes(env, argv[0], &der, &der_length)) return NULL;
  EVP_PKEY *pkey = NULL;
  if (der_length > 0 && der_length <= MAX_DATA) {
    const unsigned char *p = der;
    pkey = d2i_AutoPrivateKey_ex(NULL, &p, (long)der_length, NULL, NULL);
    /* The whole buffer is the key: trailing bytes mean it is not what the caller thinks it is. */
    if (pkey != NULL && p != der + der_length) {
      EVP_PKEY_free(pkey);
      pkey = NULL;
    }
  }
  OPENSSL_cleanse(der, der_length);
  if (pkey == NULL) {
    /* The decoders' complaints would otherwise wait on this thread's queue for node:crypto. */
    ERR_clear_error();
    return fail_code(env, ERR_SIGN, "native handshake: signingKey needs a PKCS#8 private key (DER)");
  }
  int curve;
  int type = signing_key_type(pkey, &curve);
  if (type == 0) {
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return fail_code(env, ERR_SIGN, "native handshake: signingKey serves EC P-256/P-384/P-521, RSA (rsaEncryption, at most 8192 bits) and Ed25519 keys only");
  }
  signing_key_t *k = OPENSSL_zalloc(sizeof *k);
  if (k == NULL) {
    EVP_PKEY_free(pkey);
    return fail(env, "native handshake: out of memory");
  }
  k->pkey = pkey;
  k->type = type;
  k->curve = curve;
  k->md_ctx = EVP_MD_CTX_new();
  if (k->md_ctx == NULL) {
    signing_key_finalize(env, k, NULL);
    return fail(env, "native handshake: out of memory");
  }
  return wrap(env, k, signing_key_finalize, &SIGNING_KEY_TAG);
}

/* The digest `id` of key k, fetched on first use; NULL if OpenSSL has none. */
static EVP_MD *signing_md(signing_key_t *k, int id) {
  if (k->md[id] == NULL) k->md[id] = EVP_MD_fetch(NULL, SIGN_DIGESTS[id].name, NULL);
  return k->md[id];
}

/* The signing context of scheme SCHEMES[i] on key k, initialised (padding, hashes) on first use. */
static EVP_PKEY_CTX *signing_ctx(signing_key_t *k, size_t i) {
  if (k->ctx[i] != NULL) return k->ctx[i];
  const scheme_t *s = &SCHEMES[i];
  EVP_MD *md = signing_md(k, s->digest);
  EVP_PKEY_CTX *ctx = md != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL) : NULL;
  int ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_CTX_set_signature_md(ctx, md) == 1;
  if (ok && s->kind == SIGN_RSA_PSS)
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)SIGN_DIGESTS[s->digest].length) == 1;
  if (ok && s->kind == SIGN_RSA_PKCS1) ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
  if (!ok) {
    EVP_PKEY_CTX_free(ctx);
    return NULL;
  }
  k->ctx[i] = ctx;
  return ctx;
}

/* The index of scheme `code` in SCHEMES if it fits key k, else -1. */
static int scheme_for_key(const signing_key_t *k, int32_t code) {
  for (size_t i = 0; i < SCHEME_COUNT; i++) {
    const scheme_t *s = &SCHEMES[i];
    if (s->code != code) continue;
    int fits = s->kind == SIGN_ECDSA     ? k->type == KEY_EC && k->curve == s->curve
               : s->kind == SIGN_ED25519 ? k->type == KEY_ED25519
                                         : k->type == KEY_RSA;
    return fits ? (int)i : -1;
  }
  return -1;
}

static napi_value sign_(napi_env env, napi_callback_info info) {
  ARGUMENTS(env, info, argv, 3, "sign(key, scheme, data)");
  signing_key_t *k = unwrap(env, argv[0], &SIGNING_KEY_TAG, "native handshake: not a signing key");
  int32_t code;
  unsigned char *data;
  size_t data_length;
  if (k == NULL || !integer(env, argv[1], 0, 0xffff, &code) || !bytes(env, argv[2], &data, &data_length)) return NULL;
  int i = scheme_for_key(k, code);
  if (i < 0) return fail_code(env, ERR_SIGN, "native handshake: the signature scheme does not fit the key");
  if (data_length > MAX_SIGNED) return fail_code(env, ERR_SIGN, "native handshake: content to sign too long");
  const scheme_t *s = &SCHEMES[i];
  unsigned char signature[MAX_SIGNATURE];
  size_t n = sizeof signature;
  int ok;
  if (s->kind == SIGN_ED25519) {
    /* PureEdDSA: the whole message goes into the signature; the context is set up per call. */
    ok = EVP_MD_CTX_reset(k->md_ctx) == 1 && EVP_DigestSignInit_ex(k->md_ctx, NULL, NULL, NULL, NULL, k->pkey, NULL) == 1 &&
         EVP_DigestSign(k->md_ctx, signature, &n, data, data_length) == 1;
  } else {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    EVP_MD *md = signing_md(k, s->digest);
    EVP_PKEY_CTX *ctx = signing_ctx(k, (size_t)i);
    ok = md != NULL && ctx != NULL && EVP_DigestInit_ex2(k->md_ctx, md, NULL) == 1 && EVP_DigestUpdate(k->md_ctx, data, data_length) == 1 &&
         EVP_DigestFinal_ex(k->md_ctx, digest, &digest_length) == 1 && digest_length == SIGN_DIGESTS[s->digest].length &&
         EVP_PKEY_sign(ctx, signature, &n, digest, digest_length) == 1;
  }
  if (!ok || n == 0 || n > sizeof signature) {
    ERR_clear_error();
    return fail_code(env, ERR_SIGN, "native handshake: signing failed");
  }
  napi_value out;
  void *unused;
  if (napi_create_buffer_copy(env, n, signature, &unused, &out) != napi_ok) return fail(env, "native handshake: napi_create_buffer_copy failed");
  return out;
}
