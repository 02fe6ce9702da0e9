/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* Unit tests of ext/framecrypto: frame layout, RBSP, key derivation, the
 * keyring, and the LiveKit test vectors (byte-exact both ways). */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/check/gstcheck.h>

#include "fcformat.h"
#include "fckeyring.h"
#include "fctestvectors.h"

static void
assert_hex (const guint8 *data, gsize size, const gchar *hex)
{
  GBytes *expected = fc_hex_decode (hex);

  fail_unless (expected != NULL);
  fail_unless_equals_int (size, g_bytes_get_size (expected));
  fail_unless (memcmp (data, g_bytes_get_data (expected, NULL), size) == 0);
  g_bytes_unref (expected);
}

static FcKeyring *
keyring_for_vector (FcTestVector *v)
{
  FcKeyring *ring = fc_keyring_new ();
  gsize len;
  const guint8 *material = g_bytes_get_data (v->material, &len);

  fc_keyring_set_size (ring, v->keyring_size);
  fc_keyring_set_ratchet_window (ring, v->ratchet_window);
  fc_keyring_set_failure_tolerance (ring, v->failure_tolerance);
  fail_unless (fc_keyring_set_key (ring, v->key_index,
      v->pbkdf2 ? FC_KDF_PBKDF2 : FC_KDF_HKDF, material, len, TRUE));
  return ring;
}

GST_START_TEST (test_kdf_spot_values)
{
  static const guint8 salt[] = FC_DEFAULT_SALT;
  guint8 key[16], chain[32];
  GBytes *m;
  const gchar *pass = "correct horse battery staple";

  m = fc_hex_decode ("000102030405060708090a0b0c0d0e0f");
  fail_unless (fc_derive (FC_KDF_HKDF, g_bytes_get_data (m, NULL), 16, salt,
      sizeof (salt) - 1, key, 16));
  assert_hex (key, 16, "4086b4641064e1ae8b63d4eb83ad3e7e");
  /* one ratchet: chain = HKDF(material, 32); its first half is the previous
   * AES key (e2ee.md 2.2); AES key after one ratchet */
  fail_unless (fc_derive (FC_KDF_HKDF, g_bytes_get_data (m, NULL), 16, salt,
      sizeof (salt) - 1, chain, 32));
  assert_hex (chain, 16, "4086b4641064e1ae8b63d4eb83ad3e7e");
  fail_unless_equals_int (chain[16], 0x87);
  fail_unless_equals_int (chain[31], 0x3a);
  fail_unless (
      fc_derive (FC_KDF_HKDF, chain, 32, salt, sizeof (salt) - 1, key, 16));
  assert_hex (key, 16, "af61b566e2c6adff55bf8c20f94b4765");
  g_bytes_unref (m);

  m = fc_hex_decode ("a3c5e7f90b1d2f31435567798b9daebf");
  fail_unless (fc_derive (FC_KDF_HKDF, g_bytes_get_data (m, NULL), 16, salt,
      sizeof (salt) - 1, key, 16));
  assert_hex (key, 16, "1cb5685661805d080875a7627e42aa2e");
  g_bytes_unref (m);

  fail_unless (fc_derive (FC_KDF_PBKDF2, (const guint8 *)pass, strlen (pass),
      salt, sizeof (salt) - 1, key, 16));
  assert_hex (key, 16, "dee9745ab873685c2579655a7296d1a4");

  /* empty material is refused */
  fail_if (fc_derive (FC_KDF_HKDF, key, 0, salt, sizeof (salt) - 1, key, 16));
}

GST_END_TEST;

GST_START_TEST (test_vectors_decrypt)
{
  GPtrArray *vectors = fc_test_vectors_load ();
  guint i;

  for (i = 0; i < vectors->len; i++) {
    FcTestVector *v = g_ptr_array_index (vectors, i);
    FcKeyring *ring = keyring_for_vector (v);
    gsize in_size, out_size;
    const guint8 *in = g_bytes_get_data (v->expected_output, &in_size);
    guint8 *out = g_malloc (in_size);
    guint kid;
    FcResult r;

    GST_INFO ("vector %s", v->name);
    r = fc_keyring_decrypt (
        ring, v->codec, v->key_frame, in, in_size, out, &out_size, &kid);
    fail_unless_equals_string (fc_result_name (r), "ok");
    fail_unless_equals_int (kid, v->key_index);
    fail_unless_equals_int (out_size, g_bytes_get_size (v->expected_decrypted));
    fail_unless (
        memcmp (out, g_bytes_get_data (v->expected_decrypted, NULL), out_size)
            == 0,
        "vector %s decrypts wrongly", v->name);
    g_free (out);
    fc_keyring_free (ring);
  }
  g_ptr_array_unref (vectors);
}

GST_END_TEST;

GST_START_TEST (test_vectors_encrypt_exact)
{
  GPtrArray *vectors = fc_test_vectors_load ();
  guint i, r;

  for (i = 0; i < vectors->len; i++) {
    FcTestVector *v = g_ptr_array_index (vectors, i);
    FcKeyring *ring = keyring_for_vector (v);
    gsize in_size, out_size;
    const guint8 *in = g_bytes_get_data (v->plaintext, &in_size);
    guint8 *out = g_malloc (fc_encrypt_max_size (v->codec, in_size));
    FcFrameLayout layout;
    guint kid;
    FcResult res;

    for (r = 0; r < v->sender_ratchets; r++)
      fail_unless (fc_keyring_ratchet (ring, v->key_index));
    fc_frame_layout (v->codec, v->key_frame, in, in_size, &layout);
    fail_unless_equals_int (layout.clear_bytes, v->clear_bytes);
    res = fc_keyring_encrypt_with_iv (ring, v->codec, v->key_frame, in, in_size,
        g_bytes_get_data (v->iv, NULL), out, &out_size, &kid);
    fail_unless_equals_string (fc_result_name (res), "ok");
    fail_unless_equals_int (kid, v->key_index);
    fail_unless_equals_int (out_size, g_bytes_get_size (v->expected_output));
    fail_unless (
        memcmp (out, g_bytes_get_data (v->expected_output, NULL), out_size)
            == 0,
        "vector %s encrypts differently", v->name);
    g_free (out);
    fc_keyring_free (ring);
  }
  g_ptr_array_unref (vectors);
}

GST_END_TEST;

static gsize
layout_of (FcCodec codec, gboolean key_frame, const gchar *hex, gboolean *nalu)
{
  GBytes *b = fc_hex_decode (hex);
  gsize size;
  const guint8 *data = g_bytes_get_data (b, &size);
  FcFrameLayout layout;

  fc_frame_layout (codec, key_frame, data, size, &layout);
  g_bytes_unref (b);
  if (nalu)
    *nalu = layout.nalu;
  return layout.clear_bytes;
}

GST_START_TEST (test_layout)
{
  gboolean nalu;

  fail_unless_equals_int (layout_of (FC_CODEC_AUDIO, TRUE, "78aabb", &nalu), 1);
  fail_if (nalu);
  /* VP8: P bit clear = key frame */
  fail_unless_equals_int (
      layout_of (FC_CODEC_VP8, FALSE, "1002009d012a08000800", NULL), 10);
  fail_unless_equals_int (
      layout_of (FC_CODEC_VP8, TRUE, "310a00aabb", NULL), 3);
  fail_unless_equals_int (
      layout_of (FC_CODEC_VP9, TRUE, "8249834200", NULL), 0);
  /* lone P slice: 4-byte start code + NAL header + 1 byte */
  fail_unless_equals_int (
      layout_of (FC_CODEC_H264, FALSE, "00000001419a2233445566", &nalu), 6);
  fail_unless (nalu);
  /* AUD with 3-byte start codes, then a slice */
  fail_unless_equals_int (
      layout_of (FC_CODEC_H264, FALSE, "000001091000000141e0aabbccdd", &nalu),
      10);
  fail_unless (nalu);
  /* leading data: the VP8 rule, no NALU processing */
  fail_unless_equals_int (
      layout_of (FC_CODEC_H264, TRUE, "aa00000001419a2233445566", &nalu), 10);
  fail_if (nalu);
  fail_unless_equals_int (
      layout_of (FC_CODEC_H264, FALSE, "0000000167420000000168ce", &nalu), 3);
  fail_if (nalu);
  /* H.265: VPS, then IDR_W_RADL (type 19 = 0x26) */
  fail_unless_equals_int (layout_of (FC_CODEC_H265, TRUE,
                              "0000000140010c01ffff000000012601af0911", &nalu),
      16);
  fail_unless (nalu);
  /* H.265 TRAIL_R (0x02 0x01) */
  fail_unless_equals_int (
      layout_of (FC_CODEC_H265, FALSE, "00000102010a0b0c0d", &nalu), 5);
  fail_unless (nalu);
}

GST_END_TEST;

GST_START_TEST (test_annexb_normalize)
{
  GBytes *b = fc_hex_decode ("000001091000000141e0"
                             "00000001419a");
  gsize size, n;
  const guint8 *data = g_bytes_get_data (b, &size);
  guint8 out[64];

  n = fc_annexb_normalized_size (data, size);
  fail_unless_equals_int (n, size + 2);
  fail_unless_equals_int (fc_annexb_normalize (data, size, out), n);
  assert_hex (out, n,
      "00000001091000000001"
      "41e000000001419a");
  g_bytes_unref (b);
}

GST_END_TEST;

GST_START_TEST (test_rbsp)
{
  GBytes *b = fc_hex_decode ("0000000001020304000003000c00");
  gsize size, n, m;
  const guint8 *data = g_bytes_get_data (b, &size);
  guint8 escaped[64], back[64];
  guint i, round;

  n = fc_rbsp_escape (data, size, escaped);
  assert_hex (escaped, n, "0000030000030102030400000303000c00");
  fail_unless (fc_rbsp_needs_unescape (escaped, n));
  m = fc_rbsp_unescape (escaped, n, back);
  fail_unless_equals_int (m, size);
  fail_unless (memcmp (back, data, size) == 0);
  fail_if (fc_rbsp_needs_unescape ((const guint8 *)"\x00\x00\x04\x03", 4));
  g_bytes_unref (b);

  /* random data, biased to zeros; worst-case growth bound */
  for (round = 0; round < 200; round++) {
    guint8 in[300], esc[FC_RBSP_ESCAPED_MAX (300)], un[sizeof (esc)];
    gsize len = g_random_int_range (0, sizeof (in) + 1);

    for (i = 0; i < len; i++)
      in[i] = g_random_boolean () ? 0 : g_random_int_range (0, 5);
    n = fc_rbsp_escape (in, len, esc);
    fail_unless (n <= FC_RBSP_ESCAPED_MAX (len));
    /* no start code emulation left */
    for (i = 0; i + 2 < n; i++)
      fail_if (esc[i] == 0 && esc[i + 1] == 0 && esc[i + 2] <= 2);
    m = fc_rbsp_unescape (esc, n, un);
    fail_unless_equals_int (m, len);
    fail_unless (memcmp (un, in, len) == 0);
  }
  memset (escaped, 0, sizeof (escaped));
  n = fc_rbsp_escape (escaped, 40, back);
  fail_unless (n <= FC_RBSP_ESCAPED_MAX (40));
}

GST_END_TEST;

GST_START_TEST (test_hex)
{
  GBytes *b;

  b = fc_hex_decode ("00Ff7a");
  fail_unless (b != NULL);
  assert_hex (g_bytes_get_data (b, NULL), 3, "00ff7a");
  g_bytes_unref (b);
  fail_unless (fc_hex_decode ("abc") == NULL);
  fail_unless (fc_hex_decode ("zz") == NULL);
  fail_unless (fc_hex_decode (NULL) == NULL);
  b = fc_hex_decode ("");
  fail_unless_equals_int (g_bytes_get_size (b), 0);
  g_bytes_unref (b);
}

GST_END_TEST;

static const guint8 key_a[16]
    = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static const guint8 key_b[16]
    = { 0xb0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

/* A sender whose encoder writes 3-byte start codes: the clear header (and
 * so the AAD) goes out with 4-byte ones, as receivers rebuild them. */
GST_START_TEST (test_h264_short_start_codes)
{
  GBytes *b = fc_hex_decode ("000001091000000165880000000001020304");
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  gsize size, ct_size, pt_size;
  const guint8 *in = g_bytes_get_data (b, &size);
  guint8 ct[256], pt[256];
  guint kid, i, zeros = 0;

  fail_unless (fc_keyring_set_key (enc, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless_equals_int (fc_keyring_encrypt (enc, FC_CODEC_H264, TRUE, in,
                              size, ct, &ct_size, &kid),
      FC_RESULT_OK);
  assert_hex (ct, 12, "000000010910000000016588");
  /* no start code emulation after the header; ends in 0x0C, KID 0 */
  for (i = 12; i < ct_size; i++) {
    fail_if (zeros >= 2 && ct[i] <= 2);
    zeros = ct[i] == 0 ? zeros + 1 : 0;
  }
  fail_unless_equals_int (ct[ct_size - 2], 12);
  fail_unless_equals_int (ct[ct_size - 1], 0);
  fail_unless_equals_int (fc_keyring_decrypt (dec, FC_CODEC_H264, TRUE, ct,
                              ct_size, pt, &pt_size, &kid),
      FC_RESULT_OK);
  assert_hex (pt, pt_size,
      "00000001091000000001658800000000"
      "01020304");
  g_bytes_unref (b);
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

/* A random frame that looks like the codec's. */
static guint8 *
make_frame (FcCodec codec, gsize size, gsize *out_size)
{
  guint8 *f = g_malloc (size + 8);
  gsize i, off = 0;

  if (codec == FC_CODEC_H264 || codec == FC_CODEC_H265) {
    f[0] = 0;
    f[1] = 0;
    f[2] = 0;
    f[3] = 1;
    f[4] = codec == FC_CODEC_H264 ? 0x65 : 0x26;
    f[5] = 0x01;
    off = 6;
  }
  for (i = off; i < size + off; i++)
    f[i] = g_random_int_range (0, 4) == 0 ? 0 : g_random_int_range (0, 256);
  *out_size = size + off;
  return f;
}

static FcResult
roundtrip (
    FcKeyring *enc, FcKeyring *dec, FcCodec codec, gsize size, guint *kid_out)
{
  gsize in_size, ct_size, pt_size;
  guint8 *in = make_frame (codec, size, &in_size);
  guint8 *ct = g_malloc (fc_encrypt_max_size (codec, in_size));
  guint8 *pt;
  guint kid, kid2;
  FcResult r;

  r = fc_keyring_encrypt (enc, codec, TRUE, in, in_size, ct, &ct_size, &kid);
  fail_unless_equals_string (fc_result_name (r), "ok");
  fail_unless (ct_size >= in_size + FC_OVERHEAD);
  pt = g_malloc (ct_size);
  r = fc_keyring_decrypt (dec, codec, TRUE, ct, ct_size, pt, &pt_size, &kid2);
  fail_unless_equals_int (kid, kid2);
  if (r == FC_RESULT_OK) {
    fail_unless_equals_int (pt_size, in_size);
    fail_unless (memcmp (pt, in, in_size) == 0);
  }
  if (kid_out)
    *kid_out = kid;
  g_free (in);
  g_free (ct);
  g_free (pt);
  return r;
}

GST_START_TEST (test_roundtrip_codecs)
{
  FcCodec codecs[] = { FC_CODEC_AUDIO, FC_CODEC_VP8, FC_CODEC_VP9,
    FC_CODEC_H264, FC_CODEC_H265 };
  gsize sizes[] = { 1, 2, 3, 9, 10, 11, 60, 1200, 16384, 102400 };
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  guint c, s, kid;

  fail_unless (fc_keyring_set_key (enc, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  for (c = 0; c < G_N_ELEMENTS (codecs); c++) {
    for (s = 0; s < G_N_ELEMENTS (sizes); s++) {
      fail_unless_equals_int (
          roundtrip (enc, dec, codecs[c], sizes[s], &kid), FC_RESULT_OK);
      fail_unless_equals_int (kid, 0);
    }
  }
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

GST_START_TEST (test_iv_unique)
{
  FcKeyring *enc = fc_keyring_new ();
  GHashTable *seen = g_hash_table_new_full (
      g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref, NULL);
  guint8 in[20] = { 0x78, }, out[64];
  gsize out_size;
  guint kid, i;

  fail_unless (fc_keyring_set_key (enc, 3, FC_KDF_HKDF, key_a, 16, TRUE));
  for (i = 0; i < 2000; i++) {
    fail_unless_equals_int (fc_keyring_encrypt (enc, FC_CODEC_AUDIO, TRUE, in,
                                sizeof (in), out, &out_size, &kid),
        FC_RESULT_OK);
    fail_unless_equals_int (kid, 3);
    fail_unless_equals_int (out[out_size - 1], 3);
    fail_unless_equals_int (out[out_size - 2], 12);
    fail_unless (
        g_hash_table_add (seen, g_bytes_new (out + out_size - 14, FC_IV_LEN)),
        "IV repeated");
  }
  g_hash_table_unref (seen);
  fc_keyring_free (enc);
}

GST_END_TEST;

GST_START_TEST (test_missing_and_empty)
{
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  guint8 in[8] = { 0x78, 1, 2, 3, 4, 5, 6, 7 }, out[64];
  gsize out_size;
  guint kid;

  /* no key: dropped, counted */
  fail_unless_equals_int (fc_keyring_encrypt (enc, FC_CODEC_AUDIO, TRUE, in,
                              sizeof (in), out, &out_size, &kid),
      FC_RESULT_MISSING_KEY);
  /* empty frames pass */
  fail_unless_equals_int (fc_keyring_encrypt (enc, FC_CODEC_AUDIO, TRUE, in, 0,
                              out, &out_size, &kid),
      FC_RESULT_PASSTHROUGH);
  fail_unless_equals_int (fc_keyring_decrypt (dec, FC_CODEC_AUDIO, TRUE, in, 0,
                              out, &out_size, &kid),
      FC_RESULT_PASSTHROUGH);
  fail_unless_equals_int (out_size, 0);

  fail_unless (fc_keyring_set_key (enc, 5, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 50, &kid), FC_RESULT_MISSING_KEY);
  fail_unless_equals_int (kid, 5);
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

GST_START_TEST (test_failure_tolerance)
{
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  FcKeyStats st;
  guint i;

  fc_keyring_set_failure_tolerance (dec, 3);
  fc_keyring_set_ratchet_window (dec, 2);
  fail_unless (fc_keyring_set_key (enc, 1, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 1, FC_KDF_HKDF, key_b, 16, TRUE));
  for (i = 0; i < 4; i++)
    fail_unless_equals_int (roundtrip (enc, dec, FC_CODEC_VP8, 100, NULL),
        FC_RESULT_DECRYPT_FAILED);
  fail_unless (fc_keyring_is_invalid (dec, 1));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_VP8, 100, NULL), FC_RESULT_INVALID_KEY);
  fc_keyring_get_stats (dec, 1, &st);
  fail_unless_equals_int (st.failures, 5);
  /* setting the right key clears the state */
  fail_unless (fc_keyring_set_key (dec, 1, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_if (fc_keyring_is_invalid (dec, 1));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_VP8, 100, NULL), FC_RESULT_OK);

  /* -1 never gives up */
  fc_keyring_set_failure_tolerance (dec, -1);
  fail_unless (fc_keyring_set_key (dec, 1, FC_KDF_HKDF, key_b, 16, TRUE));
  for (i = 0; i < 30; i++)
    fail_unless_equals_int (roundtrip (enc, dec, FC_CODEC_VP8, 100, NULL),
        FC_RESULT_DECRYPT_FAILED);
  fail_if (fc_keyring_is_invalid (dec, 1));

  /* a success resets the consecutive count */
  fc_keyring_set_failure_tolerance (dec, 2);
  fail_unless (fc_keyring_set_key (dec, 1, FC_KDF_HKDF, key_a, 16, TRUE));
  for (i = 0; i < 10; i++) {
    guint8 garbage[64];
    guint8 out[64];
    gsize out_size;
    guint kid;

    memset (garbage, 0x42, sizeof (garbage));
    garbage[62] = 12;
    garbage[63] = 1;
    fail_unless_equals_int (
        fc_keyring_decrypt (dec, FC_CODEC_VP8, FALSE, garbage, sizeof (garbage),
            out, &out_size, &kid),
        FC_RESULT_DECRYPT_FAILED);
    fail_unless_equals_int (
        roundtrip (enc, dec, FC_CODEC_VP8, 100, NULL), FC_RESULT_OK);
  }
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

GST_START_TEST (test_ratchet)
{
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  FcKeyStats st;
  guint i;

  fail_unless (fc_keyring_set_key (enc, 2, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 2, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_if (fc_keyring_ratchet (enc, 7));
  for (i = 0; i < 3; i++)
    fail_unless (fc_keyring_ratchet (enc, 2));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_H264, 500, NULL), FC_RESULT_OK);
  fc_keyring_get_stats (dec, 2, &st);
  fail_unless_equals_int (st.ratchets, 3);
  fail_unless_equals_int (st.frames, 1);
  /* the ratcheted key is now stored */
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_H264, 500, NULL), FC_RESULT_OK);
  fc_keyring_get_stats (dec, 2, &st);
  fail_unless_equals_int (st.ratchets, 3);

  /* beyond the window: fails, stored key unchanged */
  fc_keyring_set_ratchet_window (dec, 4);
  for (i = 0; i < 5; i++)
    fail_unless (fc_keyring_ratchet (enc, 2));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 50, NULL), FC_RESULT_DECRYPT_FAILED);
  fc_keyring_set_ratchet_window (dec, 5);
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 50, NULL), FC_RESULT_OK);
  /* window 0: no auto ratchet */
  fc_keyring_set_ratchet_window (dec, 0);
  fail_unless (fc_keyring_ratchet (enc, 2));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 50, NULL), FC_RESULT_DECRYPT_FAILED);
  /* both sides ratchet explicitly */
  fail_unless (fc_keyring_ratchet (dec, 2));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 50, NULL), FC_RESULT_OK);
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

GST_START_TEST (test_pbkdf2_ratchet)
{
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  const gchar *pass = "shared secret";

  fail_unless (fc_keyring_set_key (
      enc, 0, FC_KDF_PBKDF2, (const guint8 *)pass, strlen (pass), TRUE));
  fail_unless (fc_keyring_set_key (
      dec, 0, FC_KDF_PBKDF2, (const guint8 *)pass, strlen (pass), TRUE));
  fc_keyring_set_ratchet_window (dec, 2);
  fail_unless (fc_keyring_ratchet (enc, 0));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_VP8, 300, NULL), FC_RESULT_OK);
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

GST_START_TEST (test_keyring_size_and_index)
{
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  guint kid;

  fc_keyring_set_size (enc, 16);
  fc_keyring_set_size (dec, 16);
  /* stored at 17 % 16 = 1 */
  fail_unless (fc_keyring_set_key (enc, 17, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 1, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless_equals_int (fc_keyring_get_current_index (enc), 1);
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 20, &kid), FC_RESULT_OK);
  fail_unless_equals_int (kid, 1);

  /* a key index beyond the keyring size has no key */
  fc_keyring_set_size (enc, 256);
  fail_unless (fc_keyring_set_key (enc, 200, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 20, &kid), FC_RESULT_MISSING_KEY);
  fail_unless_equals_int (kid, 200);

  /* key change: several indexes live at once */
  fail_unless (fc_keyring_set_key (enc, 3, FC_KDF_HKDF, key_b, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 3, FC_KDF_HKDF, key_b, 16, FALSE));
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 20, &kid), FC_RESULT_OK);
  fail_unless_equals_int (kid, 3);
  fc_keyring_set_current_index (enc, 1);
  fail_unless_equals_int (
      roundtrip (enc, dec, FC_CODEC_AUDIO, 20, &kid), FC_RESULT_OK);
  fail_unless_equals_int (kid, 1);
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

GST_START_TEST (test_sif_trailer)
{
  FcKeyring *dec = fc_keyring_new ();
  GBytes *trailer = g_bytes_new_static ("LK-ROCKS", 8);
  const guint8 frame[] = "\x10\x02\x00\x9d\x01\x2aLK-ROCKS";
  guint8 out[64];
  gsize out_size;
  guint kid;

  fc_keyring_set_sif_trailer (dec, trailer);
  fail_unless_equals_int (fc_keyring_decrypt (dec, FC_CODEC_VP8, TRUE, frame,
                              sizeof (frame) - 1, out, &out_size, &kid),
      FC_RESULT_PASSTHROUGH);
  fail_unless_equals_int (out_size, 6);
  fc_keyring_set_sif_trailer (dec, NULL);
  fail_unless_equals_int (fc_keyring_decrypt (dec, FC_CODEC_VP8, TRUE, frame,
                              sizeof (frame) - 1, out, &out_size, &kid),
      FC_RESULT_MISSING_KEY);
  g_bytes_unref (trailer);
  fc_keyring_free (dec);
}

GST_END_TEST;

GST_START_TEST (test_malformed)
{
  FcCodec codecs[] = { FC_CODEC_AUDIO, FC_CODEC_VP8, FC_CODEC_VP9,
    FC_CODEC_H264, FC_CODEC_H265 };
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  guint c;

  fc_keyring_set_failure_tolerance (dec, -1);
  fail_unless (fc_keyring_set_key (enc, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  for (c = 0; c < G_N_ELEMENTS (codecs); c++) {
    gsize in_size, ct_size, out_size, cut, i;
    guint8 *in = make_frame (codecs[c], 200, &in_size);
    guint8 *ct = g_malloc (fc_encrypt_max_size (codecs[c], in_size));
    guint8 *out;
    guint kid;

    fail_unless_equals_int (fc_keyring_encrypt (enc, codecs[c], TRUE, in,
                                in_size, ct, &ct_size, &kid),
        FC_RESULT_OK);
    out = g_malloc (ct_size);
    /* every truncation (keeping the last byte = key index 0) */
    for (cut = 1; cut < ct_size; cut++) {
      guint8 *t = g_memdup2 (ct + cut, ct_size - cut);
      FcResult r = fc_keyring_decrypt (
          dec, codecs[c], TRUE, t, ct_size - cut, out, &out_size, &kid);

      fail_if (r == FC_RESULT_OK, "truncated frame decrypted");
      g_free (t);
      r = fc_keyring_decrypt (
          dec, codecs[c], TRUE, ct, ct_size - cut, out, &out_size, &kid);
      fail_if (r == FC_RESULT_OK, "truncated frame decrypted");
    }
    /* every single-bit flip */
    for (i = 0; i < ct_size - 1; i++) {
      FcResult r;

      ct[i] ^= 0x10;
      r = fc_keyring_decrypt (
          dec, codecs[c], TRUE, ct, ct_size, out, &out_size, &kid);
      fail_if (r == FC_RESULT_OK,
          "tampered frame decrypted (byte %" G_GSIZE_FORMAT ")", i);
      ct[i] ^= 0x10;
    }
    fail_unless_equals_int (fc_keyring_decrypt (dec, codecs[c], TRUE, ct,
                                ct_size, out, &out_size, &kid),
        FC_RESULT_OK);
    g_free (in);
    g_free (ct);
    g_free (out);
  }
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

static gpointer
set_key_thread (gpointer data)
{
  FcKeyring *ring = data;
  guint i;

  for (i = 0; i < 300; i++) {
    fail_unless (
        fc_keyring_set_key (ring, i % 4, FC_KDF_HKDF, key_a, 16, FALSE));
    fc_keyring_ratchet (ring, 9);
  }
  return NULL;
}

GST_START_TEST (test_concurrent_set_key)
{
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  GThread *t1, *t2;
  guint i;

  fail_unless (fc_keyring_set_key (enc, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  t1 = g_thread_new ("setkey-enc", set_key_thread, enc);
  t2 = g_thread_new ("setkey-dec", set_key_thread, dec);
  for (i = 0; i < 500; i++)
    fail_unless_equals_int (
        roundtrip (enc, dec, FC_CODEC_VP8, 1000, NULL), FC_RESULT_OK);
  g_thread_join (t1);
  g_thread_join (t2);
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

static Suite *
framecrypto_suite (void)
{
  Suite *s = suite_create ("framecrypto");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_kdf_spot_values);
  tcase_add_test (tc, test_vectors_decrypt);
  tcase_add_test (tc, test_vectors_encrypt_exact);
  tcase_add_test (tc, test_layout);
  tcase_add_test (tc, test_annexb_normalize);
  tcase_add_test (tc, test_rbsp);
  tcase_add_test (tc, test_h264_short_start_codes);
  tcase_add_test (tc, test_hex);
  tcase_add_test (tc, test_roundtrip_codecs);
  tcase_add_test (tc, test_iv_unique);
  tcase_add_test (tc, test_missing_and_empty);
  tcase_add_test (tc, test_failure_tolerance);
  tcase_add_test (tc, test_ratchet);
  tcase_add_test (tc, test_pbkdf2_ratchet);
  tcase_add_test (tc, test_keyring_size_and_index);
  tcase_add_test (tc, test_sif_trailer);
  tcase_add_test (tc, test_malformed);
  tcase_add_test (tc, test_concurrent_set_key);
  return s;
}

GST_CHECK_MAIN (framecrypto);
