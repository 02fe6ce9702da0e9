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

static const guint8 key_a[16]
    = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

static const guint8 key_b[16]
    = { 0xb0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

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

/* NAL units as a libwebrtc packetiser sees them: one zero of a 4-byte
 * start code goes with it, further zeros stay in the unit before, bytes
 * before the first start code and a 00 00 01 at the very end belong to no
 * start code. */
GST_START_TEST (test_annexb_next_nal)
{
  GBytes *b = fc_hex_decode ("0000"
                             "000001670a00"
                             "0000000168ee"
                             "000001"
                             "000001650000000001");
  gsize size, pos = 0;
  const guint8 *data = g_bytes_get_data (b, &size);
  FcNal nal;

  fail_unless (fc_annexb_next_nal (data, size, &pos, &nal));
  fail_unless_equals_int (nal.start_code, 1);
  fail_unless_equals_int (nal.offset, 5);
  /* 67 0a 00: the extra zero (trailing_zero_8bits) stays */
  fail_unless_equals_int (nal.size, 3);
  fail_unless (fc_annexb_next_nal (data, size, &pos, &nal));
  fail_unless_equals_int (nal.start_code, 8);
  fail_unless_equals_int (nal.offset, 12);
  fail_unless_equals_int (nal.size, 2);
  /* an empty unit */
  fail_unless (fc_annexb_next_nal (data, size, &pos, &nal));
  fail_unless_equals_int (nal.start_code, 14);
  fail_unless_equals_int (nal.size, 0);
  /* the last unit runs to the end, 00 00 01 at the end included */
  fail_unless (fc_annexb_next_nal (data, size, &pos, &nal));
  fail_unless_equals_int (nal.offset, 20);
  fail_unless_equals_int (nal.size, size - 20);
  fail_if (fc_annexb_next_nal (data, size, &pos, &nal));
  fail_if (fc_annexb_next_nal (data, size, &pos, &nal));

  /* normalised: what a depayloader rebuilds (no leading zeros, no empty
   * unit, 4-byte start codes, the extra zero kept) */
  {
    guint8 out[64];
    gsize n = fc_annexb_normalized_size (data, size);

    fail_unless_equals_int (fc_annexb_normalize (data, size, out), n);
    assert_hex (out, n,
        "00000001670a00"
        "0000000168ee"
        "00000001650000000001");
  }
  g_bytes_unref (b);

  pos = 0;
  fail_if (fc_annexb_next_nal ((const guint8 *)"\x00\x00\x01", 3, &pos, &nal));
  pos = 0;
  fail_if (fc_annexb_next_nal ((const guint8 *)"", 0, &pos, &nal));
}

GST_END_TEST;

/* Fragments reassemble to the NAL unit, as a depayloader does it. */
static void
check_fragments (gboolean h265, const guint8 *nal, gsize size, gsize max)
{
  GByteArray *rebuilt = g_byte_array_new ();
  FcRtpFragment f;
  gsize pos = 0;
  guint packets = 0;
  gboolean ended = FALSE;

  while (fc_h26x_next_fragment (h265, nal, size, max, &pos, &f)) {
    fail_if (ended);
    fail_unless (f.header_len + f.size <= max);
    fail_unless (f.size > 0);
    if (f.header_len == 0) {
      fail_unless_equals_int (packets, 0);
      g_byte_array_append (rebuilt, nal + f.offset, f.size);
    } else {
      guint8 fu = f.header[f.header_len - 1];

      fail_unless_equals_int (!!(fu & 0x80), packets == 0);
      fail_unless_equals_int (!!(fu & 0x40), f.end);
      if (packets == 0) {
        guint8 hdr[2];

        if (h265) {
          fail_unless_equals_int ((f.header[0] >> 1) & 0x3f, 49);
          hdr[0] = (f.header[0] & 0x81) | ((fu & 0x3f) << 1);
          hdr[1] = f.header[1];
        } else {
          fail_unless_equals_int (f.header[0] & 0x1f, 28);
          hdr[0] = (f.header[0] & 0xe0) | (fu & 0x1f);
        }
        g_byte_array_append (rebuilt, hdr, h265 ? 2 : 1);
      }
      g_byte_array_append (rebuilt, nal + f.offset, f.size);
    }
    ended = f.end;
    packets++;
  }
  fail_unless (ended || size == 0);
  fail_unless_equals_int (rebuilt->len, size);
  fail_unless (size == 0 || memcmp (rebuilt->data, nal, size) == 0);
  g_byte_array_unref (rebuilt);
}

GST_START_TEST (test_h26x_fragments)
{
  guint8 nal[3000];
  gsize sizes[] = { 0, 1, 2, 3, 8, 9, 100, 1199, 1200, 1201, 3000 };
  gsize maxes[] = { 4, 8, 100, 1200 };
  guint i, j, h265;

  for (i = 0; i < sizeof (nal); i++)
    nal[i] = g_random_int_range (0, 256);
  for (h265 = 0; h265 < 2; h265++)
    for (i = 0; i < G_N_ELEMENTS (sizes); i++)
      for (j = 0; j < G_N_ELEMENTS (maxes); j++)
        check_fragments (h265, nal, sizes[i], maxes[j]);
}

GST_END_TEST;

/* Splits @frame into NAL units and fragments as matrixrtch26xpay does, and
 * rebuilds it as a depayloader does (4-byte start codes). */
static GByteArray *
pay_depay (gboolean h265, const guint8 *frame, gsize size)
{
  GByteArray *au = g_byte_array_new ();
  gsize pos = 0;
  FcNal nal;

  while (fc_annexb_next_nal (frame, size, &pos, &nal)) {
    if (nal.size == 0)
      continue;
    check_fragments (h265, frame + nal.offset, nal.size, 100);
    g_byte_array_append (au, (const guint8 *)"\0\0\0\1", 4);
    g_byte_array_append (au, frame + nal.offset, nal.size);
  }
  return au;
}

/* Zero-padded and leading-zero Annex-B access units (review finding 1):
 * encrypt, packetise, rebuild, decrypt. Every frame must decrypt, to the
 * frame as a depayloader rebuilds its clear header. */
GST_START_TEST (test_h26x_zero_padding_roundtrip)
{
  const gchar *frames[] = {
    /* SPS + one extra zero, PPS, IDR */
    "00000001674d401e0a00"
    "0000000168ee3c80"
    "0000000165888400aabbccddeeff",
    /* a leading zero */
    "0000000001674d401e0a"
    "0000000168ee3c80"
    "0000000165888400aabbccddeeff",
    /* leading zeros, 3-byte start codes, several trailing zeros */
    "000000000001674d401e0a000000"
    "00000168ee3c8000"
    "000001658884aabb",
    /* trailing zeros at the end of the slice (kept: part of the frame) */
    "000001419a2233445566000000",
    /* AUD with a 3-byte start code, SEI with trailing zeros */
    "00000109f0000001060504aabbccdd800000000000000141e2aabb",
  };
  const gchar *h265_frames[] = {
    "0000000140010c01ffff00"
    "000000014201010160"
    "00000126010af0f0f0",
    "00000000014001aa"
    "000001260100aabbcc00",
  };
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  guint i, n;

  fail_unless (fc_keyring_set_key (enc, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  n = G_N_ELEMENTS (frames) + G_N_ELEMENTS (h265_frames);
  for (i = 0; i < n; i++) {
    gboolean h265 = i >= G_N_ELEMENTS (frames);
    FcCodec codec = h265 ? FC_CODEC_H265 : FC_CODEC_H264;
    GBytes *b = fc_hex_decode (
        h265 ? h265_frames[i - G_N_ELEMENTS (frames)] : frames[i]);
    gsize size, ct_size, pt_size;
    const guint8 *in = g_bytes_get_data (b, &size);
    guint8 *ct = g_malloc (fc_encrypt_max_size (codec, size));
    guint8 *pt;
    GByteArray *received, *expected;
    FcFrameLayout layout;
    guint kid;

    fail_unless (b != NULL, "bad hex in frame %u", i);
    fc_frame_layout (codec, TRUE, in, size, &layout);
    fail_unless (layout.nalu, "frame %u: no slice found", i);
    fail_unless_equals_int (
        fc_keyring_encrypt (enc, codec, TRUE, in, size, ct, &ct_size, &kid),
        FC_RESULT_OK);
    received = pay_depay (h265, ct, ct_size);
    /* the encrypted frame is already what the receiver rebuilds */
    fail_unless_equals_int (received->len, ct_size);
    fail_unless (memcmp (received->data, ct, ct_size) == 0,
        "frame %u changes through RTP", i);
    pt = g_malloc (received->len);
    fail_unless_equals_int (
        fc_keyring_decrypt (dec, codec, TRUE, received->data, received->len, pt,
            &pt_size, &kid),
        FC_RESULT_OK);
    /* the plaintext through RTP without encryption */
    expected = pay_depay (h265, in, size);
    fail_unless_equals_int (pt_size, expected->len);
    fail_unless (memcmp (pt, expected->data, pt_size) == 0);
    g_byte_array_unref (expected);
    g_byte_array_unref (received);
    g_free (pt);
    g_free (ct);
    g_bytes_unref (b);
  }
  fc_keyring_free (enc);
  fc_keyring_free (dec);
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

/* Decrypts @hex followed by the trailer LK-ROCKS. */
static FcResult
decrypt_sif (FcKeyring *dec, FcCodec codec, const gchar *hex, gsize *out_size)
{
  GBytes *payload = fc_hex_decode (hex);
  gsize size;
  const guint8 *data = g_bytes_get_data (payload, &size);
  guint8 *frame = g_malloc (size + 8), *out = g_malloc (size + 8);
  FcResult r;
  guint kid;

  memcpy (frame, data, size);
  memcpy (frame + size, "LK-ROCKS", 8);
  r = fc_keyring_decrypt (
      dec, codec, TRUE, frame, size + 8, out, out_size, &kid);
  g_free (frame);
  g_free (out);
  g_bytes_unref (payload);
  return r;
}

/* Only the blank frames livekit-server injects pass unauthenticated; any
 * other frame ending in the trailer is dropped (a malicious SFU must not
 * inject media). */
GST_START_TEST (test_sif_trailer)
{
  FcKeyring *dec = fc_keyring_new ();
  GBytes *trailer = g_bytes_new_static ("LK-ROCKS", 8);
  gchar *au;
  gsize out_size;
  FcKeyStats st;
  guint i;

  fc_keyring_set_sif_trailer (dec, trailer);
  fail_unless (fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  /* known blank frames, for their codec only */
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_VP8, FC_TEST_SIF_VP8_HEX, &out_size),
      FC_RESULT_PASSTHROUGH);
  fail_unless_equals_int (out_size, 31);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_AUDIO, FC_TEST_SIF_OPUS_HEX, &out_size),
      FC_RESULT_PASSTHROUGH);
  fail_unless_equals_int (out_size, 80);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_H264, FC_TEST_SIF_H264_IDR_HEX, &out_size),
      FC_RESULT_PASSTHROUGH);
  au = g_strconcat ("00000001", FC_TEST_SIF_H264_SPS_HEX, "00000001",
      FC_TEST_SIF_H264_PPS_HEX, "00000001", FC_TEST_SIF_H264_IDR_HEX, NULL);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_H264, au, &out_size), FC_RESULT_PASSTHROUGH);
  fail_unless_equals_int (out_size, 52);
  g_free (au);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_AUDIO, FC_TEST_SIF_VP8_HEX, &out_size),
      FC_RESULT_BAD_SIF);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_VP9, FC_TEST_SIF_VP8_HEX, &out_size),
      FC_RESULT_BAD_SIF);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_H265, FC_TEST_SIF_H264_IDR_HEX, &out_size),
      FC_RESULT_BAD_SIF);

  /* unknown payloads: a truncated blank frame, injected media, an access
   * unit with one unknown NAL unit, nothing but the trailer */
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_VP8, "1002009d012a", &out_size),
      FC_RESULT_BAD_SIF);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_AUDIO, "78aabbccdd", &out_size),
      FC_RESULT_BAD_SIF);
  au = g_strconcat ("00000001", FC_TEST_SIF_H264_SPS_HEX,
      "0000000165aabbccdd00000001", FC_TEST_SIF_H264_IDR_HEX, NULL);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_H264, au, &out_size), FC_RESULT_BAD_SIF);
  g_free (au);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_VP8, "", &out_size), FC_RESULT_BAD_SIF);
  fail_unless (
      fc_sif_payload_known (FC_CODEC_VP8, (const guint8 *)"\x10\x02", 0)
      == FALSE);
  fc_keyring_get_stats (dec, 0, &st);
  fail_unless_equals_int (st.failures, 0);
  fail_if (fc_keyring_is_invalid (dec, 0));

  /* SifGuard: at most FC_SIF_MAX_COUNT in a row */
  fc_keyring_set_sif_trailer (dec, trailer);
  for (i = 0; i < FC_SIF_MAX_COUNT; i++)
    fail_unless_equals_int (
        decrypt_sif (dec, FC_CODEC_VP8, FC_TEST_SIF_VP8_HEX, &out_size),
        FC_RESULT_PASSTHROUGH);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_VP8, FC_TEST_SIF_VP8_HEX, &out_size),
      FC_RESULT_BAD_SIF);

  /* without a trailer the frame is an (undecryptable) encrypted frame */
  fc_keyring_set_sif_trailer (dec, NULL);
  fail_unless_equals_int (
      decrypt_sif (dec, FC_CODEC_VP8, FC_TEST_SIF_VP8_HEX, &out_size),
      FC_RESULT_MISSING_KEY);
  g_bytes_unref (trailer);
  fc_keyring_free (dec);
}

GST_END_TEST;

/* Truncated frames (packet loss) and failures after a DISCONT do not count
 * toward failure-tolerance; real failures do. */
GST_START_TEST (test_malformed_not_counted)
{
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  guint8 in[100], ct[200], out[200];
  gsize ct_size, out_size;
  guint kid, i;

  memset (in, 0x55, sizeof (in));
  in[0] = 0x31;
  fc_keyring_set_failure_tolerance (dec, 2);
  fc_keyring_set_ratchet_window (dec, 1);
  fail_unless (fc_keyring_set_key (enc, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless_equals_int (fc_keyring_encrypt (enc, FC_CODEC_VP8, FALSE, in,
                              sizeof (in), ct, &ct_size, &kid),
      FC_RESULT_OK);
  for (i = 0; i < 20; i++) {
    /* too short for a trailer, or a bad IV length byte */
    fail_unless_equals_int (fc_keyring_decrypt (dec, FC_CODEC_VP8, FALSE,
                                ct + ct_size - 10, 10, out, &out_size, &kid),
        FC_RESULT_MALFORMED);
    ct[ct_size - 2] ^= 1;
    fail_unless_equals_int (fc_keyring_decrypt (dec, FC_CODEC_VP8, FALSE, ct,
                                ct_size, out, &out_size, &kid),
        FC_RESULT_MALFORMED);
    ct[ct_size - 2] ^= 1;
    /* a partial frame after lost packets */
    fail_unless_equals_int (
        fc_keyring_decrypt_full (dec, FC_CODEC_VP8, FC_DECRYPT_DISCONT, ct + 20,
            ct_size - 20, out, &out_size, &kid),
        FC_RESULT_DECRYPT_FAILED);
  }
  fail_if (fc_keyring_is_invalid (dec, 0));
  fail_unless_equals_int (fc_keyring_decrypt (dec, FC_CODEC_VP8, FALSE, ct,
                              ct_size, out, &out_size, &kid),
      FC_RESULT_OK);
  for (i = 0; i < 3; i++)
    fail_unless_equals_int (fc_keyring_decrypt (dec, FC_CODEC_VP8, FALSE,
                                ct + 20, ct_size - 20, out, &out_size, &kid),
        FC_RESULT_DECRYPT_FAILED);
  fail_unless (fc_keyring_is_invalid (dec, 0));
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

/* fc_keyring_encrypt_into(): a too small buffer gives FC_RESULT_NO_SPACE and
 * the size needed; the size hint fits ordinary frames exactly enough. */
GST_START_TEST (test_encrypt_into)
{
  FcCodec codecs[] = { FC_CODEC_AUDIO, FC_CODEC_VP8, FC_CODEC_VP9,
    FC_CODEC_H264, FC_CODEC_H265 };
  FcKeyring *enc = fc_keyring_new (), *dec = fc_keyring_new ();
  guint c;

  fail_unless (fc_keyring_set_key (enc, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  fail_unless (fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key_a, 16, TRUE));
  for (c = 0; c < G_N_ELEMENTS (codecs); c++) {
    gsize in_size, out_size, hint, pt_size;
    guint8 *in = make_frame (codecs[c], 5000, &in_size);
    guint8 *out, *pt;
    guint kid;
    FcKeyStats st;

    hint = fc_encrypt_size_hint (codecs[c], in_size);
    fail_unless (hint <= in_size + FC_OVERHEAD + 64);
    out = g_malloc (hint);
    fail_unless_equals_int (fc_keyring_encrypt_into (enc, codecs[c], TRUE, in,
                                in_size, out, 10, &out_size, &kid),
        FC_RESULT_NO_SPACE);
    fail_unless (out_size > 10);
    fc_keyring_get_stats (enc, 0, &st);
    fail_unless_equals_int (st.frames, c);
    fail_unless_equals_int (fc_keyring_encrypt_into (enc, codecs[c], TRUE, in,
                                in_size, out, hint, &out_size, &kid),
        FC_RESULT_OK);
    fail_unless (out_size <= hint);
    pt = g_malloc (out_size);
    fail_unless_equals_int (fc_keyring_decrypt (dec, codecs[c], TRUE, out,
                                out_size, pt, &pt_size, &kid),
        FC_RESULT_OK);
    fail_unless_equals_int (pt_size, in_size);
    fail_unless (memcmp (pt, in, in_size) == 0);
    g_free (pt);
    g_free (out);
    g_free (in);
  }
  fc_keyring_free (enc);
  fc_keyring_free (dec);
}

GST_END_TEST;

/* Key material GBytes from fc_hex_decode() / fc_secret_bytes_new() hold the
 * bytes (and are wiped on free: not observable here). */
GST_START_TEST (test_secret_bytes)
{
  GBytes *b = fc_secret_bytes_new ("pass", 4);

  fail_unless_equals_int (g_bytes_get_size (b), 4);
  fail_unless (memcmp (g_bytes_get_data (b, NULL), "pass", 4) == 0);
  g_bytes_unref (b);
  b = fc_secret_bytes_new (NULL, 0);
  fail_unless_equals_int (g_bytes_get_size (b), 0);
  g_bytes_unref (b);
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
  tcase_add_test (tc, test_annexb_next_nal);
  tcase_add_test (tc, test_h26x_fragments);
  tcase_add_test (tc, test_rbsp);
  tcase_add_test (tc, test_h264_short_start_codes);
  tcase_add_test (tc, test_hex);
  tcase_add_test (tc, test_roundtrip_codecs);
  tcase_add_test (tc, test_h26x_zero_padding_roundtrip);
  tcase_add_test (tc, test_iv_unique);
  tcase_add_test (tc, test_missing_and_empty);
  tcase_add_test (tc, test_failure_tolerance);
  tcase_add_test (tc, test_ratchet);
  tcase_add_test (tc, test_pbkdf2_ratchet);
  tcase_add_test (tc, test_keyring_size_and_index);
  tcase_add_test (tc, test_sif_trailer);
  tcase_add_test (tc, test_malformed_not_counted);
  tcase_add_test (tc, test_encrypt_into);
  tcase_add_test (tc, test_secret_bytes);
  tcase_add_test (tc, test_malformed);
  tcase_add_test (tc, test_concurrent_set_key);
  return s;
}

GST_CHECK_MAIN (framecrypto);
