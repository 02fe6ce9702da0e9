/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_MATRIX_RTC_SETTINGS_H__
#define __GST_MATRIX_RTC_SETTINGS_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/**
 * GstMatrixRtcMembershipFormat:
 * @GST_MATRIX_RTC_MEMBERSHIP_FORMAT_AUTO: sticky when the homeserver
 *   advertises MSC4354 (`org.matrix.msc4354`), legacy otherwise
 * @GST_MATRIX_RTC_MEMBERSHIP_FORMAT_LEGACY: a state event
 *   `org.matrix.msc3401.call.member`, as deployed Element Call writes in its
 *   default "compatibility" mode; every Element Call version sees it
 * @GST_MATRIX_RTC_MEMBERSHIP_FORMAT_STICKY: a sticky
 *   `org.matrix.msc4143.rtc.member` event (MSC4354) with a pseudonymous
 *   member id, as Element Call's "matrix_2_0" mode writes; Element Call in
 *   compatibility mode also reads it
 *
 * How our own membership is written to the room.
 */
typedef enum
{
  GST_MATRIX_RTC_MEMBERSHIP_FORMAT_AUTO,
  GST_MATRIX_RTC_MEMBERSHIP_FORMAT_LEGACY,
  GST_MATRIX_RTC_MEMBERSHIP_FORMAT_STICKY,
} GstMatrixRtcMembershipFormat;

/**
 * GstMatrixRtcE2eeMode:
 * @GST_MATRIX_RTC_E2EE_MODE_AUTO: as Element Call: a passphrase when one is
 *   set, per-member keys in rooms with `m.room.encryption`, none otherwise
 * @GST_MATRIX_RTC_E2EE_MODE_NONE: media is not end-to-end encrypted
 * @GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER: each member's media key is sent to
 *   every other member as Olm-encrypted to-device messages
 * @GST_MATRIX_RTC_E2EE_MODE_PASSPHRASE: one key derived from a shared
 *   passphrase (Element Call's `password=` rooms)
 * @GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED: one key for the whole slot, sent
 *   as a Megolm-encrypted room event
 *   (`org.matrix.msc4143.rtc.shared_encryption_key`) that the slot state
 *   event names in application["m.shared_key_event"]; a moderator rotates
 *   it ("rotate-slot-key"). Needs an encrypted room. Media is dropped, never
 *   sent in clear, while no key is known.
 *
 * How media is end-to-end encrypted.
 */
typedef enum
{
  GST_MATRIX_RTC_E2EE_MODE_AUTO,
  GST_MATRIX_RTC_E2EE_MODE_NONE,
  GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER,
  GST_MATRIX_RTC_E2EE_MODE_PASSPHRASE,
  GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED,
} GstMatrixRtcE2eeMode;

/**
 * GstMatrixRtcVideoCodec:
 * @GST_MATRIX_RTC_VIDEO_CODEC_VP8: VP8, Element Call's default
 * @GST_MATRIX_RTC_VIDEO_CODEC_H264: H.264 (constrained baseline)
 *
 * The codec raw video is encoded to before it is published.
 */
typedef enum
{
  GST_MATRIX_RTC_VIDEO_CODEC_VP8,
  GST_MATRIX_RTC_VIDEO_CODEC_H264,
} GstMatrixRtcVideoCodec;

GType gst_matrix_rtc_membership_format_get_type (void);
#define GST_TYPE_MATRIX_RTC_MEMBERSHIP_FORMAT                                  \
  (gst_matrix_rtc_membership_format_get_type ())
GType gst_matrix_rtc_e2ee_mode_get_type (void);
#define GST_TYPE_MATRIX_RTC_E2EE_MODE (gst_matrix_rtc_e2ee_mode_get_type ())
/* The mode's nick ("auto", "none", "per-member", "passphrase",
 * "slot-shared"). */
const gchar *gst_matrix_rtc_e2ee_mode_nick (GstMatrixRtcE2eeMode mode);
GType gst_matrix_rtc_video_codec_get_type (void);
#define GST_TYPE_MATRIX_RTC_VIDEO_CODEC (gst_matrix_rtc_video_codec_get_type ())

#define GST_MATRIX_RTC_DEFAULT_SLOT "m.call#ROOM"
#define GST_MATRIX_RTC_DEFAULT_APPLICATION "m.call"
#define GST_MATRIX_RTC_DEFAULT_LEAVE_DELAY_MS 18000
#define GST_MATRIX_RTC_MIN_LEAVE_DELAY_MS 2000
#define GST_MATRIX_RTC_MAX_LEAVE_DELAY_MS (24 * 3600 * 1000)
#define GST_MATRIX_RTC_DEFAULT_VIDEO_BITRATE 1500
#define GST_MATRIX_RTC_DEFAULT_AUDIO_BITRATE 32

/**
 * GstMatrixRtcSettings:
 *
 * Everything a call participant is configured with, as the elements'
 * properties set it. Plain data, no I/O: the elements copy it under their
 * object lock, validate it on NULL→READY and hand the copy to the session.
 * Secrets (@password, @access_token, @passphrase, @livekit_api_secret,
 * @livekit_token) are wiped when the settings are cleared and are never
 * logged.
 */
typedef struct
{
  gchar *homeserver;
  gchar *user_id;
  gchar *password;
  gchar *access_token;
  gchar *device_id;
  gchar *room;
  gchar *slot;
  gchar *application;
  GstMatrixRtcMembershipFormat membership_format;

  GstMatrixRtcE2eeMode e2ee_mode;
  gchar *passphrase;
  gchar *crypto_store;

  /* Transport override: a token service, or a LiveKit URL with an API key
   * and secret (we mint the JWT) or with a ready JWT. */
  gchar *token_service;
  gchar *livekit_url;
  gchar *livekit_api_key;
  gchar *livekit_api_secret;
  gchar *livekit_token;

  gchar *stun_server;
  gchar *turn_server;
  guint leave_delay_ms;

  GstMatrixRtcVideoCodec video_codec;
  guint video_bitrate_kbps;
  guint audio_bitrate_kbps;
} GstMatrixRtcSettings;

void gst_matrix_rtc_settings_init (GstMatrixRtcSettings *settings);
void gst_matrix_rtc_settings_clear (GstMatrixRtcSettings *settings);
void gst_matrix_rtc_settings_copy (
    GstMatrixRtcSettings *dest, const GstMatrixRtcSettings *src);

/* Replaces the string *@field by a copy of @value, wiping the old one when
 * @secret. */
void gst_matrix_rtc_settings_set_string (
    gchar **field, const gchar *value, gboolean secret);

/* The slot id in use (@slot, or the default `m.call#ROOM`). */
const gchar *gst_matrix_rtc_settings_get_slot (
    const GstMatrixRtcSettings *settings);

/* Checks the settings as a whole; on error, @error (GST_RESOURCE_ERROR_SETTINGS)
 * says which property is wrong and why. Never quotes a secret. */
gboolean gst_matrix_rtc_settings_validate (
    const GstMatrixRtcSettings *settings, GError **error);

G_END_DECLS

#endif /* __GST_MATRIX_RTC_SETTINGS_H__ */
