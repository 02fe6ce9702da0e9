/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* A LiveKit E2EE keyring and the frame cryptor over it (OpenSSL libcrypto 3):
 * up to 256 key indexes, each holding key material and the AES-128-GCM key
 * derived from it with HKDF-SHA256 (raw keys, Element Call per-member mode) or
 * PBKDF2-SHA256 (passphrases, shared-key mode); ratcheting; failure counting
 * with tolerance; per-index statistics. All functions are thread safe. Key
 * material never leaves this unit. */

#ifndef __FC_KEYRING_H__
#define __FC_KEYRING_H__

#include "fcformat.h"

G_BEGIN_DECLS

#define FC_DEFAULT_SALT "LKFrameEncryptionKey"
#define FC_PBKDF2_ITERATIONS 100000
#define FC_RATCHET_WINDOW_MAX 256
/* livekit-client's SifGuard: at most this many server-injected frames in a
 * row, within this time, before user frames must follow. */
#define FC_SIF_MAX_COUNT 100
#define FC_SIF_MAX_DURATION_US (2 * G_USEC_PER_SEC)

typedef enum
{
  FC_KDF_HKDF,
  FC_KDF_PBKDF2,
} FcKdf;

typedef enum
{
  /* Output written. */
  FC_RESULT_OK,
  /* Empty frame or a known server-injected frame: output is the input
   * (minus the trailer for a server-injected frame). */
  FC_RESULT_PASSTHROUGH,
  /* Dropped: no key at the index (encrypt: at the current index). */
  FC_RESULT_MISSING_KEY,
  /* Dropped: the index was invalidated after too many failures. */
  FC_RESULT_INVALID_KEY,
  /* Dropped: too short or a bad trailer (encrypt: an H.264/H.265 frame
   * ending inside its first slice NAL unit's header). */
  FC_RESULT_MALFORMED,
  /* Dropped: authentication failed with the key and every ratchet. */
  FC_RESULT_DECRYPT_FAILED,
  /* Dropped: an OpenSSL error, or no random IV seed. */
  FC_RESULT_CRYPTO_ERROR,
  /* Dropped: a frame ending in the server-injected-frame trailer whose
   * payload is not a known blank frame, or too many of them in a row. */
  FC_RESULT_BAD_SIF,
  /* Nothing done: the output buffer is too small (fc_keyring_encrypt_into()
   * only); *out_size is the size needed. */
  FC_RESULT_NO_SPACE,
} FcResult;

typedef enum
{
  /* The frame is a key frame (matters for VP8 and the H.264 fallback). */
  FC_DECRYPT_KEY_FRAME = 1 << 0,
  /* Data was lost before this frame (the depayloader's DISCONT): a failure
   * does not count toward failure-tolerance. */
  FC_DECRYPT_DISCONT = 1 << 1,
} FcDecryptFlags;

typedef struct
{
  guint64 frames;
  guint64 bytes;
  guint64 failures;
  guint64 ratchets;
} FcKeyStats;

typedef struct _FcKeyring FcKeyring;

FcKeyring *fc_keyring_new (void);
void fc_keyring_free (FcKeyring *ring);

const gchar *fc_result_name (FcResult result);

/* Configuration (livekit KeyProviderOptions). */
void fc_keyring_set_size (FcKeyring *ring, guint size);
guint fc_keyring_get_size (FcKeyring *ring);
void fc_keyring_set_ratchet_window (FcKeyring *ring, guint window);
guint fc_keyring_get_ratchet_window (FcKeyring *ring);
/* < 0: never invalidate an index. */
void fc_keyring_set_failure_tolerance (FcKeyring *ring, gint tolerance);
gint fc_keyring_get_failure_tolerance (FcKeyring *ring);
/* Server-injected-frame trailer; NULL or empty disables the check. A frame
 * ending in it passes undecrypted (without the trailer) only when the rest
 * is one of the blank frames livekit-server injects (fc_sif_payload_known());
 * otherwise it is dropped (FC_RESULT_BAD_SIF). */
void fc_keyring_set_sif_trailer (FcKeyring *ring, GBytes *trailer);

/* TRUE when @data (a frame without its SIF trailer) is a blank frame
 * livekit-server injects for @codec, matched by SHA-256 as livekit-client's
 * sifPayload.ts and libwebrtc do: the VP8 8x8 key frame, the Opus silence
 * frame, the H.264 2x2 key frame's SPS, PPS and IDR NAL units (bare, or as
 * an Annex-B access unit made of them). Nothing for VP9 and H.265. */
gboolean fc_sif_payload_known (FcCodec codec, const guint8 *data, gsize size);

/* Stores @material at @index % size, derives its AES key with @kdf, clears
 * the failure state of that index and, if @make_current, makes @index the one
 * the encryptor uses. Returns FALSE for an empty material or a crypto
 * error. */
gboolean fc_keyring_set_key (FcKeyring *ring, guint index, FcKdf kdf,
    const guint8 *material, gsize material_len, gboolean make_current);
/* Ratchets the material at @index once (material' = KDF(material, 32
 * bytes)); FALSE when there is no key there. The derivation runs without the
 * keyring lock. */
gboolean fc_keyring_ratchet (FcKeyring *ring, guint index);
gboolean fc_keyring_has_key (FcKeyring *ring, guint index);
void fc_keyring_set_current_index (FcKeyring *ring, guint index);
guint fc_keyring_get_current_index (FcKeyring *ring);
gboolean fc_keyring_is_invalid (FcKeyring *ring, guint index);
void fc_keyring_get_stats (FcKeyring *ring, guint index, FcKeyStats *stats);

/* Key derivation (exposed for tests and the benchmark). @out_len is 16 for
 * an AES key and 32 for a ratchet step. */
gboolean fc_derive (FcKdf kdf, const guint8 *material, gsize material_len,
    const guint8 *salt, gsize salt_len, guint8 *out, gsize out_len);

/* Encrypts @in into @out; @out must hold fc_encrypt_max_size(@in_size)
 * bytes. On FC_RESULT_PASSTHROUGH nothing is written. *@key_index is the
 * index used (or wanted). */
gsize fc_encrypt_max_size (FcCodec codec, gsize in_size);
FcResult fc_keyring_encrypt (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, guint8 *out, gsize *out_size,
    guint *key_index);

/* A size for @out that fits the encrypted frame in all but rare cases: exact
 * for audio, VP8 and VP9; for H.264/H.265 a few bytes more than a frame whose
 * ciphertext needs few RBSP escapes. */
gsize fc_encrypt_size_hint (FcCodec codec, gsize in_size);

/* fc_keyring_encrypt() into @out of @out_capacity bytes. When they are too
 * few, returns FC_RESULT_NO_SPACE (nothing counted, *@out_size the size
 * needed or, if not known, fc_encrypt_max_size()); call again with a larger
 * @out. */
FcResult fc_keyring_encrypt_into (FcKeyring *ring, FcCodec codec,
    gboolean key_frame, const guint8 *in, gsize in_size, guint8 *out,
    gsize out_capacity, gsize *out_size, guint *key_index);

/* The same with a caller-chosen IV (known-answer tests only: an IV must
 * never repeat under one key). */
FcResult fc_keyring_encrypt_with_iv (FcKeyring *ring, FcCodec codec,
    gboolean key_frame, const guint8 *in, gsize in_size, const guint8 *fixed_iv,
    guint8 *out, gsize *out_size, guint *key_index);

/* Decrypts @in into @out (which holds @in_size bytes). On
 * FC_RESULT_PASSTHROUGH the plain frame is @in[0 .. *out_size) and nothing is
 * written. *@key_index is the frame's key index (0 for an empty frame or a
 * server-injected one). Malformed frames (too short, bad trailer) count as
 * failures in the statistics but not toward failure-tolerance. When the
 * ratchet chain of a key must be derived, that happens without the keyring
 * lock. */
FcResult fc_keyring_decrypt (FcKeyring *ring, FcCodec codec, gboolean key_frame,
    const guint8 *in, gsize in_size, guint8 *out, gsize *out_size,
    guint *key_index);
FcResult fc_keyring_decrypt_full (FcKeyring *ring, FcCodec codec,
    FcDecryptFlags flags, const guint8 *in, gsize in_size, guint8 *out,
    gsize *out_size, guint *key_index);

G_END_DECLS

#endif /* __FC_KEYRING_H__ */
