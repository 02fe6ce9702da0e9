/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_FRAME_CRYPTOR_H__
#define __GST_MATRIX_RTC_FRAME_CRYPTOR_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

#include "fckeyring.h"

G_BEGIN_DECLS

/**
 * GstMatrixRtcKeyDerivation:
 * @GST_MATRIX_RTC_KEY_DERIVATION_HKDF: HKDF-SHA256 (Element Call's
 *   per-member keys)
 * @GST_MATRIX_RTC_KEY_DERIVATION_PBKDF2: PBKDF2-SHA256, 100000 iterations
 *   (Element Call's shared-key mode)
 *
 * How key material becomes the AES-128-GCM key (salt "LKFrameEncryptionKey"
 * for both). The values match #FcKdf.
 */
typedef enum
{
  GST_MATRIX_RTC_KEY_DERIVATION_HKDF = FC_KDF_HKDF,
  GST_MATRIX_RTC_KEY_DERIVATION_PBKDF2 = FC_KDF_PBKDF2,
} GstMatrixRtcKeyDerivation;

#define GST_TYPE_MATRIX_RTC_KEY_DERIVATION                                     \
  (gst_matrix_rtc_key_derivation_get_type ())
GType gst_matrix_rtc_key_derivation_get_type (void);

#define GST_TYPE_MATRIX_RTC_FRAME_CRYPTOR                                      \
  (gst_matrix_rtc_frame_cryptor_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstMatrixRtcFrameCryptor,
    gst_matrix_rtc_frame_cryptor, GST, MATRIX_RTC_FRAME_CRYPTOR,
    GstBaseTransform);

/**
 * GstMatrixRtcFrameCryptorClass:
 * @encrypt: %TRUE for the encryptor, %FALSE for the decryptor.
 * @set_key: the #GstMatrixRtcFrameCryptor::set-key action.
 * @ratchet_key: the #GstMatrixRtcFrameCryptor::ratchet-key action.
 *
 * The shared base of matrixrtcframeenc and matrixrtcframedec: key
 * properties and actions over one #FcKeyring, codec from caps, drop
 * accounting and bus messages.
 */
struct _GstMatrixRtcFrameCryptorClass
{
  GstBaseTransformClass parent_class;

  gboolean encrypt;

  /* actions */
  gboolean (*set_key) (
      GstMatrixRtcFrameCryptor *self, guint index, GBytes *material);
  gboolean (*ratchet_key) (GstMatrixRtcFrameCryptor *self, guint index);
};

#define GST_MATRIX_RTC_FRAME_CRYPTOR_CAPS                                      \
  "audio/x-opus; video/x-vp8; video/x-vp9; "                                   \
  "video/x-h264, stream-format = (string) byte-stream, "                       \
  "alignment = (string) au; "                                                  \
  "video/x-h265, stream-format = (string) byte-stream, "                       \
  "alignment = (string) au"

G_END_DECLS

#endif /* __GST_MATRIX_RTC_FRAME_CRYPTOR_H__ */
