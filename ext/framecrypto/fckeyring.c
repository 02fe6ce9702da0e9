/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#include "fckeyring.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#define FC_HKDF_INFO_LEN 128
#define FC_CHAIN_LEN 32

typedef struct
{
  guint8 material[FC_CHAIN_LEN];
  guint8 key[FC_KEY_LEN];
} FcRatchetStep;

typedef struct
{
  gboolean present;
  /* Changes with every key installed here (never 0 for a present key): a
   * derivation done without the lock is installed only if it still matches. */
  guint64 generation;
  FcKdf kdf;
  guint8 *material;
  gsize material_len;
  guint8 key[FC_KEY_LEN];
  /* Contexts with the key schedule loaded, created on first use. */
  EVP_CIPHER_CTX *enc_ctx;
  EVP_CIPHER_CTX *dec_ctx;
  /* chain[i] = the material and key after i + 1 ratchets, derived (without
   * the lock) on the first decryption failure and kept until the key
   * changes. */
  FcRatchetStep *chain;
  guint chain_len;
} FcSlot;

struct _FcKeyring
{
  GMutex lock;
  EVP_CIPHER *cipher;
  FcSlot slots[FC_KEYRING_MAX];
  FcKeyStats stats[FC_KEYRING_MAX];
  guint failures[FC_KEYRING_MAX];
  gboolean invalid[FC_KEYRING_MAX];
  guint size;
  guint current;
  guint ratchet_window;
  gint failure_tolerance;
  GBytes *sif_trailer;
  /* livekit-client's SifGuard: server-injected frames in a row, when the
   * run started and when the last one came (0: no run), user frames since */
  guint sif_count;
  gint64 sif_started;
  gint64 sif_last;
  guint sif_user_frames;
  guint8 salt[sizeof (FC_DEFAULT_SALT) - 1];
  guint64 next_generation;
  /* IV = 4 random bytes || 64-bit frame counter (random start): never
   * repeats under one key within a keyring. Without a random seed nothing is
   * encrypted. */
  gboolean iv_seeded;
  guint8 iv_prefix[4];
  guint64 iv_counter;
  guint8 *scratch;
  gsize scratch_len;
};

const gchar *
fc_result_name (FcResult result)
{
  switch (result) {
    case FC_RESULT_OK:
      return "ok";
    case FC_RESULT_PASSTHROUGH:
      return "passthrough";
    case FC_RESULT_MISSING_KEY:
      return "missing-key";
    case FC_RESULT_INVALID_KEY:
      return "invalid-key";
    case FC_RESULT_MALFORMED:
      return "malformed";
    case FC_RESULT_DECRYPT_FAILED:
      return "decrypt-failed";
    case FC_RESULT_CRYPTO_ERROR:
      return "crypto-error";
    case FC_RESULT_BAD_SIF:
      return "bad-server-injected-frame";
    case FC_RESULT_NO_SPACE:
      return "no-space";
  }
  return "unknown";
}

/* Lock held (or not yet shared). */
static gboolean
seed_iv (FcKeyring *ring)
{
  ring->iv_seeded
      = RAND_bytes (ring->iv_prefix, sizeof (ring->iv_prefix)) == 1
        && RAND_bytes ((guint8 *)&ring->iv_counter, sizeof (ring->iv_counter))
               == 1;
  return ring->iv_seeded;
}

FcKeyring *
fc_keyring_new (void)
{
  FcKeyring *ring = g_new0 (FcKeyring, 1);

  g_mutex_init (&ring->lock);
  ring->cipher = EVP_CIPHER_fetch (NULL, "AES-128-GCM", NULL);
  ring->size = FC_KEYRING_MAX;
  ring->ratchet_window = 10;
  ring->failure_tolerance = 10;
  memcpy (ring->salt, FC_DEFAULT_SALT, sizeof (ring->salt));
  /* On failure, encryption retries and refuses to run without a seed. */
  seed_iv (ring);
  return ring;
}

static void
slot_clear (FcSlot *slot)
{
  if (slot->material) {
    OPENSSL_cleanse (slot->material, slot->material_len);
    g_free (slot->material);
  }
  if (slot->chain) {
    OPENSSL_cleanse (slot->chain, sizeof (FcRatchetStep) * slot->chain_len);
    g_free (slot->chain);
  }
  EVP_CIPHER_CTX_free (slot->enc_ctx);
  EVP_CIPHER_CTX_free (slot->dec_ctx);
  OPENSSL_cleanse (slot, sizeof (*slot));
}

void
fc_keyring_free (FcKeyring *ring)
{
  guint i;

  if (ring == NULL)
    return;
  for (i = 0; i < FC_KEYRING_MAX; i++)
    slot_clear (&ring->slots[i]);
  if (ring->scratch) {
    OPENSSL_cleanse (ring->scratch, ring->scratch_len);
    g_free (ring->scratch);
  }
  if (ring->sif_trailer)
    g_bytes_unref (ring->sif_trailer);
  EVP_CIPHER_free (ring->cipher);
  g_mutex_clear (&ring->lock);
  g_free (ring);
}

gboolean
fc_derive (FcKdf kdf, const guint8 *material, gsize material_len,
    const guint8 *salt, gsize salt_len, guint8 *out, gsize out_len)
{
  if (material_len == 0 || material_len > INT_MAX)
    return FALSE;

  if (kdf == FC_KDF_PBKDF2) {
    return PKCS5_PBKDF2_HMAC ((const char *)material, (int)material_len, salt,
               (int)salt_len, FC_PBKDF2_ITERATIONS, EVP_sha256 (), (int)out_len,
               out)
           == 1;
  } else {
    static const guint8 info[FC_HKDF_INFO_LEN] = { 0 };
    EVP_KDF *hkdf;
    EVP_KDF_CTX *ctx;
    OSSL_PARAM params[5];
    gboolean ok;

    hkdf = EVP_KDF_fetch (NULL, OSSL_KDF_NAME_HKDF, NULL);
    if (hkdf == NULL)
      return FALSE;
    ctx = EVP_KDF_CTX_new (hkdf);
    EVP_KDF_free (hkdf);
    if (ctx == NULL)
      return FALSE;
    params[0] = OSSL_PARAM_construct_utf8_string (
        OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string (
        OSSL_KDF_PARAM_KEY, (void *)material, material_len);
    params[2] = OSSL_PARAM_construct_octet_string (
        OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    params[3] = OSSL_PARAM_construct_octet_string (
        OSSL_KDF_PARAM_INFO, (void *)info, sizeof (info));
    params[4] = OSSL_PARAM_construct_end ();
    ok = EVP_KDF_derive (ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free (ctx);
    return ok;
  }
}

void
fc_keyring_set_size (FcKeyring *ring, guint size)
{
  guint i;

  size = CLAMP (size, 1, FC_KEYRING_MAX);
  g_mutex_lock (&ring->lock);
  for (i = size; i < FC_KEYRING_MAX; i++)
    slot_clear (&ring->slots[i]);
  ring->size = size;
  if (ring->current >= size)
    ring->current %= size;
  g_mutex_unlock (&ring->lock);
}

guint
fc_keyring_get_size (FcKeyring *ring)
{
  guint size;

  g_mutex_lock (&ring->lock);
  size = ring->size;
  g_mutex_unlock (&ring->lock);
  return size;
}

void
fc_keyring_set_ratchet_window (FcKeyring *ring, guint window)
{
  g_mutex_lock (&ring->lock);
  ring->ratchet_window = MIN (window, FC_RATCHET_WINDOW_MAX);
  g_mutex_unlock (&ring->lock);
}

guint
fc_keyring_get_ratchet_window (FcKeyring *ring)
{
  guint window;

  g_mutex_lock (&ring->lock);
  window = ring->ratchet_window;
  g_mutex_unlock (&ring->lock);
  return window;
}

void
fc_keyring_set_failure_tolerance (FcKeyring *ring, gint tolerance)
{
  g_mutex_lock (&ring->lock);
  ring->failure_tolerance = tolerance;
  g_mutex_unlock (&ring->lock);
}

gint
fc_keyring_get_failure_tolerance (FcKeyring *ring)
{
  gint tolerance;

  g_mutex_lock (&ring->lock);
  tolerance = ring->failure_tolerance;
  g_mutex_unlock (&ring->lock);
  return tolerance;
}

static void sif_reset (FcKeyring *ring);

void
fc_keyring_set_sif_trailer (FcKeyring *ring, GBytes *trailer)
{
  g_mutex_lock (&ring->lock);
  if (ring->sif_trailer)
    g_bytes_unref (ring->sif_trailer);
  ring->sif_trailer = NULL;
  if (trailer && g_bytes_get_size (trailer) > 0)
    ring->sif_trailer = g_bytes_ref (trailer);
  sif_reset (ring);
  g_mutex_unlock (&ring->lock);
}

/* Installs material and key at @index; called with the lock held. */
static void
slot_install (FcKeyring *ring, guint index, FcKdf kdf, const guint8 *material,
    gsize material_len, const guint8 *key)
{
  FcSlot *slot = &ring->slots[index];

  slot_clear (slot);
  slot->present = TRUE;
  slot->generation = ++ring->next_generation;
  slot->kdf = kdf;
  slot->material = g_memdup2 (material, material_len);
  slot->material_len = material_len;
  memcpy (slot->key, key, FC_KEY_LEN);
}

gboolean
fc_keyring_set_key (FcKeyring *ring, guint index, FcKdf kdf,
    const guint8 *material, gsize material_len, gboolean make_current)
{
  guint8 key[FC_KEY_LEN];

  /* Derive outside the lock: PBKDF2 takes tens of milliseconds. */
  if (!fc_derive (kdf, material, material_len, ring->salt, sizeof (ring->salt),
          key, sizeof (key)))
    return FALSE;

  g_mutex_lock (&ring->lock);
  index %= ring->size;
  slot_install (ring, index, kdf, material, material_len, key);
  ring->failures[index] = 0;
  ring->invalid[index] = FALSE;
  if (make_current)
    ring->current = index;
  g_mutex_unlock (&ring->lock);
  OPENSSL_cleanse (key, sizeof (key));
  return TRUE;
}

static gboolean
ratchet_step (FcKdf kdf, const guint8 *material, gsize material_len,
    const guint8 *salt, gsize salt_len, FcRatchetStep *step)
{
  return fc_derive (kdf, material, material_len, salt, salt_len, step->material,
             sizeof (step->material))
         && fc_derive (kdf, step->material, sizeof (step->material), salt,
             salt_len, step->key, sizeof (step->key));
}

/* Installs a ratchet step at @index; lock held. */
static void
install_ratchet_step (FcKeyring *ring, guint index, const FcRatchetStep *step)
{
  FcSlot *slot = &ring->slots[index];

  slot_install (ring, index, slot->kdf, step->material, sizeof (step->material),
      step->key);
  ring->failures[index] = 0;
  ring->invalid[index] = FALSE;
  ring->stats[index].ratchets++;
}

gboolean
fc_keyring_ratchet (FcKeyring *ring, guint index)
{
  FcRatchetStep step;
  gboolean ok = FALSE;
  guint attempt;

  /* A set-key while deriving makes the derivation stale: start over. */
  for (attempt = 0; attempt < 4 && !ok; attempt++) {
    FcSlot *slot;
    guint8 *material;
    gsize material_len;
    guint64 generation;
    FcKdf kdf;
    gboolean derived;

    g_mutex_lock (&ring->lock);
    if (index >= ring->size || !ring->slots[index].present) {
      g_mutex_unlock (&ring->lock);
      break;
    }
    slot = &ring->slots[index];
    if (slot->chain_len > 0) {
      step = slot->chain[0];
      install_ratchet_step (ring, index, &step);
      g_mutex_unlock (&ring->lock);
      ok = TRUE;
      break;
    }
    material = g_memdup2 (slot->material, slot->material_len);
    material_len = slot->material_len;
    generation = slot->generation;
    kdf = slot->kdf;
    g_mutex_unlock (&ring->lock);

    /* PBKDF2 takes tens of milliseconds: never under the lock */
    derived = ratchet_step (
        kdf, material, material_len, ring->salt, sizeof (ring->salt), &step);
    OPENSSL_cleanse (material, material_len);
    g_free (material);
    if (!derived)
      break;

    g_mutex_lock (&ring->lock);
    slot = &ring->slots[index];
    if (index < ring->size && slot->present && slot->generation == generation) {
      install_ratchet_step (ring, index, &step);
      ok = TRUE;
    }
    g_mutex_unlock (&ring->lock);
  }
  OPENSSL_cleanse (&step, sizeof (step));
  return ok;
}

gboolean
fc_keyring_has_key (FcKeyring *ring, guint index)
{
  gboolean present;

  g_mutex_lock (&ring->lock);
  present = index < ring->size && ring->slots[index].present;
  g_mutex_unlock (&ring->lock);
  return present;
}

void
fc_keyring_set_current_index (FcKeyring *ring, guint index)
{
  g_mutex_lock (&ring->lock);
  ring->current = index % ring->size;
  g_mutex_unlock (&ring->lock);
}

guint
fc_keyring_get_current_index (FcKeyring *ring)
{
  guint index;

  g_mutex_lock (&ring->lock);
  index = ring->current;
  g_mutex_unlock (&ring->lock);
  return index;
}

gboolean
fc_keyring_is_invalid (FcKeyring *ring, guint index)
{
  gboolean invalid;

  g_mutex_lock (&ring->lock);
  invalid = index < FC_KEYRING_MAX && ring->invalid[index];
  g_mutex_unlock (&ring->lock);
  return invalid;
}

void
fc_keyring_get_stats (FcKeyring *ring, guint index, FcKeyStats *stats)
{
  g_mutex_lock (&ring->lock);
  if (index < FC_KEYRING_MAX)
    *stats = ring->stats[index];
  else
    memset (stats, 0, sizeof (*stats));
  g_mutex_unlock (&ring->lock);
}

gsize
fc_encrypt_max_size (FcCodec codec, gsize in_size)
{
  if (codec == FC_CODEC_H264 || codec == FC_CODEC_H265) {
    /* normalised header (+1/3) and RBSP-escaped body (+1/2) */
    return in_size + in_size / 3 + 2
           + FC_RBSP_ESCAPED_MAX (in_size + FC_OVERHEAD);
  }
  return in_size + FC_OVERHEAD;
}

static guint8 *
scratch_get (FcKeyring *ring, gsize size)
{
  if (ring->scratch_len < size) {
    if (ring->scratch) {
      OPENSSL_cleanse (ring->scratch, ring->scratch_len);
      g_free (ring->scratch);
    }
    ring->scratch_len = MAX (size, 4096);
    ring->scratch = g_malloc (ring->scratch_len);
  }
  return ring->scratch;
}

static EVP_CIPHER_CTX *
slot_ctx (FcKeyring *ring, FcSlot *slot, gboolean encrypt)
{
  EVP_CIPHER_CTX **ctx = encrypt ? &slot->enc_ctx : &slot->dec_ctx;

  if (*ctx == NULL) {
    *ctx = EVP_CIPHER_CTX_new ();
    if (*ctx == NULL)
      return NULL;
    if (EVP_CipherInit_ex (
            *ctx, ring->cipher, NULL, slot->key, NULL, encrypt ? 1 : 0)
        != 1) {
      EVP_CIPHER_CTX_free (*ctx);
      *ctx = NULL;
    }
  }
  return *ctx;
}

static gboolean
gcm_encrypt (EVP_CIPHER_CTX *ctx, const guint8 *iv, const guint8 *aad,
    gsize aad_len, const guint8 *in, gsize len, guint8 *out, guint8 *tag)
{
  int n;

  if (aad_len > INT_MAX || len > INT_MAX)
    return FALSE;
  if (EVP_EncryptInit_ex (ctx, NULL, NULL, NULL, iv) != 1)
    return FALSE;
  if (aad_len > 0 && EVP_EncryptUpdate (ctx, NULL, &n, aad, (int)aad_len) != 1)
    return FALSE;
  if (len > 0 && EVP_EncryptUpdate (ctx, out, &n, in, (int)len) != 1)
    return FALSE;
  if (EVP_EncryptFinal_ex (ctx, out + len, &n) != 1)
    return FALSE;
  return EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_GET_TAG, FC_TAG_LEN, tag) == 1;
}

static gboolean
gcm_decrypt (EVP_CIPHER_CTX *ctx, const guint8 *iv, const guint8 *aad,
    gsize aad_len, const guint8 *in, gsize len, const guint8 *tag, guint8 *out)
{
  int n;

  if (aad_len > INT_MAX || len > INT_MAX)
    return FALSE;
  if (EVP_DecryptInit_ex (ctx, NULL, NULL, NULL, iv) != 1)
    return FALSE;
  if (aad_len > 0 && EVP_DecryptUpdate (ctx, NULL, &n, aad, (int)aad_len) != 1)
    return FALSE;
  if (len > 0 && EVP_DecryptUpdate (ctx, out, &n, in, (int)len) != 1)
    return FALSE;
  if (EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_TAG, FC_TAG_LEN, (void *)tag)
      != 1)
    return FALSE;
  return EVP_DecryptFinal_ex (ctx, out + len, &n) == 1;
}

gsize
fc_encrypt_size_hint (FcCodec codec, gsize in_size)
{
  if (codec == FC_CODEC_H264 || codec == FC_CODEC_H265) {
    /* a few 3-byte start codes in the header; ciphertext needs an RBSP
     * escape about once in 4 MB */
    return in_size + FC_OVERHEAD + 32 + in_size / 4096;
  }
  return in_size + FC_OVERHEAD;
}

static FcResult
encrypt_frame (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, const guint8 *fixed_iv, guint8 *out,
    gsize out_capacity, gsize *out_size, guint *key_index)
{
  FcFrameLayout layout;
  FcSlot *slot;
  EVP_CIPHER_CTX *ctx;
  guint8 iv[FC_IV_LEN];
  gsize clear, header_len, payload_len;
  guint8 *body;
  guint kid;
  FcResult result = FC_RESULT_OK;

  *out_size = 0;
  g_mutex_lock (&ring->lock);
  kid = ring->current;
  *key_index = kid;
  if (in_size == 0) {
    result = FC_RESULT_PASSTHROUGH;
    goto out;
  }
  slot = &ring->slots[kid];
  if (!slot->present) {
    ring->stats[kid].failures++;
    result = FC_RESULT_MISSING_KEY;
    goto out;
  }
  if (fixed_iv == NULL && !ring->iv_seeded && !seed_iv (ring)) {
    /* never fall back to a weaker IV source */
    ring->stats[kid].failures++;
    result = FC_RESULT_CRYPTO_ERROR;
    goto out;
  }
  ctx = slot_ctx (ring, slot, TRUE);
  if (ctx == NULL) {
    ring->stats[kid].failures++;
    result = FC_RESULT_CRYPTO_ERROR;
    goto out;
  }

  fc_frame_layout (codec, key_frame, in, in_size, &layout);
  if (layout.nalu && layout.clear_bytes > in_size) {
    /* the frame ends in a slice NAL unit header: receivers would take a
     * byte of the tag as clear (livekit-client refuses such frames too) */
    ring->stats[kid].failures++;
    result = FC_RESULT_MALFORMED;
    goto out;
  }
  clear = MIN (layout.clear_bytes, in_size);
  payload_len = in_size - clear;
  header_len = layout.nalu ? fc_annexb_normalized_size (in, clear) : clear;
  if (out_capacity < header_len + payload_len + FC_OVERHEAD) {
    *out_size = layout.nalu ? fc_encrypt_max_size (codec, in_size)
                            : header_len + payload_len + FC_OVERHEAD;
    result = FC_RESULT_NO_SPACE;
    goto out;
  }

  if (fixed_iv) {
    memcpy (iv, fixed_iv, FC_IV_LEN);
  } else {
    memcpy (iv, ring->iv_prefix, 4);
    for (guint i = 0; i < 8; i++)
      iv[4 + i] = (guint8)(ring->iv_counter >> (56 - 8 * i));
    ring->iv_counter++;
  }

  if (layout.nalu) {
    fc_annexb_normalize (in, clear, out);
    body = scratch_get (ring, payload_len + FC_OVERHEAD);
  } else {
    memcpy (out, in, clear);
    body = out + header_len;
  }

  if (!gcm_encrypt (ctx, iv, out, header_len, in + clear, payload_len, body,
          body + payload_len)) {
    ring->stats[kid].failures++;
    result = FC_RESULT_CRYPTO_ERROR;
    goto out;
  }
  memcpy (body + payload_len + FC_TAG_LEN, iv, FC_IV_LEN);
  body[payload_len + FC_TAG_LEN + FC_IV_LEN] = FC_IV_LEN;
  body[payload_len + FC_TAG_LEN + FC_IV_LEN + 1] = (guint8)kid;

  if (layout.nalu) {
    gsize escaped = fc_rbsp_escape_bounded (body, payload_len + FC_OVERHEAD,
        out + header_len, out_capacity - header_len);

    if (escaped == G_MAXSIZE) {
      /* the IV is spent: the retry encrypts under a new one */
      *out_size = fc_encrypt_max_size (codec, in_size);
      result = FC_RESULT_NO_SPACE;
      goto out;
    }
    *out_size = header_len + escaped;
  } else {
    *out_size = header_len + payload_len + FC_OVERHEAD;
  }
  ring->stats[kid].frames++;
  ring->stats[kid].bytes += in_size;

out:
  g_mutex_unlock (&ring->lock);
  OPENSSL_cleanse (iv, sizeof (iv));
  return result;
}

FcResult
fc_keyring_encrypt (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, guint8 *out, gsize *out_size,
    guint *key_index)
{
  return encrypt_frame (ring, codec, key_frame, in, in_size, NULL, out,
      fc_encrypt_max_size (codec, in_size), out_size, key_index);
}

FcResult
fc_keyring_encrypt_into (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, guint8 *out, gsize out_capacity,
    gsize *out_size, guint *key_index)
{
  return encrypt_frame (ring, codec, key_frame, in, in_size, NULL, out,
      out_capacity, out_size, key_index);
}

FcResult
fc_keyring_encrypt_with_iv (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, const guint8 *fixed_iv, guint8 *out,
    gsize *out_size, guint *key_index)
{
  return encrypt_frame (ring, codec, key_frame, in, in_size, fixed_iv, out,
      fc_encrypt_max_size (codec, in_size), out_size, key_index);
}

/* Called with the lock held. @count: toward failure-tolerance. */
static void
decryption_failure (FcKeyring *ring, guint kid, gboolean count)
{
  ring->stats[kid].failures++;
  if (!count || ring->failure_tolerance < 0)
    return;
  ring->failures[kid]++;
  if (ring->failures[kid] > (guint)ring->failure_tolerance)
    ring->invalid[kid] = TRUE;
}

/* @window ratchet steps from @material (no lock needed); NULL on error. */
static FcRatchetStep *
derive_chain (FcKdf kdf, const guint8 *material, gsize material_len,
    const guint8 *salt, gsize salt_len, guint window)
{
  FcRatchetStep *chain = g_new (FcRatchetStep, window);
  guint i;

  for (i = 0; i < window; i++) {
    const guint8 *prev = i == 0 ? material : chain[i - 1].material;
    gsize prev_len = i == 0 ? material_len : FC_CHAIN_LEN;

    if (!ratchet_step (kdf, prev, prev_len, salt, salt_len, &chain[i])) {
      OPENSSL_cleanse (chain, sizeof (FcRatchetStep) * window);
      g_free (chain);
      return NULL;
    }
  }
  return chain;
}

/* Gives the slot at @kid a ratchet chain of @window steps. Releases the lock
 * while deriving (the keyring may change meanwhile: the chain is only
 * installed if the key is still the one it was derived from). */
static void
slot_derive_chain (FcKeyring *ring, guint kid, guint window)
{
  FcSlot *slot = &ring->slots[kid];
  guint64 generation = slot->generation;
  FcKdf kdf = slot->kdf;
  gsize material_len = slot->material_len;
  guint8 *material = g_memdup2 (slot->material, material_len);
  FcRatchetStep *chain;

  g_mutex_unlock (&ring->lock);
  chain = derive_chain (
      kdf, material, material_len, ring->salt, sizeof (ring->salt), window);
  OPENSSL_cleanse (material, material_len);
  g_free (material);
  g_mutex_lock (&ring->lock);

  slot = &ring->slots[kid];
  if (chain && kid < ring->size && slot->present
      && slot->generation == generation && slot->chain_len < window) {
    if (slot->chain) {
      OPENSSL_cleanse (slot->chain, sizeof (FcRatchetStep) * slot->chain_len);
      g_free (slot->chain);
    }
    slot->chain = chain;
    slot->chain_len = window;
    chain = NULL;
  }
  if (chain) {
    OPENSSL_cleanse (chain, sizeof (FcRatchetStep) * window);
    g_free (chain);
  }
}

/* Tries the ratchet chain (as far as it is derived, at most the window); on
 * success the ratcheted key replaces the one at @kid. Lock held. */
static gboolean
decrypt_ratcheted (FcKeyring *ring, guint kid, const guint8 *iv,
    const guint8 *aad, gsize aad_len, const guint8 *ct, gsize ct_len,
    const guint8 *tag, guint8 *out)
{
  FcSlot *slot = &ring->slots[kid];
  EVP_CIPHER_CTX *ctx;
  guint i, steps = MIN (ring->ratchet_window, slot->chain_len);
  gboolean ok = FALSE;

  if (steps == 0)
    return FALSE;
  ctx = EVP_CIPHER_CTX_new ();
  if (ctx == NULL)
    return FALSE;
  for (i = 0; i < steps && !ok; i++) {
    if (EVP_DecryptInit_ex (ctx, ring->cipher, NULL, slot->chain[i].key, NULL)
        != 1)
      break;
    ok = gcm_decrypt (ctx, iv, aad, aad_len, ct, ct_len, tag, out);
  }
  EVP_CIPHER_CTX_free (ctx);
  if (ok) {
    FcRatchetStep step = slot->chain[i - 1];

    slot_install (
        ring, kid, slot->kdf, step.material, sizeof (step.material), step.key);
    OPENSSL_cleanse (&step, sizeof (step));
    ring->stats[kid].ratchets += i;
    ring->current = kid;
  }
  return ok;
}

/* Known blank frames livekit-server injects, by SHA-256 (the hashes of
 * livekit-client's sifPayload.ts; the same frames libwebrtc accepts). */
typedef struct
{
  FcCodec codec;
  guint8 sha256[32];
} FcSifHash;

static const FcSifHash sif_hashes[] = {
  /* VP8 8x8 key frame */
  { FC_CODEC_VP8,
      { 0xef, 0x01, 0x61, 0x65, 0x3d, 0x8b, 0x2b, 0x23, 0xaa, 0xd4, 0x66, 0x24,
          0xb4, 0x20, 0xaf, 0x1d, 0x03, 0xce, 0x48, 0x95, 0x0e, 0x9f, 0xc8,
          0x57, 0x18, 0x02, 0x8f, 0x91, 0xb5, 0x0f, 0x92, 0x19 } },
  /* H.264 2x2 key frame: SPS, PPS and IDR NAL units */
  { FC_CODEC_H264,
      { 0xf0, 0xa0, 0xe0, 0x96, 0x47, 0xd8, 0x91, 0xd6, 0xd5, 0x0a, 0xa8, 0x98,
          0xbc, 0xe7, 0x10, 0x80, 0x90, 0x37, 0x5d, 0x0d, 0x55, 0xe5, 0x0a,
          0x2b, 0xb2, 0x11, 0x47, 0xaf, 0xee, 0x55, 0x8e, 0x44 } },
  { FC_CODEC_H264,
      { 0x61, 0xd9, 0x66, 0x5e, 0xed, 0x71, 0xb6, 0xd4, 0x24, 0xae, 0x95, 0x39,
          0x33, 0x0a, 0x3b, 0xdd, 0x5c, 0xb3, 0x86, 0xd4, 0xd7, 0x81, 0xc8,
          0x08, 0x21, 0x9a, 0x6e, 0x36, 0x75, 0x04, 0x93, 0xa7 } },
  { FC_CODEC_H264,
      { 0xfa, 0xff, 0xc2, 0x6b, 0x68, 0xa2, 0xfc, 0x09, 0x09, 0x6f, 0xa2, 0x0f,
          0x33, 0x51, 0xe7, 0x06, 0x39, 0x8b, 0x6f, 0x83, 0x8a, 0x75, 0x00,
          0xc8, 0x06, 0x34, 0x72, 0xc2, 0xe4, 0x76, 0xe9, 0x0d } },
  /* Opus 80-byte silence frame */
  { FC_CODEC_AUDIO,
      { 0xaa, 0xd8, 0xd3, 0x1f, 0xc5, 0x6b, 0x28, 0x02, 0xca, 0x50, 0x0e, 0x58,
          0xc2, 0xfb, 0x9d, 0x0b, 0x29, 0xad, 0x71, 0xbb, 0x7c, 0xb5, 0x2c,
          0xd6, 0x53, 0x02, 0x51, 0xea, 0xde, 0x18, 0x89, 0x88 } },
};

static gboolean
sif_hash_known (FcCodec codec, const guint8 *data, gsize size)
{
  guint8 md[32];
  unsigned int md_len = 0;
  guint i;

  if (size == 0
      || EVP_Digest (data, size, md, &md_len, EVP_sha256 (), NULL) != 1
      || md_len != sizeof (md))
    return FALSE;
  for (i = 0; i < G_N_ELEMENTS (sif_hashes); i++) {
    if (sif_hashes[i].codec == codec
        && CRYPTO_memcmp (md, sif_hashes[i].sha256, sizeof (md)) == 0)
      return TRUE;
  }
  return FALSE;
}

gboolean
fc_sif_payload_known (FcCodec codec, const guint8 *data, gsize size)
{
  gsize pos = 0;
  FcNal nal;

  if (sif_hash_known (codec, data, size))
    return TRUE;
  if (codec != FC_CODEC_H264 || !fc_annexb_next_nal (data, size, &pos, &nal)
      || nal.start_code != 0)
    return FALSE;
  /* an Annex-B access unit made of known NAL units only */
  do {
    if (!sif_hash_known (codec, data + nal.offset, nal.size))
      return FALSE;
  } while (fc_annexb_next_nal (data, size, &pos, &nal));
  return TRUE;
}

/* SifGuard (lock held): may another server-injected frame pass now? */
static gboolean
sif_allowed (FcKeyring *ring, gint64 now)
{
  return ring->sif_count < FC_SIF_MAX_COUNT
         && (ring->sif_started == 0
             || now - ring->sif_started < FC_SIF_MAX_DURATION_US);
}

static void
sif_reset (FcKeyring *ring)
{
  ring->sif_count = 0;
  ring->sif_started = 0;
  ring->sif_last = 0;
  ring->sif_user_frames = 0;
}

static void
sif_record (FcKeyring *ring, gint64 now)
{
  ring->sif_count++;
  if (ring->sif_started == 0)
    ring->sif_started = now;
  ring->sif_last = now;
}

static void
sif_record_user_frame (FcKeyring *ring)
{
  if (ring->sif_started == 0)
    return;
  ring->sif_user_frames++;
  if (ring->sif_user_frames > ring->sif_count
      || g_get_monotonic_time () - ring->sif_last > FC_SIF_MAX_DURATION_US)
    sif_reset (ring);
}

FcResult
fc_keyring_decrypt (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, guint8 *out, gsize *out_size,
    guint *key_index)
{
  return fc_keyring_decrypt_full (ring, codec,
      key_frame ? FC_DECRYPT_KEY_FRAME : 0, in, in_size, out, out_size,
      key_index);
}

FcResult
fc_keyring_decrypt_full (FcKeyring *ring, FcCodec codec, FcDecryptFlags flags,
    const guint8 *in, gsize in_size, guint8 *out, gsize *out_size,
    guint *key_index)
{
  gboolean key_frame = (flags & FC_DECRYPT_KEY_FRAME) != 0;
  gboolean count = (flags & FC_DECRYPT_DISCONT) == 0;
  FcFrameLayout layout;
  FcSlot *slot;
  EVP_CIPHER_CTX *ctx;
  const guint8 *body, *iv, *tag;
  gsize body_len, ct_len = 0, clear = 0;
  guint kid = 0, attempt;
  FcResult result;

  *out_size = 0;
  *key_index = 0;
  if (in_size == 0)
    return FC_RESULT_PASSTHROUGH;

  g_mutex_lock (&ring->lock);
  for (attempt = 0;; attempt++) {
    if (ring->sif_trailer) {
      gsize sif_len;
      const guint8 *sif = g_bytes_get_data (ring->sif_trailer, &sif_len);

      if (in_size >= sif_len
          && memcmp (in + in_size - sif_len, sif, sif_len) == 0) {
        gint64 now = g_get_monotonic_time ();

        /* only the blank frames the server injects pass unauthenticated */
        if (fc_sif_payload_known (codec, in, in_size - sif_len)
            && sif_allowed (ring, now)) {
          sif_record (ring, now);
          *out_size = in_size - sif_len;
          result = FC_RESULT_PASSTHROUGH;
        } else {
          result = FC_RESULT_BAD_SIF;
        }
        goto out;
      }
    }

    kid = in[in_size - 1];
    *key_index = kid;
    if (ring->invalid[kid]) {
      ring->stats[kid].failures++;
      result = FC_RESULT_INVALID_KEY;
      goto out;
    }
    slot = &ring->slots[kid];
    if (kid >= ring->size || !slot->present) {
      decryption_failure (ring, kid, count);
      result = FC_RESULT_MISSING_KEY;
      goto out;
    }

    fc_frame_layout (codec, key_frame, in, in_size, &layout);
    clear = layout.clear_bytes;
    /* The encryptor keeps a frame shorter than its clear bytes all clear; do
     * the same here. */
    if (!layout.nalu && in_size >= FC_OVERHEAD)
      clear = MIN (clear, in_size - FC_OVERHEAD);
    if (clear > in_size) {
      /* truncated (packet loss): not the key's fault */
      decryption_failure (ring, kid, FALSE);
      result = FC_RESULT_MALFORMED;
      goto out;
    }
    body = in + clear;
    body_len = in_size - clear;
    if (layout.nalu && fc_rbsp_needs_unescape (body, body_len)) {
      guint8 *unescaped = scratch_get (ring, body_len);

      body_len = fc_rbsp_unescape (body, body_len, unescaped);
      body = unescaped;
    }
    if (body_len < FC_OVERHEAD || body[body_len - 2] != FC_IV_LEN) {
      decryption_failure (ring, kid, FALSE);
      result = FC_RESULT_MALFORMED;
      goto out;
    }
    ct_len = body_len - FC_OVERHEAD;
    tag = body + ct_len;
    iv = tag + FC_TAG_LEN;

    ctx = slot_ctx (ring, slot, FALSE);
    if (ctx == NULL) {
      ring->stats[kid].failures++;
      result = FC_RESULT_CRYPTO_ERROR;
      goto out;
    }
    memcpy (out, in, clear);
    if (gcm_decrypt (ctx, iv, in, clear, body, ct_len, tag, out + clear))
      break;
    if (attempt == 0 && ring->ratchet_window > slot->chain_len) {
      /* derive the chain without the lock, then start over: the key, the
       * scratch buffer and the settings may have changed meanwhile */
      slot_derive_chain (ring, kid, ring->ratchet_window);
      continue;
    }
    if (decrypt_ratcheted (
            ring, kid, iv, in, clear, body, ct_len, tag, out + clear))
      break;
    decryption_failure (ring, kid, count);
    result = FC_RESULT_DECRYPT_FAILED;
    goto out;
  }

  ring->failures[kid] = 0;
  ring->stats[kid].frames++;
  ring->stats[kid].bytes += clear + ct_len;
  sif_record_user_frame (ring);
  *out_size = clear + ct_len;
  result = FC_RESULT_OK;

out:
  g_mutex_unlock (&ring->lock);
  return result;
}
