/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* libFuzzer target for the H.264/H.265 RTP packetisation of matrixrtch26xpay
 * (fc_annexb_next_nal, fc_h26x_next_fragment) and fc_frame_layout, on
 * arbitrary input. Input: one byte (bit 0: H.265; the rest: the maximum RTP
 * payload, 4..131 bytes), then an access unit. Checked:
 * - NAL units lie in the input, in order, and hold no start code;
 * - fragments fit the maximum payload and reassemble to the NAL unit;
 * - rebuilding the access unit as a depayloader does is what
 *   fc_annexb_normalize() gives, and is stable through another round;
 * - an encrypted frame whose RTP round trip leaves it unchanged decrypts to
 *   its normalised clear header and the plaintext body;
 * - fc_frame_layout stays in bounds for every codec. */

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcformat.h"
#include "fckeyring.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const guint8 key0[16] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
  0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f };

/* Reassembles the fragments of one NAL unit as a depayloader does. */
static void
check_fragments (gboolean h265, const guint8 *nal, gsize nal_size, gsize max)
{
  guint8 *rebuilt = malloc (nal_size + 1);
  gsize pos = 0, len = 0;
  guint packets = 0;
  gboolean ended = FALSE;
  FcRtpFragment f;

  while (fc_h26x_next_fragment (h265, nal, nal_size, max, &pos, &f)) {
    assert (!ended);
    assert (f.size > 0 && f.header_len + f.size <= max);
    assert (f.offset + f.size <= nal_size);
    if (f.header_len == 0) {
      assert (packets == 0 && f.offset == 0 && f.end);
    } else {
      guint8 fu = f.header[f.header_len - 1];

      assert (f.header_len == (h265 ? 3u : 2u));
      assert (!!(fu & 0x80) == (packets == 0));
      assert (!!(fu & 0x40) == f.end);
      if (packets == 0) {
        if (h265) {
          assert (((f.header[0] >> 1) & 0x3f) == 49);
          rebuilt[len++] = (f.header[0] & 0x81) | ((fu & 0x3f) << 1);
          rebuilt[len++] = f.header[1];
        } else {
          assert ((f.header[0] & 0x1f) == 28);
          rebuilt[len++] = (f.header[0] & 0xe0) | (fu & 0x1f);
        }
      }
    }
    memcpy (rebuilt + len, nal + f.offset, f.size);
    len += f.size;
    ended = f.end;
    packets++;
  }
  assert (ended || nal_size == 0);
  assert (len == nal_size && (len == 0 || memcmp (rebuilt, nal, len) == 0));
  free (rebuilt);
}

/* Splits @au into NAL units, checks them and their fragments, and rebuilds
 * it as a depayloader does (returns a malloc'ed buffer, size in *@out_len). */
static guint8 *
pay_depay (
    gboolean h265, const guint8 *au, gsize size, gsize max, gsize *out_len)
{
  guint8 *out = malloc (size + size / 3 + 8);
  gsize pos = 0, len = 0, prev_end = 0, j;
  FcNal nal;

  while (fc_annexb_next_nal (au, size, &pos, &nal)) {
    assert (nal.start_code >= prev_end);
    assert (
        nal.offset == nal.start_code + 3 || nal.offset == nal.start_code + 4);
    assert (nal.offset + nal.size <= size);
    for (j = nal.offset; j < nal.offset + nal.size; j++)
      assert (
          !(j + 3 < size && au[j] == 0 && au[j + 1] == 0 && au[j + 2] == 1));
    prev_end = nal.offset + nal.size;
    check_fragments (h265, au + nal.offset, nal.size, max);
    if (nal.size == 0)
      continue;
    memcpy (out + len, "\0\0\0\1", 4);
    memcpy (out + len + 4, au + nal.offset, nal.size);
    len += 4 + nal.size;
  }
  *out_len = len;
  return out;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static FcKeyring *enc, *dec;
  gboolean h265;
  FcCodec codec;
  const guint8 *au;
  gsize n, max, rebuilt_len, again_len, norm_len, c;
  guint8 *rebuilt, *again, *norm;

  if (enc == NULL) {
    enc = fc_keyring_new ();
    dec = fc_keyring_new ();
    fc_keyring_set_failure_tolerance (dec, -1);
    fc_keyring_set_ratchet_window (dec, 0);
    fc_keyring_set_key (enc, 0, FC_KDF_HKDF, key0, sizeof (key0), TRUE);
    fc_keyring_set_key (dec, 0, FC_KDF_HKDF, key0, sizeof (key0), TRUE);
  }
  if (size < 1)
    return 0;
  h265 = data[0] & 1;
  codec = h265 ? FC_CODEC_H265 : FC_CODEC_H264;
  max = 4 + (data[0] >> 1);
  au = data + 1;
  n = size - 1;

  /* the layout of every codec stays in bounds */
  for (c = 0; c < 10; c++) {
    FcFrameLayout layout;

    fc_frame_layout ((FcCodec)(c / 2), c % 2, au, n, &layout);
    if (layout.nalu)
      assert (layout.clear_bytes >= 5 && layout.clear_bytes <= n + 1);
    else
      assert (layout.clear_bytes <= FC_CLEAR_VP8_KEY);
  }

  /* pay -> depay gives the normalised access unit, and is stable */
  rebuilt = pay_depay (h265, au, n, max, &rebuilt_len);
  norm = malloc (n + n / 3 + 8);
  norm_len = fc_annexb_normalize (au, n, norm);
  assert (norm_len == fc_annexb_normalized_size (au, n));
  assert (norm_len == rebuilt_len && memcmp (norm, rebuilt, norm_len) == 0);
  again = pay_depay (h265, rebuilt, rebuilt_len, max, &again_len);
  assert (again_len == rebuilt_len && memcmp (again, rebuilt, again_len) == 0);
  free (again);
  free (rebuilt);
  free (norm);

  /* encrypt -> pay -> depay -> decrypt */
  {
    FcFrameLayout layout;
    gsize cap = fc_encrypt_size_hint (codec, n), ct_size = 0, pt_size = 0;
    guint8 *ct = malloc (MAX (cap, 1));
    guint kid;
    FcResult r;

    fc_frame_layout (codec, TRUE, au, n, &layout);
    r = fc_keyring_encrypt_into (
        enc, codec, TRUE, au, n, ct, cap, &ct_size, &kid);
    if (r == FC_RESULT_NO_SPACE) {
      assert (ct_size > cap);
      cap = ct_size;
      ct = realloc (ct, cap);
      r = fc_keyring_encrypt_into (
          enc, codec, TRUE, au, n, ct, cap, &ct_size, &kid);
    }
    assert (
        r == FC_RESULT_OK || (r == FC_RESULT_PASSTHROUGH && n == 0)
        || (r == FC_RESULT_MALFORMED && layout.nalu && layout.clear_bytes > n));
    if (r == FC_RESULT_OK && layout.nalu) {
      gsize clear = MIN (layout.clear_bytes, n);
      gsize header_len = fc_annexb_normalized_size (au, clear);

      assert (ct_size <= cap && ct_size >= header_len + (n - clear));
      rebuilt = pay_depay (h265, ct, ct_size, max, &rebuilt_len);
      /* only a start code emulated across the clear header's end changes
       * the frame through RTP (inherent in the LiveKit format) */
      if (rebuilt_len == ct_size && memcmp (rebuilt, ct, ct_size) == 0) {
        guint8 *pt = malloc (ct_size);
        guint8 *header = malloc (clear + clear / 3 + 8);

        r = fc_keyring_decrypt (
            dec, codec, TRUE, rebuilt, rebuilt_len, pt, &pt_size, &kid);
        assert (r == FC_RESULT_OK);
        assert (fc_annexb_normalize (au, clear, header) == header_len);
        assert (pt_size == header_len + (n - clear));
        assert (memcmp (pt, header, header_len) == 0);
        assert (memcmp (pt + header_len, au + clear, n - clear) == 0);
        free (header);
        free (pt);
      }
      free (rebuilt);
    }
    free (ct);
  }
  return 0;
}
