/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* The LiveKit end-to-end-encrypted frame format, without any I/O or crypto:
 * how many leading bytes of a frame stay clear per codec (including the
 * H.264/H.265 NAL unit rules), Annex-B start-code normalisation and RBSP
 * escaping of the encrypted part.
 *
 * Encrypted frame:
 *   clear[U] || AES-128-GCM ciphertext || tag[16] || IV[12] || 0x0C || KID
 * with AAD = clear[U]; for H.264/H.265 everything after clear[U] is RBSP
 * escaped. */

#ifndef __FC_FORMAT_H__
#define __FC_FORMAT_H__

#include <glib.h>

G_BEGIN_DECLS

#define FC_KEY_LEN 16
#define FC_IV_LEN 12
#define FC_TAG_LEN 16
#define FC_TRAILER_LEN 2
/* Bytes a frame grows by (before any RBSP escaping). */
#define FC_OVERHEAD (FC_TAG_LEN + FC_IV_LEN + FC_TRAILER_LEN)
#define FC_KEYRING_MAX 256

/* Clear bytes per frame kind, as livekit-client's UNENCRYPTED_BYTES. */
#define FC_CLEAR_AUDIO 1
#define FC_CLEAR_VP8_KEY 10
#define FC_CLEAR_VP8_DELTA 3

typedef enum
{
  FC_CODEC_AUDIO,
  FC_CODEC_VP8,
  FC_CODEC_VP9,
  FC_CODEC_H264,
  FC_CODEC_H265,
} FcCodec;

typedef struct
{
  /* Leading bytes of the frame that stay clear and form the AAD. */
  gsize clear_bytes;
  /* TRUE for H.264/H.265 frames whose slice NAL was found: the header's start
   * codes are normalised and the rest is RBSP escaped. */
  gboolean nalu;
} FcFrameLayout;

const gchar *fc_codec_name (FcCodec codec);

/* Computes the layout of @data (a plaintext frame when encrypting, an
 * encrypted one when decrypting; both give the same answer). @key_frame only
 * matters for the VP8 rule and the H.264/H.265 fallback to it. clear_bytes may
 * exceed @size for short frames: callers check. */
void fc_frame_layout (FcCodec codec, gboolean key_frame, const guint8 *data,
    gsize size, FcFrameLayout *layout);

/* TRUE when @data[0] of a VP8 frame says key frame (P bit clear). */
gboolean fc_vp8_is_key_frame (const guint8 *data, gsize size);

/* One NAL unit of an Annex-B byte stream, as an RTP packetiser splits it
 * (libwebrtc's FindNaluIndices): a start code is 00 00 01 followed by at
 * least one byte, plus the zero byte before it if there is one (a 4-byte start
 * code). A NAL unit runs from its start code to the next one, so further zero
 * bytes before a start code (trailing_zero_8bits) stay in the unit before it.
 * Bytes before the first start code belong to no unit. */
typedef struct
{
  /* Offset of the start code (3 or 4 bytes). */
  gsize start_code;
  /* Offset and size of the NAL unit after it (the size may be 0). */
  gsize offset;
  gsize size;
} FcNal;

/* Finds the next NAL unit of @data at or after *@pos (0 for the first);
 * returns FALSE when there is none. Each call advances *@pos. */
gboolean fc_annexb_next_nal (
    const guint8 *data, gsize size, gsize *pos, FcNal *nal);

/* The Annex-B header of an encrypted H.264/H.265 frame as a receiver
 * rebuilds it after RTP: every non-empty NAL unit (fc_annexb_next_nal())
 * behind a 4-byte start code, nothing before the first start code. This is
 * what the AAD must be. fc_annexb_normalized_size() returns the size of the
 * result; fc_annexb_normalize() writes it to @out and returns the bytes
 * written. */
gsize fc_annexb_normalized_size (const guint8 *header, gsize size);
gsize fc_annexb_normalize (const guint8 *header, gsize size, guint8 *out);

/* One RTP payload of a NAL unit (RFC 6184 / RFC 7798): a single NAL unit
 * packet, or a fragmentation unit (FU-A / FU) with its 2 (H.264) or 3 (H.265)
 * header bytes. */
typedef struct
{
  /* FU indicator and FU header (H.264), PayloadHdr and FU header (H.265);
   * header_len is 0 for a single NAL unit packet. */
  guint8 header[3];
  guint header_len;
  /* Bytes of the NAL unit that follow the header in the payload. */
  gsize offset;
  gsize size;
  /* TRUE on the last payload of the NAL unit. */
  gboolean end;
} FcRtpFragment;

/* Splits the NAL unit @nal into payloads of at most @max_payload bytes
 * (which must be at least 4): call with *@pos = 0 until it returns FALSE.
 * Returns FALSE at once for an empty unit. */
gboolean fc_h26x_next_fragment (gboolean h265, const guint8 *nal,
    gsize nal_size, gsize max_payload, gsize *pos, FcRtpFragment *fragment);

/* The largest size fc_rbsp_escape() can produce for @size input bytes. */
#define FC_RBSP_ESCAPED_MAX(size) ((size) + (size) / 2 + 2)

/* H.264 RBSP escaping (emulation prevention): a 0x03 goes after every two
 * zero bytes followed by a byte <= 3. Returns the bytes written to @out, which
 * holds at least FC_RBSP_ESCAPED_MAX(@size). */
gsize fc_rbsp_escape (const guint8 *in, gsize size, guint8 *out);

/* fc_rbsp_escape() into @out of @capacity bytes; returns G_MAXSIZE when the
 * result does not fit. */
gsize fc_rbsp_escape_bounded (
    const guint8 *in, gsize size, guint8 *out, gsize capacity);

/* TRUE when @in contains 00 00 03. */
gboolean fc_rbsp_needs_unescape (const guint8 *in, gsize size);

/* Drops every 0x03 that follows two zero bytes. @out holds @size bytes;
 * returns the bytes written. @out may equal @in. */
gsize fc_rbsp_unescape (const guint8 *in, gsize size, guint8 *out);

/* Parses hex (upper or lower case, even length, no separators). Returns NULL
 * on bad input. The bytes are wiped when the GBytes is freed. */
GBytes *fc_hex_decode (const gchar *hex);

/* A copy of @data that is wiped (OPENSSL_cleanse) when the GBytes is
 * freed: for key material and passphrases. */
GBytes *fc_secret_bytes_new (gconstpointer data, gsize size);

G_END_DECLS

#endif /* __FC_FORMAT_H__ */
