/* gst-matrixrtc
 * Copyright (C) 2026 The gst-matrixrtc authors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:gstmatrixrtcframecryptor
 * @title: GstMatrixRtcFrameCryptor
 * @short_description: base class of the LiveKit E2EE frame elements
 *
 * Holds the keyring (#FcKeyring from ext/framecrypto), the key properties
 * and the #GstMatrixRtcFrameCryptor::set-key and
 * #GstMatrixRtcFrameCryptor::ratchet-key actions, finds the codec in the
 * caps and runs every buffer (one encoded frame) through the keyring. A frame
 * that cannot be processed is dropped, counted in #GstMatrixRtcFrameCryptor:stats
 * and reported with a rate-limited warning and an element message
 * `matrixrtc-frame-crypto-error` naming the key index (at most one per key
 * index and a few in all per second). The buffer after a dropped frame is
 * marked DISCONT, and for video a key frame is requested upstream
 * (rate-limited): the decryptor sends it towards the depayloader and
 * rtpsession, which turn it into a PLI; the encryptor sends it to the
 * encoder when frames flow again after drops. Key material is never logged.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmatrixrtcframecryptor.h"

#include <gst/video/video.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_matrix_rtc_frame_cryptor_debug);
#define GST_CAT_DEFAULT gst_matrix_rtc_frame_cryptor_debug

#define DEFAULT_KEY_INDEX 0
#define DEFAULT_KEY_DERIVATION GST_MATRIX_RTC_KEY_DERIVATION_HKDF
#define DEFAULT_RATCHET_WINDOW 10
#define DEFAULT_FAILURE_TOLERANCE 10
/* Element Call's shared-key (passphrase, PBKDF2) mode */
#define SHARED_KEY_RATCHET_WINDOW 0
#define SHARED_KEY_FAILURE_TOLERANCE (-1)
#define DEFAULT_KEYRING_SIZE FC_KEYRING_MAX
/* At most one warning and one bus message per key index per interval, and
 * at most REPORTS_PER_INTERVAL in all. */
#define REPORT_INTERVAL_US G_USEC_PER_SEC
#define REPORTS_PER_INTERVAL 4
/* At most one upstream key frame request per interval. */
#define KEY_UNIT_INTERVAL_US (G_USEC_PER_SEC / 2)

enum
{
  PROP_0,
  PROP_KEY,
  PROP_KEY_INDEX,
  PROP_PASSPHRASE,
  PROP_KEY_DERIVATION,
  PROP_RATCHET_WINDOW,
  PROP_FAILURE_TOLERANCE,
  PROP_KEYRING_SIZE,
  PROP_SIF_TRAILER,
  PROP_STATS,
};

enum
{
  SIGNAL_SET_KEY,
  SIGNAL_RATCHET_KEY,
  LAST_SIGNAL
};

static guint signals[LAST_SIGNAL];

typedef struct
{
  FcKeyring *keyring;

  /* Set in set_caps, read in the streaming thread. */
  FcCodec codec;
  gboolean have_codec;

  /* Streaming thread only: mark the next output DISCONT; (encryptor) ask
   * for a key frame when frames flow again; last key frame request. */
  gboolean discont_pending;
  gboolean resume_pending;
  gint64 last_key_unit_request;

  GMutex lock;
  /* Protected by lock: */
  gboolean started;
  guint key_index;
  FcKdf kdf;
  /* Set by the user, not by the mode a key or passphrase selects. */
  gboolean kdf_explicit;
  gboolean ratchet_window_explicit;
  gboolean failure_tolerance_explicit;
  /* The key or passphrase property given before the element started: stored
   * at key-index on start, so the properties can come in any order. */
  GBytes *pending_material;
  FcKdf pending_kdf;
  gchar *sif_trailer_hex;
  guint64 passthrough_frames;
  guint64 dropped_frames;
  gint64 last_report[FC_KEYRING_MAX];
  guint64 unreported[FC_KEYRING_MAX];
  gint64 report_window_start;
  guint reports_in_window;
} GstMatrixRtcFrameCryptorPrivate;

#define parent_class gst_matrix_rtc_frame_cryptor_parent_class
G_DEFINE_ABSTRACT_TYPE_WITH_CODE (
    GstMatrixRtcFrameCryptor, gst_matrix_rtc_frame_cryptor,
    GST_TYPE_BASE_TRANSFORM, G_ADD_PRIVATE (GstMatrixRtcFrameCryptor);
    GST_DEBUG_CATEGORY_INIT (gst_matrix_rtc_frame_cryptor_debug,
        "matrixrtcframecryptor", 0, "MatrixRTC frame E2EE base"));

#define GET_PRIV(obj)                                                          \
  ((GstMatrixRtcFrameCryptorPrivate *)                                         \
          gst_matrix_rtc_frame_cryptor_get_instance_private (                  \
              GST_MATRIX_RTC_FRAME_CRYPTOR (obj)))

GType
gst_matrix_rtc_key_derivation_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    { GST_MATRIX_RTC_KEY_DERIVATION_HKDF, "HKDF-SHA256 (per-member keys)",
        "hkdf" },
    { GST_MATRIX_RTC_KEY_DERIVATION_PBKDF2, "PBKDF2-SHA256 (shared-key mode)",
        "pbkdf2" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstMatrixRtcKeyDerivation", values);

    g_once_init_leave (&type, t);
  }
  return (GType)type;
}

/* Installs @material at @index; returns FALSE on bad material. */
static gboolean
install_key (
    GstMatrixRtcFrameCryptor *self, guint index, FcKdf kdf, GBytes *material)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);
  gsize size = 0;
  const guint8 *data = material ? g_bytes_get_data (material, &size) : NULL;

  if (index >= FC_KEYRING_MAX || data == NULL || size == 0) {
    GST_WARNING_OBJECT (self, "rejecting empty key or key index %u", index);
    return FALSE;
  }
  if (!fc_keyring_set_key (priv->keyring, index, kdf, data, size, TRUE)) {
    GST_WARNING_OBJECT (self, "key derivation failed for key index %u", index);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "key set at index %u (%s)", index,
      kdf == FC_KDF_PBKDF2 ? "PBKDF2" : "HKDF");
  return TRUE;
}

static gboolean
gst_matrix_rtc_frame_cryptor_set_key (
    GstMatrixRtcFrameCryptor *self, guint index, GBytes *material)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);
  FcKdf kdf;

  g_mutex_lock (&priv->lock);
  kdf = priv->kdf;
  g_mutex_unlock (&priv->lock);
  return install_key (self, index, kdf, material);
}

static gboolean
gst_matrix_rtc_frame_cryptor_ratchet_key (
    GstMatrixRtcFrameCryptor *self, guint index)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);

  if (!fc_keyring_ratchet (priv->keyring, index)) {
    GST_WARNING_OBJECT (self, "no key to ratchet at index %u", index);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "ratcheted key at index %u", index);
  return TRUE;
}

/* The ratchet window and failure tolerance the user did not set follow the
 * mode: none and never give up in the shared-key (PBKDF2) mode, as Element
 * Call has it (a PBKDF2 ratchet chain takes seconds), else the defaults. */
static void
apply_mode_defaults (GstMatrixRtcFrameCryptor *self)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);
  gboolean shared, window_explicit, tolerance_explicit;

  g_mutex_lock (&priv->lock);
  shared = priv->kdf == FC_KDF_PBKDF2;
  window_explicit = priv->ratchet_window_explicit;
  tolerance_explicit = priv->failure_tolerance_explicit;
  g_mutex_unlock (&priv->lock);
  if (!window_explicit)
    fc_keyring_set_ratchet_window (priv->keyring,
        shared ? SHARED_KEY_RATCHET_WINDOW : DEFAULT_RATCHET_WINDOW);
  if (!tolerance_explicit)
    fc_keyring_set_failure_tolerance (priv->keyring,
        shared ? SHARED_KEY_FAILURE_TOLERANCE : DEFAULT_FAILURE_TOLERANCE);
}

/* The key (@passphrase FALSE) or passphrase property: stored at key-index
 * now, or on start when the element has not started yet. Takes @material
 * (NULL: nothing to store). */
static void
set_property_material (
    GstMatrixRtcFrameCryptor *self, GBytes *material, gboolean passphrase)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);
  GBytes *old = NULL;
  gboolean started;
  guint index;
  FcKdf kdf;

  g_mutex_lock (&priv->lock);
  if (!priv->kdf_explicit)
    priv->kdf = passphrase ? FC_KDF_PBKDF2 : FC_KDF_HKDF;
  kdf = passphrase ? FC_KDF_PBKDF2 : priv->kdf;
  index = priv->key_index;
  started = priv->started;
  if (!started) {
    old = priv->pending_material;
    priv->pending_material = material;
    priv->pending_kdf = kdf;
    material = NULL;
  }
  g_mutex_unlock (&priv->lock);

  apply_mode_defaults (self);
  if (old)
    g_bytes_unref (old);
  if (material) {
    install_key (self, index, kdf, material);
    g_bytes_unref (material);
  }
}

static GstStructure *
create_stats (GstMatrixRtcFrameCryptor *self)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);
  GstStructure *s;
  GValue keys = G_VALUE_INIT;
  FcKeyStats total = {
    0,
  };
  guint64 passthrough, dropped;
  guint i;

  g_value_init (&keys, GST_TYPE_ARRAY);
  for (i = 0; i < FC_KEYRING_MAX; i++) {
    FcKeyStats st;
    gboolean present, invalid;
    GValue v = G_VALUE_INIT;

    fc_keyring_get_stats (priv->keyring, i, &st);
    present = fc_keyring_has_key (priv->keyring, i);
    invalid = fc_keyring_is_invalid (priv->keyring, i);
    total.frames += st.frames;
    total.bytes += st.bytes;
    total.failures += st.failures;
    total.ratchets += st.ratchets;
    if (!present && !invalid && st.frames == 0 && st.failures == 0
        && st.ratchets == 0)
      continue;
    g_value_init (&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed (
        &v, gst_structure_new ("key-stats", "index", G_TYPE_UINT, i, "present",
                G_TYPE_BOOLEAN, present, "invalid", G_TYPE_BOOLEAN, invalid,
                "frames", G_TYPE_UINT64, st.frames, "bytes", G_TYPE_UINT64,
                st.bytes, "failures", G_TYPE_UINT64, st.failures, "ratchets",
                G_TYPE_UINT64, st.ratchets, NULL));
    gst_value_array_append_and_take_value (&keys, &v);
  }

  g_mutex_lock (&priv->lock);
  passthrough = priv->passthrough_frames;
  dropped = priv->dropped_frames;
  g_mutex_unlock (&priv->lock);

  s = gst_structure_new ("application/x-matrixrtc-frame-crypto-stats",
      "current-key-index", G_TYPE_UINT,
      fc_keyring_get_current_index (priv->keyring), "frames", G_TYPE_UINT64,
      total.frames, "bytes", G_TYPE_UINT64, total.bytes, "failures",
      G_TYPE_UINT64, total.failures, "ratchets", G_TYPE_UINT64, total.ratchets,
      "dropped", G_TYPE_UINT64, dropped, "passthrough", G_TYPE_UINT64,
      passthrough, NULL);
  gst_structure_take_value (s, "keys", &keys);
  return s;
}

static void
gst_matrix_rtc_frame_cryptor_set_property (
    GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcFrameCryptor *self = GST_MATRIX_RTC_FRAME_CRYPTOR (object);
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);

  switch (prop_id) {
    case PROP_KEY: {
      const gchar *hex = g_value_get_string (value);
      GBytes *material = NULL;

      if (hex && *hex) {
        material = fc_hex_decode (hex);
        if (material == NULL || g_bytes_get_size (material) == 0) {
          /* Never echo the value: it is key material. */
          GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("Invalid key"),
              ("the key property must be non-empty hex"));
          if (material)
            g_bytes_unref (material);
          break;
        }
      }
      set_property_material (self, material, FALSE);
      break;
    }
    case PROP_PASSPHRASE: {
      const gchar *passphrase = g_value_get_string (value);
      GBytes *material = NULL;

      if (passphrase && *passphrase)
        material = fc_secret_bytes_new (passphrase, strlen (passphrase));
      set_property_material (self, material, TRUE);
      break;
    }
    case PROP_KEY_INDEX: {
      guint index = g_value_get_uint (value);

      /* selects the index only: a key is never copied to it */
      g_mutex_lock (&priv->lock);
      priv->key_index = index;
      g_mutex_unlock (&priv->lock);
      fc_keyring_set_current_index (priv->keyring, index);
      break;
    }
    case PROP_KEY_DERIVATION:
      g_mutex_lock (&priv->lock);
      priv->kdf = (FcKdf)g_value_get_enum (value);
      priv->kdf_explicit = TRUE;
      g_mutex_unlock (&priv->lock);
      apply_mode_defaults (self);
      break;
    case PROP_RATCHET_WINDOW:
      g_mutex_lock (&priv->lock);
      priv->ratchet_window_explicit = TRUE;
      g_mutex_unlock (&priv->lock);
      fc_keyring_set_ratchet_window (priv->keyring, g_value_get_uint (value));
      break;
    case PROP_FAILURE_TOLERANCE:
      g_mutex_lock (&priv->lock);
      priv->failure_tolerance_explicit = TRUE;
      g_mutex_unlock (&priv->lock);
      fc_keyring_set_failure_tolerance (priv->keyring, g_value_get_int (value));
      break;
    case PROP_KEYRING_SIZE:
      fc_keyring_set_size (priv->keyring, g_value_get_uint (value));
      break;
    case PROP_SIF_TRAILER: {
      const gchar *hex = g_value_get_string (value);
      GBytes *trailer = NULL;

      if (hex && *hex) {
        trailer = fc_hex_decode (hex);
        if (trailer == NULL) {
          GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
              ("Invalid sif-trailer"), ("sif-trailer must be hex: '%s'", hex));
          break;
        }
      }
      fc_keyring_set_sif_trailer (priv->keyring, trailer);
      g_mutex_lock (&priv->lock);
      g_free (priv->sif_trailer_hex);
      priv->sif_trailer_hex = trailer ? g_strdup (hex) : NULL;
      g_mutex_unlock (&priv->lock);
      if (trailer)
        g_bytes_unref (trailer);
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_matrix_rtc_frame_cryptor_get_property (
    GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstMatrixRtcFrameCryptor *self = GST_MATRIX_RTC_FRAME_CRYPTOR (object);
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);

  switch (prop_id) {
    case PROP_KEY_INDEX:
      g_mutex_lock (&priv->lock);
      g_value_set_uint (value, priv->key_index);
      g_mutex_unlock (&priv->lock);
      break;
    case PROP_KEY_DERIVATION:
      g_mutex_lock (&priv->lock);
      g_value_set_enum (value, (gint)priv->kdf);
      g_mutex_unlock (&priv->lock);
      break;
    case PROP_RATCHET_WINDOW:
      g_value_set_uint (value, fc_keyring_get_ratchet_window (priv->keyring));
      break;
    case PROP_FAILURE_TOLERANCE:
      g_value_set_int (value, fc_keyring_get_failure_tolerance (priv->keyring));
      break;
    case PROP_KEYRING_SIZE:
      g_value_set_uint (value, fc_keyring_get_size (priv->keyring));
      break;
    case PROP_SIF_TRAILER:
      g_mutex_lock (&priv->lock);
      g_value_set_string (value, priv->sif_trailer_hex);
      g_mutex_unlock (&priv->lock);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, create_stats (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static gboolean
gst_matrix_rtc_frame_cryptor_set_caps (
    GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (trans);
  const gchar *name;

  name = gst_structure_get_name (gst_caps_get_structure (incaps, 0));
  if (g_str_equal (name, "audio/x-opus"))
    priv->codec = FC_CODEC_AUDIO;
  else if (g_str_equal (name, "video/x-vp8"))
    priv->codec = FC_CODEC_VP8;
  else if (g_str_equal (name, "video/x-vp9"))
    priv->codec = FC_CODEC_VP9;
  else if (g_str_equal (name, "video/x-h264"))
    priv->codec = FC_CODEC_H264;
  else if (g_str_equal (name, "video/x-h265"))
    priv->codec = FC_CODEC_H265;
  else
    return FALSE;
  priv->have_codec = TRUE;
  GST_DEBUG_OBJECT (trans, "codec %s", fc_codec_name (priv->codec));
  return TRUE;
}

/* Counts a dropped frame and reports it, rate-limited per key index and in
 * all (garbage with varying key index bytes must not flood the bus). */
static void
report_drop (GstMatrixRtcFrameCryptor *self, FcResult result, guint index)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);
  gboolean encrypt = GST_MATRIX_RTC_FRAME_CRYPTOR_GET_CLASS (self)->encrypt;
  gint64 now = g_get_monotonic_time ();
  guint64 suppressed = 0;
  gboolean report = FALSE;
  FcKeyStats st;

  index = MIN (index, FC_KEYRING_MAX - 1);
  g_mutex_lock (&priv->lock);
  priv->dropped_frames++;
  if (priv->report_window_start == 0
      || now - priv->report_window_start >= REPORT_INTERVAL_US) {
    priv->report_window_start = now;
    priv->reports_in_window = 0;
  }
  if ((priv->last_report[index] == 0
          || now - priv->last_report[index] >= REPORT_INTERVAL_US)
      && priv->reports_in_window < REPORTS_PER_INTERVAL) {
    report = TRUE;
    suppressed = priv->unreported[index];
    priv->unreported[index] = 0;
    priv->last_report[index] = now;
    priv->reports_in_window++;
  } else {
    priv->unreported[index]++;
  }
  g_mutex_unlock (&priv->lock);

  if (!report)
    return;

  fc_keyring_get_stats (priv->keyring, index, &st);
  GST_WARNING_OBJECT (self,
      "dropped frame: cannot %s at key index %u: %s "
      "(%" G_GUINT64_FORMAT " failures at this index, %" G_GUINT64_FORMAT
      " more drops since the last report)",
      encrypt ? "encrypt" : "decrypt", index, fc_result_name (result),
      st.failures, suppressed);
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new ("matrixrtc-frame-crypto-error", "direction",
              G_TYPE_STRING, encrypt ? "encrypt" : "decrypt", "key-index",
              G_TYPE_UINT, index, "reason", G_TYPE_STRING,
              fc_result_name (result), "failures", G_TYPE_UINT64, st.failures,
              "suppressed", G_TYPE_UINT64, suppressed, NULL)));
}

/* Asks upstream for a key frame, at most once per KEY_UNIT_INTERVAL_US:
 * after the decryptor dropped a frame the decoder cannot go on until one
 * comes (rtpsession turns the event into a PLI). Streaming thread. */
static void
request_key_unit (GstMatrixRtcFrameCryptor *self)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);
  gint64 now = g_get_monotonic_time ();

  if (priv->codec == FC_CODEC_AUDIO)
    return;
  if (priv->last_key_unit_request != 0
      && now - priv->last_key_unit_request < KEY_UNIT_INTERVAL_US)
    return;
  priv->last_key_unit_request = now;
  GST_DEBUG_OBJECT (self, "requesting a key frame upstream");
  gst_pad_push_event (GST_BASE_TRANSFORM_SINK_PAD (self),
      gst_video_event_new_upstream_force_key_unit (
          GST_CLOCK_TIME_NONE, TRUE, 0));
}

/* Maps a new output buffer of @size bytes; NULL on failure. */
static GstBuffer *
allocate_output (gsize size, GstMapInfo *map)
{
  GstBuffer *out = gst_buffer_new_allocate (NULL, MAX (size, 1), NULL);

  if (out && !gst_buffer_map (out, map, GST_MAP_WRITE)) {
    gst_buffer_unref (out);
    out = NULL;
  }
  return out;
}

static GstFlowReturn
gst_matrix_rtc_frame_cryptor_generate_output (
    GstBaseTransform *trans, GstBuffer **outbuf)
{
  GstMatrixRtcFrameCryptor *self = GST_MATRIX_RTC_FRAME_CRYPTOR (trans);
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);
  gboolean encrypt = GST_MATRIX_RTC_FRAME_CRYPTOR_GET_CLASS (self)->encrypt;
  GstBuffer *inbuf = trans->queued_buf;
  GstBuffer *out = NULL;
  GstMapInfo in_map, out_map;
  gsize out_size = 0;
  guint key_index = 0;
  gboolean key_frame;
  FcResult result;

  *outbuf = NULL;
  trans->queued_buf = NULL;
  if (inbuf == NULL)
    return GST_FLOW_OK;

  if (!priv->have_codec) {
    gst_buffer_unref (inbuf);
    GST_ELEMENT_ERROR (
        self, CORE, NEGOTIATION, (NULL), ("no caps before the first buffer"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (!gst_buffer_map (inbuf, &in_map, GST_MAP_READ)) {
    gst_buffer_unref (inbuf);
    GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL), ("cannot map buffer"));
    return GST_FLOW_ERROR;
  }

  key_frame = !GST_BUFFER_FLAG_IS_SET (inbuf, GST_BUFFER_FLAG_DELTA_UNIT);
  if (encrypt) {
    /* right-sized: H.264/H.265 output is only rarely larger than the hint */
    gsize capacity = fc_encrypt_size_hint (priv->codec, in_map.size);

    out = allocate_output (capacity, &out_map);
    result = out ? fc_keyring_encrypt_into (priv->keyring, priv->codec,
                 key_frame, in_map.data, in_map.size, out_map.data, capacity,
                 &out_size, &key_index)
                 : FC_RESULT_CRYPTO_ERROR;
    if (result == FC_RESULT_NO_SPACE) {
      gst_buffer_unmap (out, &out_map);
      gst_buffer_unref (out);
      capacity = out_size;
      out = allocate_output (capacity, &out_map);
      result = out ? fc_keyring_encrypt_into (priv->keyring, priv->codec,
                   key_frame, in_map.data, in_map.size, out_map.data, capacity,
                   &out_size, &key_index)
                   : FC_RESULT_CRYPTO_ERROR;
    }
  } else {
    FcDecryptFlags flags = key_frame ? FC_DECRYPT_KEY_FRAME : 0;

    if (GST_BUFFER_FLAG_IS_SET (inbuf, GST_BUFFER_FLAG_DISCONT))
      flags |= FC_DECRYPT_DISCONT;
    out = allocate_output (in_map.size, &out_map);
    result = out ? fc_keyring_decrypt_full (priv->keyring, priv->codec, flags,
                 in_map.data, in_map.size, out_map.data, &out_size, &key_index)
                 : FC_RESULT_CRYPTO_ERROR;
  }
  if (out == NULL) {
    gst_buffer_unmap (inbuf, &in_map);
    gst_buffer_unref (inbuf);
    GST_ELEMENT_ERROR (
        self, RESOURCE, FAILED, (NULL), ("cannot allocate output"));
    return GST_FLOW_ERROR;
  }
  gst_buffer_unmap (out, &out_map);
  gst_buffer_unmap (inbuf, &in_map);

  switch (result) {
    case FC_RESULT_OK:
      gst_buffer_set_size (out, out_size);
      gst_buffer_copy_into (out, inbuf, GST_BUFFER_COPY_METADATA, 0, -1);
      *outbuf = out;
      gst_buffer_unref (inbuf);
      if (priv->resume_pending) {
        /* frames flow again after drops: receivers need a key frame */
        priv->resume_pending = FALSE;
        if (!key_frame)
          request_key_unit (self);
      }
      break;
    case FC_RESULT_PASSTHROUGH:
      gst_buffer_unref (out);
      g_mutex_lock (&priv->lock);
      priv->passthrough_frames++;
      g_mutex_unlock (&priv->lock);
      if (out_size == gst_buffer_get_size (inbuf)) {
        *outbuf = inbuf;
      } else {
        *outbuf
            = gst_buffer_copy_region (inbuf, GST_BUFFER_COPY_ALL, 0, out_size);
        gst_buffer_unref (inbuf);
      }
      break;
    default:
      gst_buffer_unref (out);
      gst_buffer_unref (inbuf);
      report_drop (self, result, key_index);
      priv->discont_pending = TRUE;
      if (encrypt)
        priv->resume_pending = TRUE;
      else
        request_key_unit (self);
      break;
  }
  if (*outbuf && priv->discont_pending) {
    /* the frame before is missing */
    *outbuf = gst_buffer_make_writable (*outbuf);
    GST_BUFFER_FLAG_SET (*outbuf, GST_BUFFER_FLAG_DISCONT);
    priv->discont_pending = FALSE;
  }
  return GST_FLOW_OK;
}

static gboolean
gst_matrix_rtc_frame_cryptor_start (GstBaseTransform *trans)
{
  GstMatrixRtcFrameCryptor *self = GST_MATRIX_RTC_FRAME_CRYPTOR (trans);
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (trans);
  GBytes *material;
  guint index;
  FcKdf kdf;

  g_mutex_lock (&priv->lock);
  priv->started = TRUE;
  material = priv->pending_material;
  priv->pending_material = NULL;
  kdf = priv->pending_kdf;
  index = priv->key_index;
  g_mutex_unlock (&priv->lock);
  if (material) {
    install_key (self, index, kdf, material);
    g_bytes_unref (material);
  }
  priv->discont_pending = FALSE;
  priv->resume_pending = FALSE;
  priv->last_key_unit_request = 0;
  return TRUE;
}

static gboolean
gst_matrix_rtc_frame_cryptor_stop (GstBaseTransform *trans)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (trans);

  priv->have_codec = FALSE;
  g_mutex_lock (&priv->lock);
  priv->started = FALSE;
  g_mutex_unlock (&priv->lock);
  return TRUE;
}

static void
gst_matrix_rtc_frame_cryptor_finalize (GObject *object)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (object);

  fc_keyring_free (priv->keyring);
  if (priv->pending_material)
    g_bytes_unref (priv->pending_material);
  g_free (priv->sif_trailer_hex);
  g_mutex_clear (&priv->lock);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_matrix_rtc_frame_cryptor_init (GstMatrixRtcFrameCryptor *self)
{
  GstMatrixRtcFrameCryptorPrivate *priv = GET_PRIV (self);

  g_mutex_init (&priv->lock);
  priv->keyring = fc_keyring_new ();
  priv->kdf = FC_KDF_HKDF;
  priv->key_index = DEFAULT_KEY_INDEX;
  fc_keyring_set_size (priv->keyring, DEFAULT_KEYRING_SIZE);
  fc_keyring_set_ratchet_window (priv->keyring, DEFAULT_RATCHET_WINDOW);
  fc_keyring_set_failure_tolerance (priv->keyring, DEFAULT_FAILURE_TOLERANCE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), FALSE);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), FALSE);
}

static void
gst_matrix_rtc_frame_cryptor_class_init (GstMatrixRtcFrameCryptorClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gst_matrix_rtc_frame_cryptor_set_property;
  gobject_class->get_property = gst_matrix_rtc_frame_cryptor_get_property;
  gobject_class->finalize = gst_matrix_rtc_frame_cryptor_finalize;

  trans_class->set_caps
      = GST_DEBUG_FUNCPTR (gst_matrix_rtc_frame_cryptor_set_caps);
  trans_class->generate_output
      = GST_DEBUG_FUNCPTR (gst_matrix_rtc_frame_cryptor_generate_output);
  trans_class->start = GST_DEBUG_FUNCPTR (gst_matrix_rtc_frame_cryptor_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_matrix_rtc_frame_cryptor_stop);
  trans_class->passthrough_on_same_caps = FALSE;

  klass->set_key = gst_matrix_rtc_frame_cryptor_set_key;
  klass->ratchet_key = gst_matrix_rtc_frame_cryptor_ratchet_key;

  /**
   * GstMatrixRtcFrameCryptor:key:
   *
   * Raw key material as hex (Element Call's per-member keys are 16 bytes),
   * stored at #GstMatrixRtcFrameCryptor:key-index and made the current
   * index, turned into the AES-128-GCM key with
   * #GstMatrixRtcFrameCryptor:key-derivation (HKDF-SHA256 unless set
   * otherwise: salt "LKFrameEncryptionKey", info 128 zero bytes). Setting it
   * selects the per-member (HKDF) mode unless key-derivation was set. Given
   * before the element starts, the key is stored when it starts, at the
   * key-index set by then, so key and key-index can come in any order;
   * afterwards it is stored at once. The value is wiped from memory when no
   * longer needed and never logged.
   */
  g_object_class_install_property (gobject_class, PROP_KEY,
      g_param_spec_string ("key", "Key",
          "Raw key material (hex), stored at key-index and derived with "
          "key-derivation (HKDF-SHA256 by default)",
          NULL,
          G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstMatrixRtcFrameCryptor:key-index:
   *
   * The key index the key and passphrase properties are stored at, and the
   * index the encryptor sends with. Setting it only selects the index: no
   * key is copied there, so while the element runs the encryptor drops
   * frames (counted, reported as missing-key) until a key is set at the new
   * index. #GstMatrixRtcFrameCryptor::set-key also makes its index the
   * current one.
   */
  g_object_class_install_property (gobject_class, PROP_KEY_INDEX,
      g_param_spec_uint ("key-index", "Key index",
          "Key index for the key and passphrase properties and for sending "
          "(selects only; no key is copied)",
          0, FC_KEYRING_MAX - 1, DEFAULT_KEY_INDEX,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstMatrixRtcFrameCryptor:passphrase:
   *
   * Shared passphrase (Element Call's shared-key mode), stored at
   * #GstMatrixRtcFrameCryptor:key-index (on start, when given before) and
   * derived with PBKDF2-SHA256 (100000 iterations). Setting it selects the
   * shared-key mode: unless #GstMatrixRtcFrameCryptor:key-derivation was
   * set, keys given later with set-key are derived with PBKDF2 as well; and
   * unless set explicitly, #GstMatrixRtcFrameCryptor:ratchet-window becomes
   * 0 and #GstMatrixRtcFrameCryptor:failure-tolerance -1, as in Element Call
   * (a PBKDF2 ratchet chain takes seconds to derive).
   */
  g_object_class_install_property (gobject_class, PROP_PASSPHRASE,
      g_param_spec_string ("passphrase", "Passphrase",
          "Shared passphrase (PBKDF2-SHA256 shared-key mode; no ratcheting, "
          "never gives up on a key unless set otherwise)",
          NULL,
          G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstMatrixRtcFrameCryptor:key-derivation:
   *
   * How the key property and #GstMatrixRtcFrameCryptor::set-key turn key
   * material into the AES key: HKDF-SHA256 (per-member keys) or
   * PBKDF2-SHA256 (shared-key mode, e.g. a shared key distributed as raw
   * bytes). Follows the mode (hkdf after key, pbkdf2 after passphrase)
   * until set explicitly. The pbkdf2 mode also changes the defaults of
   * ratchet-window (0) and failure-tolerance (-1) as the passphrase does.
   * The passphrase property always uses PBKDF2.
   */
  g_object_class_install_property (gobject_class, PROP_KEY_DERIVATION,
      g_param_spec_enum ("key-derivation", "Key derivation",
          "Key derivation of the key property and set-key (hkdf, or pbkdf2 "
          "for the shared-key mode; follows key/passphrase until set)",
          GST_TYPE_MATRIX_RTC_KEY_DERIVATION, DEFAULT_KEY_DERIVATION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstMatrixRtcFrameCryptor:ratchet-window:
   *
   * How many ratchet steps the decryptor tries when a frame does not
   * authenticate with the stored key (0 disables auto-ratcheting). The chain
   * is derived once per key, without blocking the key actions and stats.
   * Default 10, or 0 in the shared-key (PBKDF2) mode unless set.
   */
  g_object_class_install_property (gobject_class, PROP_RATCHET_WINDOW,
      g_param_spec_uint ("ratchet-window", "Ratchet window",
          "Ratchet steps tried on a decryption failure (0 = none; default 0 "
          "in the shared-key mode)",
          0, FC_RATCHET_WINDOW_MAX, DEFAULT_RATCHET_WINDOW,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstMatrixRtcFrameCryptor:failure-tolerance:
   *
   * Once more than this many consecutive frames at one key index fail,
   * frames at that index are dropped without trying until a key is set or
   * ratcheted there again; -1 never gives up. Malformed frames (truncated,
   * bad trailer) and failures right after lost data (input DISCONT) do not
   * count. Default 10, or -1 in the shared-key (PBKDF2) mode unless set.
   */
  g_object_class_install_property (gobject_class, PROP_FAILURE_TOLERANCE,
      g_param_spec_int ("failure-tolerance", "Failure tolerance",
          "Failures at a key index before it is dropped (-1 = never; default "
          "-1 in the shared-key mode)",
          -1, G_MAXINT, DEFAULT_FAILURE_TOLERANCE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstMatrixRtcFrameCryptor:keyring-size:
   *
   * Number of key indexes (keys are stored at index modulo the size; a
   * frame with a larger key index has no key).
   */
  g_object_class_install_property (gobject_class, PROP_KEYRING_SIZE,
      g_param_spec_uint ("keyring-size", "Keyring size",
          "Number of key indexes", 1, FC_KEYRING_MAX, DEFAULT_KEYRING_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));

  /**
   * GstMatrixRtcFrameCryptor:sif-trailer:
   *
   * The LiveKit server-injected-frame trailer (JoinResponse.sif_trailer) as
   * hex. A frame ending in it passes through without the trailer and
   * without decryption only when the rest is one of the blank frames
   * livekit-server injects (the VP8 8x8 key frame, the Opus silence frame,
   * the H.264 2x2 key frame's NAL units; matched by SHA-256 as
   * livekit-client does), and at most 100 in a row within 2 s; any other
   * frame ending in it is dropped and counted, so an SFU cannot inject
   * media.
   */
  g_object_class_install_property (gobject_class, PROP_SIF_TRAILER,
      g_param_spec_string ("sif-trailer", "SIF trailer",
          "Server-injected-frame trailer (hex); only known blank frames "
          "ending in it pass undecrypted",
          NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstMatrixRtcFrameCryptor:stats:
   *
   * Totals (frames, bytes, failures, ratchets, dropped, passthrough,
   * current-key-index) and, in the `keys` array, one `key-stats` structure
   * per key index in use (index, present, invalid, frames, bytes, failures,
   * ratchets).
   */
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Frames, bytes, failures and ratchets per key index",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstMatrixRtcFrameCryptor::set-key:
   * @self: the element
   * @index: key index (0-255)
   * @material: raw key material
   *
   * Stores @material at @index, derived with
   * #GstMatrixRtcFrameCryptor:key-derivation (HKDF-SHA256, or PBKDF2-SHA256
   * once a passphrase was set), and makes @index the current one. Works
   * before the element starts too. Safe from any thread while streaming.
   *
   * Returns: %TRUE if the key was set.
   */
  signals[SIGNAL_SET_KEY] = g_signal_new ("set-key", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_STRUCT_OFFSET (GstMatrixRtcFrameCryptorClass, set_key), NULL, NULL,
      NULL, G_TYPE_BOOLEAN, 2, G_TYPE_UINT, G_TYPE_BYTES);

  /**
   * GstMatrixRtcFrameCryptor::ratchet-key:
   * @self: the element
   * @index: key index
   *
   * Ratchets the key at @index once. The derivation runs without blocking
   * the streaming thread's keyring. Safe from any thread while streaming.
   *
   * Returns: %TRUE if there was a key to ratchet.
   */
  signals[SIGNAL_RATCHET_KEY] = g_signal_new ("ratchet-key",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_STRUCT_OFFSET (GstMatrixRtcFrameCryptorClass, ratchet_key), NULL, NULL,
      NULL, G_TYPE_BOOLEAN, 1, G_TYPE_UINT);

  gst_type_mark_as_plugin_api (GST_TYPE_MATRIX_RTC_KEY_DERIVATION, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MATRIX_RTC_FRAME_CRYPTOR, 0);
}
