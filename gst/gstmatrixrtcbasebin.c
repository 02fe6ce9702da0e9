/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:gstmatrixrtcbasebin
 * @title: GstMatrixRtcBaseBin
 * @short_description: base class of the MatrixRTC call participant elements
 *
 * Holds the properties that configure a MatrixRTC call participant (the
 * homeserver and credentials, the room and slot, the membership format,
 * end-to-end encryption, the transport override, ICE servers, the leave
 * delay and the publishing codecs), validates them together when the element
 * goes from NULL to READY, and calls the subclass's start() and stop() on
 * READY→PAUSED and PAUSED→READY.
 *
 * Secrets (password, access-token, passphrase, livekit-api-secret,
 * livekit-token) are write-only properties and are never logged.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcbasebin.h"

GST_DEBUG_CATEGORY_STATIC (gst_matrix_rtc_base_bin_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_base_bin_debug

enum
{
  PROP_0,
  PROP_HOMESERVER,
  PROP_USER_ID,
  PROP_PASSWORD,
  PROP_ACCESS_TOKEN,
  PROP_DEVICE_ID,
  PROP_ROOM,
  PROP_SLOT,
  PROP_APPLICATION,
  PROP_MEMBERSHIP_FORMAT,
  PROP_E2EE_MODE,
  PROP_PASSPHRASE,
  PROP_CRYPTO_STORE,
  PROP_TOKEN_SERVICE,
  PROP_LIVEKIT_URL,
  PROP_LIVEKIT_API_KEY,
  PROP_LIVEKIT_API_SECRET,
  PROP_LIVEKIT_TOKEN,
  PROP_STUN_SERVER,
  PROP_TURN_SERVER,
  PROP_LEAVE_DELAY,
  PROP_VIDEO_CODEC,
  PROP_VIDEO_BITRATE,
  PROP_AUDIO_BITRATE,
};

typedef struct
{
  GstMatrixRtcSettings settings; /* under the object lock */
  gboolean started;
} GstMatrixRtcBaseBinPrivate;

G_DEFINE_ABSTRACT_TYPE_WITH_CODE (GstMatrixRtcBaseBin, gst_matrix_rtc_base_bin,
    GST_TYPE_BIN,
    G_ADD_PRIVATE (GstMatrixRtcBaseBin)
        GST_DEBUG_CATEGORY_INIT (gst_matrix_rtc_base_bin_debug,
            "matrixrtcbasebin", 0, "MatrixRTC call participant base bin"));

#define PRIV(self)                                                             \
  ((GstMatrixRtcBaseBinPrivate *)                                              \
          gst_matrix_rtc_base_bin_get_instance_private (                       \
              GST_MATRIX_RTC_BASE_BIN (self)))

static void
gst_matrix_rtc_base_bin_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcSettings *s = &PRIV (object)->settings;
  const gchar *str = NULL;

  if (G_VALUE_HOLDS_STRING (value))
    str = g_value_get_string (value);

  GST_OBJECT_LOCK (object);
  switch (prop_id) {
    case PROP_HOMESERVER:
      gst_matrix_rtc_settings_set_string (&s->homeserver, str, FALSE);
      break;
    case PROP_USER_ID:
      gst_matrix_rtc_settings_set_string (&s->user_id, str, FALSE);
      break;
    case PROP_PASSWORD:
      gst_matrix_rtc_settings_set_string (&s->password, str, TRUE);
      break;
    case PROP_ACCESS_TOKEN:
      gst_matrix_rtc_settings_set_string (&s->access_token, str, TRUE);
      break;
    case PROP_DEVICE_ID:
      gst_matrix_rtc_settings_set_string (&s->device_id, str, FALSE);
      break;
    case PROP_ROOM:
      gst_matrix_rtc_settings_set_string (&s->room, str, FALSE);
      break;
    case PROP_SLOT:
      gst_matrix_rtc_settings_set_string (&s->slot, str, FALSE);
      break;
    case PROP_APPLICATION:
      gst_matrix_rtc_settings_set_string (&s->application, str, FALSE);
      break;
    case PROP_MEMBERSHIP_FORMAT:
      s->membership_format = g_value_get_enum (value);
      break;
    case PROP_E2EE_MODE:
      s->e2ee_mode = g_value_get_enum (value);
      break;
    case PROP_PASSPHRASE:
      gst_matrix_rtc_settings_set_string (&s->passphrase, str, TRUE);
      break;
    case PROP_CRYPTO_STORE:
      gst_matrix_rtc_settings_set_string (&s->crypto_store, str, FALSE);
      break;
    case PROP_TOKEN_SERVICE:
      gst_matrix_rtc_settings_set_string (&s->token_service, str, FALSE);
      break;
    case PROP_LIVEKIT_URL:
      gst_matrix_rtc_settings_set_string (&s->livekit_url, str, FALSE);
      break;
    case PROP_LIVEKIT_API_KEY:
      gst_matrix_rtc_settings_set_string (&s->livekit_api_key, str, FALSE);
      break;
    case PROP_LIVEKIT_API_SECRET:
      gst_matrix_rtc_settings_set_string (&s->livekit_api_secret, str, TRUE);
      break;
    case PROP_LIVEKIT_TOKEN:
      gst_matrix_rtc_settings_set_string (&s->livekit_token, str, TRUE);
      break;
    case PROP_STUN_SERVER:
      gst_matrix_rtc_settings_set_string (&s->stun_server, str, FALSE);
      break;
    case PROP_TURN_SERVER:
      gst_matrix_rtc_settings_set_string (&s->turn_server, str, TRUE);
      break;
    case PROP_LEAVE_DELAY:
      s->leave_delay_ms = g_value_get_uint (value);
      break;
    case PROP_VIDEO_CODEC:
      s->video_codec = g_value_get_enum (value);
      break;
    case PROP_VIDEO_BITRATE:
      s->video_bitrate_kbps = g_value_get_uint (value);
      break;
    case PROP_AUDIO_BITRATE:
      s->audio_bitrate_kbps = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (object);
}

static void
gst_matrix_rtc_base_bin_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcSettings *s = &PRIV (object)->settings;

  GST_OBJECT_LOCK (object);
  switch (prop_id) {
    case PROP_HOMESERVER:
      g_value_set_string (value, s->homeserver);
      break;
    case PROP_USER_ID:
      g_value_set_string (value, s->user_id);
      break;
    case PROP_DEVICE_ID:
      g_value_set_string (value, s->device_id);
      break;
    case PROP_ROOM:
      g_value_set_string (value, s->room);
      break;
    case PROP_SLOT:
      g_value_set_string (value, gst_matrix_rtc_settings_get_slot (s));
      break;
    case PROP_APPLICATION:
      g_value_set_string (value, s->application);
      break;
    case PROP_MEMBERSHIP_FORMAT:
      g_value_set_enum (value, s->membership_format);
      break;
    case PROP_E2EE_MODE:
      g_value_set_enum (value, s->e2ee_mode);
      break;
    case PROP_CRYPTO_STORE:
      g_value_set_string (value, s->crypto_store);
      break;
    case PROP_TOKEN_SERVICE:
      g_value_set_string (value, s->token_service);
      break;
    case PROP_LIVEKIT_URL:
      g_value_set_string (value, s->livekit_url);
      break;
    case PROP_LIVEKIT_API_KEY:
      g_value_set_string (value, s->livekit_api_key);
      break;
    case PROP_STUN_SERVER:
      g_value_set_string (value, s->stun_server);
      break;
    case PROP_LEAVE_DELAY:
      g_value_set_uint (value, s->leave_delay_ms);
      break;
    case PROP_VIDEO_CODEC:
      g_value_set_enum (value, s->video_codec);
      break;
    case PROP_VIDEO_BITRATE:
      g_value_set_uint (value, s->video_bitrate_kbps);
      break;
    case PROP_AUDIO_BITRATE:
      g_value_set_uint (value, s->audio_bitrate_kbps);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (object);
}

void
gst_matrix_rtc_base_bin_get_settings (
    GstMatrixRtcBaseBin *self, GstMatrixRtcSettings *settings)
{
  GST_OBJECT_LOCK (self);
  gst_matrix_rtc_settings_copy (settings, &PRIV (self)->settings);
  GST_OBJECT_UNLOCK (self);
}

static GstStateChangeReturn
gst_matrix_rtc_base_bin_change_state (
    GstElement *element, GstStateChange transition)
{
  GstMatrixRtcBaseBin *self = GST_MATRIX_RTC_BASE_BIN (element);
  GstMatrixRtcBaseBinClass *klass = GST_MATRIX_RTC_BASE_BIN_GET_CLASS (self);
  GstMatrixRtcBaseBinPrivate *priv = PRIV (self);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY: {
      GstMatrixRtcSettings settings;
      GError *error = NULL;
      gboolean valid;

      gst_matrix_rtc_base_bin_get_settings (self, &settings);
      valid = gst_matrix_rtc_settings_validate (&settings, &error);
      gst_matrix_rtc_settings_clear (&settings);
      if (!valid) {
        GST_ELEMENT_ERROR (
            self, RESOURCE, SETTINGS, ("%s", error->message), (NULL));
        g_error_free (error);
        return GST_STATE_CHANGE_FAILURE;
      }
      break;
    }
    case GST_STATE_CHANGE_READY_TO_PAUSED: {
      GstMatrixRtcSettings settings;
      gboolean started = TRUE;

      if (klass->start != NULL) {
        gst_matrix_rtc_base_bin_get_settings (self, &settings);
        started = klass->start (self, &settings);
        gst_matrix_rtc_settings_clear (&settings);
      }
      if (!started)
        return GST_STATE_CHANGE_FAILURE;
      priv->started = TRUE;
      break;
    }
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (gst_matrix_rtc_base_bin_parent_class)
            ->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;

  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      if (priv->started && klass->stop != NULL)
        klass->stop (self);
      priv->started = FALSE;
      break;
    default:
      break;
  }
  return ret;
}

static void
gst_matrix_rtc_base_bin_finalize (GObject *object)
{
  gst_matrix_rtc_settings_clear (&PRIV (object)->settings);
  G_OBJECT_CLASS (gst_matrix_rtc_base_bin_parent_class)->finalize (object);
}

static void
gst_matrix_rtc_base_bin_init (GstMatrixRtcBaseBin *self)
{
  gst_matrix_rtc_settings_init (&PRIV (self)->settings);
}

#define STRING_PROP(id, name, nick, blurb)                                     \
  g_object_class_install_property (gobject_class, id,                          \
      g_param_spec_string (name, nick, blurb, NULL,                            \
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS                           \
              | GST_PARAM_MUTABLE_READY))
/* Secrets can be set, never read back. */
#define SECRET_PROP(id, name, nick, blurb)                                     \
  g_object_class_install_property (gobject_class, id,                          \
      g_param_spec_string (name, nick, blurb, NULL,                            \
          G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS                            \
              | GST_PARAM_MUTABLE_READY))

static void
gst_matrix_rtc_base_bin_class_init (GstMatrixRtcBaseBinClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_matrix_rtc_base_bin_set_property;
  gobject_class->get_property = gst_matrix_rtc_base_bin_get_property;
  gobject_class->finalize = gst_matrix_rtc_base_bin_finalize;
  element_class->change_state
      = GST_DEBUG_FUNCPTR (gst_matrix_rtc_base_bin_change_state);

  /**
   * GstMatrixRtcBaseBin:homeserver:
   *
   * The homeserver's client-server API URL, e.g. https://matrix.example.org.
   */
  STRING_PROP (PROP_HOMESERVER, "homeserver", "Homeserver",
      "Client-server API URL of the homeserver (http:// or https://)");
  /**
   * GstMatrixRtcBaseBin:user-id:
   *
   * The Matrix user to log in as (@name:server); with an access token it is
   * optional and read from whoami.
   */
  STRING_PROP (PROP_USER_ID, "user-id", "User ID",
      "Matrix user id (@name:server) to log in as");
  /**
   * GstMatrixRtcBaseBin:password:
   *
   * The password of #GstMatrixRtcBaseBin:user-id. Write-only, never logged.
   */
  SECRET_PROP (PROP_PASSWORD, "password", "Password",
      "Password for user-id (write-only)");
  /**
   * GstMatrixRtcBaseBin:access-token:
   *
   * An access token to use instead of logging in with a password.
   * Write-only, never logged.
   */
  SECRET_PROP (PROP_ACCESS_TOKEN, "access-token", "Access token",
      "Access token to use instead of a password (write-only)");
  /**
   * GstMatrixRtcBaseBin:device-id:
   *
   * The device to log in as; keep it (with #GstMatrixRtcBaseBin:crypto-store)
   * so that other members keep trusting the same device across runs.
   */
  STRING_PROP (PROP_DEVICE_ID, "device-id", "Device ID",
      "Matrix device id (created on password login when unset)");
  /**
   * GstMatrixRtcBaseBin:room:
   *
   * The room of the call, by id (!id:server) or alias (#alias:server).
   */
  STRING_PROP (PROP_ROOM, "room", "Room",
      "Room id (!id:server) or alias (#alias:server) of the call");
  /**
   * GstMatrixRtcBaseBin:slot:
   *
   * The MatrixRTC slot id in the room; Element Call uses `m.call#ROOM`.
   */
  g_object_class_install_property (gobject_class, PROP_SLOT,
      g_param_spec_string ("slot", "Slot", "MatrixRTC slot id in the room",
          GST_MATRIX_RTC_DEFAULT_SLOT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));
  /**
   * GstMatrixRtcBaseBin:application:
   *
   * The MatrixRTC application type of the membership.
   */
  g_object_class_install_property (gobject_class, PROP_APPLICATION,
      g_param_spec_string ("application", "Application",
          "MatrixRTC application type", GST_MATRIX_RTC_DEFAULT_APPLICATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));
  /**
   * GstMatrixRtcBaseBin:membership-format:
   *
   * How our membership is written: legacy state events are what deployed
   * Element Call writes in its default mode and what every version sees;
   * sticky events (MSC4354) are the MatrixRTC proposal's form.
   */
  g_object_class_install_property (gobject_class, PROP_MEMBERSHIP_FORMAT,
      g_param_spec_enum ("membership-format", "Membership format",
          "How our own membership is written to the room",
          GST_TYPE_MATRIX_RTC_MEMBERSHIP_FORMAT,
          GST_MATRIX_RTC_MEMBERSHIP_FORMAT_AUTO,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));
  /**
   * GstMatrixRtcBaseBin:e2ee-mode:
   *
   * End-to-end encryption of media. auto follows Element Call: the
   * passphrase when #GstMatrixRtcBaseBin:passphrase is set; otherwise,
   * once the room was joined, per-member Olm keys when the room has
   * `m.room.encryption`, else none. Local media waits for that decision
   * and, encrypted without a key yet, is dropped and counted, never sent
   * in the clear. The mode in force is the `e2ee-mode` field of the call
   * elements' `stats`. slot-shared (never chosen by auto) uses one key for
   * the whole slot: a Megolm-encrypted room event the slot state event
   * names, rotated by a moderator with the call elements'
   * "rotate-slot-key" action; it works for matrixrtcsrc and matrixrtcsink
   * too and needs an encrypted room.
   */
  g_object_class_install_property (gobject_class, PROP_E2EE_MODE,
      g_param_spec_enum ("e2ee-mode", "E2EE mode",
          "End-to-end encryption of media", GST_TYPE_MATRIX_RTC_E2EE_MODE,
          GST_MATRIX_RTC_E2EE_MODE_AUTO,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));
  /**
   * GstMatrixRtcBaseBin:passphrase:
   *
   * The shared passphrase of a passphrase-encrypted call (Element Call's
   * `password=`). Write-only, never logged.
   */
  SECRET_PROP (PROP_PASSPHRASE, "passphrase", "Passphrase",
      "Shared E2EE passphrase, as Element Call's password= (write-only)");
  /**
   * GstMatrixRtcBaseBin:crypto-store:
   *
   * A file that keeps this device's encryption keys (encrypted, mode 0600)
   * across runs. Unset: a new device is made each run.
   */
  STRING_PROP (PROP_CRYPTO_STORE, "crypto-store", "Crypto store",
      "File keeping this device's encryption keys across runs");
  /**
   * GstMatrixRtcBaseBin:token-service:
   *
   * Overrides the LiveKit token service (lk-jwt-service) that the homeserver
   * advertises.
   */
  STRING_PROP (PROP_TOKEN_SERVICE, "token-service", "Token service",
      "LiveKit token service URL, overriding the homeserver's transports");
  /**
   * GstMatrixRtcBaseBin:livekit-url:
   *
   * Publish on this LiveKit SFU directly, without a token service, with
   * #GstMatrixRtcBaseBin:livekit-api-key and
   * #GstMatrixRtcBaseBin:livekit-api-secret or a ready
   * #GstMatrixRtcBaseBin:livekit-token.
   */
  STRING_PROP (PROP_LIVEKIT_URL, "livekit-url", "LiveKit URL",
      "LiveKit SFU URL to use without a token service");
  STRING_PROP (PROP_LIVEKIT_API_KEY, "livekit-api-key", "LiveKit API key",
      "API key to mint LiveKit tokens with (with livekit-url)");
  SECRET_PROP (PROP_LIVEKIT_API_SECRET, "livekit-api-secret",
      "LiveKit API secret",
      "API secret to mint LiveKit tokens with (write-only)");
  SECRET_PROP (PROP_LIVEKIT_TOKEN, "livekit-token", "LiveKit token",
      "A ready LiveKit JWT for livekit-url (write-only)");
  /**
   * GstMatrixRtcBaseBin:stun-server:
   *
   * The STUN server, replacing the ones the SFU hands out.
   */
  STRING_PROP (PROP_STUN_SERVER, "stun-server", "STUN server",
      "STUN server (stun://host:port) replacing the SFU's");
  /**
   * GstMatrixRtcBaseBin:turn-server:
   *
   * A TURN server (turn(s)://user:password@host:port). Write-only, as it
   * carries a password.
   */
  SECRET_PROP (PROP_TURN_SERVER, "turn-server", "TURN server",
      "TURN server (turn(s)://user:password@host:port, write-only)");
  /**
   * GstMatrixRtcBaseBin:leave-delay:
   *
   * How long after we stop answering the homeserver sends our leave (a
   * delayed event, MSC4140), so that a crash still leaves the call.
   */
  g_object_class_install_property (gobject_class, PROP_LEAVE_DELAY,
      g_param_spec_uint ("leave-delay", "Leave delay",
          "Milliseconds after which the homeserver leaves the call for us "
          "when we stop answering",
          GST_MATRIX_RTC_MIN_LEAVE_DELAY_MS, GST_MATRIX_RTC_MAX_LEAVE_DELAY_MS,
          GST_MATRIX_RTC_DEFAULT_LEAVE_DELAY_MS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_VIDEO_CODEC,
      g_param_spec_enum ("video-codec", "Video codec",
          "Codec raw video is encoded to before publishing",
          GST_TYPE_MATRIX_RTC_VIDEO_CODEC, GST_MATRIX_RTC_VIDEO_CODEC_VP8,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_VIDEO_BITRATE,
      g_param_spec_uint ("video-bitrate", "Video bitrate",
          "Target bitrate of encoded video in kbit/s", 50, 50000,
          GST_MATRIX_RTC_DEFAULT_VIDEO_BITRATE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_AUDIO_BITRATE,
      g_param_spec_uint ("audio-bitrate", "Audio bitrate",
          "Target bitrate of encoded audio in kbit/s", 6, 510,
          GST_MATRIX_RTC_DEFAULT_AUDIO_BITRATE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));

  gst_type_mark_as_plugin_api (GST_TYPE_MATRIX_RTC_BASE_BIN, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MATRIX_RTC_MEMBERSHIP_FORMAT, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MATRIX_RTC_E2EE_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MATRIX_RTC_VIDEO_CODEC, 0);
}
