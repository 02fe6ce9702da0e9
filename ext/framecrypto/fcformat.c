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

#include <openssl/crypto.h>

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

/* Offset of the first 00 00 01 at or after @from that has a byte after it,
 * or @size. */
static inline gsize
find_start_code (const guint8 *data, gsize size, gsize from)
{
  gsize i;

  for (i = from; i + 3 < size;) {
    if (data[i + 2] > 1) {
      /* no start code can begin at i, i + 1 or i + 2 */
      i += 3;
    } else if (data[i + 2] == 1 && data[i + 1] == 0 && data[i] == 0) {
      return i;
    } else {
      i++;
    }
  }
  return size;
}

gboolean
fc_annexb_next_nal (const guint8 *data, gsize size, gsize *pos, FcNal *nal)
{
  gsize sc, next, end;

  if (*pos >= size)
    return FALSE;
  sc = find_start_code (data, size, *pos);
  if (sc >= size) {
    *pos = size;
    return FALSE;
  }
  nal->start_code = sc > 0 && data[sc - 1] == 0 ? sc - 1 : sc;
  nal->offset = sc + 3;
  next = find_start_code (data, size, nal->offset);
  end = next;
  /* the zero of a 4-byte start code is not part of the unit before it */
  if (next < size && next > nal->offset && data[next - 1] == 0)
    end--;
  nal->size = end - nal->offset;
  *pos = next;
  return TRUE;
}

/* livekit-client's findNALUIndices + findSliceNALUUnencryptedBytes: the
 * first slice NAL unit's offset + 2; only zero bytes may come before the
 * first start code. Returns FALSE when no slice is found or there is leading
 * data. */
static gboolean
nalu_clear_bytes (
    FcCodec codec, const guint8 *data, gsize size, gsize *clear_bytes)
{
  gsize pos = 0, j;
  FcNal nal;

  if (!fc_annexb_next_nal (data, size, &pos, &nal))
    return FALSE;
  for (j = 0; j < nal.start_code; j++) {
    if (data[j] != 0)
      return FALSE;
  }
  do {
    if (is_slice_nal (codec, data[nal.offset])) {
      /* NAL header byte plus one more byte (H.264: the first slice header
       * byte; H.265: the second NAL header byte) stay clear. */
      *clear_bytes = nal.offset + 2;
      return TRUE;
    }
  } while (fc_annexb_next_nal (data, size, &pos, &nal));
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

gsize
fc_annexb_normalized_size (const guint8 *header, gsize size)
{
  gsize pos = 0, total = 0;
  FcNal nal;

  while (fc_annexb_next_nal (header, size, &pos, &nal)) {
    if (nal.size > 0)
      total += 4 + nal.size;
  }
  return total;
}

gsize
fc_annexb_normalize (const guint8 *header, gsize size, guint8 *out)
{
  gsize pos = 0, o = 0;
  FcNal nal;

  while (fc_annexb_next_nal (header, size, &pos, &nal)) {
    if (nal.size == 0)
      continue;
    out[o++] = 0;
    out[o++] = 0;
    out[o++] = 0;
    out[o++] = 1;
    memcpy (out + o, header + nal.offset, nal.size);
    o += nal.size;
  }
  return o;
}

gboolean
fc_h26x_next_fragment (gboolean h265, const guint8 *nal, gsize nal_size,
    gsize max_payload, gsize *pos, FcRtpFragment *fragment)
{
  guint nal_hdr_len = h265 ? 2 : 1;
  guint fu_hdr_len = nal_hdr_len + 1;
  gsize offset = *pos;

  if (nal_size == 0 || offset >= nal_size || max_payload <= fu_hdr_len)
    return FALSE;
  if (nal_size <= max_payload) {
    /* single NAL unit packet */
    fragment->header_len = 0;
    fragment->offset = 0;
    fragment->size = nal_size;
    fragment->end = TRUE;
    *pos = nal_size;
    return TRUE;
  }

  /* fragmentation units: the NAL unit header goes into the FU headers */
  if (offset == 0)
    offset = nal_hdr_len;
  if (h265) {
    /* PayloadHdr with type 49 (F, LayerId, TID kept), then the FU header
     * with the NAL unit type */
    fragment->header[0] = (nal[0] & 0x81) | (49 << 1);
    fragment->header[1] = nal[1];
    fragment->header[2] = (nal[0] >> 1) & 0x3f;
  } else {
    /* FU indicator (F, NRI, type 28), then the FU header with the type */
    fragment->header[0] = (nal[0] & 0xe0) | 28;
    fragment->header[1] = nal[0] & 0x1f;
  }
  fragment->header_len = fu_hdr_len;
  fragment->offset = offset;
  fragment->size = MIN (max_payload - fu_hdr_len, nal_size - offset);
  fragment->end = offset + fragment->size == nal_size;
  if (offset == nal_hdr_len)
    fragment->header[fu_hdr_len - 1] |= 0x80;
  if (fragment->end)
    fragment->header[fu_hdr_len - 1] |= 0x40;
  *pos = offset + fragment->size;
  return TRUE;
}

gsize
fc_rbsp_escape_bounded (
    const guint8 *in, gsize size, guint8 *out, gsize capacity)
{
  gsize i = 0, o = 0;
  guint zeros = 0;

  while (i < size) {
    guint8 b;

    if (zeros == 0) {
      /* copy the run up to the next zero byte as is */
      const guint8 *zero = memchr (in + i, 0, size - i);
      gsize run = (zero ? (gsize)(zero - in) : size) - i;

      if (run > 0) {
        if (capacity - o < run)
          return G_MAXSIZE;
        memcpy (out + o, in + i, run);
        o += run;
        i += run;
        continue;
      }
    }
    b = in[i++];
    if (zeros >= 2 && b <= 3) {
      if (o >= capacity)
        return G_MAXSIZE;
      out[o++] = 3;
      zeros = 0;
    }
    if (o >= capacity)
      return G_MAXSIZE;
    out[o++] = b;
    zeros = b == 0 ? zeros + 1 : 0;
  }
  return o;
}

gsize
fc_rbsp_escape (const guint8 *in, gsize size, guint8 *out)
{
  return fc_rbsp_escape_bounded (in, size, out, FC_RBSP_ESCAPED_MAX (size));
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

typedef struct
{
  gsize size;
  guint8 data[];
} FcSecret;

static void
fc_secret_free (gpointer data)
{
  FcSecret *secret = data;

  OPENSSL_cleanse (secret->data, secret->size);
  g_free (secret);
}

static FcSecret *
fc_secret_alloc (gsize size)
{
  FcSecret *secret = g_malloc (sizeof (FcSecret) + size + 1);

  secret->size = size;
  return secret;
}

static GBytes *
fc_secret_to_bytes (FcSecret *secret)
{
  return g_bytes_new_with_free_func (
      secret->data, secret->size, fc_secret_free, secret);
}

GBytes *
fc_secret_bytes_new (gconstpointer data, gsize size)
{
  FcSecret *secret = fc_secret_alloc (size);

  if (size > 0)
    memcpy (secret->data, data, size);
  return fc_secret_to_bytes (secret);
}

GBytes *
fc_hex_decode (const gchar *hex)
{
  FcSecret *secret;
  gsize len, i;

  if (hex == NULL)
    return NULL;
  len = strlen (hex);
  if (len % 2 != 0)
    return NULL;
  secret = fc_secret_alloc (len / 2);
  for (i = 0; i < len / 2; i++) {
    gint hi = hex_value (hex[2 * i]);
    gint lo = hex_value (hex[2 * i + 1]);

    if (hi < 0 || lo < 0) {
      fc_secret_free (secret);
      return NULL;
    }
    secret->data[i] = (guint8)((hi << 4) | lo);
  }
  return fc_secret_to_bytes (secret);
}
