/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcsettings.h"

#include <string.h>

GType
gst_matrix_rtc_membership_format_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_MATRIX_RTC_MEMBERSHIP_FORMAT_AUTO,
        "Sticky when the homeserver supports MSC4354, legacy otherwise",
        "auto" },
    { GST_MATRIX_RTC_MEMBERSHIP_FORMAT_LEGACY,
        "Legacy state event org.matrix.msc3401.call.member", "legacy" },
    { GST_MATRIX_RTC_MEMBERSHIP_FORMAT_STICKY,
        "Sticky event org.matrix.msc4143.rtc.member (MSC4354)", "sticky" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstMatrixRtcMembershipFormat", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

const gchar *
gst_matrix_rtc_e2ee_mode_nick (GstMatrixRtcE2eeMode mode)
{
  switch (mode) {
    case GST_MATRIX_RTC_E2EE_MODE_AUTO:
      return "auto";
    case GST_MATRIX_RTC_E2EE_MODE_NONE:
      return "none";
    case GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER:
      return "per-member";
    case GST_MATRIX_RTC_E2EE_MODE_PASSPHRASE:
      return "passphrase";
    case GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED:
      return "slot-shared";
  }
  return "unknown";
}

GType
gst_matrix_rtc_e2ee_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_MATRIX_RTC_E2EE_MODE_AUTO,
        "As Element Call: passphrase if set, per-member in encrypted rooms, "
        "else none",
        "auto" },
    { GST_MATRIX_RTC_E2EE_MODE_NONE, "No end-to-end encryption", "none" },
    { GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER,
        "Per-member keys sent as Olm-encrypted to-device messages",
        "per-member" },
    { GST_MATRIX_RTC_E2EE_MODE_PASSPHRASE, "One key from a shared passphrase",
        "passphrase" },
    { GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED,
        "One key for the slot, a Megolm-encrypted room event the slot names",
        "slot-shared" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstMatrixRtcE2eeMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_matrix_rtc_video_codec_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_MATRIX_RTC_VIDEO_CODEC_VP8, "VP8 (Element Call's default)", "vp8" },
    { GST_MATRIX_RTC_VIDEO_CODEC_H264, "H.264", "h264" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstMatrixRtcVideoCodec", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

void
gst_matrix_rtc_settings_init (GstMatrixRtcSettings *settings)
{
  memset (settings, 0, sizeof (*settings));
  settings->membership_format = GST_MATRIX_RTC_MEMBERSHIP_FORMAT_AUTO;
  settings->e2ee_mode = GST_MATRIX_RTC_E2EE_MODE_AUTO;
  settings->application = g_strdup (GST_MATRIX_RTC_DEFAULT_APPLICATION);
  settings->leave_delay_ms = GST_MATRIX_RTC_DEFAULT_LEAVE_DELAY_MS;
  settings->video_codec = GST_MATRIX_RTC_VIDEO_CODEC_VP8;
  settings->video_bitrate_kbps = GST_MATRIX_RTC_DEFAULT_VIDEO_BITRATE;
  settings->audio_bitrate_kbps = GST_MATRIX_RTC_DEFAULT_AUDIO_BITRATE;
}

static void
free_secret (gchar *secret)
{
  if (secret != NULL) {
    volatile gchar *p = secret;
    while (*p != '\0')
      *p++ = '\0';
    g_free (secret);
  }
}

void
gst_matrix_rtc_settings_set_string (
    gchar **field, const gchar *value, gboolean secret)
{
  gchar *old = *field;

  *field = (value != NULL && *value != '\0') ? g_strdup (value) : NULL;
  if (secret)
    free_secret (old);
  else
    g_free (old);
}

void
gst_matrix_rtc_settings_clear (GstMatrixRtcSettings *settings)
{
  g_free (settings->homeserver);
  g_free (settings->user_id);
  free_secret (settings->password);
  free_secret (settings->access_token);
  g_free (settings->device_id);
  g_free (settings->room);
  g_free (settings->slot);
  g_free (settings->application);
  free_secret (settings->passphrase);
  g_free (settings->crypto_store);
  g_free (settings->token_service);
  g_free (settings->livekit_url);
  g_free (settings->livekit_api_key);
  free_secret (settings->livekit_api_secret);
  free_secret (settings->livekit_token);
  g_free (settings->stun_server);
  g_free (settings->turn_server);
  memset (settings, 0, sizeof (*settings));
}

void
gst_matrix_rtc_settings_copy (
    GstMatrixRtcSettings *dest, const GstMatrixRtcSettings *src)
{
  *dest = *src;
  dest->homeserver = g_strdup (src->homeserver);
  dest->user_id = g_strdup (src->user_id);
  dest->password = g_strdup (src->password);
  dest->access_token = g_strdup (src->access_token);
  dest->device_id = g_strdup (src->device_id);
  dest->room = g_strdup (src->room);
  dest->slot = g_strdup (src->slot);
  dest->application = g_strdup (src->application);
  dest->passphrase = g_strdup (src->passphrase);
  dest->crypto_store = g_strdup (src->crypto_store);
  dest->token_service = g_strdup (src->token_service);
  dest->livekit_url = g_strdup (src->livekit_url);
  dest->livekit_api_key = g_strdup (src->livekit_api_key);
  dest->livekit_api_secret = g_strdup (src->livekit_api_secret);
  dest->livekit_token = g_strdup (src->livekit_token);
  dest->stun_server = g_strdup (src->stun_server);
  dest->turn_server = g_strdup (src->turn_server);
}

const gchar *
gst_matrix_rtc_settings_get_slot (const GstMatrixRtcSettings *settings)
{
  return settings->slot != NULL ? settings->slot : GST_MATRIX_RTC_DEFAULT_SLOT;
}

static gboolean settings_error (GError **error, const gchar *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
settings_error (GError **error, const gchar *format, ...)
{
  va_list args;
  gchar *message;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (
      error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS, message);
  g_free (message);
  return FALSE;
}

/* TRUE when @url parses as an absolute URL with a host and one of the
 * NULL-terminated @schemes. */
static gboolean
url_has_scheme (const gchar *url, const gchar *const *schemes)
{
  GUri *uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  gboolean ok = FALSE;

  if (uri != NULL && g_uri_get_host (uri) != NULL
      && *g_uri_get_host (uri) != '\0')
    ok = g_strv_contains (schemes, g_uri_get_scheme (uri));
  if (uri != NULL)
    g_uri_unref (uri);
  return ok;
}

/* A Matrix identifier: @sigil, a non-empty localpart, ':', a server name. */
static gboolean
is_matrix_id (const gchar *id, gchar sigil)
{
  const gchar *colon;

  if (id == NULL || id[0] != sigil)
    return FALSE;
  colon = strchr (id, ':');
  return colon != NULL && colon > id + 1 && colon[1] != '\0'
         && strlen (id) <= 255;
}

/* A room id of room version 12 (MSC4291): '!' and the unpadded URL-safe
 * base64 of the create event's sha256 (43 characters), no server name. */
static gboolean
is_hash_room_id (const gchar *id)
{
  const gchar *p;

  if (id == NULL || id[0] != '!' || strlen (id) != 44)
    return FALSE;
  for (p = id + 1; *p != '\0'; p++) {
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_')
      return FALSE;
  }
  return TRUE;
}

gboolean
gst_matrix_rtc_settings_validate (const GstMatrixRtcSettings *s, GError **error)
{
  static const gchar *const http_schemes[] = { "http", "https", NULL };
  static const gchar *const ws_schemes[]
      = { "ws", "wss", "http", "https", NULL };
  static const gchar *const stun_schemes[] = { "stun", NULL };
  static const gchar *const turn_schemes[] = { "turn", "turns", NULL };

  if (s->homeserver == NULL)
    return settings_error (error,
        "No homeserver set: set the \"homeserver\" "
        "property to the homeserver's client-server URL, e.g. "
        "https://matrix.example.org");
  if (!url_has_scheme (s->homeserver, http_schemes))
    return settings_error (error,
        "The \"homeserver\" property is not an "
        "http:// or https:// URL: %s",
        s->homeserver);

  if (s->user_id != NULL && !is_matrix_id (s->user_id, '@'))
    return settings_error (error,
        "The \"user-id\" property is not a Matrix "
        "user id of the form @name:server: %s",
        s->user_id);
  if (s->access_token == NULL && s->password == NULL)
    return settings_error (error,
        "No credentials: set \"access-token\" (and "
        "optionally \"device-id\"), or \"user-id\" and \"password\"");
  if (s->access_token == NULL && s->user_id == NULL)
    return settings_error (error, "A \"password\" needs the \"user-id\" it "
                                  "belongs to");
  if (s->access_token != NULL && s->password != NULL)
    return settings_error (error, "Both \"access-token\" and \"password\" are "
                                  "set: set only one of them");

  if (s->room == NULL)
    return settings_error (error,
        "No room set: set the \"room\" property to "
        "a room id (!id:server) or alias (#alias:server)");
  if (!is_matrix_id (s->room, '!') && !is_matrix_id (s->room, '#')
      && !is_hash_room_id (s->room))
    return settings_error (error,
        "The \"room\" property is neither a room id "
        "(!id:server) nor an alias (#alias:server): %s",
        s->room);

  if (s->slot != NULL
      && (strchr (s->slot, '#') == NULL || s->slot[0] == '#'
          || g_str_has_suffix (s->slot, "#")))
    return settings_error (error,
        "The \"slot\" property must be of the form "
        "APPLICATION#NAME, e.g. " GST_MATRIX_RTC_DEFAULT_SLOT ": %s",
        s->slot);
  if (s->application == NULL)
    return settings_error (error,
        "The \"application\" property is empty; "
        "Element Call calls use \"" GST_MATRIX_RTC_DEFAULT_APPLICATION "\"");

  if (s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_PASSPHRASE
      && s->passphrase == NULL)
    return settings_error (error, "\"e2ee-mode\" is passphrase but no "
                                  "\"passphrase\" is set");
  if (s->passphrase != NULL
      && (s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_NONE
          || s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_PER_MEMBER
          || s->e2ee_mode == GST_MATRIX_RTC_E2EE_MODE_SLOT_SHARED))
    return settings_error (error,
        "A \"passphrase\" is set but \"e2ee-mode\" "
        "is %s: unset one of them",
        gst_matrix_rtc_e2ee_mode_nick (s->e2ee_mode));

  if (s->token_service != NULL && s->livekit_url != NULL)
    return settings_error (error,
        "Both \"token-service\" and \"livekit-url\" "
        "are set: use a token service, or a LiveKit URL with credentials");
  if (s->token_service != NULL
      && !url_has_scheme (s->token_service, http_schemes))
    return settings_error (error,
        "The \"token-service\" property is not an "
        "http:// or https:// URL: %s",
        s->token_service);
  if (s->livekit_url != NULL) {
    if (!url_has_scheme (s->livekit_url, ws_schemes))
      return settings_error (error,
          "The \"livekit-url\" property is not a "
          "ws://, wss://, http:// or https:// URL: %s",
          s->livekit_url);
    if (s->livekit_token == NULL
        && (s->livekit_api_key == NULL || s->livekit_api_secret == NULL))
      return settings_error (error,
          "\"livekit-url\" needs either "
          "\"livekit-token\", or both \"livekit-api-key\" and "
          "\"livekit-api-secret\"");
    if (s->livekit_token != NULL && s->livekit_api_key != NULL)
      return settings_error (error,
          "Both \"livekit-token\" and "
          "\"livekit-api-key\" are set: set only one of them");
  } else if (s->livekit_api_key != NULL || s->livekit_api_secret != NULL
             || s->livekit_token != NULL) {
    return settings_error (error, "LiveKit credentials are set without "
                                  "\"livekit-url\"");
  }

  if (s->stun_server != NULL && !url_has_scheme (s->stun_server, stun_schemes))
    return settings_error (error,
        "The \"stun-server\" property must look like "
        "stun://host:port: %s",
        s->stun_server);
  if (s->turn_server != NULL && !url_has_scheme (s->turn_server, turn_schemes))
    /* The URL may carry a password: do not quote it. */
    return settings_error (error, "The \"turn-server\" property must look like "
                                  "turn(s)://user:password@host:port");

  if (s->leave_delay_ms < GST_MATRIX_RTC_MIN_LEAVE_DELAY_MS
      || s->leave_delay_ms > GST_MATRIX_RTC_MAX_LEAVE_DELAY_MS)
    return settings_error (error,
        "\"leave-delay\" must be between %u and %u "
        "ms",
        GST_MATRIX_RTC_MIN_LEAVE_DELAY_MS, GST_MATRIX_RTC_MAX_LEAVE_DELAY_MS);
  return TRUE;
}
