/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#include "fcformat.h"

#include <string.h>

const gchar *
fc_codec_name (FcCodec codec)
{
  switch (codec) {
    case FC_CODEC_AUDIO:
      return "audio";
    case FC_CODEC_VP8:
      return "vp8";
    case FC_CODEC_VP9:
      return "vp9";
    case FC_CODEC_H264:
      return "h264";
    case FC_CODEC_H265:
      return "h265";
  }
  return "unknown";
}

gboolean
fc_vp8_is_key_frame (const guint8 *data, gsize size)
{
  /* RFC 6386 9.1: the P (inverse key frame) bit is bit 0 of the frame tag. */
  return size > 0 && (data[0] & 0x01) == 0;
}

static gboolean
is_slice_nal (FcCodec codec, guint8 nal_header)
{
  if (codec == FC_CODEC_H264) {
    guint type = nal_header & 0x1f;

    /* non-IDR and IDR slices */
    return type == 1 || type == 5;
  } else {
    guint type = (nal_header >> 1) & 0x3f;

    /* VCL NAL unit types TRAIL_N .. RASL_R and BLA_W_LP .. CRA_NUT */
    return type <= 9 || (type >= 16 && type <= 21);
  }
}

/* livekit-client's findNALUIndices + findSliceNALUUnencryptedBytes: start
 * codes are searched before the last 3 bytes; the stream must begin with a
 * start code (after optional zero bytes). Returns FALSE when no slice is found
 * or there is leading data. */
static gboolean
nalu_clear_bytes (
    FcCodec codec, const guint8 *data, gsize size, gsize *clear_bytes)
{
  gboolean first = TRUE;
  gsize i, j;

  for (i = 0; i + 3 < size; i++) {
    if (data[i] != 0 || data[i + 1] != 0 || data[i + 2] != 1)
      continue;
    if (first) {
      for (j = 0; j < i; j++) {
        if (data[j] != 0)
          return FALSE;
      }
      first = FALSE;
    }
    if (is_slice_nal (codec, data[i + 3])) {
      /* NAL header byte plus one more byte (H.264: the first slice header
       * byte; H.265: the second NAL header byte) stay clear. */
      *clear_bytes = i + 3 + 2;
      return TRUE;
    }
    i += 2;
  }
  return FALSE;
}

void
fc_frame_layout (FcCodec codec, gboolean key_frame, const guint8 *data,
    gsize size, FcFrameLayout *layout)
{
  layout->nalu = FALSE;
  switch (codec) {
    case FC_CODEC_AUDIO:
      layout->clear_bytes = FC_CLEAR_AUDIO;
      return;
    case FC_CODEC_VP8:
      layout->clear_bytes = fc_vp8_is_key_frame (data, size)
                                ? FC_CLEAR_VP8_KEY
                                : FC_CLEAR_VP8_DELTA;
      return;
    case FC_CODEC_VP9:
      layout->clear_bytes = 0;
      return;
    case FC_CODEC_H264:
    case FC_CODEC_H265:
      if (nalu_clear_bytes (codec, data, size, &layout->clear_bytes)) {
        layout->nalu = TRUE;
        return;
      }
      /* livekit-client falls back to the VP8 rule, by frame type. */
      layout->clear_bytes = key_frame ? FC_CLEAR_VP8_KEY : FC_CLEAR_VP8_DELTA;
      return;
  }
  layout->clear_bytes = 0;
}

static inline gboolean
is_short_start_code (const guint8 *header, gsize size, gsize i)
{
  return i + 2 < size && header[i] == 0 && header[i + 1] == 0
         && header[i + 2] == 1 && (i == 0 || header[i - 1] != 0);
}

gsize
fc_annexb_normalized_size (const guint8 *header, gsize size)
{
  gsize i, extra = 0;

  for (i = 0; i < size; i++) {
    if (is_short_start_code (header, size, i)) {
      extra++;
      i += 2;
    }
  }
  return size + extra;
}

gsize
fc_annexb_normalize (const guint8 *header, gsize size, guint8 *out)
{
  gsize i, o = 0;

  for (i = 0; i < size; i++) {
    if (is_short_start_code (header, size, i)) {
      out[o++] = 0;
      out[o++] = 0;
      out[o++] = 0;
      out[o++] = 1;
      i += 2;
    } else {
      out[o++] = header[i];
    }
  }
  return o;
}

gsize
fc_rbsp_escape (const guint8 *in, gsize size, guint8 *out)
{
  gsize i, o = 0;
  guint zeros = 0;

  for (i = 0; i < size; i++) {
    guint8 b = in[i];

    if (zeros >= 2 && b <= 3) {
      out[o++] = 3;
      zeros = 0;
    }
    out[o++] = b;
    zeros = b == 0 ? zeros + 1 : 0;
  }
  return o;
}

gboolean
fc_rbsp_needs_unescape (const guint8 *in, gsize size)
{
  gsize i;

  for (i = 0; i + 2 < size; i++) {
    if (in[i + 2] > 3) {
      /* no window starting at i, i+1 or i+2 can be 00 00 03 */
      i += 2;
      continue;
    }
    if (in[i] == 0 && in[i + 1] == 0 && in[i + 2] == 3)
      return TRUE;
  }
  return FALSE;
}

gsize
fc_rbsp_unescape (const guint8 *in, gsize size, guint8 *out)
{
  gsize i, o = 0;
  guint zeros = 0;

  for (i = 0; i < size; i++) {
    guint8 b = in[i];

    if (zeros >= 2 && b == 3) {
      zeros = 0;
      continue;
    }
    out[o++] = b;
    zeros = b == 0 ? zeros + 1 : 0;
  }
  return o;
}

static gint
hex_value (gchar c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

GBytes *
fc_hex_decode (const gchar *hex)
{
  gsize len, i;
  guint8 *bytes;

  if (hex == NULL)
    return NULL;
  len = strlen (hex);
  if (len % 2 != 0)
    return NULL;
  bytes = g_malloc (len / 2 + 1);
  for (i = 0; i < len / 2; i++) {
    gint hi = hex_value (hex[2 * i]);
    gint lo = hex_value (hex[2 * i + 1]);

    if (hi < 0 || lo < 0) {
      g_free (bytes);
      return NULL;
    }
    bytes[i] = (guint8)((hi << 4) | lo);
  }
  return g_bytes_new_take (bytes, len / 2);
}
