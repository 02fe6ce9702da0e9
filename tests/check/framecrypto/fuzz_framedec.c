/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* libFuzzer target for the frame decryptor (ext/framecrypto). Input: one
 * byte (codec = low bits % 5, key frame = 0x80), then the frame. The keyring
 * holds the test vectors' keys (HKDF at 0 and 1, PBKDF2 at 2), so the seed
 * corpus decrypts. A frame that decrypts must encrypt and decrypt back to the
 * same bytes; nothing may read or write out of bounds. */

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcformat.h"
#include "fckeyring.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const guint8 key0[16] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
  0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f };

static const guint8 key1[16] = { 0xa3, 0xc5, 0xe7, 0xf9, 0x0b, 0x1d, 0x2f, 0x31,
  0x43, 0x55, 0x67, 0x79, 0x8b, 0x9d, 0xae, 0xbf };

static const char passphrase[] = "correct horse battery staple";

static FcKeyring *
make_keyring (void)
{
  FcKeyring *ring = fc_keyring_new ();
  GBytes *sif = g_bytes_new_static ("LK-ROCKS", 8);

  fc_keyring_set_failure_tolerance (ring, -1);
  fc_keyring_set_ratchet_window (ring, 2);
  fc_keyring_set_sif_trailer (ring, sif);
  g_bytes_unref (sif);
  fc_keyring_set_key (ring, 2, FC_KDF_PBKDF2, (const guint8 *)passphrase,
      strlen (passphrase), FALSE);
  fc_keyring_set_key (ring, 1, FC_KDF_HKDF, key1, sizeof (key1), FALSE);
  fc_keyring_set_key (ring, 0, FC_KDF_HKDF, key0, sizeof (key0), TRUE);
  return ring;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static FcKeyring *dec, *enc, *check;
  FcCodec codec;
  gboolean key_frame;
  const guint8 *frame;
  gsize n, out_size = 0, esc_size, unesc_size;
  guint8 *out, *esc, *unesc;
  guint kid;
  FcResult r;

  if (dec == NULL) {
    dec = make_keyring ();
    enc = make_keyring ();
    check = make_keyring ();
    fc_keyring_set_sif_trailer (check, NULL);
  }
  if (size < 1)
    return 0;
  codec = (FcCodec)((data[0] & 0x7f) % 5);
  key_frame = (data[0] & 0x80) != 0;
  frame = data + 1;
  n = size - 1;

  out = malloc (n + 1);
  r = fc_keyring_decrypt (
      dec, codec, key_frame, frame, n, out, &out_size, &kid);
  assert (kid < FC_KEYRING_MAX);
  if (r == FC_RESULT_PASSTHROUGH)
    assert (out_size <= n);
  if (r == FC_RESULT_OK) {
    guint8 *ct = malloc (fc_encrypt_max_size (codec, out_size));
    guint8 *pt;
    gsize ct_size, pt_size;
    guint kid2;

    assert (out_size + FC_OVERHEAD <= n);
    fc_keyring_set_current_index (enc, kid);
    r = fc_keyring_encrypt (
        enc, codec, key_frame, out, out_size, ct, &ct_size, &kid2);
    assert (r == FC_RESULT_OK || (r == FC_RESULT_PASSTHROUGH && !out_size)
            || r == FC_RESULT_MALFORMED);
    if (r == FC_RESULT_OK) {
      assert (ct_size <= fc_encrypt_max_size (codec, out_size));
      pt = malloc (ct_size);
      r = fc_keyring_decrypt (
          check, codec, key_frame, ct, ct_size, pt, &pt_size, &kid2);
      /* frames whose header changes under start-code normalisation or whose
       * layout moves may legitimately differ; the rest must round-trip */
      if (r == FC_RESULT_OK && pt_size == out_size)
        assert (memcmp (pt, out, out_size) == 0 || codec == FC_CODEC_H264
                || codec == FC_CODEC_H265);
      free (pt);
    }
    free (ct);
  }
  free (out);

  /* RBSP escaping round-trips on anything */
  esc = malloc (FC_RBSP_ESCAPED_MAX (n) + 1);
  esc_size = fc_rbsp_escape (frame, n, esc);
  assert (esc_size <= FC_RBSP_ESCAPED_MAX (n));
  unesc = malloc (esc_size + 1);
  unesc_size = fc_rbsp_unescape (esc, esc_size, unesc);
  assert (unesc_size == n && memcmp (unesc, frame, n) == 0);
  free (esc);
  free (unesc);
  return 0;
}
