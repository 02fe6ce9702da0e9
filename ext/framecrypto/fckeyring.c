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
  FcKdf kdf;
  guint8 *material;
  gsize material_len;
  guint8 key[FC_KEY_LEN];
  /* Contexts with the key schedule loaded, created on first use. */
  EVP_CIPHER_CTX *enc_ctx;
  EVP_CIPHER_CTX *dec_ctx;
  /* chain[i] = the material and key after i + 1 ratchets, computed on the
   * first decryption failure and kept until the key changes. */
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
  guint8 salt[sizeof (FC_DEFAULT_SALT) - 1];
  /* IV = 4 random bytes || 64-bit frame counter (random start): never
   * repeats under one key within a keyring. */
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
  }
  return "unknown";
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
  if (RAND_bytes (ring->iv_prefix, sizeof (ring->iv_prefix)) != 1
      || RAND_bytes ((guint8 *)&ring->iv_counter, sizeof (ring->iv_counter))
             != 1) {
    /* Uniqueness under one key still holds through the counter. */
    guint32 r = g_random_int ();
    memcpy (ring->iv_prefix, &r, sizeof (r));
    ring->iv_counter = ((guint64)g_random_int () << 32) | g_random_int ();
  }
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

void
fc_keyring_set_sif_trailer (FcKeyring *ring, GBytes *trailer)
{
  g_mutex_lock (&ring->lock);
  if (ring->sif_trailer)
    g_bytes_unref (ring->sif_trailer);
  ring->sif_trailer = NULL;
  if (trailer && g_bytes_get_size (trailer) > 0)
    ring->sif_trailer = g_bytes_ref (trailer);
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

gboolean
fc_keyring_ratchet (FcKeyring *ring, guint index)
{
  FcSlot *slot;
  FcRatchetStep step;
  gboolean ok = FALSE;

  g_mutex_lock (&ring->lock);
  if (index >= ring->size)
    goto out;
  slot = &ring->slots[index];
  if (!slot->present)
    goto out;
  if (slot->chain_len > 0) {
    step = slot->chain[0];
    ok = TRUE;
  } else {
    ok = ratchet_step (slot->kdf, slot->material, slot->material_len,
        ring->salt, sizeof (ring->salt), &step);
  }
  if (ok) {
    slot_install (ring, index, slot->kdf, step.material, sizeof (step.material),
        step.key);
    ring->failures[index] = 0;
    ring->invalid[index] = FALSE;
    ring->stats[index].ratchets++;
  }
  OPENSSL_cleanse (&step, sizeof (step));
out:
  g_mutex_unlock (&ring->lock);
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

FcResult
fc_keyring_encrypt (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, guint8 *out, gsize *out_size,
    guint *key_index)
{
  return fc_keyring_encrypt_with_iv (
      ring, codec, key_frame, in, in_size, NULL, out, out_size, key_index);
}

FcResult
fc_keyring_encrypt_with_iv (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, const guint8 *fixed_iv, guint8 *out,
    gsize *out_size, guint *key_index)
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
  ctx = slot_ctx (ring, slot, TRUE);
  if (ctx == NULL) {
    result = FC_RESULT_CRYPTO_ERROR;
    goto out;
  }

  fc_frame_layout (codec, key_frame, in, in_size, &layout);
  clear = MIN (layout.clear_bytes, in_size);
  payload_len = in_size - clear;

  if (fixed_iv) {
    memcpy (iv, fixed_iv, FC_IV_LEN);
  } else {
    memcpy (iv, ring->iv_prefix, 4);
    for (guint i = 0; i < 8; i++)
      iv[4 + i] = (guint8)(ring->iv_counter >> (56 - 8 * i));
    ring->iv_counter++;
  }

  if (layout.nalu) {
    gsize body_len = payload_len + FC_OVERHEAD;

    header_len = fc_annexb_normalize (in, clear, out);
    body = scratch_get (ring, body_len);
  } else {
    memcpy (out, in, clear);
    header_len = clear;
    body = out + header_len;
  }

  if (!gcm_encrypt (ctx, iv, out, header_len, in + clear, payload_len, body,
          body + payload_len)) {
    result = FC_RESULT_CRYPTO_ERROR;
    goto out;
  }
  memcpy (body + payload_len + FC_TAG_LEN, iv, FC_IV_LEN);
  body[payload_len + FC_TAG_LEN + FC_IV_LEN] = FC_IV_LEN;
  body[payload_len + FC_TAG_LEN + FC_IV_LEN + 1] = (guint8)kid;

  if (layout.nalu) {
    *out_size
        = header_len
          + fc_rbsp_escape (body, payload_len + FC_OVERHEAD, out + header_len);
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

/* Called with the lock held. */
static void
decryption_failure (FcKeyring *ring, guint kid)
{
  ring->stats[kid].failures++;
  if (ring->failure_tolerance < 0)
    return;
  ring->failures[kid]++;
  if (ring->failures[kid] > (guint)ring->failure_tolerance)
    ring->invalid[kid] = TRUE;
}

/* Makes sure slot->chain holds @window ratchet steps; lock held. */
static gboolean
slot_fill_chain (FcKeyring *ring, FcSlot *slot, guint window)
{
  if (slot->chain_len >= window)
    return TRUE;
  slot->chain = g_renew (FcRatchetStep, slot->chain, window);
  while (slot->chain_len < window) {
    const guint8 *prev = slot->chain_len == 0
                             ? slot->material
                             : slot->chain[slot->chain_len - 1].material;
    gsize prev_len = slot->chain_len == 0 ? slot->material_len : FC_CHAIN_LEN;

    if (!ratchet_step (slot->kdf, prev, prev_len, ring->salt,
            sizeof (ring->salt), &slot->chain[slot->chain_len]))
      return FALSE;
    slot->chain_len++;
  }
  return TRUE;
}

/* Tries the ratchet chain; on success the ratcheted key replaces the one at
 * @kid. Lock held. */
static gboolean
decrypt_ratcheted (FcKeyring *ring, guint kid, const guint8 *iv,
    const guint8 *aad, gsize aad_len, const guint8 *ct, gsize ct_len,
    const guint8 *tag, guint8 *out)
{
  FcSlot *slot = &ring->slots[kid];
  EVP_CIPHER_CTX *ctx;
  guint i, window = ring->ratchet_window;
  gboolean ok = FALSE;

  if (window == 0 || !slot_fill_chain (ring, slot, window))
    return FALSE;
  ctx = EVP_CIPHER_CTX_new ();
  if (ctx == NULL)
    return FALSE;
  for (i = 0; i < window && !ok; i++) {
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

FcResult
fc_keyring_decrypt (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, guint8 *out, gsize *out_size,
    guint *key_index)
{
  FcFrameLayout layout;
  FcSlot *slot;
  EVP_CIPHER_CTX *ctx;
  const guint8 *body, *iv, *tag;
  gsize body_len, ct_len, clear;
  guint kid;
  FcResult result;

  *out_size = 0;
  *key_index = 0;
  if (in_size == 0)
    return FC_RESULT_PASSTHROUGH;

  g_mutex_lock (&ring->lock);
  if (ring->sif_trailer) {
    gsize sif_len;
    const guint8 *sif = g_bytes_get_data (ring->sif_trailer, &sif_len);

    if (in_size >= sif_len
        && memcmp (in + in_size - sif_len, sif, sif_len) == 0) {
      *out_size = in_size - sif_len;
      result = FC_RESULT_PASSTHROUGH;
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
    decryption_failure (ring, kid);
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
    decryption_failure (ring, kid);
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
    decryption_failure (ring, kid);
    result = FC_RESULT_MALFORMED;
    goto out;
  }
  ct_len = body_len - FC_OVERHEAD;
  tag = body + ct_len;
  iv = tag + FC_TAG_LEN;

  ctx = slot_ctx (ring, slot, FALSE);
  if (ctx == NULL) {
    result = FC_RESULT_CRYPTO_ERROR;
    goto out;
  }
  memcpy (out, in, clear);
  if (!gcm_decrypt (ctx, iv, in, clear, body, ct_len, tag, out + clear)
      && !decrypt_ratcheted (
          ring, kid, iv, in, clear, body, ct_len, tag, out + clear)) {
    decryption_failure (ring, kid);
    result = FC_RESULT_DECRYPT_FAILED;
    goto out;
  }
  ring->failures[kid] = 0;
  ring->stats[kid].frames++;
  ring->stats[kid].bytes += clear + ct_len;
  *out_size = clear + ct_len;
  result = FC_RESULT_OK;

out:
  g_mutex_unlock (&ring->lock);
  return result;
}
